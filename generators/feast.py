"""Feast target: a feature repository per environment and spec, and the Feast operator's FeatureStore.

Output (per environment ``<env>`` and spec ``<spec>``)::

    deploy/<env>/<spec>/feast/featurestore.yaml    Kubernetes objects, and only those: the
                                                   feast.dev/v1 FeatureStore, the ConfigMap of its
                                                   batch engine and, when a store is DB-backed,
                                                   the Secret of store blocks it reads
    deploy/<env>/<spec>/feast/repo/                the Feast repository (no Kubernetes objects):
        feature_store.yaml                         project, provider, registry, stores, batch engine
        features.py                                the one definitions module
        .feastignore, .gitignore                   keep registry.db and online-store files out
    deploy/<env>/<spec>/feast/jobs/prepare.py      only when a view needs a prepared table (below):
                                                   the job the materialization schedule runs first

Kubernetes objects sit at the top of ``feast/``; everything below ``feast/repo/`` and
``feast/jobs/`` is not a Kubernetes object, so an Argo CD Application can exclude
``**/feast/repo/**`` and ``**/feast/jobs/**`` (``feature_store.yaml`` is YAML, but not a
manifest).  The jobs live outside the repository because Feast imports every ``*.py``
file of a repository: the repository holds definitions only.

The repository (``feature_store.yaml``)
    Built from the ``feast:`` block of ``environments/<env>.yaml`` (:class:`Settings`):
    ``project`` is :attr:`mlspec.naming.Names.feast_project` (letters, digits, ``_``: SQLite
    online stores reject ``-``); ``provider: local``; the registry (``file`` -- a path, or an
    ``s3://``/``gs://`` object -- or ``sql``); the online store (``sqlite`` for dev and the
    examples, ``redis`` or ``postgres``); the offline store (``auto`` follows the sources:
    ``file`` (dask) for files, else the warehouse's own store); the batch engine (``local`` or
    ``spark.engine``); ``entity_key_serialization_version: 3``; ``auth`` (the operator's
    default ``kubernetes``).  Credentials are never literals: each secret option is written
    ``${FEAST_<STORE>_<OPTION>}`` (``FEAST_REGISTRY_PATH`` for a SQL registry), which Feast
    expands from the environment when it loads the file (``os.path.expandvars``,
    feast@v0.67.0 ``repo_config.load_repo_config``); the Secret ``feast.credentials_secret``
    holds those variables and the FeatureStore's servers get it through ``envFrom``.

The operator resource (``featurestore.yaml``)
    ``feastProjectDir.git`` clones ``argocd.repo_url`` at ``argocd.revision`` and uses
    ``<argocd.path_prefix>/deploy/<env>/<spec>/feast/repo``.  The operator then *overwrites*
    the cloned ``feature_store.yaml`` with one it builds from the resource
    (``services.go``; ``repo_config.go`` ``getServiceRepoConfig``), so the resource says
    the same thing as the repository's file: file persistence with the same paths, or
    ``persistence.store`` with ``secretRef`` to the generated Secret ``<spec>-feast-stores``
    whose keys hold the very blocks of ``feature_store.yaml`` -- literal options and
    ``${FEAST_...}`` placeholders, no credentials -- and ``batchEngine.configMapRef`` to the
    ConfigMap ``<spec>-feast-batch-engine`` with the ``batch_engine`` block.  A test builds
    the operator's file from the resource as ``repo_config.go`` does and compares.

Materialization: the operator's ``cronJob``, not a CronJob of ours
    The operator's CronJob runs its ``commands`` with ``kubectl exec`` *inside the Feast
    server pod* (``cronjob.go``), where the repository is cloned, ``feature_store.yaml`` is
    the operator's (credentials resolved from the same ``envFrom``) and the image has the
    operator's Feast version.  A CronJob of ours would need a second copy of all of that.
    Commands: ``python3 ../jobs/prepare.py`` when a view needs a prepared table, then
    ``feast materialize-incremental <now>``.  Schedule: ``feast.schedule`` if set, else the
    spec's ``training.schedule`` (features are fresh for each training run); neither: the
    operator's own default, a suspended ``@yearly`` job to start by hand.

Windowed aggregations and CSV sources: prepared tables
    Checked against real Feast 0.67.0: ``BatchFeatureView(aggregations=[Aggregation(...,
    time_window=...)])`` does not compute what the training pipeline computes.  The local
    compute engine raises "Time window aggregation is not supported in the local compute
    engine" (``infra/compute_engines/local/feature_builder.py``); materializing such a view
    reads the aggregation's output name as a *source* column and fails, and declaring the
    raw column instead leaves the aggregate out of the view's features; the Spark engine
    aggregates over tumbling windows of the first aggregation's size only
    (``spark/nodes.py``).  The pipeline's aggregate is a sliding one: the function over the
    rows in ``[t - window, t)`` at each label time ``t`` (strictly before it; the
    aggregation's ``closed`` may include ``t`` or exclude ``t - window`` instead).  So a view with aggregations (and a
    view over a CSV file, which Feast's ``FileSource`` cannot read) is served from a Parquet
    table that :func:`mlspec.generators.feast_prepare.prepare_tables` writes to
    ``<prepared root>/<spec>/<view>.parquet`` -- one row per entity and time the values can
    change, each holding the values as of that time -- read by a plain ``FeatureView`` with
    ``ttl`` 0.  Feast's own point-in-time join and materialization then return exactly the
    pipeline's values at any time (see that module).  Such views need a file source.

Training through Feast
    :func:`mlspec.generators.feast_repo.training_step` gives what the pipeline's feature step
    needs (feature service, entity-frame columns, the repository files and the prepare plan); the
    step body is
    :func:`mlspec.generators.feast_components.feast_training_features`.  The Kubeflow target
    puts it in place of its joins (``kubeflow_pipeline.feast_step``, with the spec's owner, description
    and labels left out of the repository); ``mlspec run --local`` runs the same body in a
    Python with Feast (``--feast-python`` / ``$MLSPEC_FEAST_PYTHON``) through
    ``feast_components.feast_training_features_local``.

Modules: this one is what the registry loads and ``mlspec validate`` needs -- :data:`target`,
:class:`Settings`, :func:`rules`, :func:`version_key`, the Feast version and type tables.  The
generator is :mod:`mlspec.generators.feast_repo`, imported when a compile runs:
:func:`generate`, :func:`feature_store_config`, :func:`definitions`, :func:`prepare_plan`,
:func:`feature_store_objects`, :func:`repo_files`, :func:`training_step`.  Importing either
imports neither feast, kfp nor pandas; compiling never imports feast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

from pydantic import Field

from mlspec.models import Cron, K8sLabel, Model
from mlspec.registry import Target, source_key

if TYPE_CHECKING:
    from mlspec.artefact import Artefact
    from mlspec.context import Context

#: The Feast version mlspec generates for and tests with (feature server image, step pins).
FEAST_VERSION = "0.67.0"
FEAST_PIN = f"feast=={FEAST_VERSION}"
#: The operator's default paths when no PVC is configured (services_types.go: EphemeralPath).
OPERATOR_REGISTRY_PATH = "/feast-data/registry.db"
OPERATOR_ONLINE_PATH = "/feast-data/online_store.db"
ENTITY_KEY_SERIALIZATION_VERSION = 3
MODULE_NAME = "features.py"

FEAST_TYPES = {"int32": "Int32", "int64": "Int64", "float32": "Float32", "float64": "Float64",
               "string": "String", "bool": "Bool", "bytes": "Bytes", "unix_timestamp": "UnixTimestamp"}
VALUE_TYPES = {"int32": "INT32", "int64": "INT64", "float32": "FLOAT", "float64": "DOUBLE",
               "string": "STRING", "bool": "BOOL", "bytes": "BYTES", "unix_timestamp": "UNIX_TIMESTAMP"}
#: Spark SQL types of a Kafka JSON message's columns (KafkaSource ``JsonFormat.schema_json``).
SPARK_TYPES = {"int32": "int", "int64": "bigint", "float32": "float", "float64": "double",
               "string": "string", "bool": "boolean", "bytes": "binary", "unix_timestamp": "timestamp"}
AVRO_TYPES = {"int32": "int", "int64": "long", "float32": "float", "float64": "double",
              "string": "string", "bool": "boolean", "bytes": "bytes",
              "unix_timestamp": {"type": "long", "logicalType": "timestamp-micros"}}
#: The offline store that reads each source type.
OFFLINE_FOR_SOURCE = {"file": "file", "bigquery": "bigquery", "snowflake": "snowflake.offline",
                      "postgres": "postgres", "redshift": "redshift"}
FILE_OFFLINE_STORES = ("file", "dask", "duckdb", "spark")
DEFAULT_SECRET_OPTIONS = {"sqlite": (), "redis": ("connection_string",), "postgres": ("user", "password")}
#: Option names that hold credentials: never literal.
SECRET_LIKE = re.compile(r"(pass|secret|token|credential|private_key|connection_string|api_key|auth)", re.I)

OptionValue = Union[bool, int, float, str, dict[str, Union[bool, int, float, str]]]
OptionName = Field(pattern=r"^[a-z][a-z0-9_]*$")


# ------------------------------------------------------------------------------------------
# settings: the `feast:` block of environments/<env>.yaml
# ------------------------------------------------------------------------------------------


class OnlineStore(Model):
    type: Literal["sqlite", "redis", "postgres"] = "sqlite"
    path: str | None = Field(None, description=f"sqlite only: the database file (default {OPERATOR_ONLINE_PATH}, "
                                               "the operator's ephemeral volume).")
    options: dict[str, OptionValue] = Field(default_factory=dict, description="Literal, non-secret options of the "
                                            "store's feature_store.yaml block (e.g. host, redis_type, key_ttl_seconds).")
    secret_options: list[str] | None = Field(None, description="Options read from the credentials Secret as "
                                             "FEAST_ONLINE_STORE_<OPTION> (default: redis connection_string; "
                                             "postgres user and password).")

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.secret_options) if self.secret_options is not None else DEFAULT_SECRET_OPTIONS[self.type]


class Registry(Model):
    type: Literal["file", "sql"] = "file"
    path: str | None = Field(None, description=f"file only: a path or s3:// / gs:// URI (default "
                                               f"{OPERATOR_REGISTRY_PATH}); sql: read from FEAST_REGISTRY_PATH.")
    cache_ttl_seconds: int = Field(60, ge=0)


class OfflineStore(Model):
    type: Literal["auto", "file", "dask", "duckdb", "spark", "bigquery", "snowflake.offline", "postgres",
                  "redshift"] = Field("auto", description="auto: the store that reads the spec's sources.")
    options: dict[str, OptionValue] = Field(default_factory=dict)
    secret_options: list[str] = Field(default_factory=list, description="Read as FEAST_OFFLINE_STORE_<OPTION>.")


class BatchEngine(Model):
    type: Literal["local", "spark.engine"] = "local"
    options: dict[str, OptionValue] = Field(default_factory=dict, description="e.g. partitions, spark_conf.")


class Settings(Model):
    """The ``feast:`` block of ``environments/<env>.yaml`` (defaults: the local SQLite setup)."""

    online_store: OnlineStore = Field(default_factory=OnlineStore)
    registry: Registry = Field(default_factory=Registry)
    offline_store: OfflineStore = Field(default_factory=OfflineStore)
    batch_engine: BatchEngine = Field(default_factory=BatchEngine)
    auth: Literal["kubernetes", "no_auth"] = Field("kubernetes", description="The operator's default is kubernetes.")
    credentials_secret: K8sLabel | None = Field(None, description="Secret whose keys are the FEAST_* variables "
                                                "of the secret options; given to the Feast servers with envFrom.")
    data_root: str | None = Field(None, description="Where relative source paths resolve (default "
                                  "<storage.artifacts>/data/<spec>, as the training pipeline).")
    prepared_root: str | None = Field(None, description="Where prepared tables go: <root>/<spec>/<view>.parquet "
                                      "(default <storage.artifacts>/feast).")
    schedule: Cron | None = Field(None, description="Materialization schedule (default: training.schedule).")
    ui: bool = Field(False, description="Deploy the Feast UI.")


def batch_source_of(spec, name: str):
    """The source a view over source ``name`` reads its rows from: a stream's batch source."""
    source = spec.source(name)
    return spec.source(source.batch_source) if source.type in ("kafka", "push") else source


