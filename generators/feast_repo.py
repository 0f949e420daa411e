"""The Feast target's generator: the feature repository (feature_store.yaml, the definitions
module, the prepare job), the operator's FeatureStore and its Secret, and the training step
the pipeline reads its features through (:func:`training_step`).

What is generated and why, the settings, rules and registration are in
:mod:`mlspec.generators.feast`, the module the registry loads; this one is imported when a
compile runs, so ``validate`` never pays for it.  Nothing here imports feast.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlspec import units
from mlspec.artefact import Artefact

from . import feast_code as code
from .feast import (
    AVRO_TYPES,
    CONFIG_READS,
    ENTITY_KEY_SERIALIZATION_VERSION,
    FEAST_PIN,
    FEAST_TYPES,
    JOB_READS,
    MODULE_NAME,
    MODULE_READS,
    OBJECT_READS,
    OPERATOR_ONLINE_PATH,
    OPERATOR_REGISTRY_PATH,
    SPARK_TYPES,
    STATIC_READS,
    VALUE_TYPES,
    Settings,
    batch_source_of,
    needs_preparing,
    offline_type,
    secret_env_var,
)

if TYPE_CHECKING:
    from mlspec.context import Context


# ------------------------------------------------------------------------------------------
# the repository plan: what Feast serves, as plain data
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewPlan:
    name: str
    spec_source: str  # the source the view names
    batch_source: str  # the source its rows are read from (a stream's batch_source)
    prepared: bool  # read from a table mlspec prepares (aggregations, CSV)
    keys: tuple[str, ...]
    ttl_seconds: int
    features: tuple[tuple[str, str], ...]  # (name, mlspec dtype)


def aggregation_dtype(spec, view, agg) -> str:
    if agg.function == "count":
        return "int64"
    if agg.function == "last":
        return _column_types(spec, batch_source_of(spec, view.source)).get(agg.column, "float64")
    return "float64"


def _column_types(spec, source) -> dict[str, str]:
    return dict(source.columns)


def view_plans(spec) -> list[ViewPlan]:
    out = []
    for view in spec.features.views:
        batch = batch_source_of(spec, view.source)
        keys = tuple(spec.entity(e).join_key for e in view.entities)
        feats = [(f.name, f.dtype) for f in view.fields] + \
                [(a.output_name, aggregation_dtype(spec, view, a)) for a in view.aggregations]
        out.append(ViewPlan(view.name, view.source, batch.name, needs_preparing(spec, view), keys,
                            0 if view.aggregations else units.parse_duration(view.ttl), tuple(feats)))
    return out


def _uri(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://"):]
    if path.startswith("minio://"):
        return "s3://" + path[len("minio://"):]
    return path


def data_root(ctx: Context) -> str:
    root = ctx.settings.data_root or f"{ctx.env.storage.artifacts.rstrip('/')}/data/{ctx.spec.name}"
    return _uri(root.rstrip("/"))


def prepared_root(ctx: Context) -> str:
    root = ctx.settings.prepared_root or f"{ctx.env.storage.artifacts.rstrip('/')}/feast"
    return _uri(f"{root.rstrip('/')}/{ctx.spec.name}")


def source_path(ctx: Context, path: str) -> str:
    """Where Feast reads a file source: URIs as they are, relative paths below :func:`data_root`."""
    if "://" in path or path.startswith("/"):
        return _uri(path)
    return f"{data_root(ctx)}/{path}"


def prepared_path(ctx: Context, view: str) -> str:
    return f"{prepared_root(ctx)}/{view}.parquet"


def prepare_plan(ctx: Context) -> list[dict]:
    """The plan of :func:`mlspec.generators.feast_prepare.prepare_tables`: one entry per view
    that Feast reads from a prepared table.  Source paths are as the spec has them (relative
    paths resolve against the job's ``data_root``)."""
    spec = ctx.spec
    out = []
    for view in spec.features.views:
        if not needs_preparing(spec, view):
            continue
        batch = batch_source_of(spec, view.source)
        requested = spec.source(view.source)
        ts = batch.timestamp or requested.timestamp
        created = batch.created_timestamp or requested.created_timestamp
        ts_cols = [c for c in (ts, created) if c] + [c for c, t in batch.columns.items() if t == "unix_timestamp"]
        entities = [spec.entity(e) for e in view.entities]
        out.append({
            "view": view.name,
            "path": batch.path,
            "format": batch.file_format,
            "timestamp": ts,
            "created_timestamp": created or "",
            "timestamp_columns": list(dict.fromkeys(ts_cols)),
            "keys": [e.join_key for e in entities],
            "key_dtypes": [e.dtype for e in entities],
            "fields": [f.name for f in view.fields],
            "field_dtypes": [f.dtype for f in view.fields],
            "ttl_seconds": units.parse_duration(view.ttl),
            "aggregations": [{"column": a.column, "function": a.function, "name": a.output_name,
                              "window_seconds": units.parse_duration(a.window), "closed": a.closed} for a in view.aggregations],
            "output": prepared_path(ctx, view.name),
        })
    return out


def _placeholder(store: str, option: str) -> str:
    return "${" + secret_env_var(store, option) + "}"


def online_block(settings: Settings) -> dict:
    """The ``online_store`` block without ``type`` (what the operator's store Secret holds)."""
    s = settings.online_store
    block: dict[str, Any] = dict(s.options)
    if s.type == "sqlite":
        block["path"] = s.path or OPERATOR_ONLINE_PATH
    for option in s.secrets:
        block[option] = _placeholder("online_store", option)
    return block


def registry_block(settings: Settings) -> dict:
    """The ``registry`` block without ``registry_type``."""
    r = settings.registry
    path = (r.path or OPERATOR_REGISTRY_PATH) if r.type == "file" else "${FEAST_REGISTRY_PATH}"
    return {"path": path, "cache_ttl_seconds": r.cache_ttl_seconds}


def offline_block(settings: Settings) -> dict:
    o = settings.offline_store
    block: dict[str, Any] = dict(o.options)
    for option in o.secret_options:
        block[option] = _placeholder("offline_store", option)
    return block


def feature_store_config(ctx: Context) -> dict:
    """``feature_store.yaml`` of the repository, as data."""
    settings, spec = ctx.settings, ctx.spec
    offline = offline_type(settings, spec)
    return {
        "project": ctx.names.feast_project,
        "provider": "local",
        "registry": {"registry_type": settings.registry.type, **registry_block(settings)},
        "online_store": {"type": settings.online_store.type, **online_block(settings)},
        "offline_store": {"type": offline, **offline_block(settings)},
        "batch_engine": {"type": settings.batch_engine.type, **settings.batch_engine.options},
        "entity_key_serialization_version": ENTITY_KEY_SERIALIZATION_VERSION,
        "auth": {"type": settings.auth},
    }


def local_feature_store_config(config: dict) -> dict:
    """The repository's config made runnable on this machine (``mlspec features --local``, the
    training step, the tests): registry and online store become files below the repository's
    ``data/`` (which Feast resolves against the repository; ``.gitignore`` keeps it out of git),
    the offline store reads files, the batch engine is local, no auth; nothing else changes."""
    local = json.loads(json.dumps(config))
    local["registry"] = {"registry_type": "file", "path": "data/registry.db",
                         "cache_ttl_seconds": config["registry"].get("cache_ttl_seconds", 60)}
    local["online_store"] = {"type": "sqlite", "path": "data/online_store.db"}
    if local["offline_store"]["type"] not in ("file", "dask", "duckdb"):
        local["offline_store"] = {"type": "file"}
    local["batch_engine"] = {"type": "local"}
    local["auth"] = {"type": "no_auth"}
    return local


# ------------------------------------------------------------------------------------------
# the definitions module
# ------------------------------------------------------------------------------------------


def _timedelta(seconds: int) -> code.Code:
    return code.call("timedelta", seconds=int(seconds))


def _source_call(ctx: Context, source, offline: str, names: set[str]) -> code.Code:
    """A Feast data source for a spec source (Kafka and push sources carry their batch source)."""
    spec = ctx.spec
    owner = spec.owner
    common = dict(name=source.name, description=source.description or "", tags={}, owner=owner)
    if source.type in ("kafka", "push"):
        batch = spec.source(source.batch_source)
        batch_code = _source_call(ctx, batch, offline, names)
        if source.type == "push":
            names.add("PushSource")
            return code.call("PushSource", batch_source=batch_code, **common)
        columns = dict(batch.columns) or dict(source.columns)
        ts = source.timestamp or batch.timestamp
        if source.message_format == "avro":
            names.add("AvroFormat")
            schema = {"type": "record", "name": source.name,
                      "fields": [{"name": c, "type": ["null", AVRO_TYPES[t]]} for c, t in columns.items()]}
            fmt = code.call("AvroFormat", schema_json=json.dumps(schema, sort_keys=True))
        else:
            names.add("JsonFormat")
            fmt = code.call("JsonFormat", schema_json=", ".join(f"{c} {SPARK_TYPES[t]}" for c, t in columns.items()))
        names.add("KafkaSource")
        kwargs = dict(timestamp_field=ts, kafka_bootstrap_servers=",".join(source.bootstrap_servers),
                      topic=source.topic, message_format=fmt,
                      created_timestamp_column=source.created_timestamp or batch.created_timestamp or "",
                      batch_source=batch_code)
        if source.watermark_delay:
            kwargs["watermark_delay_threshold"] = _timedelta(units.parse_duration(source.watermark_delay))
        return code.call("KafkaSource", **common, **kwargs)
    ts = dict(timestamp_field=source.timestamp or "", created_timestamp_column=source.created_timestamp or "")
    if source.type == "file":
        if offline == "spark":
            names.add("SparkSource")
            return code.call("SparkSource", path=source_path(ctx, source.path), file_format=source.file_format,
                             **ts, **common)
        names.add("FileSource")
        return code.call("FileSource", path=source_path(ctx, source.path), **ts, **common)
    table_or_query = {"table": source.table} if source.table else {"query": source.query}
    if source.type == "bigquery":
        names.add("BigQuerySource")
        table = {"table": ".".join(p for p in (source.project, source.table) if p)} if source.table else {"query": source.query}
        return code.call("BigQuerySource", **table, **ts, **common)
    if source.type == "snowflake":
        names.add("SnowflakeSource")
        extra = {"warehouse": source.warehouse} if source.warehouse else {}
        return code.call("SnowflakeSource", database=source.database, schema=source.schema_, **extra,
                         **table_or_query, **ts, **common)
    if source.type == "redshift":
        names.add("RedshiftSource")
        return code.call("RedshiftSource", database=source.database, schema=source.schema_, **table_or_query,
                         **ts, **common)
    names.add("PostgreSQLSource")
    return code.call("PostgreSQLSource", **table_or_query, **ts, **common)


def _prepared_source(ctx: Context, view, offline: str, names: set[str]) -> code.Code:
    spec = ctx.spec
    batch = batch_source_of(spec, view.source)
    ts = batch.timestamp or spec.source(view.source).timestamp
    what = "windowed aggregations" if view.aggregations else "rows of a CSV file"
    common = dict(name=ctx.names.feast_prepared_source(view.name),
                  description=f"The {what} of view {view.name} over source {view.source}, prepared by mlspec "
                              f"(jobs/prepare.py): one row per entity and time the values change.",
                  tags={"mlspec.io/prepared-from": view.source}, owner=spec.owner)
    timestamps = dict(timestamp_field=ts, created_timestamp_column=(batch.created_timestamp or "")
                      if not view.aggregations else "")
    if offline == "spark":
        names.add("SparkSource")
        return code.call("SparkSource", path=prepared_path(ctx, view.name), file_format="parquet",
                         **timestamps, **common)
    names.add("FileSource")
    return code.call("FileSource", path=prepared_path(ctx, view.name), **timestamps, **common)


def definitions(ctx: Context) -> str:
    """``features.py``: Project, Entities, data sources, FeatureViews and FeatureServices."""
    spec, settings = ctx.spec, ctx.settings
    offline = offline_type(settings, spec)
    names: set[str] = {"Entity", "FeatureView", "Field", "Project", "ValueType"}
    types: set[str] = set()
    assignments: list[tuple[str, code.Code]] = []
    owner = spec.owner
    tags = dict(sorted(spec.labels.items()))
    assignments.append(("project", code.call("Project", name=ctx.names.feast_project,
                                             description=spec.description or "", tags=tags, owner=owner)))
    for entity in spec.features.entities:
        assignments.append((code.identifier("entity", entity.name), code.call(
            "Entity", name=entity.name, join_keys=[entity.join_key],
            value_type=code.Code(f"ValueType.{VALUE_TYPES[entity.dtype]}"),
            description=entity.description or "", tags={}, owner=owner)))
    plans = {p.name: p for p in view_plans(spec)}
    emitted: set[str] = set()
    for view in spec.features.views:
        if plans[view.name].prepared:
            continue
        source = spec.source(view.source)
        if source.name not in emitted:
            emitted.add(source.name)
            assignments.append((code.identifier("source", source.name), _source_call(ctx, source, offline, names)))
    for view in spec.features.views:
        plan = plans[view.name]
        if plan.prepared:
            source_var = code.identifier("prepared", view.name)
            assignments.append((source_var, _prepared_source(ctx, view, offline, names)))
        else:
            source_var = code.identifier("source", view.source)
        entity_dtypes = {spec.entity(e).join_key: spec.entity(e).dtype for e in view.entities}
        descriptions = {f.name: f.description or "" for f in view.fields}
        for a in view.aggregations:
            descriptions[a.output_name] = f"{a.function} of {a.column} over the last {a.window}"
        schema = []
        for key, dtype in entity_dtypes.items():
            types.add(FEAST_TYPES[dtype])
            schema.append(code.call("Field", name=key, dtype=code.Code(FEAST_TYPES[dtype])))
        for fname, dtype in plan.features:
            types.add(FEAST_TYPES[dtype])
            schema.append(code.call("Field", name=fname, dtype=code.Code(FEAST_TYPES[dtype]),
                                    description=descriptions.get(fname, "")))
        assignments.append((code.identifier("view", view.name), code.call(
            "FeatureView", name=view.name,
            entities=code.code_list([code.Code(code.identifier("entity", e)) for e in view.entities]),
            ttl=_timedelta(plan.ttl_seconds), schema=code.code_list(schema), source=code.Code(source_var),
            online=view.online, description=view.description or "", tags=dict(view.tags), owner=owner)))
    for service in spec.features.services:
        parts: list[Any] = []
        whole: dict[str, list[str] | None] = {}
        for ref in service.features:
            view_name, _, feature = ref.partition(":")
            if not feature:
                whole[view_name] = None
            elif whole.get(view_name, []) is not None:
                whole.setdefault(view_name, []).append(feature)
        for view_name, features in whole.items():
            var = code.identifier("view", view_name)
            parts.append(code.Code(var) if features is None else code.projection(var, list(dict.fromkeys(features))))
        assignments.append((code.identifier("service", service.name), code.call(
            "FeatureService", name=service.name, features=code.code_list(parts),
            description=service.description or "", tags={}, owner=owner)))
        names.add("FeatureService")
    imports = ["from datetime import timedelta", f"from feast import {', '.join(sorted(names - {'AvroFormat', 'JsonFormat'}))}"]
    formats = sorted(names & {"AvroFormat", "JsonFormat"})
    if formats:
        imports.append(f"from feast.data_format import {', '.join(formats)}")
    if "SparkSource" in names:
        imports[1] = f"from feast import {', '.join(sorted(names - {'AvroFormat', 'JsonFormat', 'SparkSource'}))}"
        imports.append("from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource")
    if types:
        imports.append(f"from feast.types import {', '.join(sorted(types))}")
    doc = (f"Feast definitions of the ML system {spec.name} (environment {ctx.env.name}).\n\n"
           "Generated from the spec: definitions only, no other code (Feast imports this file).\n"
           "Views marked prepared read tables written by ../jobs/prepare.py.")
    return code.module(doc, imports, assignments)


FEASTIGNORE = """\
# Feast imports every *.py file of the repository; nothing else here is Feast's.
.gitignore
data/
__pycache__/
"""
GITIGNORE = """\
# Feast state: the registry and the online store are never committed.
registry.db
*.db
*.db-journal
*.db-wal
data/
__pycache__/
"""


@functools.lru_cache(maxsize=1)
def _prepare_source() -> str:
    """The source of :func:`feast_prepare.prepare_tables`, read once per process (``inspect``
    tokenizes the whole module: most of this target's time when read for every scope)."""
    import inspect

    from . import feast_prepare

    return inspect.getsource(feast_prepare.prepare_tables)


def prepare_job(ctx: Context) -> str | None:
    """``jobs/prepare.py``: :func:`prepare_tables` with this spec's plan, or None."""
    plan = prepare_plan(ctx)
    if not plan:
        return None
    source = _prepare_source()
    return (f'"""Prepares the tables Feast serves for {ctx.spec.name} (see mlspec.generators.feast_prepare).\n\n'
            'Run in the Feast server pod from the repository folder before materializing:\n'
            '    python3 ../jobs/prepare.py\n"""\n\n'
            f"PLAN = {code.literal(json.dumps(plan, sort_keys=True))}\n"
            f"DATA_ROOT = {code.literal(data_root(ctx))}\n\n\n"
            f"{source}\n\n"
            'if __name__ == "__main__":\n'
            "    import argparse\n\n"
            '    parser = argparse.ArgumentParser(description="Write the tables Feast serves from prepared sources.")\n'
            '    parser.add_argument("--data-root", default=DATA_ROOT, help="where relative source paths resolve")\n'
            '    parser.add_argument("--outputs", default="{}", help="JSON {view: path}: write there instead")\n'
            "    arguments = parser.parse_args()\n"
            "    print(prepare_tables(PLAN, arguments.data_root, arguments.outputs))\n")


# ------------------------------------------------------------------------------------------
# the Kubernetes objects
# ------------------------------------------------------------------------------------------


def repo_path(ctx: Context) -> str:
    """The repository's folder inside the GitOps repository (``featureRepoPath``)."""
    prefix = ctx.env.argocd.path_prefix.strip("/")
    return "/".join(p for p in (prefix, *ctx.deploy_path("feast", "repo").split("/")) if p)


def _secret_ref(ctx: Context, store_type: str) -> dict:
    return {"type": store_type, "secretRef": {"name": ctx.names.feast_stores_secret}, "secretKeyName": store_type}


def stores_secret_data(ctx: Context) -> dict[str, dict]:
    """Key -> store block of the generated store Secret (only DB-backed stores)."""
    settings = ctx.settings
    data: dict[str, dict] = {}
    if settings.online_store.type != "sqlite":
        data[settings.online_store.type] = online_block(settings)
    if settings.registry.type == "sql":
        data["sql"] = registry_block(settings)
    offline = offline_type(settings, ctx.spec)
    if offline not in ("file", "dask", "duckdb"):
        data[offline] = offline_block(settings)
    return data


def materialization_commands(ctx: Context) -> list[str]:
    commands = []
    if prepare_plan(ctx):
        commands.append("python3 ../jobs/prepare.py")
    commands.append("feast materialize-incremental $(date -u +'%Y-%m-%dT%H:%M:%S')")
    return commands


def feature_store_objects(ctx: Context) -> list[dict]:
    """FeatureStore, its batch-engine ConfigMap and (DB-backed stores) its store Secret."""
    from mlspec.render import dump_yaml

    settings, spec = ctx.settings, ctx.spec
    meta = {"namespace": ctx.namespace, "labels": ctx.labels("feature-store"), "annotations": ctx.annotations()}
    env_from = [{"secretRef": {"name": settings.credentials_secret}}] if settings.credentials_secret else []
    server = {"envFrom": env_from} if env_from else {}
    online = settings.online_store
    online_persistence = {"file": {"path": online.path or OPERATOR_ONLINE_PATH}} if online.type == "sqlite" \
        else {"store": _secret_ref(ctx, online.type)}
    registry = settings.registry
    registry_persistence = {"file": {"path": registry.path or OPERATOR_REGISTRY_PATH,
                                     "cache_ttl_seconds": registry.cache_ttl_seconds}} if registry.type == "file" \
        else {"store": _secret_ref(ctx, "sql")}
    offline = offline_type(settings, spec)
    offline_persistence = {"file": {"type": offline}} if offline in ("file", "dask", "duckdb") \
        else {"store": _secret_ref(ctx, offline)}
    services: dict[str, Any] = {
        "onlineStore": {"persistence": online_persistence, "server": server},
        "offlineStore": {"persistence": offline_persistence},
        "registry": {"local": {"persistence": registry_persistence}},
    }
    if settings.ui:
        services["ui"] = {}
    schedule = settings.schedule or spec.training.schedule
    cron: dict[str, Any] = {"containerConfigs": {"commands": materialization_commands(ctx)},
                            "concurrencyPolicy": "Forbid", "timeZone": "Etc/UTC"}
    if schedule:
        cron["schedule"] = units.parse_cron(schedule)
    else:
        cron.update(schedule="@yearly", suspend=True)
    batch_name = ctx.names.feast_batch_engine_configmap
    feature_store = {
        "apiVersion": "feast.dev/v1",
        "kind": "FeatureStore",
        "metadata": {"name": ctx.names.feature_store, **meta},
        "spec": {
            "feastProject": ctx.names.feast_project,
            "feastProjectDir": {"git": {"url": ctx.env.argocd.repo_url, "ref": ctx.env.argocd.revision,
                                        "featureRepoPath": repo_path(ctx)}},
            "authz": {"kubernetes": {}} if settings.auth == "kubernetes" else {"noAuth": True},
            "batchEngine": {"configMapRef": {"name": batch_name}, "configMapKey": "config"},
            "cronJob": cron,
            "services": services,
        },
    }
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": batch_name, **meta},
        "data": {"config": dump_yaml({"type": settings.batch_engine.type, **settings.batch_engine.options})},
    }
    objects = [feature_store, config_map]
    secret = stores_secret_data(ctx)
    if secret:
        objects.append({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": ctx.names.feast_stores_secret, **{**meta, "annotations": {
                **ctx.annotations(),
                "mlspec.io/note": "Feast store blocks with ${FEAST_...} placeholders; no credentials. The values "
                                  f"come from the Secret {settings.credentials_secret} through envFrom."}}},
            "stringData": {key: dump_yaml(block) for key, block in sorted(secret.items())},
        })
    return objects


