"""The Kubeflow target's generator: the training pipeline as plain data (:func:`plan`), the kfp
pipeline built from it (:func:`build_pipeline`), its IR (:func:`compile_ir`), the Pipeline,
PipelineVersion and schedule manifests, and :func:`generate`.

What the pipeline does and the target's settings, rules and registration are described in
:mod:`mlspec.generators.kubeflow`, the module the registry loads; this one is imported when a
compile (or ``mlspec run``) runs, so ``validate`` never pays for it.  ``kfp`` is imported
lazily, inside the functions that need it.
"""

# No ``from __future__ import annotations``: kfp reads the pipeline's annotations at run time.
import contextlib
import dataclasses
import functools
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlspec import units
from mlspec.artefact import Artefact
from mlspec.environments import settings_of
from mlspec.models import Range, Spec, Training
from mlspec.naming import DISPATCH_NEW_MODEL

from .kubeflow import (
    DATA_PACKAGES,
    DEFAULT_IMAGE,
    FS_PACKAGES,
    IR_READS,
    KFP_TOKEN_DIR,
    PINS,
    PIPELINE_READS,
    SCHEDULE_READS,
    SECRET_MOUNT,
    TRAIN_PACKAGES,
    VERSION_PLACEHOLDER,
    VERSION_READS,
    WAREHOUSE_PACKAGES,
    uri_scheme,
)

if TYPE_CHECKING:
    from mlspec.context import Context


# ------------------------------------------------------------------------------------------
# hyper-parameter candidates
# ------------------------------------------------------------------------------------------


def candidates(training: Training) -> list[dict[str, Any]]:
    """The hyper-parameter candidates of ``training.search``, in a stable order.

    grid: the cartesian product over the parameter names in sorted order, each name's
    values in the spec's order (the first sorted name varies slowest).
    random: ``trials`` draws with ``random.Random(search.seed)``, parameters drawn in
    sorted-name order -- lists by ``choice``, ranges uniformly (``scale: log``:
    log-uniformly), ``type: int`` rounded and kept inside the range -- then
    de-duplicated keeping the first occurrence (so there may be fewer than ``trials``).
    No parameters: one candidate, ``{}`` (the estimator's defaults).
    """
    search = training.search
    names = sorted(search.parameters)
    if search.strategy == "grid":
        value_lists = [list(search.parameters[n]) for n in names]
        drawn = [dict(zip(names, combo)) for combo in itertools.product(*value_lists)]
    else:
        rng = random.Random(search.seed)
        drawn = []
        for _ in range(search.trials or 1):
            drawn.append({n: _draw(rng, search.parameters[n]) for n in names})
    unique: dict[str, dict[str, Any]] = {}
    for cand in drawn:
        unique.setdefault(canonical(cand), cand)
    return list(unique.values())


def _draw(rng: random.Random, values: Any) -> Any:
    if not isinstance(values, Range):
        return rng.choice(list(values))
    if values.scale == "log":
        x = math.exp(rng.uniform(math.log(values.min), math.log(values.max)))
    else:
        x = rng.uniform(values.min, values.max)
    if values.type == "int":
        lo, hi = math.ceil(values.min), math.floor(values.max)
        return int(min(max(round(x), lo), hi))
    return float(x)


def canonical(candidate: dict[str, Any]) -> str:
    """The canonical JSON of a candidate: how it travels through the pipeline.

    (KFP turns ints inside dict constants into floats, and a ParallelFor over dicts takes
    the first item's types for every item; one JSON string per candidate avoids both.)"""
    return json.dumps(candidate, sort_keys=True)


# ------------------------------------------------------------------------------------------
# the plan: what the pipeline does, as plain data (no kfp)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestStep:
    name: str  # the batch source read
    type: str
    checks: tuple[dict, ...]
    timestamp: str | None
    created_timestamp: str | None
    timestamp_columns: tuple[str, ...]
    declared_columns: tuple[str, ...]
    requested_as: tuple[str, ...]  # spec source names served by this step (stream sources map here)


@dataclass(frozen=True)
class JoinStep:
    kind: str  # "fields" | "aggregations"
    view: str
    source: str  # ingest step name
    keys: tuple[str, ...]
    source_timestamp: str
    created_timestamp: str | None
    fields: tuple[str, ...] = ()
    aggregations: tuple[dict, ...] = ()
    ttl_seconds: int = 0


@dataclass(frozen=True)
class Plan:
    ingests: tuple[IngestStep, ...]
    label_source: str  # ingest step name
    label_column: str
    label_timestamp: str
    entity_keys: tuple[str, ...]  # join keys the label table has
    joins: tuple[JoinStep, ...]
    feature_columns: tuple[str, ...]
    candidates: tuple[dict, ...]
    data_root: str
    registry_root: str
    pipeline_root: str
    image: str
    fs_schemes: tuple[str, ...] = field(default=())
    #: per feature, how the training step prepares it (:func:`preprocessing`); None: the plain step
    preprocessing: tuple[dict, ...] | None = None
    #: the served string features, in ``feature_columns`` order: served as columns of raw values
    #: (see ``steps.register_model``)
    string_features: tuple[str, ...] = ()


