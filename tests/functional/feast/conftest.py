"""Real Feast for the Feast target's functional tests, in a virtual environment of its own.

Feast 0.67.0 pins ``pandas<3`` while mlspec's pipeline steps are pinned to pandas 3.1.1
(``pip install --dry-run feast==0.67.0`` into ``.venv`` would downgrade pandas to 2.3.3), so
Feast cannot share mlspec's environment.  The session fixture :func:`feast_python` (``tests/functional/conftest.py``) creates
``<checkout>/.venv-feast`` once (gitignored) with ``pip install feast==<FEAST_VERSION>`` from
the package registry and reuses it afterwards; every Feast call runs there, in a subprocess
(:mod:`mlspec.generators.feast_runner`), so this process never imports feast.
:func:`feast_runs` runs each example's repository once per session (apply, prepare,
materialize, online and historical reads, registry dump) and the tests check the results.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest




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
