"""Drift target: payload logging routed through Knative Eventing to an Alibi Detect detector,
and from the detector's results to the spec's action.

For a spec with a ``drift`` block served by KServe or Seldon Core v1,
``deploy/<env>/<spec>/drift/`` holds (names from :mod:`mlspec.naming`):

``broker.yaml``
    ``eventing.knative.dev/v1`` Broker ``<spec>-events`` of class ``MTChannelBasedBroker``
    (its ingress URL has the documented form ``http://broker-ingress.knative-eventing.svc.
    cluster.local/<namespace>/<broker>``), with delivery retries and a dead-letter sink.  Not
    written when the environment names an existing Broker (``drift.broker``).  The serving
    targets point their payload logger at this URL explicitly (KServe ``predictor.logger``,
    Seldon ``graph.logger``): never at ``http://default-broker``, the KServe/Seldon default,
    which only resolves where a Broker called ``default`` happens to exist.
``detector.yaml``
    ``serving.knative.dev/v1`` Service ``<spec>-drift-detector`` running alibi-detect-server
    (``seldonio/alibi-detect-server:1.17.1``, the last Apache-2.0 release; it depends on
    alibi-detect ^0.11.4): the global flags, then the positional ``DriftDetector`` and its own
    ``--drift_batch_size`` (the spec's ``batch_size``).  ``--storage_uri`` is the detector the
    training pipeline registered next to the champion model; ``--event_type`` is mlspec's own
    :data:`mlspec.naming.DRIFT_EVENT_TYPE` and ``--event_source`` names the spec and namespace,
    so Triggers filter on exactly what this detector emits; ``--reply_url`` is the Broker.
    Exactly one replica (``min-scale`` = ``max-scale`` = 1): the server accumulates rows in
    memory until a batch is full, so two replicas would each see half a batch and a scale to
    zero would drop one.  ``--protocol`` follows the served protocol (v2 → ``kfserving.http``,
    the V2 ``inputs`` payload; KServe v1 → ``tensorflow.http``; Seldon v1 → ``seldon.http``).
    There is no time window: alibi-detect-server batches by row count only, so ``batch_size``
    is the one knob (rows per second × the time one test should cover).
``actions.yaml``
    ``serving.knative.dev/v1`` Service ``<spec>-drift-actions``: a stdlib-only program
    (:mod:`mlspec.generators.drift_actions`) that acts on drift results -- ``retrain`` starts a
    run of this environment's PipelineVersion through the same launcher as the training
    CronJob, at most one per ``cooldown`` (read from the KFP API's run history, no state of
    its own); ``alert`` posts the result to the webhook URL of a Secret; ``rollback`` sends a
    ``repository_dispatch`` to the GitOps repository, whose generated workflow opens the
    rollback pull request.  Its ``/dead-letter`` path logs what delivery gave up on.  One
    replica at most, so its lock serializes the cooldown check.
``triggers.yaml``
    ``eventing.knative.dev/v1`` Triggers: ``<spec>-detector-trigger`` passes the champion's
    request events (``type`` ``org.kubeflow.serving.inference.request`` from KServe,
    ``io.seldon.serving.inference.request`` from Seldon, and the ``inferenceservicename``
    extension both set to the serving object's name) to the detector;
    ``<spec>-<action>-trigger`` passes the detector's results (its type and source) to the
    actions Service.  Both with retries and the dead-letter sink.

For ``serving.runtime: seldon-v2`` (Seldon Core 2.6.0, the last Apache-2.0 release; schema
``mlops.seldon.io/v1alpha1`` of that tag) there is no payload logger and no Broker: Seldon's own
dataflow engine feeds the detector, and its results come back through Kafka.
``deploy/<env>/<spec>/drift/`` then holds:

``detector.yaml``
    A ``Model`` ``<spec>-drift-detector``: ``storageUri`` = the registered detector directory
    (its ``model-settings.json`` names ``mlserver_alibi_detect.AlibiDetectRuntime``; MLServer
    1.3.5, ``alibi-detect`` 0.11.4), ``requirements: [mlserver, alibi-detect]`` (matched against
    the MLServer Server's default capabilities) and the serving ``storage_secret`` as
    ``secretName``.
``pipeline.yaml``
    A ``Pipeline`` ``<spec>-monitored`` (:attr:`mlspec.naming.Names.seldon_pipeline`): step
    ``<spec>-champion`` and step ``<spec>-drift-detector`` with ``batch: {size: batch_size}``,
    both without ``inputs`` (so both receive the pipeline inputs), ``output.steps`` = the
    champion only.  The detector does not reach the output, so it runs asynchronously and never
    delays or changes an answer; the dataflow engine merges ``batch_size`` rows (the first input
    tensor's ``shape[0]``) into one request before calling it (SeldonIO/seldon-core@v2.6.0
    scheduler/data-flow/.../BatchProcessor.kt), so ``batch_size`` is again the one knob.
    Clients reach the monitored endpoint at ``/v2/models/<spec>-monitored/infer`` with the header
    ``Seldon-Model: <spec>-monitored.pipeline`` (or ``/v2/pipelines/<spec>-monitored/infer``;
    v2.6.0 docs/source/contents/inference/index.md): only requests sent to the pipeline are
    watched -- calls to a Model's endpoint directly bypass the detector.
    With a challenger, the seldon-v2 target's Experiment (``default`` = the champion) splits the
    champion's route in Seldon's Envoy.  The pipeline's champion step is called by Seldon's model
    gateway through that same Envoy with ``seldon-model: <spec>-champion``
    (v2.6.0 scheduler/pkg/kafka/gateway/worker.go, cmd/modelgateway/main.go ``--envoy-host``;
    scheduler/pkg/envoy/processor/incremental.go ``addExperimentModelBaselineTraffic``), so the
    pipeline's answers follow the same champion/challenger split (or mirror) as direct calls,
    while the detector sees every request's inputs.  Nothing of the seldon-v2 target changes.
``actions.yaml``
    The drift actions Service above, with ``MLSPEC_EVENT_TYPE`` = ``dev.knative.kafka.event``
    and ``MLSPEC_EVENT_SOURCE`` = the KafkaSource's source for the detector's topic.
``kafka-source.yaml``
    A ``sources.knative.dev/v1beta1`` ``KafkaSource`` ``<spec>-drift-results``
    (knative-extensions/eventing-kafka-broker@knative-v1.22.2
    control-plane/pkg/apis/sources/v1beta1/kafka_types.go) reading the detector Model's output
    topic ``<prefix>.<namespace>.model.<spec>-drift-detector.outputs`` (prefix ``seldon``
    unless ``drift.kafka.topic_prefix``; v2.6.0 scheduler/pkg/kafka/topics.go) from the
    environment's ``drift.kafka.bootstrap_servers``, with a fixed ``consumerGroup`` (the
    webhook would otherwise default a random one, and the field is immutable), ``initialOffset:
    latest`` (a new consumer group does not replay old results) and ``sink`` = the actions
    Service directly (no Broker hop: the source reads one topic, its events have one consumer),
    with the same retries and dead-letter sink as the Triggers.  Seldon's model gateway writes the
    detector's gRPC answer as a protobuf ``inference.ModelInferResponse`` (``proto.Marshal``,
    worker.go ``grpcRequest``; pipelines send protobuf) -- no CloudEvents headers, so the Kafka
    dispatcher wraps the record as a CloudEvent of ``type`` ``dev.knative.kafka.event``,
    ``source`` ``/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>``, the record value as
    data and the record headers as ``kafkaheader<name>`` extensions (data-plane
    InvalidCloudEventInterceptor.java), delivered in binary mode (WebClientCloudEventSender.java).
    The actions Service decodes the protobuf outputs ``is_drift``, ``p_val``, ``threshold``,
    ``distance`` (MLServer's alibi-detect runtime names them after the detector's result keys).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import TYPE_CHECKING

from pydantic import Field

from mlspec.artefact import Artefact
from mlspec.environments import settings_of
from mlspec.models import IMAGE, K8sLabel, Model, SecretRef
from mlspec.naming import DISPATCH_ROLLBACK, DRIFT_EVENT_TYPE, Names
from mlspec.registry import Target, source_key

from .serving import CONTAINER_SECURITY

if TYPE_CHECKING:
    from mlspec.context import Context

#: alibi-detect-server of Seldon Core 1.17.1, the last Apache-2.0 release (alibi-detect ^0.11.4).
DETECTOR_IMAGE = "seldonio/alibi-detect-server:1.17.1"
ACTIONS_IMAGE = "python:3.11-slim"
BROKER_CLASS = "MTChannelBasedBroker"
EVENTING_API = "eventing.knative.dev/v1"
KNATIVE_SERVING_API = "serving.knative.dev/v1"
#: The payload loggers' request event types (upstream facts §1.5, §2).
REQUEST_EVENT_TYPES = {"kserve": "org.kubeflow.serving.inference.request",
                       "seldon": "io.seldon.serving.inference.request"}
#: alibi-detect-server --protocol by runtime and served protocol.
DETECTOR_PROTOCOLS = {("kserve", "v2"): "kfserving.http", ("kserve", "v1"): "tensorflow.http",
                      ("seldon", "v2"): "kfserving.http", ("seldon", "v1"): "seldon.http"}
VERSION_DIR = "/etc/mlspec/pipeline"
#: Seldon Core 2 (v2.6.0 operator/apis/mlops/v1alpha1) and Knative's KafkaSource
#: (knative-extensions/eventing-kafka-broker@knative-v1.22.2 control-plane/pkg/apis/sources/v1beta1).
SELDON_API = "mlops.seldon.io/v1alpha1"
KAFKA_SOURCE_API = "sources.knative.dev/v1beta1"
#: What the Kafka dispatcher makes of a record that is not a CloudEvent (InvalidCloudEventInterceptor.java).
KAFKA_EVENT_TYPE = "dev.knative.kafka.event"
DETECTOR_REQUIREMENTS = ["mlserver", "alibi-detect"]
BACKOFF_DELAY = "PT2S"  # ISO-8601; exponential: 2 s, 4 s, 8 s, ...
#: The pods' security context; the detector's container takes the serving containers'.
POD_SECURITY = {"seccompProfile": {"type": "RuntimeDefault"}}


class GitHub(Model):
    repository: str | None = Field(
        None, pattern=r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$",
        description="owner/name of the GitOps repository that receives repository_dispatch events. Default: "
                    "argocd.repo_url when it is a github.com URL.")
    token_secret: SecretRef | None = Field(
        None, description="Secret holding a GitHub token allowed to send repository_dispatch (contents: write).")


class Kafka(Model):
    bootstrap_servers: list[str] = Field(
        ..., min_length=1, description="host:port of the Kafka brokers Seldon Core 2 writes model outputs to "
                                       "(the KafkaSource reads the drift detector's results there).")
    topic_prefix: str = Field(
        "seldon", pattern=r"^[A-Za-z._-]+$",
        description="Seldon Core 2's Kafka topic prefix (its kafka.topicPrefix; the same characters Seldon allows).")


class NewModels(Model):
    traffic: int = Field(10, ge=0, le=100, description="Share (%) the new challenger gets in the pull request.")


class Settings(Model):
    """The ``drift:`` block of ``environments/<env>.yaml``."""

    broker: K8sLabel | None = Field(
        None, description="An existing Knative Broker of the environment's namespace to route events through. "
                          "Default: mlspec makes one Broker per spec, <spec>-events.")
    detector_image: str = Field(DETECTOR_IMAGE, pattern=IMAGE, description="alibi-detect-server image.")
    actions_image: str = Field(ACTIONS_IMAGE, pattern=IMAGE, description="Python image of the drift actions Service.")
    dead_letter_uri: str | None = Field(
        None, pattern=r"^https?://\S+$",
        description="Where events that fail delivery go. Default: the drift actions Service's /dead-letter, which logs "
                    "them.")
    retries: int = Field(5, ge=0, le=100, description="Delivery retries before the dead-letter sink.")
    github: GitHub = Field(default_factory=GitHub, description="The GitOps repository, for rollback and new models.")
    kafka: Kafka | None = Field(
        None, description="Seldon Core 2 only: the Kafka its model outputs go to, where the drift detector's results "
                          "are read from. Required for a seldon-v2 spec with a drift block.")

    new_models: NewModels | None = Field(
        None, description="When set, a pipeline run that registers a model passing the quality gate sends a "
                          "repository_dispatch; the generated workflow opens a pull request making it the challenger.")


#: Of serving, what the objects name (the runtime and protocol, the champion whose detector is served,
#: the storage identity): a traffic edit does not touch the drift objects.
READS = ("spec.drift", "spec.serving.runtime", "spec.serving.protocol", "spec.serving.rollout",
         "spec.serving.champion", "spec.serving.service_account", "spec.serving.storage_secret", "spec.training",
         "spec.labels", "env.kubeflow", "env.argocd")


# ------------------------------------------------------------------ shared with the serving targets


def broker(names: Names, settings) -> str:
    """The Broker the spec's events go through: the environment's, else the spec's own."""
    return settings.broker if settings is not None and settings.broker else names.broker


