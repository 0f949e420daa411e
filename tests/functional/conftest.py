"""Fixtures shared by the functional tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the project's examples and environments, at a repository root."""
    work = tmp_path / "repo"
    for folder in ("examples", "environments"):
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (work / ".git").mkdir()  # a repository root, as the user's GitOps checkout is
    return work
