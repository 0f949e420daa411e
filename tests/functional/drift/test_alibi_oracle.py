"""mlspec's drift detectors and ``mlspec drift`` against real Alibi Detect 0.11.4.

For each method the test project (``drift_project.py``) monitors a set of the served features
(ks, chi2 and mmd a subset, so the written detector selects its columns from the served
vector; tabular all four).  mlspec writes the detector from a training frame with
:func:`write_detector` (numpy and pandas only); in ``.venv-alibi``, ``load_detector`` loads it,
alibi's own ``save_detector`` writes the same detector for comparison, and ``predict`` runs on
three batches of served vectors: the reference rows, a fresh sample of the same distribution
and a shifted sample.  ``mlspec drift`` runs on the same rows and must give alibi's p-values
(within 1e-9), statistics and decisions (MMD: the seeded permutation p-value exactly, MMD² to
float32 rounding).
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from drift_project import MONITORED, SERVED, make_project, sample
from mlspec.generators.drift_components import write_detector

from mlspec import drift
from mlspec.models import DRIFT_DETECTORS
from mlspec.project import resolve

HERE = Path(__file__).resolve().parent
#: correction per method: fdr once (chi2), so both corrections meet alibi
CASES = {"ks": "bonferroni", "chi2": "fdr", "tabular": "bonferroni", "mmd": "bonferroni"}
VERSION = "3f2a9c1d7e-0b4c8d2e6f"
BATCHES = ("reference", "fresh", "shifted")
#: what alibi's save writes that mlspec's writer writes too (model-settings.json is MLServer's)
ALIBI_FILES = {"config.toml", "x_ref.npy", "preprocess_fn/function.dill"}


@pytest.fixture(scope="module")
def runs(alibi_python, tmp_path_factory):
    base = tmp_path_factory.mktemp("drift-oracle")
    frames = {"reference": sample(400, seed=1), "fresh": sample(300, seed=2), "shifted": sample(300, seed=3, shift=True)}
    for name, frame in frames.items():
        frame.to_parquet(base / f"{name}.parquet", index=False)
        np.save(base / f"{name}.npy", frame[list(SERVED)].astype("float64").to_numpy())
    cases, checks, policies = [], {}, {}
    for method, correction in CASES.items():
        spec_path = make_project(base / method, method, correction=correction)
        found = resolve(spec_path, ["dev"])
        assert not found.errors, found.errors
        policies[method] = policy = drift.policy(found.resolved[0].spec)
        directory = base / method / "detector"
        summary = write_detector(directory, base / "reference.parquet", policy, VERSION)
        assert summary == {"rows": 400, "features": MONITORED[method], "detector": DRIFT_DETECTORS[method],
                           "dropped_missing": 0}
        cases.append({"name": method, "dir": str(directory), "policy": policy, "resave": str(base / method / "alibi"),
                      "batches": {b: str(base / f"{b}.npy") for b in BATCHES}})
        for reference in ("file", "directory"):
            for batch in BATCHES:
                out = io.StringIO()
                ref = base / "reference.parquet" if reference == "file" else directory
                code = drift.run(spec_path, "dev", None, ref, base / f"{batch}.parquet", fmt="json", out=out)
                checks[method, reference, batch] = (code, json.loads(out.getvalue()))
    request = base / "request.json"
    request.write_text(json.dumps({"cases": cases}))
    proc = subprocess.run([str(alibi_python), str(HERE / "alibi_oracle.py"), str(request)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout), checks, policies


@pytest.mark.parametrize("method", list(CASES))
def test_load_detector_loads_what_mlspec_wrote(runs, method):
    answer = runs[0][method]
    assert answer["class"] == DRIFT_DETECTORS[method]
    if method != "mmd":
        assert answer["n_features"] == len(MONITORED[method])


@pytest.mark.parametrize("method", list(CASES))
def test_written_files_are_what_alibi_save_detector_writes(runs, method):
    answer = runs[0][method]
    ours = {k: v for k, v in answer["ours_config"].items() if k != "meta"}
    alibi = {k: v for k, v in answer["alibi_config"].items() if k != "meta"}
    assert ours == alibi
    assert answer["ours_config"]["meta"] == {"version": "0.11.4", "version_warning": False}
    # byte for byte too: same key order, same spelling, same array file, same pickled selector
    assert answer["ours_text"] == answer["alibi_text"]
    written = {k: v for k, v in answer["ours_files"].items() if k != "model-settings.json"}
    assert written == answer["alibi_files"]
    assert set(written) <= ALIBI_FILES
    assert ("preprocess_fn/function.dill" in written) == (MONITORED[method] != list(SERVED))


@pytest.mark.parametrize("method", list(CASES))
def test_alibi_predicts_drift_only_on_the_shifted_sample(runs, method):
    predict = runs[0][method]["predict"]
    assert {b: predict[b]["is_drift"] for b in BATCHES} == {"reference": 0, "fresh": 0, "shifted": 1}


@pytest.mark.parametrize("reference", ["file", "directory"])
@pytest.mark.parametrize("method", list(CASES))
def test_mlspec_drift_equals_alibi(runs, method, reference):
    answer, checks, _ = runs
    for batch in BATCHES:
        alibi = answer[method]["predict"][batch]
        code, ours = checks[method, reference, batch]
        assert ours["is_drift"] == bool(alibi["is_drift"]), batch
        assert code == (1 if alibi["is_drift"] else 0)
        p_vals = [t["p_value"] for t in ours["tests"]]
        stats = [t["statistic"] for t in ours["tests"]]
        if method == "mmd":
            assert ours["tests"][0]["feature"] is None
            assert p_vals[0] == pytest.approx(alibi["p_val"], abs=1e-9)
            # MMD² is a float32 sum over the kernel matrix in TensorFlow's order: equal to float32 rounding
            assert stats[0] == pytest.approx(alibi["distance"], abs=1e-6)
            assert ours["permutations"]["distance_threshold"] == pytest.approx(alibi["distance_threshold"], abs=1e-6)
            assert ours["threshold"] == alibi["threshold"]
            continue
        assert [t["feature"] for t in ours["tests"]] == MONITORED[method]
        assert np.max(np.abs(np.array(p_vals) - np.array(alibi["p_val"]))) <= 1e-9, (batch, p_vals, alibi["p_val"])
        assert stats == pytest.approx(alibi["distance"], rel=1e-6, abs=1e-9)
        assert np.allclose(np.asarray(ours["threshold"], dtype=float), np.asarray(alibi["threshold"], dtype=float),
                           rtol=0, atol=1e-12)


def test_the_cases_cover_both_corrections_and_every_test(runs):
    _, checks, _ = runs
    tests = {t["test"] for (_, _, _), (_, r) in checks.items() for t in r["tests"]}
    assert tests == {"KS", "Chi2", "MMD"}
    fdr_fresh = checks["chi2", "file", "fresh"][1]
    assert fdr_fresh["correction"] == "fdr" and isinstance(fdr_fresh["threshold"], list)  # alibi: BH values by rank