def logger_url(ctx: Context) -> str | None:
    """Where the serving targets send the champion's payload log, or None without a drift policy.
    The serving targets declare ``spec.drift`` and ``env.drift.broker`` to call this."""
    if ctx.spec.drift is None:
        return None
    return Names.broker_url(ctx.namespace, broker(ctx.names, settings_of(ctx.env, "drift")))


def detector_uri(spec) -> str | None:
    """The served detector's directory: the spec's, else beside the champion model (the
    training pipeline registers ``<version>/model`` and ``<version>/drift-detector``)."""
    drift = spec.drift
    if drift.detector_uri:
        return drift.detector_uri
    uri = spec.serving.champion.uri.rstrip("/")
    return uri[: -len("/model")] + "/drift-detector" if uri.endswith("/model") else None


def github_repository(env) -> str | None:
    """The GitOps repository (owner/name): the drift settings', else argocd.repo_url's on github.com."""
    settings = env.drift
    if settings.github.repository:
        return settings.github.repository
    url = env.argocd.repo_url
    for prefix in ("https://github.com/", "git@github.com:", "ssh://git@github.com/"):
        if url.startswith(prefix):
            path = url[len(prefix):].removesuffix("/").removesuffix(".git")
            if path.count("/") == 1:
                return path
    return None