def needs_preparing(spec, view) -> bool:
    """The view is served from a Parquet table mlspec prepares (aggregations, or a CSV source)."""
    batch = batch_source_of(spec, view.source)
    return bool(view.aggregations) or (batch.type == "file" and batch.file_format == "csv")


def offline_type(settings: Settings, spec) -> str:
    """The offline store type: the setting, or (``auto``) the store that reads the spec's sources."""
    if settings.offline_store.type != "auto":
        return settings.offline_store.type
    for view in spec.features.views:
        if not needs_preparing(spec, view):
            return OFFLINE_FOR_SOURCE[batch_source_of(spec, view.source).type]
    return "file"


def secret_env_var(store: str, option: str) -> str:
    """The environment variable feature_store.yaml reads a secret store option from."""
    return f"FEAST_{store.upper()}_{option.upper()}"


# ------------------------------------------------------------------------------------------
# what the artefacts read of the resolved spec and environment (see mlspec.inputs)
# ------------------------------------------------------------------------------------------

CONFIG_READS = ("spec.data", "spec.features", "env.feast")
STATIC_READS = ("env.feast",)
MODULE_READS = ("spec.data", "spec.features", "spec.owner", "spec.description", "spec.labels", "env.storage",
                "env.feast")
#: What training_step (the pipeline's feature step, `features --local`) reads besides the files.
TRAINING_READS = ("spec.training.label", "spec.training.feature_service")
JOB_READS = ("spec.data", "spec.features", "env.storage", "env.feast")
OBJECT_READS = ("spec.data", "spec.features", "spec.labels", "spec.training.schedule", "env.argocd", "env.storage",
                "env.feast")