def pipeline_version_name(ctx: "Context") -> str:
    """The content-addressed PipelineVersion name of ``ctx``'s pipeline (compiles the IR)."""
    return compile_ir(ctx)[0]["pipelineInfo"]["name"]


def _batch(spec: Spec, name: str):
    """(the source named, the batch source its rows are read from); validation ensures both exist."""
    source = spec.source(name)
    if source.type in ("kafka", "push"):
        return source, spec.source(source.batch_source)
    return source, source


def plan(ctx: "Context") -> Plan:
    """Everything the pipeline will do, derived from a valid spec (see :func:`rules`)."""
    spec, env, training = ctx.spec, ctx.env, ctx.spec.training
    service = spec.service(training.feature_service)
    served = spec.served_features(service.name)
    views = []
    for view_name, _ in served:
        if view_name not in views:
            views.append(view_name)

    # ingest steps: the label source first, then each view's source; stream sources read their log
    ingests: dict[str, IngestStep] = {}

    def need(source_name: str) -> str:
        requested, batch = _batch(spec, source_name)
        step = ingests.get(batch.name)
        checks = [c.model_dump(mode="json", exclude_none=True) for c in batch.checks]
        if requested is not batch:
            checks += [c for c in (x.model_dump(mode="json", exclude_none=True) for x in requested.checks) if c not in checks]
        if step is None:
            ts = batch.timestamp or requested.timestamp
            created = batch.created_timestamp or requested.created_timestamp
            ts_cols = [c for c in (ts, created) if c] + [c for c, t in batch.columns.items() if t == "unix_timestamp"]
            step = IngestStep(
                name=batch.name, type=batch.type, checks=tuple(checks), timestamp=ts, created_timestamp=created,
                timestamp_columns=tuple(dict.fromkeys(ts_cols)), declared_columns=tuple(batch.columns),
                requested_as=(source_name,) if source_name == batch.name else (batch.name, source_name),
            )
        else:
            merged = list(step.checks) + [c for c in checks if c not in step.checks]
            step = dataclasses.replace(step, checks=tuple(merged),
                                       requested_as=tuple(dict.fromkeys(step.requested_as + (source_name,))))
        ingests[batch.name] = step
        return batch.name

    label_step = need(training.label.source)
    view_sources = {v: need(spec.view(v).source) for v in views}
    label_ingest = ingests[label_step]

    # join keys: the label table carries every key of the service's views (validation checks it)
    wanted_keys: list[str] = []
    for v in views:
        for ent in spec.view(v).entities:
            entity = spec.entity(ent)
            if entity.join_key not in wanted_keys:
                wanted_keys.append(entity.join_key)
    joins: list[JoinStep] = []
    for v in views:
        view = spec.view(v)
        step = ingests[view_sources[v]]
        keys = tuple(spec.entity(e).join_key for e in view.entities)
        if view.fields:
            joins.append(JoinStep(kind="fields", view=v, source=step.name, keys=keys,
                                  source_timestamp=step.timestamp, created_timestamp=step.created_timestamp,
                                  fields=tuple(f.name for f in view.fields),
                                  ttl_seconds=units.parse_duration(view.ttl)))
        if view.aggregations:
            aggs = tuple({"column": a.column, "function": a.function, "name": a.output_name,
                          "window_seconds": units.parse_duration(a.window), "closed": a.closed} for a in view.aggregations)
            joins.append(JoinStep(kind="aggregations", view=v, source=step.name, keys=keys,
                                  source_timestamp=step.timestamp, created_timestamp=step.created_timestamp,
                                  aggregations=aggs))

    artifacts = env.storage.artifacts.rstrip("/")
    data_root = f"{artifacts}/data/{spec.name}"
    registry_root = (env.storage.models or f"{artifacts}/models").rstrip("/")
    pipeline_root = env.kubeflow.pipeline_root or env.storage.artifacts
    uris = [data_root, registry_root] + [s.path for s in spec.data.sources if s.type == "file" and s.name in ingests]
    schemes = tuple(sorted({s for s in (uri_scheme(u) for u in uris) if s in FS_PACKAGES}))
    return Plan(
        ingests=tuple(ingests.values()),
        label_source=label_step,
        label_column=training.label.column,
        label_timestamp=label_ingest.timestamp,
        entity_keys=tuple(wanted_keys),
        joins=tuple(joins),
        feature_columns=tuple(f for _, f in served),
        candidates=tuple(candidates(training)),
        data_root=data_root,
        registry_root=registry_root,
        pipeline_root=pipeline_root,
        image=training.image or DEFAULT_IMAGE,
        fs_schemes=schemes,
        preprocessing=preprocessing(spec),
        string_features=tuple(f for f, dtype in spec.served_dtypes(training.feature_service).items()
                              if dtype == "string"),
    )


