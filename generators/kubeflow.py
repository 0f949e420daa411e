"""Kubeflow Pipelines target: the spec's training pipeline, as KFP v2 IR and as Kubernetes objects.

``generate(ctx)`` builds one KFP v2 pipeline from the spec with ``kfp.dsl`` and returns:

``deploy/<env>/<name>/kubeflow/pipeline-ir.yaml``
    The pipeline's IR (``PipelineSpec``), plus the ``PlatformSpec`` as a second YAML
    document when it is not empty -- the layout ``kfp.compiler.Compiler`` writes.
``deploy/<env>/<name>/kubeflow/pipeline.yaml``
    The Kubernetes-native form for GitOps: a ``Pipeline`` and a ``PipelineVersion``
    (``pipelines.kubeflow.org/v2beta1``) in ``env.kubeflow.namespace``, built exactly as
    ``Compiler().compile(..., kubernetes_manifest_format=True,
    kubernetes_manifest_options=KubernetesManifestOptions(pipeline_name=<name>,
    pipeline_version_name=<name>-<short hash>, namespace=..., include_pipeline_manifest=True))``
    writes them, plus mlspec's standard labels and annotations.  The version is
    content-addressed: ``<name>-<first 10 hex of the sha256 of the IR>``, hashed with the
    version name left out (:func:`compile_ir`), so it changes if and only if the pipeline
    does -- a serving, owner, label or description edit keeps it (KFP rejects changes to
    a version's spec, so every new IR is a new, immutable PipelineVersion).  KFP's
    validating webhook requires the version's ``metadata.name`` to equal
    ``pipelineSpec.pipelineInfo.name``, so the IR carries the version name; the
    ``Pipeline`` object carries the spec name and the spec's description (the IR does
    not: a documentation edit is not a new pipeline).
``deploy/<env>/<name>/kubeflow/schedule.yaml`` (only with ``training.schedule``)
    A ``batch/v1`` CronJob that starts a run of that PipelineVersion.
``deploy/<env>/<name>/kubeflow/pipeline-version.yaml`` (only with ``drift.action: retrain``)
    A ConfigMap naming that PipelineVersion, which the drift target's retrain action reads
    (:func:`version_configmap`).

The schedule: why a CronJob and not a ScheduledWorkflow
    KFP v2's own recurring runs are ``ScheduledWorkflow`` objects (``kubeflow.org/v1beta1``),
    but they are the API server's internal state, not an input format.  The API server
    creates one when a recurring run is created through the REST API; its
    ``spec.workflow.spec`` holds an *Argo Workflow compiled by the backend* (driver and
    launcher images of the installed KFP version; ``argocompiler.Compile`` in
    ``backend/src/apiserver/template/v2_template.go``), and its ``pipelineId``,
    ``pipelineVersionId`` and ``experimentId`` are UIDs that exist only after objects are
    created in the cluster.  None of that can be produced offline from the IR, the CRD has no
    schema for ``spec`` (a typo would be accepted silently), and a hand-made object would
    bypass the API server's bookkeeping.  A ``batch/v1`` CronJob is plain, schema-checked
    Kubernetes that Argo CD reconciles like anything else: at each tick it calls the KFP
    REST API (v2beta1) with a projected ServiceAccount token (audience
    ``pipelines.kubeflow.org``, as Kubeflow documents for in-cluster clients), resolves the
    committed Pipeline/PipelineVersion by *name*, finds or creates an experiment named
    after the spec, and creates a run.  The trigger script is
    :func:`mlspec.generators.kubeflow_components.trigger_run` (stdlib only, unit-tested).
    Cron macros are expanded to five fields; the zone is ``training.timezone`` (default ``Etc/UTC``); overlapping runs
    are forbidden.  The CronJob runs in the environment's namespace with
    ``training.service_account`` (default ``default-editor``, the account Kubeflow
    profiles give to namespace workloads); runs are created with the same service account.

The pipeline
    ingest (one step per data source the training reads: the label source and the
    sources of the feature service's views; Kafka/push sources read their
    ``batch_source``) → data-quality checks per source → the entity frame (label table)
    → one point-in-time join per view (fields: latest row ``≤`` label time and within
    ``ttl``; aggregations: by default rows in ``[label time − window, label time)``, strictly
    before the label, each aggregation's ``closed`` says otherwise) → training of
    every hyper-parameter candidate in a ``dsl.ParallelFor`` (``parallelism`` from the
    spec) → ``dsl.Collected`` fan-in → select the best → quality gate → register.
    The label source carries every join key of the service's views (validation checks it).
    When Feast serves the features (``features.feature_store``, the default; decided by the
    spec alone, and :func:`rules` requires the feast target's settings), one Feast step
    (:func:`mlspec.generators.feast_components.feast_training_features`, image installing
    :data:`mlspec.generators.feast.FEAST_PIN`) replaces the joins: the entity frame goes to
    ``get_historical_features`` with ``training.feature_service`` after every source's checks,
    and its ``joined`` table feeds training; small ``chain_snapshot`` steps keep the data
    lineage of the views' sources.  The IR then reads ``env.feast``.
    Relative data paths resolve against the pipeline parameter ``data_root`` (default
    ``<storage.artifacts>/data/<spec name>``); URIs are read as they are.  Models go to
    ``registry_root`` (default ``storage.models``, else ``<storage.artifacts>/models``).
    Warehouse sources (BigQuery, Postgres, Redshift, Snowflake) get real ingest code with
    credentials only from environment variables, workload identity or the spec's Secret,
    mounted through the platform spec.

Training
    ``estimator``: each candidate is a lightweight step that instantiates the import path
    with the candidate's parameters (plus ``random_state`` = split seed when the estimator
    takes one and the candidate does not set it), splits with ``train_test_split`` (the
    spec's ``test_size``, seed and ``stratify``), fits on the training part and scores on
    the hold-out.  An estimator that rejects NaN (missing window aggregates) gets a median
    ``SimpleImputer`` in front.  The best candidate wins; ties go to the earlier candidate.
    With ``training.preprocessing`` at work (a string feature, scaling, an imputation or a
    per-feature setting; :func:`preprocessing`), the step gets it as its ``preprocessing``
    parameter: each candidate is then one scikit-learn ``Pipeline([("preprocess",
    ColumnTransformer), ("model", estimator)])``, so the registered model applies the fitted
    preprocessing to raw values.
    ``container``: each candidate runs the spec's image and command with the spec's args
    followed by ``--feature-columns JSON --label COL --metric NAME --test-size F
    --split-seed N --stratify true|false --features PATH --candidate JSON --model-dir PATH
    --result PATH``; the container writes its model under ``--model-dir`` and a JSON object
    with at least ``"score"`` to ``--result``.

Steps use ``training.image`` or ``python:3.11-slim`` and install pinned packages
(:data:`PINS`; plus ``s3fs``/``gcsfs`` when a URI needs them), so the same spec compiles
to the same IR.  The IR embeds the installed kfp version (``sdkVersion`` and the
``kfp==`` pin), so kfp itself must be pinned for byte-stable output.

Modules: this one is what the registry loads and ``mlspec validate`` needs -- :data:`target`
(reads, settings, rules), :class:`Settings`, :func:`rules`, the pins and package tables.
The spec is checked by :func:`rules`; the generator assumes valid input.  The generator is
:mod:`mlspec.generators.kubeflow_pipeline`, imported when a compile runs: :func:`generate`,
:func:`candidates` (hyper-parameter candidates), :func:`plan` (what the pipeline does, as
plain data), :func:`build_pipeline` (the kfp ``GraphComponent``; ``local=True`` for ``mlspec
run --local``), :func:`compile_ir`, :func:`kubernetes_manifests`, :func:`schedule_cronjob`,
:func:`pipeline_version_name`.  ``kfp`` is imported lazily, inside the functions that need
it: importing either module does not import kfp.
"""