def generate(ctx: Context) -> list[Artefact]:
    """The Feast artefacts of one spec in one environment (pure: no I/O), made by
    :mod:`mlspec.generators.feast_repo` -- imported when a compile runs, not by ``validate``."""
    from . import feast_repo

    return feast_repo.generate(ctx)


# ------------------------------------------------------------------------------------------
# rules: what Feast would accept but fail on later
# ------------------------------------------------------------------------------------------


def _known_columns(rc, source) -> dict[str, str]:
    """Declared columns, and a local file's columns where the spec ships one."""
    cols = dict(source.columns)
    if source.type == "file" and "://" not in source.path:
        spec_file = Path(rc.doc.file)
        path = spec_file.parent / source.path
        if spec_file.is_file() and path.is_file():
            from mlspec.datafiles import DataFileError
            from mlspec.project import read_columns_cached

            try:
                cols = {**read_columns_cached(path, source.file_format), **cols}
            except (DataFileError, OSError):
                pass  # the core reports unreadable files
    return cols


def _project_problem(project: str, online: str) -> str | None:
    if not project or project[0] in "_-" or re.search(r"[^\w-]", project):
        return "Feast project names are letters, digits, '_' and '-', not starting with '_' or '-'"
    if online == "sqlite" and "-" in project:
        return "the SQLite online store rejects project names with '-' (they become table names)"
    return None


