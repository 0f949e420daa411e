"""`mlspec init`, `mlspec schema` and `mlspec --version` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlspec import __version__

ROOT = Path(__file__).resolve().parent.parent
MLSPEC = [sys.executable, "-m", "mlspec.cli"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*MLSPEC, *args], cwd=cwd, capture_output=True, text=True)


def test_init_scaffolds_a_starter_that_validates(tmp_path: Path):
    proc = run("init", "starter", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = tmp_path / "starter/mlops.yaml"
    assert spec.is_file() and (tmp_path / "starter/data/customers.csv").is_file()
    text = spec.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert text.count("\n#") + text.count("  # ") >= 10, "the starter explains itself in comments"
    check = run("validate", "starter", "--format", "json", cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["ok"] is True


def test_init_refuses_to_overwrite_and_force_does(tmp_path: Path):
    assert run("init", "s", cwd=tmp_path).returncode == 0
    spec = tmp_path / "s/mlops.yaml"
    spec.write_text("# mine\n")
    proc = run("init", "s", cwd=tmp_path)
    assert proc.returncode == 1
    assert "s/mlops.yaml:1:1: error: s/mlops.yaml already exists" in proc.stdout
    assert spec.read_text() == "# mine\n"
    assert run("init", "s", "--force", cwd=tmp_path).returncode == 0
    assert spec.read_text().startswith("# yaml-language-server")


def test_schema_prints_the_committed_schema():
    proc = run("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == json.loads((ROOT / "schemas/mlops.schema.json").read_text())
    env = run("schema", "--environment")
    assert json.loads(env.stdout)["title"].startswith("mlspec environment")


def test_version():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"mlspec, version {__version__}"


def test_help_lists_every_command():
    proc = run("--help")
    for command in ("compile", "diff", "init", "run", "schema", "validate"):
        assert f"  {command} " in proc.stdout