def preprocessing(spec: Spec) -> tuple[dict, ...] | None:
    """How the training step prepares each served feature (``training.preprocessing``), in the
    feature service's order: ``{"name", "categorical": encoding}`` for a string feature or one the
    spec marks categorical, else ``{"name", "numeric": scaling, "impute": strategy}``.  None when
    there is nothing to prepare -- every feature a number, unscaled, imputed ``auto`` -- which is
    what :func:`~mlspec.generators.kubeflow_components.train_candidate` does without it (the
    median in front of an estimator that rejects NaN), so such a spec's pipeline passes no
    preprocessing and its IR does not depend on the setting.  Container training: None (the
    container trains on the raw table)."""
    training = spec.training
    if training.container is not None:
        return None
    pre = training.preprocessing
    entries = []
    for view_name, feature in spec.served_features(training.feature_service):
        field_spec = next((f for f in spec.view(view_name).fields if f.name == feature), None)
        override = pre.features.get(feature)
        if override is not None and override.categorical is not None:
            entries.append({"name": feature, "categorical": override.categorical})
        elif field_spec is not None and field_spec.dtype == "string":  # validation: categorical is not none
            entries.append({"name": feature, "categorical": pre.categorical})
        else:
            entries.append({"name": feature,
                            "numeric": override.numeric if override and override.numeric else pre.numeric,
                            "impute": override.impute if override and override.impute else pre.impute})
    if all("categorical" not in e and e["numeric"] == "none" and e["impute"] == "auto" for e in entries):
        return None
    return tuple(entries)


# ------------------------------------------------------------------------------------------
# the kfp pipeline
# ------------------------------------------------------------------------------------------


def _packages(names, schemes=()) -> list[str]:
    wanted = list(names) + [p for s in schemes for p in FS_PACKAGES.get(s, ())]
    return [PINS[n] for n in sorted(set(wanted))]


#: Components made so far in this process (see ``build_pipeline``).
_COMPONENTS: dict[tuple, Any] = {}


@contextlib.contextmanager
def _cheap_task_checks():
    """Skip the ``inspect.stack()`` call kfp makes in every resource setter.

    ``PipelineTask._ensure_container_spec_exists`` walks the whole call stack, reading
    source files, only to name its caller in an error message -- about 14 ms a call
    under the CLI, most of a pipeline's build time.  While building, the same check
    runs without that walk; the IR is unchanged (tests compare it with kfp's own)."""
    from kfp.dsl import pipeline_task

    original = pipeline_task.PipelineTask._ensure_container_spec_exists

    def ensure(self) -> None:
        if self.container_spec is None:
            raise ValueError("resources can only be set on single-step components, not on pipelines "
                             "used as components or on special components like importers.")

    pipeline_task.PipelineTask._ensure_container_spec_exists = ensure
    try:
        yield
    finally:
        pipeline_task.PipelineTask._ensure_container_spec_exists = original


def run_parameters(ctx: "Context") -> dict:
    """The parameters every run of the pipeline is started with (the schedule's CronJob, the
    drift target's retrain action): the serving champion when new models are announced, so the
    pull request compares with it -- a run parameter, not part of the IR, so that promoting a
    model does not make a new PipelineVersion."""
    return {"champion_uri": ctx.spec.serving.champion.uri} if _new_models(ctx.env) is not None else {}


def _new_models(env) -> Any:
    """The environment's drift settings when they ask for pull requests of new models, else None
    (also when the drift target is not installed)."""
    settings = settings_of(env, "drift")
    return settings if settings is not None and settings.new_models is not None else None


def _announce(ctx: "Context") -> tuple[str, Any]:
    """The register step's ``announce`` JSON and the token's Secret, when the environment's
    ``drift.new_models`` asks for pull requests of new models; else ("", None)."""
    env = ctx.env
    settings = _new_models(env)
    if settings is None:
        return "", None
    from mlspec.generators import drift as drift_target

    ref = settings.github.token_secret
    return json.dumps({
        "repository": drift_target.github_repository(env), "event_type": DISPATCH_NEW_MODEL,
        "api": "https://api.github.com", "token_file": f"{SECRET_MOUNT}/github/{ref.key}",
        "spec": ctx.spec_path, "env": env.name, "traffic": settings.new_models.traffic}, sort_keys=True), ref


