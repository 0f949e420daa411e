"""Fixtures shared by the functional tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pinned_venv import pinned_venv

ROOT = Path(__file__).resolve().parents[2]
#: Real Feast lives in a virtual environment of its own (it pins pandas<3; see feast/conftest.py).
VENV = Path(os.environ.get("MLSPEC_FEAST_VENV", ROOT / ".venv-feast"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the project's examples and environments, at a repository root."""
    work = tmp_path / "repo"
    for folder in ("examples", "environments"):
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (work / ".git").mkdir()  # a repository root, as the user's GitOps checkout is
    return work


def _feast_version(python: Path) -> str | None:
    if not python.exists():
        return None
    proc = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('feast'))"],
                          capture_output=True, text=True, timeout=120)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.fixture(scope="session")
def feast_python() -> Path:
    return pinned_venv(VENV, [_ft().FEAST_PIN], lambda python: _feast_version(python) == _ft().FEAST_VERSION,
                       _ft().FEAST_PIN)


def _ft():
    from mlspec.generators import feast

    return feast


@pytest.fixture
def feast_env(feast_python, monkeypatch):
    """``$MLSPEC_FEAST_PYTHON`` for ``mlspec run --local`` of specs whose features Feast serves."""
    monkeypatch.setenv("MLSPEC_FEAST_PYTHON", str(feast_python))
    return feast_python


@pytest.fixture(scope="session")
def example_runs(tmp_path_factory, feast_python):
    """``mlspec run EXAMPLE --local`` of each example, as a user types it (environment: the
    first found, dev), once per session: ``{example: (exit code, stdout + stderr, out dir)}``.
    Shared by the tests that check what a run produces (model, metrics, drift detector)."""
    import sys

    runs = {}
    root = tmp_path_factory.mktemp("example-runs")
    env = {**os.environ, "MLSPEC_FEAST_PYTHON": str(feast_python)}
    for example in ("churn", "fraud"):
        out = root / example
        proc = subprocess.run([sys.executable, "-m", "mlspec.cli", "run", f"examples/{example}/mlops.yaml", "--local",
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
        runs[example] = (proc.returncode, proc.stdout + proc.stderr, out)
    return runs

