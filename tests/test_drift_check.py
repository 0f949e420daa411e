"""mlspec.drift without Alibi Detect: which method takes which dtype, the policy the pipeline
gets, and the `mlspec drift` command (exit codes, table, JSON, located errors).  The statistics
themselves are checked against real alibi-detect in tests/functional/drift/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "functional" / "drift"))
from drift_project import MONITORED, SERVED, make_project, sample

from mlspec import drift
from mlspec.cli import main
from mlspec.project import resolve

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("method, dtype, ok", [
    ("ks", "int32", True), ("ks", "int64", True), ("ks", "float32", True), ("ks", "float64", True),
    ("ks", "bool", False),
    ("chi2", "int32", True), ("chi2", "int64", True), ("chi2", "bool", True),
    ("chi2", "float32", False), ("chi2", "float64", False),
    ("tabular", "int64", True), ("tabular", "float64", True), ("tabular", "bool", True),
    ("mmd", "int64", True), ("mmd", "float32", True), ("mmd", "bool", True),
    *[(m, t, False) for m in ("ks", "chi2", "tabular", "mmd") for t in ("string", "bytes", "unix_timestamp")],
])
def test_method_problem(method, dtype, ok):
    problem = drift.method_problem(method, dtype)
    assert (problem is None) == ok, problem
    if not ok:
        assert dtype in problem or "bool" in problem


def test_importing_the_module_and_asking_it_imports_nothing_heavy():
    probe = ("import sys, mlspec.drift as d; d.method_problem('ks', 'bool'); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'scipy', 'pandas', 'pyarrow', 'kfp'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_feature_dtypes_of_the_churn_example_and_its_policy():
    found = resolve(ROOT / "examples" / "churn" / "mlops.yaml", [], check_files=False)
    spec = found.resolved[0].spec
    assert drift.feature_dtypes(spec) == {
        "tenure_months": "int64", "monthly_charges": "float64", "support_calls": "int64",
        "spend_30d": "float64", "purchases_30d": "int64", "avg_basket_7d": "float64"}
    rules = drift.policy(spec)
    assert rules["features"] == ["tenure_months", "monthly_charges", "support_calls", "spend_30d"]
    assert rules["served"] == list(drift.feature_dtypes(spec))
    assert (rules["method"], rules["detector"], rules["p_value"], rules["sample_size"]) == ("ks", "KSDrift", 0.01, 500)


def test_policy_keeps_the_served_order(tmp_path):
    spec_path = make_project(tmp_path, "ks", features=["support_calls", "tenure_months"])
    rules = drift.policy(resolve(spec_path, ["dev"]).resolved[0].spec)
    assert rules["features"] == ["tenure_months", "support_calls"]
    assert rules["dtypes"] == {"tenure_months": "int64", "support_calls": "int64"}


# --- the command ---------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    spec = make_project(tmp_path, "tabular")
    with spec.open("a") as handle:
        handle.write("overrides:\n  prod:\n    drift: {p_value: 0.001}\n")
    sample(300, seed=1).to_parquet(tmp_path / "ref.parquet", index=False)
    sample(200, seed=2).to_csv(tmp_path / "same.csv", index=False)
    sample(200, seed=3, shift=True).to_parquet(tmp_path / "shifted.parquet", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, ["drift", *args], catch_exceptions=False)


def test_no_drift_exits_0_with_a_table(project):
    result = invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "same.csv")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "environment: dev (the first of dev, prod; choose one with --env)"
    assert lines[1] == "drift check of drifty (environment dev): tabular (TabularDrift), bonferroni correction, p-value 0.05"
    assert lines[2:4] == ["reference: ref.parquet (300 rows)", "current: same.csv (200 rows)"]
    assert lines[4].split() == ["feature", "test", "statistic", "p-value", "threshold", "drift"]
    table = [line.split() for line in lines[5:9]]
    assert [(r[0], r[1], r[4], r[5]) for r in table] == [
        ("tenure_months", "KS", "0.0125", "no"), ("monthly_charges", "KS", "0.0125", "no"),
        ("support_calls", "KS", "0.0125", "no"), ("premium", "Chi2", "0.0125", "no")]
    assert lines[9:] == ["result: no drift"]


def test_drift_exits_1_and_json_has_stable_keys(project):
    result = invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "shifted.parquet", "-f", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)  # nothing but the JSON on stdout
    assert set(report) == {"spec", "env", "method", "detector", "correction", "p_value", "features", "is_drift",
                           "threshold", "tests", "reference", "current", "permutations"}
    assert report["is_drift"] is True and report["env"] == "dev" and report["threshold"] == 0.0125
    assert [t["feature"] for t in report["tests"]] == MONITORED["tabular"]
    assert all(set(t) == {"feature", "test", "statistic", "p_value", "threshold", "drift"} for t in report["tests"])
    assert all(t["drift"] and t["p_value"] < 0.0125 for t in report["tests"])
    assert report["reference"] == {"path": "ref.parquet", "rows": 300, "dropped_missing": 0}


def test_env_picks_the_policy_with_its_overrides(project):
    result = invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "same.csv", "--env", "prod", "-f", "json")
    report = json.loads(result.output)
    assert (report["env"], report["p_value"], report["threshold"]) == ("prod", 0.001, 0.00025)


def test_a_file_without_a_monitored_column_is_a_located_error(project):
    sample(50, seed=4).drop(columns=["premium"]).to_parquet("partial.parquet", index=False)
    result = invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "partial.parquet")
    assert result.exit_code == 1
    assert ("partial.parquet:1:1: error: current file partial.parquet has no column premium (a monitored drift "
            "feature)") in result.output
    assert "its columns: customer_id, tenure_months, monthly_charges, support_calls" in result.output


def test_a_spec_without_drift_is_a_located_error(tmp_path, monkeypatch):
    make_project(tmp_path, "ks", drift=False)
    sample(50, seed=1).to_parquet(tmp_path / "a.parquet")
    monkeypatch.chdir(tmp_path)
    result = invoke("mlops.yaml", "--reference", "a.parquet", "--current", "a.parquet", "-e", "dev")
    assert result.exit_code == 1
    assert "mlops.yaml:1:1: error: spec 'drifty' has no drift policy in environment 'dev'" in result.output


def test_a_method_that_cannot_test_a_dtype_is_located_at_the_feature(tmp_path, monkeypatch):
    make_project(tmp_path, "ks", features=["tenure_months", "premium"])
    sample(50, seed=1).to_parquet(tmp_path / "a.parquet")
    monkeypatch.chdir(tmp_path)
    result = invoke("mlops.yaml", "--reference", "a.parquet", "--current", "a.parquet", "-e", "dev")
    assert result.exit_code == 1
    line = next(i for i, text in enumerate((tmp_path / "mlops.yaml").read_text().splitlines(), 1)
                if text.strip().startswith("features: [tenure_months"))
    assert f"mlops.yaml:{line}:" in result.output and "premium" in result.output and "bool" in result.output


def test_usage_errors_exit_2(project):
    assert invoke("mlops.yaml", "--reference", "ref.parquet").exit_code == 2
    assert invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "nope.parquet").exit_code == 2
    assert invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "same.csv", "-f", "yaml").exit_code == 2


def test_files_that_are_not_data(project):
    Path("notes.txt").write_text("x\n")
    result = invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "notes.txt")
    assert result.exit_code == 1 and "neither CSV (.csv) nor Parquet" in result.output
    Path("detector").mkdir()
    np.save("detector/x_ref.npy", np.zeros((5, 2)))
    result = invoke("mlops.yaml", "--reference", "detector", "--current", "same.csv", "-f", "json")
    assert result.exit_code == 1
    errors = json.loads(result.output)
    assert "not (rows, 4)" in json.dumps(errors)


def test_missing_values_are_dropped_and_counted(project):
    frame = sample(200, seed=2)
    frame["monthly_charges"] = frame["monthly_charges"].where(frame.index % 10 != 0)
    frame.to_csv("gaps.csv", index=False)
    report = json.loads(invoke("mlops.yaml", "--reference", "ref.parquet", "--current", "gaps.csv", "-f", "json").output)
    assert report["current"] == {"path": "gaps.csv", "rows": 180, "dropped_missing": 20}


def test_served_order_is_the_table_order(tmp_path, monkeypatch):
    make_project(tmp_path, "chi2", features=["premium", "support_calls"])
    sample(100, seed=1).to_parquet(tmp_path / "a.parquet")
    monkeypatch.chdir(tmp_path)
    report = json.loads(invoke("mlops.yaml", "--reference", "a.parquet", "--current", "a.parquet", "-f", "json").output)
    assert report["features"] == [f for f in SERVED if f in ("premium", "support_calls")]
    assert [t["test"] for t in report["tests"]] == ["Chi2", "Chi2"]
    assert report["is_drift"] is False and all(t["p_value"] == 1.0 for t in report["tests"])