def repo_files(ctx: Context) -> dict[str, str]:
    """The repository and job files as text, relative to ``deploy/<env>/<spec>/feast/`` (no
    headers: :func:`generate` adds them), for the training step and ``features --local``."""
    from mlspec.render import dump_yaml

    files = {"repo/feature_store.yaml": dump_yaml(feature_store_config(ctx)), f"repo/{MODULE_NAME}": definitions(ctx),
             "repo/.feastignore": FEASTIGNORE, "repo/.gitignore": GITIGNORE}
    job = prepare_job(ctx)
    if job is not None:
        files["jobs/prepare.py"] = job
    return files


# ------------------------------------------------------------------------------------------
# training through Feast: what the pipeline's feature step needs
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingStep:
    """The arguments of :func:`mlspec.generators.feast_components.feast_training_features`
    and what the pipeline needs around it."""

    feature_service: str
    entity_keys: tuple[str, ...]  # join keys the label table carries
    label_timestamp: str
    label_column: str
    feature_columns: tuple[str, ...]  # in the order of the feature service (= the pipeline's)
    count_features: tuple[str, ...]  # aggregations with function count: no rows -> 0, as the pipeline
    repo: str  # JSON {relative path: text}: the repository with a local feature_store.yaml, and the job
    roots: str  # JSON {compiled root: "{data_root}" | "{work}/prepared"}
    prepare_source: str  # the source text of feast_prepare.prepare_tables
    prepare_plan: str  # JSON: prepare_plan(ctx)
    packages: tuple[str, ...] = (FEAST_PIN,)
    #: URI schemes the step reads and writes (data root, prepared tables, file sources):
    #: the pipeline adds the fsspec file system each needs (s3fs, gcsfs) to the step's image.
    fs_schemes: tuple[str, ...] = ()


