"""`mlspec init DIR && cd DIR && mlspec validate && mlspec compile && mlspec run mlops.yaml --local`
succeeds as it is (issue 7, items 1-3), and a NaN score reaches the quality gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MLSPEC = [sys.executable, "-m", "mlspec.cli"]


def mlspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    return subprocess.run([*MLSPEC, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_init_writes_an_environment_so_validate_and_compile_agree(tmp_path: Path) -> None:
    """Item 2: the starter has an environments/ folder; validate checks it and compile uses it."""
    assert mlspec("init", "proj", cwd=tmp_path).returncode == 0
    proj = tmp_path / "proj"
    assert (proj / "environments" / "dev.yaml").is_file()
    check = mlspec("validate", "--format", "json", cwd=proj)
    assert check.returncode == 0, check.stdout
    report = json.loads(check.stdout)
    assert report["ok"] is True and report["checked"] == 2  # the spec as written, and dev
    compiled = mlspec("compile", cwd=proj)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert (proj / "deploy" / "dev" / "my-model" / "kubeflow" / "pipeline.yaml").is_file()


def test_init_inside_a_repository_with_prod_policies_still_validates(tmp_path: Path) -> None:
    """Item 2: the starter's own environments/ is the nearest one, not the repository's prod."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "environments").mkdir()
    root = Path(__file__).resolve().parents[3]
    (tmp_path / "environments" / "prod.yaml").write_text((root / "environments" / "prod.yaml").read_text())
    assert mlspec("init", "services/proj", cwd=tmp_path).returncode == 0
    check = mlspec("validate", "services/proj", cwd=tmp_path)
    assert check.returncode == 0, check.stdout


@pytest.mark.slow
def test_init_validate_compile_run_all_succeed(tmp_path: Path) -> None:
    """Items 1-3, the acceptance sequence exactly: the starter data trains and passes its gate;
    `run` without --env runs the first environment."""
    assert mlspec("init", "proj", cwd=tmp_path).returncode == 0
    proj = tmp_path / "proj"
    for args in (["validate"], ["compile"], ["run", "mlops.yaml", "--local"]):
        proc = mlspec(*args, cwd=proj)
        assert proc.returncode == 0, f"mlspec {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    assert "quality gate passed" in proc.stdout
    assert list((proj / ".mlspec-run" / "registry" / "my-model").glob("*/model/model.joblib"))


@pytest.mark.slow
def test_a_nan_score_reaches_the_quality_gate(tmp_path: Path) -> None:
    """Item 1: a one-class test split makes roc_auc NaN; the search completes and the gate
    fails with the score shown, rather than a step dying on NaN metadata."""
    assert mlspec("init", "proj", cwd=tmp_path).returncode == 0
    spec = tmp_path / "proj" / "mlops.yaml"
    text = spec.read_text()
    assert ", stratify: true}" in text
    spec.write_text(text.replace(", stratify: true}", "}"))  # 10 test rows, all of class 0
    proc = mlspec("run", "mlops.yaml", "--local", cwd=spec.parent)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "quality gate failed: best roc_auc nan < threshold 0.6000" in proc.stdout
    assert "Inner task failed" not in proc.stdout


def test_run_without_env_validates_and_runs_only_the_first_environment(tmp_path: Path) -> None:
    """Item 3: a broken second environment does not stop a run in the first (by name); the
    run says which environment it chose."""
    assert mlspec("init", "proj", cwd=tmp_path).returncode == 0
    proj = tmp_path / "proj"
    (proj / "environments" / "zz-broken.yaml").write_text("name: zz-broken\nnamespace: 3\n")
    both = mlspec("validate", cwd=proj)
    assert both.returncode == 1  # validate checks every environment
    from mlspec import commands

    calls = []
    import mlspec.run_local as rl

    original = rl.run_local
    rl.run_local = lambda ctx, base_dir, out_dir, out: calls.append(ctx) or 0
    try:
        import io

        out = io.StringIO()
        code = commands.run_local(proj / "mlops.yaml", None, None, tmp_path / "out", out)
    finally:
        rl.run_local = original
    assert code == 0, out.getvalue()
    assert len(calls) == 1 and calls[0].names.env == "dev"
    assert "environment: dev (the first of dev, zz-broken; choose one with --env)" in out.getvalue()
