"""The generated Feast repositories, run with real Feast 0.67.0 (see conftest.py).

For each example with local sources, compiled for dev: ``feast apply``, the generated
``jobs/prepare.py``, ``feast materialize`` over the sample data's time range; then online
values for every entity of the label source and ``get_historical_features`` for every label
row equal an independent row-by-row computation (:mod:`oracle`), aggregations included;
the pipeline's Feast training step gives the pipeline's own point-in-time join; hostile
free text comes back from Feast's registry unchanged and executes nothing.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from mlspec.generators import feast as ft
from mlspec.generators import feast_repo
from mlspec.generators import kubeflow_pipeline

import feast_oracle as oracle
from feast_helpers import project_copy, resolve, run_spec

EXAMPLES = ("churn", "fraud")


def _served(spec):
    return spec.served_features(spec.training.feature_service)


@pytest.mark.parametrize("name", EXAMPLES)
def test_online_features_equal_a_row_by_row_computation(example_runs, name):
    resolved, result = example_runs[name]
    spec = resolved.spec
    start, end = (oracle._micros(t) for t in result["range"])
    [online] = result["online"]
    truth = oracle.Oracle(resolved)
    checked = 0
    for i, key in enumerate(online["entities"]):
        for view, feature in _served(spec):
            got = online["values"][feature][i]
            want = truth.value(view, feature, key, end, online_from=start)
            assert oracle.close(got, want), f"{name} {key} {view}:{feature}: Feast {got!r}, row by row {want!r}"
            checked += 1
    assert checked >= 5 * len(online["entities"]) and len(online["entities"]) >= 200
    assert any(online["values"][a.output_name][0] is not None
               for v in spec.features.views for a in v.aggregations), "no aggregate was served at all"


@pytest.mark.parametrize("name", EXAMPLES)
def test_historical_features_equal_point_in_time_rows(example_runs, name):
    import pyarrow.parquet as pq

    resolved, result = example_runs[name]
    spec = resolved.spec
    ts = spec.source(spec.training.label.source).timestamp
    labels = oracle.label_rows(resolved)
    frame = pq.read_table(Path(result["workdir"]) / "historical.parquet").to_pylist()
    assert result["rows"] == len(labels) == len(frame)
    truth = oracle.Oracle(resolved)
    keys = oracle.entity_keys(spec)
    non_null = 0
    for label, row in zip(labels, frame):
        assert all(row[k] == label[k] for k in keys)
        assert oracle._micros(row[ts]) == label[ts]
        for view, feature in _served(spec):
            want = truth.value(view, feature, {k: label[k] for k in keys}, label[ts])
            assert oracle.close(row[feature], want), f"{name} {label} {view}:{feature}: {row[feature]!r} != {want!r}"
            non_null += row[feature] is not None
    assert non_null > len(frame) * len(_served(spec)) * 0.8  # the sample data is laid out so that joins hit


def _pipeline_table(resolved, tmp: Path):
    """The training table of the pipeline's own steps (kubeflow_components), run in this process."""
    import pandas as pd

    from mlspec.compiler import context
    from mlspec.generators import kubeflow
    from mlspec.generators import kubeflow_components as steps

    class Artifact:
        def __init__(self, path):
            self.path, self.metadata = str(path), {}

    ctx = context(resolved, kubeflow.target)
    plan = kubeflow_pipeline.plan(ctx)
    sources = {s.name: s for s in resolved.spec.data.sources}
    datasets = {}
    for step in plan.ingests:
        out = Artifact(tmp / f"ingest-{step.name}.parquet")
        steps.ingest_file(source=step.name, data_root=str(resolved.base_dir), path=sources[step.name].path,
                          file_format=sources[step.name].file_format,
                          timestamp_columns=json.dumps(list(step.timestamp_columns)),
                          declared_columns=json.dumps(list(step.declared_columns)), dataset=out)
        datasets[step.name] = out
    table = Artifact(tmp / "entity.parquet")
    lineage = steps.build_entity_frame(keys=json.dumps(list(plan.entity_keys)), timestamp=plan.label_timestamp,
                                       label=plan.label_column, source_name=plan.label_source, source_sha256="x",
                                       labels=datasets[plan.label_source], entity=table)
    entity = table
    for n, join in enumerate(plan.joins):
        joined = Artifact(tmp / f"join-{n}.parquet")
        common = dict(view=join.view, keys=json.dumps(list(join.keys)), entity_timestamp=plan.label_timestamp,
                      source_timestamp=join.source_timestamp, source_name=join.source, source_sha256="x",
                      upstream=lineage, entity=table, source=datasets[join.source], joined=joined)
        if join.kind == "aggregations":
            lineage = steps.join_view_aggregations(aggregations=json.dumps(list(join.aggregations)), **common)
        else:
            lineage = steps.join_view_fields(created_timestamp=join.created_timestamp or "",
                                             fields=json.dumps(list(join.fields)), ttl_seconds=join.ttl_seconds, **common)
        table = joined
    return pd.read_parquet(entity.path), pd.read_parquet(table.path), plan


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_feast_training_step_gives_the_pipelines_point_in_time_join(feast_python, tmp_path, name):
    """feast_components.feast_training_features (the step's real body, run in the Feast
    environment) returns the training frame of the pipeline's own joins, row for row."""
    import pandas as pd

    from mlspec.compiler import context
    from mlspec.generators import feast_components

    [resolved] = [r for r in resolve([project_copy(tmp_path) / "examples" / name], ["dev"])]
    entity, expected, plan = _pipeline_table(resolved, tmp_path)
    step = feast_repo.training_step(context(resolved, ft.target))
    assert list(step.feature_columns) == list(plan.feature_columns)
    entity_path, out_path = tmp_path / "labels.parquet", tmp_path / "joined.parquet"
    entity.to_parquet(entity_path, index=False)
    source = textwrap.dedent(inspect.getsource(feast_components.feast_training_features))
    source = source.replace("entity: Input[Dataset]", "entity").replace("joined: Output[Dataset]", "joined")
    script = tmp_path / "step.py"
    script.write_text(source + textwrap.dedent(f"""
        class Artifact:
            def __init__(self, path):
                self.path = path
        print(feast_training_features(
            repo={step.repo!r}, roots={step.roots!r}, data_root={str(resolved.base_dir)!r},
            prepare_source={step.prepare_source!r}, prepare_plan={step.prepare_plan!r},
            feature_service={step.feature_service!r}, count_features={json.dumps(list(step.count_features))!r},
            entity=Artifact({str(entity_path)!r}), joined=Artifact({str(out_path)!r})))
        """))
    proc = subprocess.run([str(feast_python), str(script)], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = pd.read_parquet(out_path)
    assert len(got) == len(expected)
    for column in [*plan.entity_keys, plan.label_timestamp, plan.label_column]:
        assert (got[column].to_numpy() == expected[column].to_numpy()).all(), column
    for column in plan.feature_columns:
        for i, (a, b) in enumerate(zip(got[column].tolist(), expected[column].tolist())):
            a = None if pd.isna(a) else a
            b = None if pd.isna(b) else b
            assert oracle.close(a, b), f"{name} row {i} {column}: Feast step {a!r}, pipeline {b!r}"


HOSTILE = "q'uote \"dq\" \"\"\"triple''' \\back\\slash\nnew line {{ 7*7 }} {% raw %} ${HOME} é✓中文 \u202eRLO"
INJECT = "__import__('os').system('touch {marker}')"


def test_hostile_strings_round_trip_and_execute_nothing(feast_python, tmp_path):
    import yaml

    project = project_copy(tmp_path)
    marker = tmp_path / "PWNED"
    evil = HOSTILE + " " + INJECT.format(marker=marker)
    spec_path = project / "examples" / "churn" / "mlops.yaml"
    data = yaml.safe_load(spec_path.read_text())
    data.pop("overrides")
    data["owner"] = evil
    data["description"] = evil + " (system)"
    for source in data["data"]["sources"]:
        source["description"] = f"{source['name']}: {evil}"
    data["features"]["entities"][0]["description"] = "entity " + evil
    for view in data["features"]["views"]:
        view["description"] = "view " + evil
        view["tags"] = {evil: evil, "plain": "x\"\"\"y"}
        for field in view.get("fields", []):
            field["description"] = "field " + evil
    data["features"]["services"][0]["description"] = "service " + evil
    spec_path.write_text(json.dumps(data, ensure_ascii=False, indent=1))  # JSON is YAML 1.2
    [resolved] = resolve([spec_path], ["dev"])
    files = feast_repo.repo_files(__import__("mlspec.compiler", fromlist=["context"]).context(resolved, ft.target))
    compile(files["repo/features.py"], "features.py", "exec")
    result = run_spec(feast_python, resolved, tmp_path / "run", registry=True)
    assert not marker.exists(), "a string from the spec was executed"
    reg = result["registry"]
    assert reg["project"]["description"] == data["description"] and reg["project"]["owner"] == evil
    assert reg["entities"]["customer"]["description"] == "entity " + evil
    assert reg["entities"]["customer"]["owner"] == evil
    for source in ("customers",):
        assert reg["sources"][source]["description"] == f"{source}: {evil}"
        assert reg["sources"][source]["owner"] == evil
    for view in data["features"]["views"]:
        got = reg["views"][view["name"]]
        assert got["description"] == "view " + evil and got["owner"] == evil
        assert got["tags"] == {evil: evil, "plain": "x\"\"\"y"}
        for field in view.get("fields", []):
            [registered] = [f for f in got["fields"] if f["name"] == field["name"]]
            assert registered["description"] == "field " + evil
    assert reg["services"]["churn_model"]["description"] == "service " + evil
    assert reg["services"]["churn_model"]["owner"] == evil


def test_the_cluster_feast_step_packages_resolve_together(feast_python):
    """The Feast step's image installs Feast with s3fs or gcsfs (for remote data roots): pip
    must find one set of versions for them (resolved against the registry, nothing installed)."""
    from mlspec.generators import kubeflow as kf

    proc = subprocess.run([str(feast_python), "-m", "pip", "install", "--dry-run", "-q", "--disable-pip-version-check",
                           ft.FEAST_PIN, kf.PINS["s3fs"], kf.PINS["gcsfs"]], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
