"""``mlspec run --local`` end to end: the real kfp.local run of the examples, checked against
an independent computation (naive point-in-time features + the same grid evaluated directly
with scikit-learn), the quality gate's failure, and specs that cannot run locally."""

from __future__ import annotations

import importlib
import inspect
import io
import json
import math
import shutil
from pathlib import Path

import joblib
import pandas as pd
import pytest
import yaml

from mlspec import units
from mlspec.compiler import context
from mlspec.generators import kubeflow as kf
from mlspec.generators import kubeflow_pipeline
from mlspec.project import resolve_paths
from mlspec.run_local import run_local

ROOT = Path(__file__).resolve().parents[3]


def context_for(spec_path: Path, env: str = "dev"):
    result = resolve_paths([spec_path], [env], ROOT / "environments")
    assert not result.errors, result.errors
    r = result.resolved[0]
    return context(r, kf.target), r.base_dir


def run(spec_path: Path, out_dir: Path, env: str = "dev") -> tuple[int, str]:
    ctx, base_dir = context_for(spec_path, env)
    out = io.StringIO()
    code = run_local(ctx, base_dir, out_dir, out)
    return code, out.getvalue()


# --------------------------------------------------------------------------- the independent oracle


def read_source(spec, name: str, base_dir: Path) -> tuple[pd.DataFrame, object]:
    src = spec.source(name)
    if src.type in ("kafka", "push"):
        src = spec.source(src.batch_source)
    path = base_dir / src.path
    frame = pd.read_csv(path) if src.file_format == "csv" else pd.read_parquet(path)
    for column, dtype in src.columns.items():
        if dtype == "unix_timestamp":
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame, src


def naive_features(spec, base_dir: Path) -> pd.DataFrame:
    """The feature table, computed row by row straight from the definitions."""
    training = spec.training
    labels, label_src = read_source(spec, training.label.source, base_dir)
    labels = labels.dropna(subset=[label_src.timestamp, training.label.column]).reset_index(drop=True)
    sources = {}
    rows = []
    served = spec.served_features(training.feature_service)
    for _, label_row in labels.iterrows():
        t = label_row[label_src.timestamp]
        row = {"__label": label_row[training.label.column]}
        for view_name, feature in served:
            view = spec.view(view_name)
            if view.source not in sources:
                sources[view.source] = read_source(spec, view.source, base_dir)
            frame, src = sources[view.source]
            keys = [spec.entity(e).join_key for e in view.entities]
            match = frame
            for key in keys:
                match = match[match[key] == label_row[key]]
            ts = match[src.timestamp]
            field = next((f for f in view.fields if f.name == feature), None)
            if field is not None:
                ttl = units.parse_duration(view.ttl)
                ok = match[(ts <= t) & ((ts >= t - pd.Timedelta(seconds=ttl)) if ttl else True)]
                ok = ok.sort_values(src.timestamp, kind="mergesort")
                row[feature] = float(ok[feature].iloc[-1]) if len(ok) else math.nan
                continue
            agg = next(a for a in view.aggregations if a.output_name == feature)
            window = pd.Timedelta(seconds=units.parse_duration(agg.window))
            after = (ts >= t - window) if agg.closed in ("left", "both") else (ts > t - window)
            before = (ts <= t) if agg.closed in ("right", "both") else (ts < t)
            inside = match[after & before].sort_values(src.timestamp, kind="mergesort")[agg.column]
            if agg.function == "count":
                row[feature] = int(inside.notna().sum())
            elif inside.dropna().empty:
                row[feature] = math.nan
            elif agg.function == "last":
                row[feature] = float(inside.iloc[-1])
            else:
                row[feature] = float(getattr(inside, agg.function)())
        rows.append(row)
    return pd.DataFrame(rows)