# ------------------------------------------------------------------------------ objects


def _meta(ctx: Context, name: str, component: str) -> dict:
    return {"name": name, "namespace": ctx.namespace, "labels": ctx.labels(component),
            "annotations": ctx.annotations()}


def _ref(name: str) -> dict:
    return {"ref": {"apiVersion": KNATIVE_SERVING_API, "kind": "Service", "name": name}}


def _dead_letter(ctx: Context) -> dict:
    if ctx.settings.dead_letter_uri:
        return {"uri": ctx.settings.dead_letter_uri}
    return {**_ref(ctx.names.drift_actions), "uri": "/dead-letter"}


def _delivery(ctx: Context) -> dict:
    return {"retry": ctx.settings.retries, "backoffPolicy": "exponential", "backoffDelay": BACKOFF_DELAY,
            "deadLetterSink": _dead_letter(ctx)}


def _broker(ctx: Context) -> dict:
    meta = _meta(ctx, ctx.names.broker, "drift-routing")
    meta["annotations"] = {**meta["annotations"], "eventing.knative.dev/broker.class": BROKER_CLASS}
    return {"apiVersion": EVENTING_API, "kind": "Broker", "metadata": meta, "spec": {"delivery": _delivery(ctx)}}


def _one_replica() -> dict:
    return {"annotations": {"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "1"}}


def _detector_service(ctx: Context) -> dict:
    spec, names = ctx.spec, ctx.names
    drift, sv = spec.drift, spec.serving
    url = Names.broker_url(ctx.namespace, broker(names, ctx.settings))
    args = [
        "--model_name", names.drift_detector,
        "--http_port", "8080",
        "--protocol", DETECTOR_PROTOCOLS[(sv.runtime, sv.protocol)],
        "--storage_uri", detector_uri(spec),
        "--reply_url", url,
        "--event_type", DRIFT_EVENT_TYPE,
        "--event_source", names.drift_event_source,
        "DriftDetector",
        "--drift_batch_size", str(drift.batch_size),
    ]
    pod: dict = {
        "containers": [{
            "name": "detector",
            "image": ctx.settings.detector_image,
            "args": args,
            "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
            "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        }],
        "securityContext": copy.deepcopy(POD_SECURITY),
    }
    if sv.service_account:  # the storage credentials of the serving pods read the detector too
        pod["serviceAccountName"] = sv.service_account
    else:
        pod["automountServiceAccountToken"] = False
    return {"apiVersion": KNATIVE_SERVING_API, "kind": "Service",
            "metadata": _meta(ctx, names.drift_detector, "drift-detector"),
            "spec": {"template": {"metadata": _one_replica(), "spec": pod}}}


@functools.lru_cache(maxsize=1)
def _actions_script() -> str:
    from . import drift_actions

    return drift_actions.script()


def _actions_service(ctx: Context) -> dict:
    from . import kubeflow_pipeline

    spec, names, env = ctx.spec, ctx.names, ctx.env
    drift = spec.drift
    values = {
        "MLSPEC_ACTION": drift.action,
        "MLSPEC_EVENT_TYPE": DRIFT_EVENT_TYPE,
        "MLSPEC_SPEC": ctx.spec_path,
        "MLSPEC_ENV": env.name,
    }
    if spec.serving.runtime == "seldon-v2":  # the KafkaSource's events, from the detector's topic only
        values["MLSPEC_EVENT_TYPE"] = KAFKA_EVENT_TYPE
        values["MLSPEC_EVENT_SOURCE"] = kafka_event_source(ctx)
    secret_env: list[dict] = []
    volumes: list[dict] = []
    mounts: list[dict] = []
    account = None
    if drift.action == "retrain":  # the schedule's launcher, with the version from the ConfigMap and the cooldown
        values.update(kubeflow_pipeline.launcher_env(ctx, {"KFP_PIPELINE_VERSION_FILE": f"{VERSION_DIR}/version"},
                                            {"KFP_COOLDOWN_SECONDS": str(_seconds(drift.cooldown))}))
        account = kubeflow_pipeline.launcher_account(spec.training)
        volumes += [{"name": "pipeline-version", "configMap": {"name": names.pipeline_version_configmap}},
                    copy.deepcopy(kubeflow_pipeline.LAUNCHER_TOKEN_VOLUME)]
        mounts += [{"name": "pipeline-version", "mountPath": VERSION_DIR, "readOnly": True},
                   dict(kubeflow_pipeline.LAUNCHER_TOKEN_MOUNT)]
    elif drift.action == "alert":
        ref = drift.alert_webhook
        secret_env.append({"name": "ALERT_WEBHOOK_URL",
                           "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}})
    else:  # rollback
        values.update({"GITHUB_REPOSITORY": github_repository(env), "MLSPEC_DISPATCH_EVENT": DISPATCH_ROLLBACK})
        ref = ctx.settings.github.token_secret
        secret_env.append({"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}})
    container = {
        "name": "actions",
        "image": ctx.settings.actions_image,
        "command": ["python3", "-c", _actions_script()],
        "env": [{"name": k, "value": v} for k, v in values.items()] + secret_env,
        "ports": [{"containerPort": 8080}],
        "resources": copy.deepcopy(kubeflow_pipeline.LAUNCHER_RESOURCES),
        "securityContext": copy.deepcopy(kubeflow_pipeline.LAUNCHER_SECURITY),
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict = {"containers": [container], "securityContext": copy.deepcopy(POD_SECURITY),
                 "automountServiceAccountToken": False}
    if account:
        pod["serviceAccountName"] = account
    if volumes:
        pod["volumes"] = volumes
    return {"apiVersion": KNATIVE_SERVING_API, "kind": "Service",
            "metadata": _meta(ctx, names.drift_actions, "drift-actions"),
            "spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/max-scale": "1"}},
                                  "spec": pod}}}


def _seconds(duration: str) -> int:
    from mlspec import units

    return int(units.parse_duration(duration))


def _trigger(ctx: Context, name: str, attributes: dict, subscriber: str, component: str) -> dict:
    spec = {"broker": broker(ctx.names, ctx.settings), "filter": {"attributes": attributes},
            "subscriber": _ref(subscriber), "delivery": _delivery(ctx)}
    return {"apiVersion": EVENTING_API, "kind": "Trigger", "metadata": _meta(ctx, name, component), "spec": spec}


def request_filter(ctx: Context) -> dict:
    """The attributes of the champion's request events, as the payload logger sets them."""
    sv, names = ctx.spec.serving, ctx.names
    if sv.runtime == "kserve":
        isvc = names.serving if sv.rollout == "canary" else names.champion
        return {"type": REQUEST_EVENT_TYPES["kserve"], "inferenceservicename": isvc}
    return {"type": REQUEST_EVENT_TYPES["seldon"], "inferenceservicename": names.serving}


# ------------------------------------------------------------------------------ Seldon Core 2


def results_topic(ctx: Context) -> str:
    """The Kafka topic Seldon Core 2 writes the detector Model's answers to:
    ``<prefix>.<namespace>.model.<model>.outputs`` (v2.6.0 scheduler/pkg/kafka/topics.go)."""
    return ".".join((ctx.settings.kafka.topic_prefix, ctx.namespace, "model", ctx.names.drift_detector, "outputs"))


def kafka_event_source(ctx: Context) -> str:
    """``source`` of the KafkaSource's events from the results topic (eventing-kafka-broker
    v1beta1 ``KafkaEventSource``; the dispatcher's InvalidCloudEventInterceptor builds the same)."""
    return f"/apis/v1/namespaces/{ctx.namespace}/kafkasources/{ctx.names.drift_kafka_source}#{results_topic(ctx)}"


def _seldon_detector(ctx: Context) -> dict:
    spec: dict = {"storageUri": detector_uri(ctx.spec), "requirements": list(DETECTOR_REQUIREMENTS)}
    if ctx.spec.serving.storage_secret:
        spec["secretName"] = ctx.spec.serving.storage_secret
    return {"apiVersion": SELDON_API, "kind": "Model", "metadata": _meta(ctx, ctx.names.drift_detector, "drift-detector"),
            "spec": spec}


def _seldon_pipeline(ctx: Context) -> dict:
    names = ctx.names
    steps = [{"name": names.champion},
             {"name": names.drift_detector, "batch": {"size": ctx.spec.drift.batch_size}}]
    return {"apiVersion": SELDON_API, "kind": "Pipeline",
            "metadata": _meta(ctx, names.seldon_pipeline, "serving-pipeline"),
            "spec": {"steps": steps, "output": {"steps": [names.champion]}}}


def _kafka_source(ctx: Context) -> dict:
    names = ctx.names
    spec = {
        "bootstrapServers": list(ctx.settings.kafka.bootstrap_servers),
        "topics": [results_topic(ctx)],
        "consumerGroup": names.drift_consumer_group,
        "initialOffset": "latest",
        "sink": _ref(names.drift_actions),
        "delivery": _delivery(ctx),
    }
    return {"apiVersion": KAFKA_SOURCE_API, "kind": "KafkaSource",
            "metadata": _meta(ctx, names.drift_kafka_source, "drift-routing"), "spec": spec}


def _generate_seldon_v2(ctx: Context) -> list[Artefact]:
    path = ctx.deploy_path
    return [Artefact(path("drift", "detector.yaml"), _seldon_detector(ctx)),
            Artefact(path("drift", "pipeline.yaml"), _seldon_pipeline(ctx)),
            Artefact(path("drift", "actions.yaml"), _actions_service(ctx)),
            Artefact(path("drift", "kafka-source.yaml"), _kafka_source(ctx))]


def generate(ctx: Context) -> list[Artefact]:
    spec = ctx.spec
    if spec.drift is None:
        return []
    if spec.serving.runtime == "seldon-v2":
        return _generate_seldon_v2(ctx) if ctx.settings.kafka is not None else []  # else: a validation error
    if spec.serving.runtime not in REQUEST_EVENT_TYPES:
        return []
    names, path = ctx.names, ctx.deploy_path
    out = []
    if not ctx.settings.broker:
        out.append(Artefact(path("drift", "broker.yaml"), _broker(ctx)))
    out.append(Artefact(path("drift", "detector.yaml"), _detector_service(ctx)))
    out.append(Artefact(path("drift", "actions.yaml"), _actions_service(ctx)))
    triggers = [
        _trigger(ctx, names.trigger("detector"), request_filter(ctx), names.drift_detector, "drift-routing"),
        _trigger(ctx, names.trigger(spec.drift.action), {"type": DRIFT_EVENT_TYPE, "source": names.drift_event_source},
                 names.drift_actions, "drift-routing"),
    ]
    out.append(Artefact(path("drift", "triggers.yaml"), triggers, multi_document=True))
    return out


# ------------------------------------------------------------------------------ rules


def rules(rc) -> None:
    spec, drift, settings = rc.spec, rc.spec.drift, rc.settings
    if settings.new_models is not None:
        _github_rules(rc, "new_models (pull requests of new models)")
        cap = rc.env.policies.max_challenger_traffic
        if cap is not None and settings.new_models.traffic > cap:
            rc.env_error(("drift", "new_models", "traffic"), f"new models would get {settings.new_models.traffic}% "
                         f"of the traffic, over the environment's max_challenger_traffic of {cap}%",
                         f"set drift.new_models.traffic to at most {cap}", code="drift")
    if drift is None:
        return
    runtime = spec.serving.runtime
    if drift.detector_uri is None and detector_uri(spec) is None:
        rc.error(("serving", "champion", "uri"), "drift needs the champion's detector: the training pipeline writes it "
                 "beside the registered model (<version>/model and <version>/drift-detector), and this URI does "
                 "not end in /model", "serve a registered model (its .../model URI), or set drift.detector_uri",
                 code="drift")
    if runtime == "seldon-v2" and settings.kafka is None:
        rc.env_error(("drift",), "drift with Seldon Core 2 reads the detector's results from Seldon's Kafka topic "
                     "(seldon.<namespace>.model.<detector>.outputs), and the environment names no Kafka",
                     "set drift.kafka.bootstrap_servers: [host:port, ...] (and drift.kafka.topic_prefix if Seldon's "
                     "is not 'seldon')", code="drift")
    if drift.action == "alert" and drift.alert_webhook is None:
        rc.error(("drift", "action"), "action alert needs the webhook's URL, from a Secret",
                 "set drift.alert_webhook: {secret: ..., key: ...}", code="drift")
    if drift.action == "rollback":
        _github_rules(rc, "action rollback")
    if drift.action == "retrain" and settings_of(rc.env, "kubeflow") is None:
        rc.error(("drift", "action"), "action retrain starts a Kubeflow pipeline run, and the kubeflow target is "
                 "not installed", "install mlspec[kfp], or use alert", code="drift")


def _github_rules(rc, what: str) -> None:
    if github_repository(rc.env) is None:
        rc.env_error(("drift",), f"{what} sends a repository_dispatch to the GitOps repository, and none is set",
                     "set drift.github.repository: owner/name (or argocd.repo_url to a github.com URL)", code="drift")
    if rc.settings.github.token_secret is None:
        rc.env_error(("drift",), f"{what} needs a GitHub token to send the repository_dispatch",
                     "set drift.github.token_secret: {secret: ..., key: ...}", code="drift")


def version_key() -> str:
    from pathlib import Path

    here = Path(__file__).resolve().parent
    return source_key(__file__, str(here / "drift_actions.py"), str(here / "kubeflow_components.py"),
                      str(here / "kubeflow.py"), str(here / "kubeflow_pipeline.py"), str(here / "serving.py"),
                      extra=json.dumps({"detector": DETECTOR_IMAGE, "actions": ACTIONS_IMAGE}))


target = Target(
    name="drift",
    generate=generate,
    reads=READS,
    settings=Settings,
    rules=rules,
    version_key=version_key,
    description="Drift detection: Alibi Detect detector, Knative Broker/Triggers, retrain/alert/rollback actions",
)