def feast_step(ctx: "Context"):
    """The Feast feature step's arguments (:func:`mlspec.generators.feast_repo.training_step`), or None
    when the spec opts out of the feature store (``features.feature_store: false``).  Decided by
    the spec alone; validation requires the feast target's settings (:func:`rules`).  The
    repository is built without the spec's owner, description and labels (documentation, which
    does not change a join), so a documentation edit is not a new pipeline."""
    if not ctx.spec.features.feature_store:
        return None
    from mlspec.generators import feast_repo

    spec = ctx.spec.model_copy(update={"owner": "-", "description": None, "labels": {}})
    return feast_repo.training_step(dataclasses.replace(ctx, spec=spec, target="feast"))


def build_pipeline(ctx: "Context", *, local: bool = False, version_name: str = VERSION_PLACEHOLDER,
                   feast_python: str | None = None):
    """The spec's training pipeline as a KFP ``GraphComponent``, named ``version_name``
    (:func:`compile_ir` replaces the placeholder with the content-addressed name).

    ``local=True`` builds the same graph for ``mlspec run --local``: the steps then install
    nothing (no ``pip install`` of kfp or the pinned packages into the running
    environment; the current interpreter must already have them) -- everything else,
    including the step code, is identical.  When the features are served by Feast
    (:func:`feast_step`), one Feast step replaces the per-view joins; locally it runs the same
    step body with ``feast_python`` (an interpreter with Feast) in a subprocess, which
    ``feast_python`` must then name."""
    from kfp import dsl

    from mlspec.generators import kubeflow_components as steps

    p = plan(ctx)
    spec, training = ctx.spec, ctx.spec.training

    def component(func, packages=()):
        # Components are immutable once made; building one parses its function's source,
        # so each is made once per process and shared by every pipeline that uses it.
        key = (func.__module__, func.__name__, p.image, tuple(packages), local)
        if key not in _COMPONENTS:
            _COMPONENTS[key] = dsl.component(
                func,
                base_image=p.image,
                packages_to_install=[] if local else list(packages),
                install_kfp_package=not local,
            )
        return _COMPONENTS[key]

    data_pkgs = _packages(DATA_PACKAGES)
    ingest_file = component(steps.ingest_file, _packages(DATA_PACKAGES, p.fs_schemes))
    check_data = component(steps.check_data, data_pkgs)
    build_entity_frame = component(steps.build_entity_frame, data_pkgs)
    join_fields = component(steps.join_view_fields, data_pkgs)
    join_aggregations = component(steps.join_view_aggregations, data_pkgs)
    select_best = component(steps.select_best)
    quality_gate = component(steps.quality_gate)
    # estimator training registers a scikit-learn model laid out for MLServer (the step loads it to
    # derive and check its signature); a container trainer's model directory is registered as written
    model_format = "sklearn" if training.container is None else ""
    register_model = component(steps.register_model,
                               _packages(("scikit-learn",) if model_format else (),
                                         p.fs_schemes if uri_scheme(p.registry_root) else ()))
    train = _train_component(ctx, p, component, dsl)
    detector_policy = announce = announce_secret = None
    if spec.drift is not None:
        from mlspec.generators import drift_components

        fit_detector = component(drift_components.fit_drift_detector, _packages(DATA_PACKAGES))
        from mlspec import drift as drift_check

        detector_policy = json.dumps(drift_check.policy(spec), sort_keys=True)
    announce, announce_secret = ("", None) if local else _announce(ctx)
    feast = feast_step(ctx)
    if feast is not None:
        import inspect

        from mlspec.generators import feast_components as fc

        if local:
            if not feast_python:
                raise ValueError("this spec reads its features through Feast: a local run needs feast_python")
            feast_features = component(fc.feast_training_features_local)
            feast_local = dict(feast_python=feast_python, step_source=inspect.getsource(fc.feast_training_features),
                               runner_source=fc._LOCAL_RUNNER)
        else:
            feast_features = component(fc.feast_training_features,
                                       list(feast.packages) + _packages((), feast.fs_schemes))
            feast_local = {}
        chain_snapshot = component(fc.chain_snapshot)

    sources = {s.name: s for s in spec.data.sources}
    items = [canonical(c) for c in p.candidates]
    lineage = {
        "spec": spec.name,
        "environment": ctx.env.name,
        "feature_service": training.feature_service,
        "features": list(p.feature_columns),
        "label": {"source": training.label.source, "column": training.label.column},
        "estimator": training.estimator,
        "container": training.container.image if training.container else None,
        "split": training.split.model_dump(mode="json"),
        "search": {"strategy": training.search.strategy, "candidates": len(items)},
    }
    if p.preprocessing is not None:  # (absent otherwise: the plain step's pipeline stays as it was)
        lineage["preprocessing"] = list(p.preprocessing)
    lineage = json.dumps(lineage, sort_keys=True)

    def training_pipeline(data_root: str = p.data_root, registry_root: str = p.registry_root,
                          champion_uri: str = "") -> str:
        datasets, snapshots, checked = {}, {}, {}
        for step in p.ingests:
            task = _ingest_task(step, sources[step.name], data_root, ingest_file, component)
            task.set_display_name(f"ingest {step.name}").set_caching_options(False)
            datasets[step.name] = task.outputs["dataset"]
            snapshots[step.name] = task.outputs["Output"]
            checked[step.name] = []
            if step.checks:
                check = check_data(source=step.name, checks=json.dumps(list(step.checks), sort_keys=True),
                                   dataset=task.outputs["dataset"])
                check.set_display_name(f"check {step.name}")
                checked[step.name].append(check)

        entity = build_entity_frame(keys=json.dumps(list(p.entity_keys)), timestamp=p.label_timestamp,
                                    label=p.label_column, source_name=p.label_source,
                                    source_sha256=snapshots[p.label_source], labels=datasets[p.label_source])
        entity.set_display_name("label table")
        entity.after(*checked[p.label_source])
        table, lineage_so_far = entity.outputs["entity"], entity.outputs["Output"]
        if feast is not None:
            task = feast_features(
                repo=feast.repo, roots=feast.roots, data_root=data_root, prepare_source=feast.prepare_source,
                prepare_plan=feast.prepare_plan, feature_service=feast.feature_service,
                count_features=json.dumps(list(feast.count_features)), entity=table, **feast_local)
            task.set_display_name(f"features {feast.feature_service} (Feast)")
            task.after(*[c for step in p.ingests for c in checked[step.name]])
            table = task.outputs["joined"]
            for name in dict.fromkeys(join.source for join in p.joins):  # lineage, as the joins keep it
                link = chain_snapshot(upstream=lineage_so_far, source_name=name, source_sha256=snapshots[name])
                link.set_display_name(f"lineage {name}")
                lineage_so_far = link.outputs["Output"]
        for join in (() if feast is not None else p.joins):
            chain = dict(source_name=join.source, source_sha256=snapshots[join.source], upstream=lineage_so_far)
            if join.kind == "aggregations":
                task = join_aggregations(
                    view=join.view, keys=json.dumps(list(join.keys)), entity_timestamp=p.label_timestamp,
                    source_timestamp=join.source_timestamp,
                    aggregations=json.dumps(list(join.aggregations), sort_keys=True),
                    entity=table, source=datasets[join.source], **chain)
                task.set_display_name(f"features {join.view} (aggregations)")
            else:
                task = join_fields(
                    view=join.view, keys=json.dumps(list(join.keys)), entity_timestamp=p.label_timestamp,
                    source_timestamp=join.source_timestamp, created_timestamp=join.created_timestamp or "",
                    fields=json.dumps(list(join.fields)), ttl_seconds=join.ttl_seconds,
                    entity=table, source=datasets[join.source], **chain)
                task.set_display_name(f"features {join.view}")
            task.after(*checked[join.source])
            table, lineage_so_far = task.outputs["joined"], task.outputs["Output"]

        with dsl.ParallelFor(items=items, parallelism=training.parallelism) as candidate:
            trained = train(table, candidate)
        selection = select_best(candidates=json.dumps(list(p.candidates), sort_keys=True),
                                metric=training.metric.name, goal=training.metric.goal,
                                results=dsl.Collected(trained.outputs[_RESULT_KEY[bool(training.container)]]),
                                models=dsl.Collected(trained.outputs["model"]))
        selection.set_display_name("select best")
        gate = quality_gate(selection=selection.outputs["Output"], threshold=training.metric.threshold)
        gate.set_display_name("quality gate")
        extra = {}
        if spec.drift is not None:  # the detector watches what this model was trained on
            reference = table
            if spec.drift.reference.source is not None:
                reference = datasets[spec.drift.reference.source]
            elif spec.drift.reference.path is not None:
                ref_path = spec.drift.reference.path
                task = ingest_file(data_root=data_root, path=ref_path,
                                   file_format="csv" if ref_path.lower().endswith(".csv") else "parquet",
                                   source="drift_reference", timestamp_columns="[]",
                                   declared_columns=json.dumps(list(spec.drift.features)))
                task.set_display_name("ingest drift reference").set_caching_options(False)
                reference = task.outputs["dataset"]
            fit = fit_detector(features=reference, policy=detector_policy, version=version_name)
            fit.set_display_name(f"drift detector ({spec.drift.detector})").after(gate)
            extra["detector"] = fit.outputs["detector"]
        if announce:  # the champion to compare with comes with each run (see run_parameters)
            extra.update(announce=announce, champion_uri=champion_uri)
        if p.string_features:
            extra["string_features"] = json.dumps(list(p.string_features))
        register = register_model(
            registry_root=registry_root, model_name=spec.name,
            pipeline_version=version_name, lineage=lineage, snapshots=lineage_so_far,
            selection=gate.outputs["Output"], model_format=model_format,
            feature_service=training.feature_service, feature_columns=json.dumps(list(p.feature_columns)),
            model=selection.outputs["best_model"], **extra)
        if announce:
            register.set_env_variable("MLSPEC_SECRET_KEY", announce_secret.key)
            register.platform_config["kubernetes"] = {"secretAsVolume": [{
                "secretName": announce_secret.secret,
                "secretNameParameter": {"runtimeValue": {"constant": announce_secret.secret}},
                "mountPath": f"{SECRET_MOUNT}/github", "optional": False}]}
        register.set_display_name("register model").set_caching_options(False)
        return register.outputs["Output"]

    with _cheap_task_checks():  # decorating builds the graph, calling the setters
        return dsl.pipeline(name=version_name, pipeline_root=p.pipeline_root)(training_pipeline)


