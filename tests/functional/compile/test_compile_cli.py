"""`mlspec compile` end to end: golden files, --check as the CI gate, determinism, kills."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden"
#: The one-line command that regenerates the golden files (run from the repository root).
REGEN = ".venv/bin/mlspec compile examples/ --out tests/golden --force"
MLSPEC = [sys.executable, "-m", "mlspec.cli"]


def mlspec(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*MLSPEC, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


#: mlspec's local state under an output root: not committed, not part of the tree.
LOCAL_STATE = {".mlspec/lock", ".mlspec/cache.json", ".mlspec/cache.json.tmp"}


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root except mlspec's lock and no-op cache (local state)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in LOCAL_STATE:
            out[rel] = path.read_bytes()
    return out


def test_golden_files_are_current():
    proc = mlspec("compile", "examples/", "--out", "tests/golden", "--check")
    assert proc.returncode == 0, f"golden files are stale; regenerate with: {REGEN}\n{proc.stdout}{proc.stderr}"
    assert "are current" in proc.stdout


def test_golden_tree_covers_every_example_and_environment():
    for spec in ("churn", "fraud"):
        for env in ("dev", "staging", "prod"):
            folder = GOLDEN / "deploy" / env / spec / "kubeflow"
            assert (folder / "pipeline-ir.yaml").is_file() and (folder / "pipeline.yaml").is_file()


@pytest.fixture
def golden_copy(tmp_path: Path) -> Path:
    out = tmp_path / "gitops"
    shutil.copytree(GOLDEN, out)
    return out


def test_check_fails_after_editing_a_generated_file(golden_copy: Path):
    target = golden_copy / "deploy/prod/churn/kubeflow/pipeline.yaml"
    target.write_text(target.read_text().replace("namespace: kubeflow", "namespace: kubeflow-edited", 1))
    proc = mlspec("compile", "examples/", "--out", str(golden_copy), "--check")
    assert proc.returncode == 1
    assert f"{golden_copy}/deploy/prod/churn/kubeflow/pipeline.yaml:1:1: error: generated file is out of date" in proc.stdout
    assert "-  namespace: kubeflow-edited" in proc.stdout and "+  namespace: kubeflow" in proc.stdout


def test_check_fails_on_a_missing_file_and_names_it(golden_copy: Path):
    (golden_copy / "deploy/dev/fraud/kubeflow/pipeline-ir.yaml").unlink()
    proc = mlspec("compile", "examples/", "--out", str(golden_copy), "--check", "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [(e["file"], e["code"]) for e in report["errors"]] == [
        (f"{golden_copy}/deploy/dev/fraud/kubeflow/pipeline-ir.yaml", "output-missing")
    ]


def test_check_fails_on_an_extra_owned_file(golden_copy: Path):
    manifest_path = golden_copy / ".mlspec/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    extra = golden_copy / "deploy/dev/churn/kubeflow/old.yaml"
    extra.write_text("kind: Old\n")
    import hashlib

    manifest["files"]["deploy/dev/churn/kubeflow/old.yaml"] = {
        **manifest["files"]["deploy/dev/churn/kubeflow/pipeline.yaml"],
        "sha256": hashlib.sha256(b"kind: Old\n").hexdigest()}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    proc = mlspec("compile", "examples/", "--out", str(golden_copy), "--check")
    assert proc.returncode == 1
    assert "old.yaml:1:1: error: file is no longer generated and would be pruned" in proc.stdout
    # and a real compile prunes it, leaving the golden tree
    assert mlspec("compile", "examples/", "--out", str(golden_copy)).returncode == 0
    assert not extra.exists()
    assert tree(golden_copy) == tree(GOLDEN)


def test_check_fails_after_editing_the_spec(tmp_path: Path):
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "examples", work / "examples")
    shutil.copytree(ROOT / "environments", work / "environments")
    shutil.copytree(GOLDEN, work / "tests/golden")
    spec = work / "examples/churn/mlops.yaml"
    spec.write_text(spec.read_text().replace("threshold: 0.7}", "threshold: 0.75}"))
    proc = mlspec("compile", "examples/", "--out", "tests/golden", "--check", cwd=work)
    assert proc.returncode == 1
    stale = {line.split(":1:1:")[0] for line in proc.stdout.splitlines() if "out of date" in line}
    # the threshold is in the pipeline of every environment of churn, and nowhere in fraud
    assert stale and all("/churn/" in path for path in stale)
    assert {p.split("/")[3] for p in stale} == {"dev", "staging", "prod"}


def test_diff_shows_what_compile_would_change(golden_copy: Path):
    assert mlspec("diff", "examples/", "--out", str(golden_copy), "--exit-code").returncode == 0
    (golden_copy / "deploy/staging/churn/kubeflow/schedule.yaml").unlink()
    proc = mlspec("diff", "examples/", "--out", str(golden_copy), "--exit-code")
    assert proc.returncode == 1  # like `git diff --exit-code`; without it, changes exit 0 (see mlspec.semdiff)
    assert "\n deploy/staging/churn/kubeflow/schedule.yaml | " in proc.stdout
    assert "\n+ staging/churn: CronJob ml-staging/churn-training\n" in proc.stdout
    assert mlspec("diff", "examples/", "--out", str(golden_copy)).returncode == 0


def test_output_is_byte_identical_across_processes_and_hash_seeds(tmp_path: Path):
    for seed in ("0", "12345"):
        proc = mlspec("compile", "examples/", "--out", str(tmp_path / seed), env={"PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = tree(tmp_path / "0"), tree(tmp_path / "12345")
    assert first == second
    assert first == tree(GOLDEN)


def test_noop_recompile_changes_nothing(golden_copy: Path):
    def mtimes() -> dict[Path, int]:  # the lock file is mlspec's runtime state, not output
        return {p: p.stat().st_mtime_ns for p in golden_copy.rglob("*") if p.is_file() and p.name not in ("lock", "cache.json")}

    before = mtimes()
    proc = mlspec("compile", "examples/", "--out", str(golden_copy))
    assert proc.returncode == 0
    assert "0 created, 0 updated, 0 pruned" in proc.stdout
    assert mtimes() == before


def test_noop_recompile_does_not_import_kfp(golden_copy: Path):
    # the first compile into a fresh copy records what it read (.mlspec/cache.json is local
    # state, not in git); the second one is the no-op
    assert mlspec("compile", "examples/", "--out", str(golden_copy)).returncode == 0
    code = ("import sys\nfrom mlspec.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "assert code == 0, code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kfp', 'kubernetes', 'feast')))\n")
    proc = subprocess.run([sys.executable, "-c", code, "compile", "examples/", "--out", str(golden_copy)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_compile_never_writes_on_invalid_spec(tmp_path: Path):
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "examples/churn", work / "churn")
    shutil.copytree(ROOT / "environments", work / "environments")
    spec = work / "churn/mlops.yaml"
    spec.write_text(spec.read_text().replace("feature_service: churn_model", "feature_service: churn_modle"))
    proc = mlspec("compile", "churn/mlops.yaml", "--out", "out", cwd=work)
    assert proc.returncode == 1
    assert "churn/mlops.yaml:" in proc.stdout and "did you mean 'churn_model'?" in proc.stdout
    assert not (work / "out").exists()


def test_unknown_target_is_a_usage_error():
    proc = mlspec("compile", "examples/churn/mlops.yaml", "--targets", "kubeflw", "--dry-run", "--out", "/nonexistent")
    assert proc.returncode == 2
    assert "unknown target 'kubeflw'" in proc.stdout and "did you mean 'kubeflow'?" in proc.stdout


@pytest.mark.slow
def test_killing_compile_at_random_points_never_leaves_a_torn_tree(tmp_path: Path):
    """SIGKILL `mlspec compile` mid-write (through the writer's crash hook) and after random
    delays; after recovery the tree is exactly the old one or exactly the new one."""
    from mlspec import writer

    work = tmp_path / "repo"
    shutil.copytree(ROOT / "examples", work / "examples")
    shutil.copytree(ROOT / "environments", work / "environments")
    old_tree, new_tree, out = work / "old", work / "new", work / "out"
    assert mlspec("compile", "examples/", "--out", "old", cwd=work).returncode == 0
    # the new tree: a spec change that rewrites every churn pipeline and prunes its schedules
    spec = work / "examples/churn/mlops.yaml"
    text = spec.read_text()
    assert '  schedule: "0 3 * * 1"' in text and "threshold: 0.7}" in text
    spec.write_text(text.replace('  schedule: "0 3 * * 1"', "  # no schedule").replace("threshold: 0.7}", "threshold: 0.75}"))
    assert mlspec("compile", "examples/", "--out", "new", cwd=work).returncode == 0
    old, new = tree(old_tree), tree(new_tree)
    assert old != new
    # 8 trials a run, from a seed that changes every run (printed, and settable with
    # MLSPEC_KILL_SEED to replay one): over the runs every crash point and delay is covered.
    seed = int(os.environ.get("MLSPEC_KILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill test seed: MLSPEC_KILL_SEED={seed}")
    rng = random.Random(seed)
    outcomes = {"old": 0, "new": 0}
    # the writer's steps for this change are 1..14; step 1 (before the commit point) always
    # leaves the old tree, and the last trial runs to the end: both outcomes are seen
    crash_points = [1, *rng.sample(range(2, 15), 3)]
    for trial in range(8):
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(old_tree, out)
        env = dict(os.environ)
        if trial % 2 == 0:  # a kill at a random write operation
            env[writer.CRASH_AT_ENV] = str(crash_points[trial // 2])
        proc = subprocess.Popen([*MLSPEC, "compile", "examples/", "--out", "out"], cwd=work, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=120 if trial % 2 == 0 or trial == 7 else rng.uniform(0.5, 3.0))
        except subprocess.TimeoutExpired:  # a kill after a random delay
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        writer.recover(out)
        now = tree(out)
        assert now in (old, new), f"trial {trial} (seed {seed}): the tree is neither the old nor the new one"
        outcomes["old" if now == old else "new"] += 1
    assert outcomes["old"] and outcomes["new"], outcomes
