"""A virtual environment of pinned tools beside ``.venv``, for the tools that cannot share the
test extras' environment (Feast pins pandas<3; the linters are not test dependencies)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path
from typing import Callable


def pinned_venv(venv: Path, requirements: list[str], ready: Callable[[Path], bool], what: str) -> Path:
    """``venv``'s Python, after creating the environment once and installing ``requirements``
    unless ``ready(python)`` says they are there; under a file lock beside it, so that test
    processes running in parallel create it once."""
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready(python):
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
            proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   *requirements], capture_output=True, text=True, timeout=1800)
            assert proc.returncode == 0, f"could not install {what} into {venv}:\n{proc.stdout}\n{proc.stderr}"
    assert ready(python), f"{venv} does not hold {what} after installing it"
    return python
