"""Helpers of the `mlspec diff` tests: git with fixed identities and dates, the CLI, a repository
of the examples (a module of its own name, so that no other conftest shadows it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MLSPEC = [sys.executable, "-m", "mlspec.cli"]
#: git with no user configuration, fixed identities and dates: the same commits every run.
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
CLI_ENV = {**GIT_ENV, "NO_COLOR": "1", "GITHUB_ACTIONS": ""}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=GIT_ENV)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def mlspec(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MLSPEC, *args], cwd=cwd, capture_output=True, text=True, env={**CLI_ENV, **(env or {})},
                          timeout=600)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def new_repo(where: Path) -> Path:
    """The examples and environments at the top of a fresh repository, committed and tagged ``base``."""
    for folder in ("examples", "environments"):
        shutil.copytree(ROOT / folder, where / folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    git(where, "init", "-q", "-b", "main")
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", "base")
    git(where, "tag", "base")
    return where


CHURN = "examples/churn/mlops.yaml"
FRAUD = "examples/fraud/mlops.yaml"