def training_step(ctx: Context) -> TrainingStep:
    """What the pipeline's feature step needs to read the training frame through Feast."""

    from mlspec.render import dump_yaml


    spec, training = ctx.spec, ctx.spec.training
    served = spec.served_features(training.feature_service)
    keys: list[str] = []
    counts = []
    for view_name in dict.fromkeys(v for v, _ in served):
        view = spec.view(view_name)
        for e in view.entities:
            key = spec.entity(e).join_key
            if key not in keys:
                keys.append(key)
        counts += [a.output_name for a in view.aggregations if a.function == "count"]
    names = [f for _, f in served]
    files = repo_files(ctx)
    files["repo/feature_store.yaml"] = dump_yaml(local_feature_store_config(feature_store_config(ctx)))
    roots = {data_root(ctx): "{data_root}", prepared_root(ctx): "{work}/prepared"}
    return TrainingStep(
        feature_service=training.feature_service, entity_keys=tuple(keys),
        label_timestamp=spec.source(training.label.source).timestamp, label_column=training.label.column,
        feature_columns=tuple(names), count_features=tuple(c for c in counts if c in names),
        repo=json.dumps(files, sort_keys=True), roots=json.dumps(roots, sort_keys=True),
        prepare_source=_prepare_source(),
        prepare_plan=json.dumps(prepare_plan(ctx), sort_keys=True),
        fs_schemes=tuple(sorted({uri.partition("://")[0] for uri in
                                 [*roots, *(source_path(ctx, s.path) for s in spec.data.sources if s.type == "file")]
                                 if "://" in uri})))


def generate(ctx: Context) -> list[Artefact]:
    """The Feast artefacts of one spec in one environment (pure: no I/O); none when the spec
    opts out (``features.feature_store: false``)."""
    if not ctx.spec.features.feature_store:
        return []
    out = [
        Artefact(ctx.deploy_path("feast", "featurestore.yaml"), feature_store_objects(ctx), kind="yaml",
                 multi_document=True, reads=OBJECT_READS),
        Artefact(ctx.deploy_path("feast", "repo", "feature_store.yaml"), feature_store_config(ctx), kind="yaml",
                 reads=CONFIG_READS),
        Artefact(ctx.deploy_path("feast", "repo", MODULE_NAME), definitions(ctx), kind="text", reads=MODULE_READS),
        Artefact(ctx.deploy_path("feast", "repo", ".feastignore"), FEASTIGNORE, kind="text", reads=STATIC_READS),
        Artefact(ctx.deploy_path("feast", "repo", ".gitignore"), GITIGNORE, kind="text", reads=STATIC_READS),
    ]
    job = prepare_job(ctx)
    if job is not None:
        out.append(Artefact(ctx.deploy_path("feast", "jobs", "prepare.py"), job, kind="text", reads=JOB_READS))
    return out