_RESULT_KEY = {False: "Output", True: "result"}


def _sql_table(source) -> str:
    """The source's table as SQL (quoted one way, see mlspec.validate.quote_table), or ""."""
    from mlspec.validate import quote_table

    if source.table is None:
        return ""
    return quote_table(source.type, source.table, getattr(source, "schema_", None))


def _ingest_task(step: IngestStep, source, data_root, ingest_file, component):
    common = dict(source=step.name, timestamp_columns=json.dumps(list(step.timestamp_columns)),
                  declared_columns=json.dumps(list(step.declared_columns)))
    if step.type == "file":
        return ingest_file(data_root=data_root, path=source.path, file_format=source.file_format, **common)

    from mlspec.generators import kubeflow_components as steps

    if step.type == "bigquery":
        op = component(steps.ingest_bigquery, _packages(DATA_PACKAGES + WAREHOUSE_PACKAGES["bigquery"]))
        task = op(project=source.project or "", table=_sql_table(source), query=source.query or "", **common)
    else:
        settings = {"postgres": ("host", "port", "database"),
                    "redshift": ("cluster_id", "region", "database", "user", "schema_"),
                    "snowflake": ("database", "schema_", "warehouse")}[step.type]
        connection = {k.rstrip("_"): getattr(source, k) for k in settings if getattr(source, k) is not None}
        op = component(steps.ingest_sql, _packages(DATA_PACKAGES + WAREHOUSE_PACKAGES[step.type]))
        task = op(dialect=step.type, connection=json.dumps(connection, sort_keys=True),
                  table=_sql_table(source), query=source.query or "", **common)
    creds = getattr(source, "credentials", None)
    if creds is not None and creds.secret_ref is not None:
        ref = creds.secret_ref
        task.set_env_variable("MLSPEC_SECRET_KEY", ref.key)
        task.platform_config["kubernetes"] = {
            "secretAsVolume": [{
                "secretName": ref.secret,
                "secretNameParameter": {"runtimeValue": {"constant": ref.secret}},
                "mountPath": f"{SECRET_MOUNT}/{step.name}",
                "optional": False,
            }],
        }
    return task