# No ``from __future__ import annotations``: kfp reads the pipeline's annotations at run time.
import json
import re
from typing import TYPE_CHECKING

from pydantic import Field

from mlspec.environments import settings_of
from mlspec.models import K8sLabel, Model
from mlspec.registry import Target, source_key

if TYPE_CHECKING:
    from mlspec.artefact import Artefact
    from mlspec.context import Context

DEFAULT_IMAGE = "python:3.11-slim"

#: Pinned packages of the Python steps (the versions mlspec is tested with).
PINS = {
    "pandas": "pandas==3.1.1",
    "pyarrow": "pyarrow==26.0.1",
    "scikit-learn": "scikit-learn==1.9.1",
    "s3fs": "s3fs==2026.9.0",
    "gcsfs": "gcsfs==2026.10.1",
    "adlfs": "adlfs==2026.8.0",
    "google-cloud-bigquery": "google-cloud-bigquery==3.47.0",
    "db-dtypes": "db-dtypes==1.9.0",
    "sqlalchemy": "sqlalchemy==2.1.9",
    "psycopg2-binary": "psycopg2-binary==2.9.13",
    "redshift-connector": "redshift-connector==2.2.0",
    "snowflake-connector-python": "snowflake-connector-python[pandas]==5.2.0",
}
DATA_PACKAGES = ("pandas", "pyarrow")
TRAIN_PACKAGES = ("pandas", "pyarrow", "scikit-learn")
WAREHOUSE_PACKAGES = {
    "bigquery": ("google-cloud-bigquery", "db-dtypes"),
    "postgres": ("sqlalchemy", "psycopg2-binary"),
    "redshift": ("redshift-connector",),
    "snowflake": ("snowflake-connector-python",),
}
#: The fsspec filesystem package each URI scheme of a data file or the storage needs.
FS_PACKAGES = {"s3": ("s3fs",), "s3a": ("s3fs",), "minio": ("s3fs",), "gs": ("gcsfs",), "gcs": ("gcsfs",),
               "az": ("adlfs",), "abfs": ("adlfs",), "abfss": ("adlfs",)}
