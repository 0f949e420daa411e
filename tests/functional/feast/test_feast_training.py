"""Training/serving consistency: ``mlspec run --local`` reading its features through Feast
(the Feast feature step, run in ``.venv-feast``) trains on exactly the frame the pipeline's
own point-in-time joins give (``features.feature_store: false``), row for row with floats
within 1e-9, and picks the same candidate with the same scores."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from feast_helpers import project_copy, resolve
from mlspec.compiler import context
from mlspec.generators import kubeflow as kf
from mlspec.run_local import run_local


def _opt_out(spec: Path) -> None:
    text = spec.read_text(encoding="utf-8")
    assert text.count("\nfeatures:\n") == 1
    spec.write_text(text.replace("\nfeatures:\n", "\nfeatures:\n  feature_store: false\n"), encoding="utf-8")


def _run(project: Path, spec: Path, out_dir: Path, feast_python: str | None) -> tuple[int, str]:
    (resolved,) = resolve([spec], ["dev"])
    out = io.StringIO()
    code = run_local(context(resolved, kf.target), resolved.base_dir, out_dir, out, feast_python=feast_python)
    return code, out.getvalue()


def _training_frame(out_dir: Path) -> pd.DataFrame:
    """The frame the candidates trained on: the last feature step's ``joined`` (each join adds columns)."""
    tables = [pd.read_parquet(p) for p in sorted((out_dir / "pipeline-root").glob("*/*/joined"))]
    assert tables, f"no feature table under {out_dir}"
    return max(tables, key=lambda t: len(t.columns))


def _selection(out_dir: Path) -> dict:
    (path,) = (out_dir / "pipeline-root").glob("*/select-best/executor_output.json")
    return json.loads(json.loads(path.read_text())["parameterValues"]["Output"])


@pytest.fixture(scope="module")
def churn_runs(feast_python, tmp_path_factory):
    base = tmp_path_factory.mktemp("feast-training")
    feast_project, joins_project = project_copy(base / "feast"), project_copy(base / "joins")
    spec = Path("examples") / "churn" / "mlops.yaml"
    _opt_out(joins_project / spec)
    # one after the other: kfp.local.init is process-wide state
    feast = _run(feast_project, feast_project / spec, base / "out-feast", str(feast_python))
    joins = _run(joins_project, joins_project / spec, base / "out-joins", None)
    return {"feast": (feast, base / "out-feast"), "joins": (joins, base / "out-joins")}


def test_run_local_through_feast_trains_on_the_pipelines_point_in_time_frame(churn_runs):
    (code, text), out_feast = churn_runs["feast"]
    assert code == 0, text
    assert "features through Feast" in text
    (code, text), out_joins = churn_runs["joins"]
    assert code == 0, text
    assert "feature join(s)" in text
    through_feast, joined = _training_frame(out_feast), _training_frame(out_joins)
    assert list(through_feast.columns) == list(joined.columns)
    assert len(through_feast) == len(joined) > 0
    for column in joined.columns:
        a, b = through_feast[column], joined[column]
        if pd.api.types.is_float_dtype(b) or pd.api.types.is_float_dtype(a):
            a, b = a.astype("float64"), b.astype("float64")
            assert (a.isna() == b.isna()).all(), column
            assert ((a - b).abs()[b.notna()] <= 1e-9).all(), column
        elif pd.api.types.is_datetime64_any_dtype(b):
            assert (pd.to_datetime(a, utc=True) == pd.to_datetime(b, utc=True)).all(), column
        else:
            assert a.tolist() == b.tolist(), column


def test_run_local_through_feast_picks_the_same_candidate_with_the_same_scores(churn_runs):
    feast, joins = _selection(churn_runs["feast"][1]), _selection(churn_runs["joins"][1])
    assert feast["best"]["index"] == joins["best"]["index"]
    assert feast["best"]["params"] == joins["best"]["params"]
    assert [c["params"] for c in feast["candidates"]] == [c["params"] for c in joins["candidates"]]
    for a, b in zip(feast["candidates"], joins["candidates"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-12)


def test_without_a_feast_python_run_local_stops_before_starting_naming_the_option(tmp_path, monkeypatch):
    monkeypatch.delenv("MLSPEC_FEAST_PYTHON", raising=False)
    project = project_copy(tmp_path)
    code, text = _run(project, project / "examples" / "churn" / "mlops.yaml", tmp_path / "out", None)
    assert code == 2
    assert "--feast-python" in text and "MLSPEC_FEAST_PYTHON" in text
    assert not (tmp_path / "out" / "pipeline-root").exists()