def score_grid(spec, table: pd.DataFrame, candidates: list[dict]) -> list[float]:
    """Each candidate fitted and scored with scikit-learn directly, on the spec's split."""
    from sklearn import metrics
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.utils import get_tags

    training = spec.training
    features = [f for _, f in spec.served_features(training.feature_service)]
    X, y = table[features], table["__label"].astype("int64")
    split = training.split
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=split.test_size, random_state=split.seed, stratify=y if split.stratify else None)
    module, _, name = training.estimator.rpartition(".")
    factory = getattr(importlib.import_module(module), name)
    scores = []
    for params in candidates:
        kwargs = dict(params)
        if "random_state" in inspect.signature(factory).parameters:
            kwargs.setdefault("random_state", split.seed)
        model = factory(**kwargs)
        if X.isna().to_numpy().any() and not get_tags(model).input_tags.allow_nan:
            model = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("model", model)])
        model.fit(X_train, y_train)
        if training.metric.name == "roc_auc":
            scores.append(metrics.roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
        elif training.metric.name == "f1":
            scores.append(metrics.f1_score(y_test, model.predict(X_test)))
        else:
            raise AssertionError(f"oracle lacks metric {training.metric.name}")
    return scores


def registered(out_dir: Path, name: str) -> Path:
    latest = json.loads((out_dir / "registry" / name / "latest.json").read_text())
    return Path(latest["uri"])


def check_against_oracle(example: str, out_dir: Path):
    spec_path = ROOT / "examples" / example / "mlops.yaml"
    ctx, base_dir = context_for(spec_path)
    version_dir = registered(out_dir, ctx.spec.name)
    metrics_file = json.loads((version_dir / "metrics.json").read_text())
    chosen = json.loads((version_dir / "params.json").read_text())

    candidates = kubeflow_pipeline.candidates(ctx.spec.training)
    scores = score_grid(ctx.spec, naive_features(ctx.spec, base_dir), candidates)
    goal = ctx.spec.training.metric.goal
    best = max(range(len(scores)), key=lambda i: (scores[i] if goal == "maximize" else -scores[i], -i))
    assert chosen == candidates[best]
    got = {json.dumps(c["params"], sort_keys=True): c["score"] for c in metrics_file["candidates"]}
    for cand, score in zip(candidates, scores):
        assert got[json.dumps(cand, sort_keys=True)] == pytest.approx(score, abs=1e-9)
    assert metrics_file["score"] == pytest.approx(scores[best], abs=1e-9)
    return ctx, version_dir


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_the_cli_runs_churn_locally_and_picks_the_best_grid_point(example_runs):
    """`mlspec run SPEC --local` as a user types it (environment: the first found, dev),
    checked against the independent computation."""
    import hashlib

    code, output, out = example_runs["churn"]
    assert code == 0, output
    ctx, version_dir = check_against_oracle("churn", out)
    assert "quality gate passed" in output and "chosen:" in output
    assert str(version_dir) in output
    model = joblib.load(version_dir / "model" / "model.joblib")
    assert hasattr(model, "predict_proba")
    lineage = json.loads((version_dir / "lineage.json").read_text())
    version = kubeflow_pipeline.pipeline_version_name(ctx)
    assert lineage["pipeline_version"] == version and version in output
    assert set(lineage["data_snapshot"]) == {"customers", "transactions", "labels"}
    data = ROOT / "examples" / "churn" / "data"
    assert lineage["data_snapshot"]["labels"] == hashlib.sha256((data / "labels.csv").read_bytes()).hexdigest()
    # the registry version follows the pipeline's content hash (and the data snapshot's)
    assert version_dir.name.startswith(version.rsplit("-", 1)[1] + "-")
    assert (out / "run.log").is_file()


@pytest.mark.slow
def test_fraud_random_search_runs_locally(example_runs):
    code, output, out = example_runs["fraud"]
    assert code == 0, output
    check_against_oracle("fraud", out)


@pytest.mark.slow
def test_quality_gate_failure_exits_1_with_the_gate_message(tmp_path):
    spec_dir = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn" / "data", spec_dir / "data")
    data = yaml.safe_load((ROOT / "examples" / "churn" / "mlops.yaml").read_text())
    data["training"]["metric"]["threshold"] = 0.999
    # one candidate is enough to reach the gate
    grid = data["training"]["search"]["parameters"]
    data["training"]["search"]["parameters"] = {name: values[:1] for name, values in grid.items()}
    (spec_dir / "mlops.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    code, output = run(spec_dir / "mlops.yaml", tmp_path / "out")
    assert code == 1, output
    assert "quality gate failed: best roc_auc " in output
    assert "< threshold 0.9990 — no model registered" in output
    assert "Traceback" not in output
    assert "candidates" in output  # the scores are still shown
    assert not (tmp_path / "out" / "registry" / "churn").exists()


@pytest.mark.slow
def test_a_failed_data_check_exits_1_naming_the_check(tmp_path):
    spec_dir = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn" / "data", spec_dir / "data")
    data = yaml.safe_load((ROOT / "examples" / "churn" / "mlops.yaml").read_text())
    source = next(s for s in data["data"]["sources"] if s["name"] == "customers")
    source["checks"][0]["min"] = 100000
    (spec_dir / "mlops.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    code, output = run(spec_dir / "mlops.yaml", tmp_path / "out")
    assert code == 1, output
    assert "data-quality checks failed for source 'customers'" in output and "< min 100000" in output


def test_container_training_is_refused_clearly(tmp_path):
    spec_dir = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn" / "data", spec_dir / "data")
    data = yaml.safe_load((ROOT / "examples" / "churn" / "mlops.yaml").read_text())
    data["training"].pop("estimator")
    data["training"]["container"] = {"image": "ghcr.io/acme/trainer:1", "command": ["train"]}
    (spec_dir / "mlops.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    code, output = run(spec_dir / "mlops.yaml", tmp_path / "out")
    assert code == 2
    assert "supports estimator training only" in output
    assert not (tmp_path / "out").exists()



def test_the_cli_requires_local_for_now():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mlspec.cli", "run", "examples/churn/mlops.yaml"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--local" in proc.stderr
