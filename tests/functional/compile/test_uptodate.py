"""The fast no-op (mlspec.uptodate): a repeated compile answers without validating or
importing anything heavy -- and never when anything it read, or wrote, has changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FAST = "(nothing it reads has changed)"
PROBE = ("import sys\nfrom mlspec.cli import main\n"
         "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
         "print('exit', code)\n"
         "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
         "('pydantic', 'kfp', 'kubernetes', 'feast', 'sklearn', 'pandas', 'pyarrow')}))\n")


@pytest.fixture
def repo(project: Path) -> Path:
    assert compile_(project).returncode == 0
    return project


def compile_(repo: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, "compile", *(args or ("examples/",)), "--out",
                           str(repo / "gitops")], cwd=cwd or repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})


def fast(proc: subprocess.CompletedProcess) -> bool:
    assert "exit 0" in proc.stdout, proc.stdout + proc.stderr
    return FAST in proc.stdout


def test_a_repeated_compile_imports_nothing_heavy_and_touches_nothing(repo: Path):
    out = repo / "gitops"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "lock"}
    proc = compile_(repo)
    assert fast(proc)
    owned = len(json.loads((out / ".mlspec/manifest.json").read_text())["files"])
    assert f"0 created, 0 updated, 0 pruned, {owned} unchanged" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"  # not even pydantic
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "lock"} == stamps
    # the same request from another folder, or with other spellings of the same paths
    assert fast(compile_(repo, str(repo / "examples"), cwd=repo / "environments"))


@pytest.mark.parametrize("change", [
    "spec bytes", "environment file", "data file", "new spec", "new environment", "nearer environments/",
    "generated file edited", "manifest edited", "generated file deleted",
])
def test_anything_it_read_or_wrote_changing_means_a_real_compile(repo: Path, change: str):
    out = repo / "gitops"
    assert fast(compile_(repo))
    if change == "spec bytes":
        spec = repo / "examples/churn/mlops.yaml"
        spec.write_text(spec.read_text() + "# a comment\n")
    elif change == "environment file":
        env = repo / "environments/dev.yaml"
        env.write_text(env.read_text() + "# a comment\n")
    elif change == "data file":
        data = repo / "examples/fraud/data/merchants.csv"
        data.write_text(data.read_text().replace("\n", "\r\n", 1))
    elif change == "new spec":
        shutil.copytree(repo / "examples/churn", repo / "examples/churn2")
        spec = repo / "examples/churn2/mlops.yaml"
        spec.write_text(spec.read_text().replace("\nname: churn\n", "\nname: churn2\n"))
    elif change == "new environment":
        shutil.copy(repo / "environments/staging.yaml", repo / "environments/qa.yaml")
        qa = repo / "environments/qa.yaml"
        qa.write_text(qa.read_text().replace("name: staging", "name: qa"))
    elif change == "nearer environments/":
        shutil.copytree(repo / "environments", repo / "examples/environments")
    elif change == "generated file edited":
        target = out / "deploy/dev/churn/kubeflow/pipeline.yaml"
        target.write_text(target.read_text() + "# edited\n")
    elif change == "manifest edited":
        manifest = out / ".mlspec/manifest.json"
        manifest.write_text(manifest.read_text().replace('"version": 2', '"version": 2 '))
    elif change == "generated file deleted":
        (out / "deploy/prod/fraud/kubeflow/schedule.yaml").unlink()
    proc = compile_(repo)
    assert FAST not in proc.stdout, change
    if change == "generated file edited":
        assert "edited by hand" in proc.stdout
    elif change == "generated file deleted":
        assert "1 created" in proc.stdout
    else:
        assert "exit 0" in proc.stdout, proc.stdout + proc.stderr


def test_check_and_force_never_take_the_fast_path(repo: Path):
    assert fast(compile_(repo))
    assert FAST not in compile_(repo, "examples/", "--check").stdout
    assert FAST not in compile_(repo, "examples/", "--force").stdout
    assert FAST not in compile_(repo, "examples/", "--dry-run").stdout