#: Schemes fsspec reads without an extra package.
BUILTIN_FS_SCHEMES = ("file", "http", "https")

SECRET_MOUNT = "/var/run/secrets/mlspec"
KFP_TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
#: The IR is built under this name, hashed, then given its content-addressed name.
VERSION_PLACEHOLDER = "mlspec-pipeline-version-placeholder"
#: Pipeline roots a cluster's KFP launcher can write to.
PIPELINE_ROOT_SCHEMES = ("gs", "s3", "minio")


class Settings(Model):
    """The ``kubeflow:`` block of ``environments/<env>.yaml``."""

    namespace: K8sLabel = "kubeflow"
    pipeline_root: str | None = Field(None, description="Default: storage.artifacts.")


#: What the artefacts read of the resolved spec and environment (see mlspec.inputs).
#: ``env.feast``: the Feast step (``features.feature_store``) applies the feast target's repository.
IR_READS = ("spec.data", "spec.features", "spec.training", "spec.drift", "env.storage", "env.kubeflow", "env.feast",
            "env.drift", "env.argocd.repo_url")
PIPELINE_READS = (*IR_READS, "spec.labels", "spec.description")
SCHEDULE_READS = (*IR_READS, "spec.labels", "spec.serving.champion.uri")
VERSION_READS = (*IR_READS, "spec.labels", "spec.drift")


def uri_scheme(uri: str) -> str | None:
    """The scheme of ``s3://bucket/key`` (``s3``); None for a plain path."""
    match = re.match(r"^([a-z][a-z0-9+.-]*)://", uri)
    return match.group(1) if match else None


def version_key() -> str:
    """What this target's output depends on besides the context: its own code, the step
    code (embedded in the IR), the pins and the installed kfp version (``sdkVersion`` and the
    ``kfp==`` pin in the IR).  For the compiler's cache fingerprint; reads three source files
    and package metadata, imports no kfp."""
    from importlib import metadata
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        kfp_version = metadata.version("kfp")
    except metadata.PackageNotFoundError:
        kfp_version = "absent"
    return source_key(*(str(here / name) for name in ("kubeflow.py", "kubeflow_pipeline.py", "kubeflow_components.py")),
                      extra=json.dumps({"pins": PINS, "kfp": kfp_version}, sort_keys=True))


def generate(ctx: "Context") -> "list[Artefact]":
    """The Kubeflow artefacts of one spec in one environment (pure: no I/O), made by
    :mod:`mlspec.generators.kubeflow_pipeline` -- imported when a compile runs, not by
    ``validate``, which needs only this module."""
    from . import kubeflow_pipeline

    return kubeflow_pipeline.generate(ctx)


def rules(rc) -> None:
    """What the Kubeflow target needs of a spec beyond the core checks (run by ``mlspec validate``)."""
    env, settings = rc.env, rc.settings
    root = settings.pipeline_root or env.storage.artifacts
    scheme = uri_scheme(root)
    if scheme not in PIPELINE_ROOT_SCHEMES:
        path = ("kubeflow", "pipeline_root") if settings.pipeline_root else ("storage", "artifacts")
        rc.env_error(path, f"the Kubeflow pipeline root {root} is not an object store the KFP launcher can write to",
                     f"use a {', '.join(s + '://' for s in PIPELINE_ROOT_SCHEMES)} URI, or set kubeflow.pipeline_root "
                     "to one", code="kubeflow")
    if rc.spec.features.feature_store and settings_of(env, "feast") is None:
        rc.error(("features", "feature_store"), "the training pipeline reads its features through Feast "
                 "(features.feature_store), which needs the feast target, and it is not installed",
                 "install mlspec's feast target, or set features.feature_store: false to compute the features "
                 "in the pipeline", code="kubeflow")
    for i, src in enumerate(rc.spec.data.sources):
        scheme = uri_scheme(src.path) if src.type == "file" else None
        if scheme is not None and scheme not in FS_PACKAGES and scheme not in BUILTIN_FS_SCHEMES:
            known = sorted({*FS_PACKAGES, *BUILTIN_FS_SCHEMES})
            rc.error(("data", "sources", i, "path"), f"the ingest step cannot read {scheme}:// URIs",
                     f"use one of {', '.join(k + '://' for k in known)}", code="kubeflow")


target = Target(
    name="kubeflow",
    generate=generate,
    reads=tuple(dict.fromkeys(PIPELINE_READS + SCHEDULE_READS + VERSION_READS)),
    settings=Settings,
    rules=rules,
    version_key=version_key,
    description="Kubeflow Pipelines: KFP v2 IR, Pipeline/PipelineVersion, the training CronJob",
)
