"""Real Feast for the Feast target's functional tests, in a virtual environment of its own.

Feast 0.67.0 pins ``pandas<3`` while mlspec's pipeline steps are pinned to pandas 3.1.1
(``pip install --dry-run feast==0.67.0`` into ``.venv`` would downgrade pandas to 2.3.3), so
Feast cannot share mlspec's environment.  The session fixture :func:`feast_python` creates
``<checkout>/.venv-feast`` once (gitignored) with ``pip install feast==<FEAST_VERSION>`` from
the package registry and reuses it afterwards; every Feast call runs there, in a subprocess
(:mod:`mlspec.generators.feast_runner`), so this process never imports feast.
:func:`feast_runs` runs each example's repository once per session (apply, prepare,
materialize, online and historical reads, registry dump) and the tests check the results.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlspec.generators import feast as ft

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("MLSPEC_FEAST_VENV", ROOT / ".venv-feast"))


def _feast_version(python: Path) -> str | None:
    if not python.exists():
        return None
    proc = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('feast'))"],
                          capture_output=True, text=True, timeout=120)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.fixture(scope="session")
def feast_python() -> Path:
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".venv-feast.lock", "w") as lock:  # one creator when tests run in parallel
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _feast_version(python) != ft.FEAST_VERSION:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=600)
            proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   ft.FEAST_PIN], capture_output=True, text=True, timeout=1800)
            assert proc.returncode == 0, f"could not install {ft.FEAST_PIN} into {VENV}:\n{proc.stdout}\n{proc.stderr}"
    assert _feast_version(python) == ft.FEAST_VERSION
    return python


@pytest.fixture(scope="session")
def example_runs(feast_python, tmp_path_factory) -> dict:
    """Each example, compiled for dev and run with real Feast: {spec name: (resolved, result)}."""
    import feast_oracle as oracle
    from feast_helpers import project_copy, resolve, run_spec

    base = tmp_path_factory.mktemp("feast-examples")
    project = project_copy(base)
    jobs = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for resolved in resolve([project / "examples"], ["dev"]):
            spec = resolved.spec
            labels = oracle.label_rows(resolved)
            keys = oracle.entity_keys(spec)
            entity_parquet = base / f"{spec.name}-entities.parquet"
            oracle.write_entity_frame(labels, keys, spec.source(spec.training.label.source).timestamp, entity_parquet)
            rows = [dict(t) for t in dict.fromkeys(tuple((k, r[k]) for k in keys) for r in labels)]
            jobs[spec.name] = (resolved, pool.submit(run_spec, feast_python, resolved, base / spec.name,
                                                     entity_rows=rows, entity_parquet=entity_parquet, registry=True))
        return {name: (resolved, future.result()) for name, (resolved, future) in jobs.items()}