def _train_component(ctx: "Context", p: Plan, component, dsl):
    """A callable ``(features, candidate) -> task`` for the spec's training method."""
    training = ctx.spec.training
    common = dict(
        feature_columns=json.dumps(list(p.feature_columns)), label=p.label_column,
        metric=training.metric.name, test_size=training.split.test_size,
        split_seed=training.split.seed, stratify=training.split.stratify,
    )
    split = training.split
    # a time split orders the rows by the label timestamp, which the feature table carries
    timed = dict(split_strategy="time", timestamp=p.label_timestamp, cutoff=split.cutoff or "",
                 gap_seconds=units.parse_duration(split.gap) if split.gap else 0) if split.strategy == "time" else {}
    if training.container is None:
        op = component(_steps().train_candidate, _packages(TRAIN_PACKAGES))
        # with preprocessing: one Pipeline of the features' preprocessing and the estimator
        prepared = {} if p.preprocessing is None else \
            dict(preprocessing=json.dumps(list(p.preprocessing), sort_keys=True))

        def run(features, candidate):
            task = op(candidate=candidate, estimator=training.estimator, features=features, **common, **timed,
                      **prepared)
            return _resources(task.set_display_name("train candidate"), training)

        return run

    from kfp.dsl import Dataset, Input, Model, Output, OutputPath

    container = training.container
    fixed = [*container.args,
             "--feature-columns", common["feature_columns"], "--label", common["label"],
             "--metric", common["metric"], "--test-size", str(common["test_size"]),
             "--split-seed", str(common["split_seed"]), "--stratify", str(common["stratify"]).lower()]
    if timed:  # only for a time split, so existing training images see the arguments they know
        fixed += ["--split-strategy", "time", "--timestamp", timed["timestamp"],
                  *(["--cutoff", timed["cutoff"]] if timed["cutoff"] else []), "--gap-seconds", str(timed["gap_seconds"])]

    @dsl.container_component
    def train_container(features: Input[Dataset], candidate: str, model: Output[Model], result: OutputPath(str)):
        return dsl.ContainerSpec(
            image=container.image,
            command=list(container.command),
            args=[*fixed, "--features", features.path, "--candidate", candidate,
                  "--model-dir", model.path, "--result", result],
        )

    def run(features, candidate):
        task = train_container(features=features, candidate=candidate)
        return _resources(task.set_display_name("train candidate"), training)

    return run