def rules(rc) -> None:
    """What Feast accepts at ``feast apply`` and fails on at materialization or serving time."""
    from mlspec.datafiles import compatible

    spec, settings = rc.spec, rc.settings
    if not spec.features.feature_store:
        return
    project = rc.names.feast_project
    problem = _project_problem(project, settings.online_store.type)
    if problem:
        rc.error(("name",), f"the Feast project name '{project}' is not valid: {problem}", code="feast")
    offline = offline_type(settings, spec)
    chosen_from = None
    sources = {s.name: i for i, s in enumerate(spec.data.sources)}
    for i, view in enumerate(spec.features.views):
        base = ("features", "views", i)
        batch = batch_source_of(spec, view.source)
        requested = spec.source(view.source)
        if settings.online_store.type == "postgres" and len(f"{project}_{view.name}") > 63:
            rc.error(base + ("name",), f"the Postgres online store table '{project}_{view.name}' is over 63 characters",
                     "Postgres truncates longer identifiers; shorten the view or spec name", "feast")
        prepared_name = rc.names.feast_prepared_source(view.name)
        if needs_preparing(spec, view) and prepared_name in sources:
            rc.error(base + ("name",), f"view '{view.name}' needs a prepared Feast source named '{prepared_name}', "
                     "which is already the name of a source", "rename that source", "feast")
        if view.aggregations and batch.type != "file":
            rc.error(base + ("aggregations",), f"the Feast target computes the windowed aggregations of view "
                     f"'{view.name}' from files; its source '{batch.name}' is a {batch.type} source",
                     "aggregate from a file source (a warehouse export), or drop the aggregations", "feast")
        cols = _known_columns(rc, batch)
        for j, e in enumerate(view.entities):
            entity = spec.entity(e)
            actual = cols.get(entity.join_key)
            if actual is not None and not compatible(entity.dtype, actual):
                rc.error(base + ("entities", j), f"entity '{e}' has dtype {entity.dtype} but its join key "
                         f"'{entity.join_key}' is {actual} in source '{batch.name}'",
                         f"set features.entities[].dtype to {actual}, or fix the column", "feast")
            for k, f in enumerate(view.fields):
                if f.name == entity.join_key:
                    rc.error(base + ("fields", k, "name"), f"field '{f.name}' is the join key of entity '{e}'; "
                             "Feast serves join keys as entity columns, not features", code="feast")
        ts = batch.timestamp or requested.timestamp
        if ts and not needs_preparing(spec, view) and cols.get(ts) not in (None, "unix_timestamp", "date", "unknown"):
            rc.error(("data", "sources", sources[batch.name], "timestamp"),
                     f"Feast reads the timestamp column '{ts}' of source '{batch.name}' as a timestamp, but it "
                     f"holds {cols[ts]}", "store timestamps as a timestamp type", "feast")
        if requested.type == "kafka" and requested.message_format == "protobuf":
            rc.error(("data", "sources", sources[requested.name], "message_format"),
                     "Feast's KafkaSource needs the protobuf message class, which the spec cannot name",
                     "use json or avro messages", "feast")
        if not needs_preparing(spec, view):
            wanted = OFFLINE_FOR_SOURCE[batch.type]
            ok = offline in FILE_OFFLINE_STORES if wanted == "file" else offline == wanted
            if not ok:
                how = f"the offline store is {offline}" + (f" (chosen from view '{chosen_from}')" if chosen_from else "")
                rc.error(base + ("source",), f"Feast reads view '{view.name}' from {batch.type} source '{batch.name}', "
                         f"but {how}: a Feast repository reads all its sources through one offline store",
                         "read every feature view from one kind of source", "feast")
            chosen_from = chosen_from or view.name
        else:
            if offline not in FILE_OFFLINE_STORES:
                rc.error(base + ("source",), f"view '{view.name}' is served from a prepared Parquet table, which the "
                         f"{offline} offline store cannot read", "use a file or spark offline store", "feast")
    label = spec.source(spec.training.label.source)
    label_cols = _known_columns(rc, label) if label is not None else {}
    for view_name in dict.fromkeys(v for v, _ in spec.served_features(spec.training.feature_service)):
        for e in spec.view(view_name).entities:
            entity = spec.entity(e)
            actual = label_cols.get(entity.join_key)
            if actual is not None and not compatible(entity.dtype, actual):
                rc.error(("training", "label", "source"), f"label source '{label.name}' holds join key "
                         f"'{entity.join_key}' as {actual}, but entity '{e}' is {entity.dtype}",
                         "Feast joins the entity frame on the entity's type", "feast")
    _settings_rules(rc, settings)


