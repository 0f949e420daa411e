"""The README's commands, .ci/run and the shipped examples agree with each other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLSPEC = [sys.executable, "-m", "mlspec.cli"]


def _test_command() -> str:
    lines = (ROOT / ".ci/run").read_text().splitlines()
    marker = lines.index("# README:test-command")
    return lines[marker + 1].strip()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert _test_command() in blocks, "README's test command and .ci/run differ"


def test_readme_main_command_names_a_shipped_example():
    readme = (ROOT / "README.md").read_text()
    main = re.findall(r"```bash\n(.*?)\n```", readme, re.S)[0]
    for spec in re.findall(r"examples/\S+\.yaml", main):
        assert (ROOT / spec).is_file()


def test_all_shipped_examples_validate_in_every_environment():
    proc = subprocess.run([*MLSPEC, "validate", "examples/", "--format", "json"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json

    report = json.loads(proc.stdout)
    assert report["ok"] and report["errors"] == []
    assert report["environments"] == ["dev", "prod", "staging"]
    assert report["specs"] == 2 and report["checked"] == 8
