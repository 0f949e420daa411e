"""Every name mlspec gives to something, derived in one place.

Kubernetes objects, Kubeflow pipelines and versions, experiments, CronJobs, serving
resources, drift detectors, triggers, Argo CD applications, the Feast project and the
model registry path are all derived here from the spec name, the environment and (for
content-addressed names) a hash.  Targets never build a name by hand, so two targets
always agree on what the other one is called.

Each name comes with the limit it must fit and why (:class:`Budget`).  Limits are
computed from the real suffixes and, where the platform builds a longer name from ours,
from what it builds: KServe names the predictor's host label
``<isvc>-predictor-<namespace>`` and fails to reconcile when that exceeds 63 characters
(kserve/kserve#4807); a CronJob's name must leave 11 characters for the Jobs it creates.
:func:`check` is the validation rule: it reports every name of a spec that would not fit,
at the spec's ``name``, with the longest spec name that would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

#: Length of the content hash in content-addressed names (e.g. PipelineVersions).
HASH_CHARS = 10
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_MAX = 63
#: A CronJob's Jobs are named ``<cronjob>-<unix minutes>``: 52 leaves room for the suffix.
CRONJOB_MAX = 52

# Suffixes, in one place so that budgets and names cannot disagree.
TRAINING_SUFFIX = "-training"
KSERVE_PREDICTOR_HOST = "-predictor-"  # KServe: <isvc>-predictor-<namespace>
CHAMPION_SUFFIX = "-champion"
CHALLENGER_SUFFIX = "-challenger"
DETECTOR_SUFFIX = "-drift-detector"
TRIGGER_SUFFIX = "-trigger"
ACTIONS_SUFFIX = "-drift-actions"
BROKER_SUFFIX = "-events"
PIPELINE_VERSION_CONFIGMAP_SUFFIX = "-pipeline-version"
SELDON_PIPELINE_SUFFIX = "-monitored"
KAFKA_SOURCE_SUFFIX = "-drift-results"
#: The CloudEvent type the drift detector emits for every tested batch (drift or not; the
#: data's ``is_drift`` tells). alibi-detect-server has no type of its own: it sends ``--event_type``.
DRIFT_EVENT_TYPE = "io.mlspec.drift.result"
#: ``repository_dispatch`` event types sent to the GitOps repository, and the workflows that take them.
DISPATCH_ROLLBACK = "mlspec-rollback"
DISPATCH_NEW_MODEL = "mlspec-new-model"
#: The Feast operator names its Deployment and CronJob ``feast-<FeatureStore>`` and its
#: Services ``feast-<FeatureStore>-<online|offline|registry|ui>`` (feast-dev/feast@v0.66.0
#: infra/feast-operator/internal/controller/services/util.go, GetFeastServiceName).
FEAST_OPERATOR_PREFIX = "feast-"
FEAST_LONGEST_SERVICE = "-registry"
FEAST_STORES_SUFFIX = "-feast-stores"
FEAST_BATCH_ENGINE_SUFFIX = "-feast-batch-engine"
FEAST_PREPARED_SUFFIX = "_prepared"


@dataclass(frozen=True)
class Budget:
    """One derived name and the longest it may be."""

    what: str  # e.g. "the training CronJob"
    name: str
    limit: int
    why: str  # where the limit comes from

    @property
    def over(self) -> int:
        return len(self.name) - self.limit


@dataclass(frozen=True)
class Names:
    """The names of one spec in one environment."""

    spec: str  # spec.name: a DNS-1123 label
    env: str  # the environment's name
    namespace: str  # the environment's namespace (serving, drift, feature store, schedules)

    # --- Kubeflow Pipelines ------------------------------------------------------------
    @property
    def pipeline(self) -> str:
        """The ``Pipeline`` object and its display name."""
        return self.spec

    def pipeline_version(self, content_sha256: str) -> str:
        """A ``PipelineVersion``: ``<spec>-<hash of the pipeline IR>``; a new name iff the IR changes."""
        return f"{self.spec}-{content_sha256[:HASH_CHARS]}"

    @property
    def experiment(self) -> str:
        return self.spec

    @property
    def training_cronjob(self) -> str:
        return f"{self.spec}{TRAINING_SUFFIX}"

    def registry_path(self, models_root: str) -> str:
        """Where registered versions of the model go: ``<models root>/<spec>``."""
        return f"{models_root.rstrip('/')}/{self.spec}"

    # --- serving -----------------------------------------------------------------------
    @property
    def serving(self) -> str:
        """The serving resource (InferenceService, SeldonDeployment, Seldon Model)."""
        return self.spec

    @property
    def champion(self) -> str:
        return f"{self.spec}{CHAMPION_SUFFIX}"

    @property
    def challenger(self) -> str:
        return f"{self.spec}{CHALLENGER_SUFFIX}"

    # --- drift and triggers ------------------------------------------------------------
    @property
    def drift_detector(self) -> str:
        return f"{self.spec}{DETECTOR_SUFFIX}"

    def trigger(self, action: str) -> str:
        """A Knative Trigger: ``detector`` (requests to the detector) or a drift action (``retrain``, ...)."""
        return f"{self.spec}-{action}{TRIGGER_SUFFIX}"

    @property
    def drift_actions(self) -> str:
        """The Knative Service that acts on drift results (retrain, alert, rollback; dead letters)."""
        return f"{self.spec}{ACTIONS_SUFFIX}"

    @property
    def broker(self) -> str:
        """The Knative Broker mlspec makes for a spec when the environment names none."""
        return f"{self.spec}{BROKER_SUFFIX}"

    @staticmethod
    def broker_url(namespace: str, broker: str) -> str:
        """Ingress of a multi-tenant channel-based Broker (the KServe/Seldon logger and detector reply URL)."""
        return f"http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{broker}"

    @property
    def pipeline_version_configmap(self) -> str:
        """ConfigMap naming the environment's current PipelineVersion (read by the retrain action)."""
        return f"{self.spec}{PIPELINE_VERSION_CONFIGMAP_SUFFIX}"

    @property
    def seldon_pipeline(self) -> str:
        """Seldon Core 2: the ``Pipeline`` serving the champion with the drift detector as an
        asynchronous step; clients call it with the header ``Seldon-Model: <name>.pipeline``."""
        return f"{self.spec}{SELDON_PIPELINE_SUFFIX}"

    @property
    def drift_kafka_source(self) -> str:
        """Seldon Core 2: the Knative ``KafkaSource`` reading the detector Model's output topic."""
        return f"{self.spec}{KAFKA_SOURCE_SUFFIX}"

    @property
    def drift_consumer_group(self) -> str:
        """The KafkaSource's Kafka consumer group (immutable once set; unique per environment and spec)."""
        return f"mlspec.{self.namespace}.{self.spec}.drift-actions"

    @property
    def drift_event_source(self) -> str:
        """``source`` of the detector's CloudEvents: unique per spec and namespace."""
        return f"io.mlspec/{self.namespace}/{self.spec}/drift-detector"

    # --- feature store and GitOps ------------------------------------------------------
    @property
    def feast_project(self) -> str:
        """Feast project: letters, digits and '_' (SQLite online stores reject '-')."""
        return self.spec.replace("-", "_")

    @property
    def feature_store(self) -> str:
        """The Feast operator's ``FeatureStore`` object."""
        return self.spec

    @property
    def feast_stores_secret(self) -> str:
        """The Secret with the Feast store blocks the operator reads (placeholders, no credentials)."""
        return f"{self.spec}{FEAST_STORES_SUFFIX}"

    @property
    def feast_batch_engine_configmap(self) -> str:
        """The ConfigMap with the Feast batch engine block the operator reads."""
        return f"{self.spec}{FEAST_BATCH_ENGINE_SUFFIX}"

    @staticmethod
    def feast_prepared_source(view: str) -> str:
        """The Feast data source of the table mlspec prepares for a view (aggregations, CSV)."""
        return f"{view}{FEAST_PREPARED_SUFFIX}"

    @property
    def argocd_application(self) -> str:
        """Applications of every environment share Argo CD's namespace: the env is in the name."""
        return f"{self.spec}-{self.env}"

    # --- budgets -----------------------------------------------------------------------
    def budgets(self, targets: Iterable[str], spec: Any = None) -> list[Budget]:
        """The names the given targets create for ``spec``, each with its limit."""
        chosen = set(targets)
        serving_runtime = spec.serving.runtime if spec is not None else None
        scheduled = spec is None or bool(spec.training.schedule)
        out = [Budget("the spec name", self.spec, LABEL_MAX, "it is a Kubernetes name (DNS-1123 label)")]
        if "kubeflow" in chosen:
            out += [
                Budget("the PipelineVersion name", self.pipeline_version("0" * HASH_CHARS), LABEL_MAX,
                       f"it is '<name>-<{HASH_CHARS} hex>', a DNS-1123 label"),
            ]
            if scheduled:
                out.append(Budget("the training CronJob name", self.training_cronjob, CRONJOB_MAX,
                                  "a CronJob leaves 11 characters for the names of its Jobs"))
        if "kserve" in chosen and serving_runtime in (None, "kserve"):
            isvcs = [("InferenceService", self.serving), ("champion InferenceService", self.champion),
                     ("challenger InferenceService", self.challenger)]
            if spec is not None:  # canary: one InferenceService named after the spec; else one per model
                canary = spec.serving.rollout == "canary"
                isvcs = [isvcs[0]] if canary else [isvcs[1]] + ([isvcs[2]] if spec.serving.challenger else [])
            for what, name in isvcs:
                out.append(Budget(f"the KServe predictor host label of the {what}",
                                  f"{name}{KSERVE_PREDICTOR_HOST}{self.namespace}", LABEL_MAX,
                                  "KServe names the predictor host '<name>-predictor-<namespace>' (kserve/kserve#4807)"))
        if "drift" in chosen and (spec is None or spec.drift is not None):
            out += [Budget("the drift detector name", self.drift_detector, LABEL_MAX, "it is a Knative Service name"),
                    Budget("the drift actions Service name", self.drift_actions, LABEL_MAX, "it is a Knative Service name")]
            if spec is None or serving_runtime == "seldon-v2":
                out += [Budget("the Seldon Core 2 Pipeline name", self.seldon_pipeline, LABEL_MAX,
                               "it is a Kubernetes object name, kept a DNS-1123 label"),
                        Budget("the drift KafkaSource name", self.drift_kafka_source, LABEL_MAX,
                               "it is a Kubernetes object name, kept a DNS-1123 label")]
        if "feast" in chosen:
            out += [
                Budget("the Feast operator's Service name",
                       f"{FEAST_OPERATOR_PREFIX}{self.feature_store}{FEAST_LONGEST_SERVICE}", LABEL_MAX,
                       "the Feast operator names its Services 'feast-<name>-<online|offline|registry|ui>'"),
                Budget("the Feast operator's materialization CronJob name",
                       f"{FEAST_OPERATOR_PREFIX}{self.feature_store}", CRONJOB_MAX,
                       "the Feast operator names its CronJob 'feast-<name>', which leaves 11 characters for its Jobs"),
            ]
        if "argocd" in chosen:
            out.append(Budget("the Argo CD Application name", self.argocd_application, LABEL_MAX,
                              "Argo CD puts it in the app.kubernetes.io/instance label"))
        return out


def check(names: Names, targets: Iterable[str], spec: Any = None) -> list[str]:
    """Problems with the names of one spec in one environment, as messages."""
    problems = []
    for budget in names.budgets(targets, spec):
        if budget.over > 0:
            fits = len(names.spec) - budget.over
            problems.append(
                f"{budget.what} '{budget.name}' is {len(budget.name)} characters, over the limit of "
                f"{budget.limit} ({budget.why}); shorten the spec name to at most {max(fits, 1)} characters")
    return problems