def _settings_rules(rc, settings: Settings) -> None:
    blocks = (("online_store", settings.online_store.options, settings.online_store.secrets),
              ("offline_store", settings.offline_store.options, tuple(settings.offline_store.secret_options)),
              ("batch_engine", settings.batch_engine.options, ()))
    for store, options, secrets in blocks:
        for option, value in options.items():
            if SECRET_LIKE.search(option) and store != "batch_engine":
                rc.env_error(("feast", store, "options", option), f"feast.{store}.options.{option} looks like a "
                             "credential; credentials are never literals",
                             f"list '{option}' in feast.{store}.secret_options and put "
                             f"{secret_env_var(store, option)} in the credentials Secret", "feast")
            if "$" in json.dumps(value):
                rc.env_error(("feast", store, "options", option), f"feast.{store}.options.{option} contains '$', "
                             "which Feast expands as an environment variable in feature_store.yaml", code="feast")
        for option in secrets:
            if not re.match(r"^[a-z][a-z0-9_]*$", option):
                rc.env_error(("feast", store, "secret_options"), f"'{option}' is not an option name", code="feast")
    for path, value in (("online_store", settings.online_store.path), ("registry", settings.registry.path)):
        if value is not None and "$" in value:
            rc.env_error(("feast", path, "path"), "the path contains '$', which Feast expands as an environment "
                         "variable", code="feast")
    if settings.online_store.path and not settings.online_store.path.startswith("/"):
        rc.env_error(("feast", "online_store", "path"), "the operator needs an absolute SQLite path", code="feast")
    registry_path = settings.registry.path
    if registry_path and not registry_path.startswith(("/", "s3://", "gs://")):
        rc.env_error(("feast", "registry", "path"), "the operator needs an absolute registry path or an "
                     "s3:// / gs:// URI", code="feast")
    needs_secret = bool(settings.online_store.secrets) or settings.registry.type == "sql" or \
        bool(settings.offline_store.secret_options)
    if needs_secret and not settings.credentials_secret:
        rc.env_error(("feast",), "the Feast stores read credentials from environment variables, but "
                     "feast.credentials_secret names no Secret to take them from",
                     "set feast.credentials_secret to a Secret holding the FEAST_* variables", "feast")


# ------------------------------------------------------------------------------------------
# the target
# ------------------------------------------------------------------------------------------


def version_key() -> str:
    """This target's code and the Feast version it generates for (no import of feast)."""
    here = Path(__file__).resolve().parent
    return source_key(*(str(here / name) for name in ("feast.py", "feast_repo.py", "feast_code.py", "feast_prepare.py")),
                      extra=FEAST_VERSION)


target = Target(
    name="feast",
    generate=generate,
    reads=tuple(dict.fromkeys(MODULE_READS + OBJECT_READS + JOB_READS + CONFIG_READS + TRAINING_READS)),
    settings=Settings,
    rules=rules,
    version_key=version_key,
    description="Feast: feature repository per environment, the operator's FeatureStore, materialization",
)
