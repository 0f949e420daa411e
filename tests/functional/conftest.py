"""Fixtures shared by the functional tests."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".venv-feast.lock", "w") as lock:  # one creator when tests run in parallel
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _feast_version(python) != _ft().FEAST_VERSION:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=600)
            proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   _ft().FEAST_PIN], capture_output=True, text=True, timeout=1800)
            assert proc.returncode == 0, f"could not install {_ft().FEAST_PIN} into {VENV}:\n{proc.stdout}\n{proc.stderr}"
    assert _feast_version(python) == _ft().FEAST_VERSION
    return python


def _ft():
    from mlspec.generators import feast

    return feast


@pytest.fixture
def feast_env(feast_python, monkeypatch):
    """``$MLSPEC_FEAST_PYTHON`` for ``mlspec run --local`` of specs whose features Feast serves."""
    monkeypatch.setenv("MLSPEC_FEAST_PYTHON", str(feast_python))
    return feast_python
