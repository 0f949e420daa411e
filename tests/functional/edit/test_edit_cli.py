"""`mlspec traffic / promote / rollback / challenger` end to end, on copies of the examples:
the diff they print, --dry-run, policy refusals and --force, --compile, formats, exit
codes, and SIGKILL during the write (the spec is the old file or the new one)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlspec import edit
from mlspec.loader import load_text

MLSPEC = [sys.executable, "-m", "mlspec.cli"]
CHURN = "examples/churn/mlops.yaml"
FRAUD = "examples/fraud/mlops.yaml"


def mlspec(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MLSPEC, *args], cwd=project, capture_output=True, text=True, check=False,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})}, timeout=120)


def overrides(project: Path, spec: str = CHURN) -> dict:
    return load_text((project / spec).read_text()).data.get("overrides", {})


def temp_files(project: Path) -> list[Path]:
    return sorted((project / "examples").rglob(f".*{edit.TEMP_SUFFIX}"))


def test_traffic_prints_the_diff_and_changes_only_that_line(project: Path):
    before = (project / CHURN).read_text()
    proc = mlspec(project, "traffic", CHURN, "--challenger", "25")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"--- a/{CHURN}\n+++ b/{CHURN}\n@@ ")
    assert "\n-  traffic: {champion: 90, challenger: 10}\n+  traffic: {champion: 75, challenger: 25}\n" in proc.stdout
    assert "note: dev keeps serving.traffic {champion: 50, challenger: 50}" in proc.stdout  # its override wins
    assert proc.stdout.rstrip().endswith(f"wrote {CHURN}: champion 75%, challenger 25%")
    after = (project / CHURN).read_text()
    assert after == before.replace("  traffic: {champion: 90, challenger: 10}", "  traffic: {champion: 75, challenger: 25}")
    assert mlspec(project, "validate", CHURN).returncode == 0
    assert temp_files(project) == []


def test_dry_run_writes_nothing(project: Path):
    before = (project / CHURN).read_bytes()
    proc = mlspec(project, "promote", CHURN, "--env", "prod", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "+      champion: {uri: gs://acme-models/churn/v4/model}\n+      challenger: null\n" in proc.stdout
    assert f"dry run: would write {CHURN}" in proc.stdout
    assert (project / CHURN).read_bytes() == before
    assert temp_files(project) == []


def test_policy_refusal_and_force(project: Path):
    before = (project / CHURN).read_bytes()
    refused = mlspec(project, "traffic", CHURN, "--challenger", "60", "--env", "prod")
    assert refused.returncode == 1
    lines = before.decode().splitlines()
    # the new line would go first in prod's serving block: the error points at `serving:` above it
    where = f"{CHURN}:{lines.index('  prod:') + 2}:1: error: "
    assert lines[lines.index('  prod:') + 1] == "    serving:"
    assert refused.stdout.startswith(where), refused.stdout
    assert "challenger traffic 60% exceeds 50% (policy max_challenger_traffic of environment 'prod')" in refused.stdout
    assert "or pass --force to write it anyway" in refused.stdout
    assert "the refused edit:\n" in refused.stdout and "+      traffic: {champion: 40, challenger: 60}" in refused.stdout
    assert (project / CHURN).read_bytes() == before

    forced = mlspec(project, "traffic", CHURN, "--challenger", "60", "--env", "prod", "--force")
    assert forced.returncode == 0, forced.stdout
    assert "warning: challenger traffic 60% exceeds 50%" in forced.stdout and "(written anyway: --force)" in forced.stdout
    assert overrides(project)["prod"]["serving"]["traffic"] == {"champion": 40, "challenger": 60}
    # the policy still holds where it is checked: validate reports the forced value
    assert mlspec(project, "validate", CHURN, "--env", "prod").returncode == 1
    # and the forced edit is undone the same way
    assert mlspec(project, "rollback", CHURN, "--env", "prod").returncode == 0
    assert mlspec(project, "validate", CHURN).returncode == 0


def test_github_and_json_formats(project: Path):
    refused = mlspec(project, "traffic", CHURN, "--challenger", "70", "--env", "staging", "--format", "github")
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"::error file={CHURN},line=")
    assert "title=mlspec policy::challenger traffic 70%25 exceeds 50%25" in refused.stdout  # %-escaped
    ok = mlspec(project, "challenger", FRAUD, "--uri", "s3://acme-models/fraud/rf-2026-12", "--version", "2026-12",
                "--format", "json")
    assert ok.returncode == 0, ok.stdout
    report = json.loads(ok.stdout)
    assert report["ok"] and report["written"] and report["changed"]
    assert report["summary"] == "challenger is now s3://acme-models/fraud/rf-2026-12 (version 2026-12)"
    assert '+  challenger: {uri: s3://acme-models/fraud/rf-2026-12, version: "2026-12"}\n' in report["diff"]


def test_shadow_rollout_mirrors_and_refuses_promote(project: Path):
    proc = mlspec(project, "traffic", FRAUD, "--challenger", "20", "--env", "prod")
    assert proc.returncode == 0, proc.stdout
    assert overrides(project, FRAUD) == {"prod": {"serving": {"mirror": 20}}}
    before = (project / FRAUD).read_bytes()
    refused = mlspec(project, "promote", FRAUD)
    assert refused.returncode == 1
    assert "promoting would leave the shadow rollout without a challenger to mirror to" in refused.stdout
    assert (project / FRAUD).read_bytes() == before
    same = mlspec(project, "rollback", FRAUD)  # a shadow sends 100% to the champion already
    assert same.returncode == 0 and f"nothing to change in {FRAUD}" in same.stdout
    assert (project / FRAUD).read_bytes() == before


def test_compile_after_the_edit(project: Path):
    proc = mlspec(project, "promote", CHURN, "--env", "prod", "--compile", "--out", "gitops")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = project / "gitops" / "deploy"
    assert sorted(p.name for p in out.iterdir()) == ["prod"]  # only the environment that changed
    served = "".join(p.read_text() for p in (out / "prod" / "churn").rglob("*.yaml") if "kubeflow" not in p.parts)
    assert "gs://acme-models/churn/v4/model" in served and "gs://acme-models/churn/v3/model" not in served
    check = mlspec(project, "compile", CHURN, "--env", "prod", "--out", "gitops", "--check")
    assert check.returncode == 0, check.stdout


def test_usage_and_input_errors(project: Path):
    before = (project / CHURN).read_bytes()
    assert mlspec(project, "traffic", CHURN, "--challenger", "150").returncode == 2
    assert mlspec(project, "traffic", CHURN).returncode == 2  # --challenger is required
    assert mlspec(project, "challenger", CHURN, "--traffic", "5").returncode == 2  # --uri is required
    unknown = mlspec(project, "rollback", CHURN, "--env", "qa")
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stdout
    missing = mlspec(project, "promote", "examples/nope/mlops.yaml")
    assert missing.returncode == 1 and "no such file" in missing.stdout
    bad_uri = mlspec(project, "challenger", CHURN, "--uri", "ftp://models/x")
    assert bad_uri.returncode == 1 and "serving.challenger.uri" in bad_uri.stdout
    assert (project / CHURN).read_bytes() == before


# ----------------------------------------------------------------------------- SIGKILL


def _edit_process(project: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*MLSPEC, "traffic", CHURN, "--challenger", "30", "--env", "prod"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def test_sigkill_during_the_write_leaves_the_old_file_or_the_new_one(project: Path):
    spec = project / CHURN
    old = spec.read_bytes()
    os.chmod(spec, 0o640)
    assert mlspec(project, "traffic", CHURN, "--challenger", "30", "--env", "prod").returncode == 0
    new = spec.read_bytes()
    assert new != old and stat_mode(spec) == 0o640

    outcomes = []
    for step in range(1, 7):  # at each step of the write: temp created, half written, ..., renamed, dir synced
        spec.write_bytes(old)
        process = _edit_process(project, {edit.CRASH_AT_ENV: str(step)})
        assert process.wait(timeout=60) == -signal.SIGKILL
        data = spec.read_bytes()
        assert data in (old, new), f"killed after step {step}: the spec is neither the old file nor the new one"
        outcomes.append(data == new)
        assert stat_mode(spec) == 0o640
        # before the rename, the kill leaves its temporary file behind (the next edit cleans it)
        assert bool(temp_files(project)) == (step <= 4)
    assert outcomes == [False, False, False, False, True, True]  # the rename is the commit point

    rng = random.Random(8)
    for _ in range(3):  # and at random moments of the whole command
        spec.write_bytes(old)
        process = _edit_process(project)
        time.sleep(rng.uniform(0.05, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert spec.read_bytes() in (old, new)

    # what a killed edit left behind is cleaned by the next one
    spec.write_bytes(old)
    assert _edit_process(project, {edit.CRASH_AT_ENV: "2"}).wait(timeout=60) == -signal.SIGKILL
    assert len(temp_files(project)) == 1
    assert mlspec(project, "traffic", CHURN, "--challenger", "30", "--env", "prod").returncode == 0
    assert spec.read_bytes() == new and temp_files(project) == []


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("command", [
    ("rollback", "--drop-challenger"),
    ("challenger", "--uri", "gs://acme-models/churn/v5/model", "--traffic", "20"),
])
def test_every_environment_validates_after_each_command(project: Path, command: tuple[str, ...]):
    proc = mlspec(project, command[0], CHURN, *command[1:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mlspec(project, "validate", CHURN).returncode == 0