def _steps():
    from mlspec.generators import kubeflow_components

    return kubeflow_components


def _resources(task, training: Training):
    res = training.resources
    if res.requests.cpu:
        task.set_cpu_request(res.requests.cpu)
    if res.requests.memory:
        task.set_memory_request(res.requests.memory)
    if res.limits.cpu:
        task.set_cpu_limit(res.limits.cpu)
    if res.limits.memory:
        task.set_memory_limit(res.limits.memory)
    gpus = res.limits.gpu or res.requests.gpu
    if gpus:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus)
    return task


# ------------------------------------------------------------------------------------------
# artefacts
# ------------------------------------------------------------------------------------------


def _sorted(obj: Any) -> Any:
    """A deep copy with mapping keys sorted: identical output whatever the map order."""
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sorted(v) for v in obj]
    return obj


def _replace(obj: Any, old: str, new: str) -> Any:
    if isinstance(obj, dict):
        return {k: _replace(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace(v, old, new) for v in obj]
    return obj.replace(old, new) if isinstance(obj, str) else obj


def ir_sha256(ir: dict, platform: dict) -> str:
    """The content hash of a pipeline: its IR and platform spec as canonical JSON."""
    import hashlib

    text = json.dumps([ir, platform], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def compile_ir(ctx: "Context") -> tuple[dict, dict]:
    """(pipeline spec, platform spec) as plain dicts, as kfp's compiler has them, named
    ``<spec>-<hash>`` where the hash is taken over the IR built under a placeholder name
    (so it covers everything but the name itself)."""
    from google.protobuf import json_format

    pipeline = build_pipeline(ctx)
    ir = _sorted(json_format.MessageToDict(pipeline.pipeline_spec))
    platform = _sorted(json_format.MessageToDict(pipeline.platform_spec))
    name = ctx.names.pipeline_version(ir_sha256(ir, platform))
    return _replace(ir, VERSION_PLACEHOLDER, name), _replace(platform, VERSION_PLACEHOLDER, name)


def kubernetes_manifests(ctx: "Context", ir: dict, platform: dict) -> list[dict]:
    """Pipeline + PipelineVersion as kfp's ``_write_kubernetes_manifest_to_file`` builds them
    (``include_pipeline_manifest=True``), with mlspec's labels and annotations added; the
    spec's description goes on the Pipeline only."""
    name, version = ctx.names.pipeline, ir["pipelineInfo"]["name"]
    description = ctx.spec.description
    namespace = ctx.settings.namespace
    meta = {"labels": ctx.labels("training-pipeline"), "annotations": ctx.annotations()}
    pipeline = {
        "apiVersion": "pipelines.kubeflow.org/v2beta1",
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {"displayName": name},
    }
    if description:
        pipeline["spec"]["description"] = description
    pv = {
        "apiVersion": "pipelines.kubeflow.org/v2beta1",
        "kind": "PipelineVersion",
        "metadata": {"name": version, "namespace": namespace, **meta},
        "spec": {"displayName": version, "pipelineName": name, "pipelineSpec": ir},
    }
    if platform:
        pv["spec"]["platformSpec"] = platform
    return [_sorted(pipeline), _sorted(pv)]


@functools.lru_cache(maxsize=1)
def launcher_source() -> str:
    """The source text of :func:`kubeflow_components.trigger_run` (the launcher the schedule's
    CronJob and the drift target's retrain action run), read from its file without importing
    the module, which imports kfp: the text ``inspect.getsource`` gives."""
    import ast
    from pathlib import Path

    text = Path(__file__).with_name("kubeflow_components.py").read_text(encoding="utf-8")
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "trigger_run")
    lines = text.splitlines(keepends=True)
    return "".join(lines[node.lineno - 1:node.end_lineno])


def _trigger_script() -> str:
    """The CronJob's script: the launcher, then its call."""
    return launcher_source() + "\n\nif __name__ == \"__main__\":\n    raise SystemExit(trigger_run())\n"


#: The launcher's pod: a projected ServiceAccount token for the KFP API (audience
#: ``pipelines.kubeflow.org``, as Kubeflow documents for in-cluster clients), a locked-down
#: container.  Shared by the schedule's CronJob and the drift target's retrain action.
LAUNCHER_TOKEN_VOLUME = {"name": "kfp-token", "projected": {"sources": [{"serviceAccountToken": {
    "path": "token", "expirationSeconds": 3600, "audience": "pipelines.kubeflow.org"}}]}}
LAUNCHER_TOKEN_MOUNT = {"name": "kfp-token", "mountPath": KFP_TOKEN_DIR, "readOnly": True}
LAUNCHER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                     "runAsUser": 65534, "capabilities": {"drop": ["ALL"]}}
LAUNCHER_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}


