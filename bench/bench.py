#!/usr/bin/env python3
"""Speed figures for mlspec, printed, not asserted (timed tests are flaky; figures are not).

    python bench/bench.py [--runs N] [--only validate|compile|noop|monorepo]

Each figure is the median wall time of N cold runs (a fresh process each time), next
to the reference it is measured against and the goal from the issue tracker:

* validate: `mlspec validate` on the churn example (goal ≤ 0.25 s on 2 cores), next to
  `check-jsonschema --schemafile schemas/mlops.schema.json` on the same file;
* compile: cold `mlspec compile` of the churn example, all environments, vs `import kfp`
  plus the kfp compile of the same pipeline alone (goal ratio ≤ 1.2);
* noop: a recompile when nothing changed (goal ≤ 0.3 s);
* monorepo: 200 specs × 3 environments (goal ≤ 30 s on 2 cores), and 50/100 specs to
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


def timed(cmd: list[str], runs: int, cwd: Path = ROOT, env: dict | None = None, setup=None) -> tuple[float, int]:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["validate", "compile", "noop", "monorepo"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["validate", "compile", "noop", "monorepo"])
    print(f"mlspec benchmarks — {os.cpu_count()} cores, python {sys.version.split()[0]}, median of {args.runs} runs")
    if "validate" in only:
        bench_validate(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
