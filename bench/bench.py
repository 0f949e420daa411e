#!/usr/bin/env python3
"""Speed figures for mlspec, printed, not asserted (timed tests are flaky; figures are not).

    python bench/bench.py [--runs N] [--only validate|compile|noop|monorepo]

Each figure is the median wall time of N cold runs (a fresh process each time), next
to the reference it is measured against and the goal from the issue tracker:

* validate: `mlspec validate` on the churn example (goal ≤ 0.25 s on 2 cores), next to
  `check-jsonschema --schemafile schemas/mlops.schema.json` on the same file;
* compile: cold `mlspec compile` of the churn example, all environments, vs `import kfp`
  plus the kfp compile of the same pipeline alone (goal ratio ≤ 1.2);
* noop: a recompile when nothing changed (goal ≤ 0.2 s);
* monorepo: 200 specs × 3 environments (goal ≤ 30 s on 2 cores; the Feast target adds
  ≤ 10 %, measured against the same compile without it), and 50/100 specs to
  show how time grows with the number of specs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "examples" / "churn" / "mlops.yaml"


#: As a user's machine runs it: Python caches bytecode (an environment that sets
#: PYTHONDONTWRITEBYTECODE would recompile mlspec's modules on every start, ~35 ms).
BENCH_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], runs: int, cwd: Path = ROOT, env: dict | None = None, setup=None) -> tuple[float, int]:
    env = env or BENCH_ENV
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm caches
    if setup:
        setup()
    times, rc = [], 0
    for _ in range(runs):
        if setup:
            setup()
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        rc = proc.returncode
        if rc not in (0,):
            sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:])
    return statistics.median(times), rc


def row(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<58} {seconds:8.3f} s  {note}")


def bench_validate(runs: int) -> None:
    print("validate (cold, churn example, all environments)")
    mlspec, rc = timed([str(BIN / "mlspec"), "validate", str(EXAMPLE)], runs)
    row("mlspec validate", mlspec, f"goal ≤ 0.25 s  (exit {rc})")
    cj = BIN / "check-jsonschema"
    if cj.exists():
        ref, rc2 = timed([str(cj), "--schemafile", str(ROOT / "schemas/mlops.schema.json"), str(EXAMPLE)], runs)
        row("check-jsonschema --schemafile schemas/mlops.schema.json", ref, f"(exit {rc2}; schema only, no cross-checks)")
        print(f"  ratio mlspec / check-jsonschema: {mlspec / ref:.2f}")
    else:
        print("  check-jsonschema not installed: pip install -e '.[test]'")


KFP_ALONE = """
import sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
import kfp
from kfp import compiler
from mlspec.project import resolve_paths
from mlspec.compiler import context
from mlspec.generators import kubeflow
resolved = [r for r in resolve_paths([Path(sys.argv[1])]).resolved if r.env]
with tempfile.TemporaryDirectory() as tmp:
    for r in resolved:
        pipeline = kubeflow.build_pipeline(context(r, kubeflow.target))
        compiler.Compiler().compile(pipeline, str(Path(tmp) / f"{r.env_name}.yaml"))
"""


def bench_compile(runs: int) -> None:
    print("compile (cold, churn example, all environments)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"

        def fresh() -> None:
            shutil.rmtree(out, ignore_errors=True)

        ours, rc = timed([str(BIN / "mlspec"), "compile", str(EXAMPLE), "--out", str(out)], runs, setup=fresh)
        row("mlspec compile (all targets, all envs, writes the tree)", ours, f"(exit {rc})")
        ref, rc2 = timed([sys.executable, "-c", KFP_ALONE, str(EXAMPLE)], runs)
        row("import kfp + build + kfp Compiler().compile, same envs", ref, f"(exit {rc2})")
        print(f"  ratio: {ours / ref:.2f}  (goal ≤ 1.2)")
        print("no-op recompile (nothing changed)")
        subprocess.run([str(BIN / "mlspec"), "compile", str(EXAMPLE), "--out", str(out)], cwd=ROOT,
                       stdout=subprocess.DEVNULL, check=True)
        noop, rc3 = timed([str(BIN / "mlspec"), "compile", str(EXAMPLE), "--out", str(out)], runs)
        row("mlspec compile, second time", noop, f"goal ≤ 0.2 s  (exit {rc3})")


def make_monorepo(root: Path, count: int) -> None:
    """``count`` copies of the churn example under different names, sharing environments/."""
    shutil.copytree(ROOT / "environments", root / "environments", dirs_exist_ok=True)
    source = (ROOT / "examples/churn/mlops.yaml").read_text()
    for i in range(count):
        folder = root / "specs" / f"churn-{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "data").exists():
            shutil.copytree(ROOT / "examples/churn/data", folder / "data")
        (folder / "mlops.yaml").write_text(source.replace("name: churn\n", f"name: churn-{i:03d}\n", 1)
                                           .replace("../../schemas", "../../../schemas"))


def bench_monorepo(runs: int) -> None:
    print("monorepo (N specs × 3 environments, cold compile)")
    for count in (50, 100, 200):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_monorepo(root, count)
            out = root / "out"

            def fresh() -> None:
                shutil.rmtree(out, ignore_errors=True)

            seconds, rc = timed([str(BIN / "mlspec"), "compile", "specs", "--out", str(out)], max(1, runs // 3),
                                cwd=root, setup=fresh)
            goal = "goal ≤ 30 s" if count == 200 else ""
            row(f"{count} specs × 3 envs", seconds, f"{seconds / count * 1000:.0f} ms/spec  {goal} (exit {rc})")
            if count == 200:  # what the Feast repositories add (goal: at most 10%)
                from mlspec import registry

                others = ",".join(name for name in registry.available() if name != "feast")
                without, rc2 = timed([str(BIN / "mlspec"), "compile", "specs", "--out", str(out), "--targets", others],
                                     max(1, runs // 3), cwd=root, setup=fresh)
                row("200 specs × 3 envs without the feast target", without,
                    f"feast adds {(seconds / without - 1) * 100:.0f}%  goal ≤ 10% (exit {rc2})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["validate", "compile", "noop", "monorepo"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["validate", "compile", "noop", "monorepo"])
    print(f"mlspec benchmarks — {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"median of {args.runs} runs after one warm-up run (bytecode cached)")
    if "validate" in only:
        bench_validate(args.runs)
    if only & {"compile", "noop"}:
        bench_compile(args.runs)
    if "monorepo" in only:
        bench_monorepo(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