def launcher_account(training: Training) -> str:
    """The launcher's ServiceAccount: ``training.service_account``, else ``default-editor``
    (the account Kubeflow profiles give to namespace workloads)."""
    return training.service_account or "default-editor"


def launcher_env(ctx: "Context", version: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of :func:`mlspec.generators.kubeflow_components.trigger_run` for ``ctx``'s
    pipeline: ``version`` names the PipelineVersion (``KFP_PIPELINE_VERSION`` or
    ``KFP_PIPELINE_VERSION_FILE``), ``extra`` adds variables (e.g. the cooldown) before the token's."""
    kfp_ns, training = ctx.env.kubeflow.namespace, ctx.spec.training
    return {
        "KFP_HOST": f"http://ml-pipeline.{kfp_ns}.svc.cluster.local:8888",
        "KFP_PIPELINE_NAMESPACE": kfp_ns,
        "KFP_PIPELINE_NAME": ctx.names.pipeline,
        **version,
        "KFP_RUN_NAMESPACE": ctx.namespace,
        "KFP_EXPERIMENT": ctx.names.experiment,
        "KFP_SERVICE_ACCOUNT": training.service_account or "",
        "KFP_RUN_PARAMETERS": json.dumps(run_parameters(ctx), sort_keys=True),
        **(extra or {}),
        "KF_PIPELINES_SA_TOKEN_PATH": f"{KFP_TOKEN_DIR}/token",
    }


def schedule_cronjob(ctx: "Context", version: str) -> dict | None:
    """The ``batch/v1`` CronJob that starts a run of PipelineVersion ``version`` on the spec's cron."""
    training = ctx.spec.training
    if not training.schedule:
        return None
    labels = ctx.labels("training-schedule")
    container = {
        "name": "trigger-run",
        "image": training.image or DEFAULT_IMAGE,
        "command": ["python3", "-c", _trigger_script()],
        "env": [{"name": k, "value": v} for k, v in launcher_env(ctx, {"KFP_PIPELINE_VERSION": version}).items()],
        "resources": LAUNCHER_RESOURCES,
        "securityContext": LAUNCHER_SECURITY,
        "volumeMounts": [LAUNCHER_TOKEN_MOUNT],
    }
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": ctx.names.training_cronjob, "namespace": ctx.namespace, "labels": labels,
                     "annotations": {**ctx.annotations(), "mlspec.io/pipeline-version": version}},
        "spec": {
            "schedule": units.parse_cron(training.schedule),
            "timeZone": training.timezone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 600,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": launcher_account(training),
                            "automountServiceAccountToken": False,
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [container],
                            "volumes": [LAUNCHER_TOKEN_VOLUME],
                        },
                    },
                },
            },
        },
    }
    return _sorted(cronjob)


def version_configmap(ctx: "Context", version: str) -> dict:
    """The ConfigMap naming this environment's current PipelineVersion, for the drift target's
    retrain action: mounted as a file, so a new version reaches the running action Service when
    Argo CD syncs it (the kubelet refreshes mounted ConfigMaps; environment variables would
    keep the old version until the pod restarts)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ctx.names.pipeline_version_configmap, "namespace": ctx.namespace,
                     "labels": ctx.labels("training-pipeline"), "annotations": ctx.annotations()},
        "data": {"pipeline": ctx.names.pipeline, "version": version},
    }


def generate(ctx: "Context") -> list[Artefact]:
    """The Kubeflow artefacts of one spec in one environment (pure: no I/O)."""
    ir, platform = compile_ir(ctx)
    out = [
        Artefact(ctx.deploy_path("kubeflow", "pipeline-ir.yaml"),
                 [ir, platform] if platform else ir, kind="yaml", multi_document=bool(platform), reads=IR_READS),
        Artefact(ctx.deploy_path("kubeflow", "pipeline.yaml"),
                 kubernetes_manifests(ctx, ir, platform), kind="yaml", multi_document=True, reads=PIPELINE_READS),
    ]
    cron = schedule_cronjob(ctx, ir["pipelineInfo"]["name"])
    if cron is not None:
        out.append(Artefact(ctx.deploy_path("kubeflow", "schedule.yaml"), cron, kind="yaml", reads=SCHEDULE_READS))
    drift = ctx.spec.drift
    if drift is not None and drift.action == "retrain":
        out.append(Artefact(ctx.deploy_path("kubeflow", "pipeline-version.yaml"),
                            version_configmap(ctx, ir["pipelineInfo"]["name"]), kind="yaml", reads=VERSION_READS))
    return out
