"""The detector the training pipeline registers, for each example, against real Alibi Detect.

``mlspec run EXAMPLE --local`` (the shared session fixture ``example_runs``) registers
``<version>/model`` and ``<version>/drift-detector``.  In ``.venv-alibi`` (alibi-detect
0.11.4), ``load_detector`` loads that directory, and ``predict`` on served vectors (the
features of the training frame the run joined, in the served order) reports no drift on the
reference sample and on a fresh sample of the same distribution (a seeded bootstrap of the
training frame), and drift on a shifted copy of it.  The reference rows are the detector's own
``x_ref`` placed into served vectors (the detector selects the monitored columns itself)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlspec import drift
from mlspec.models import DRIFT_DETECTORS
from mlspec.project import resolve_paths

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
EXAMPLES = ("churn", "fraud")


def _spec(example: str):
    found = resolve_paths([ROOT / "examples" / example / "mlops.yaml"], ["dev"], ROOT / "environments")
    assert not found.errors, found.errors
    return found.resolved[0].spec


def _training_frame(out: Path) -> pd.DataFrame:
    [joined] = sorted(out.glob("pipeline-root/*/feast-training-features-local/joined"))
    return pd.read_parquet(joined)


@pytest.fixture(scope="module")
def predictions(example_runs, alibi_python, tmp_path_factory):
    base = tmp_path_factory.mktemp("run-detectors")
    cases, expected = [], {}
    for example in EXAMPLES:
        code, output, out = example_runs[example]
        assert code == 0, output
        spec = _spec(example)
        latest = json.loads((out / "registry" / spec.name / "latest.json").read_text())
        detector = Path(latest["uri"]) / "drift-detector"
        policy = drift.policy(spec)
        served, monitored = policy["served"], policy["features"]
        # rows with every monitored value, as the detector step keeps them (the columns it does not
        # monitor do not reach its tests: zeros there)
        frame = _training_frame(out)[served].astype("float64").dropna(subset=monitored).fillna(0.0)
        x_ref = np.load(detector / "x_ref.npy")
        assert x_ref.shape == (min(len(frame), spec.drift.reference.sample_size), len(monitored))
        reference = np.zeros((len(x_ref), len(served)))
        reference[:, [served.index(f) for f in monitored]] = x_ref
        rng = np.random.default_rng(11)
        fresh = frame.to_numpy()[rng.integers(0, len(frame), size=len(frame))]
        shifted = frame.to_numpy().copy()
        for f in monitored:  # every monitored feature moves by one standard deviation and spreads
            column = served.index(f)
            shifted[:, column] = shifted[:, column] * 1.5 + frame[f].std() + 1.0
        batches = {}
        for name, batch in (("reference", reference), ("fresh", fresh), ("shifted", shifted)):
            path = base / f"{example}-{name}.npy"
            np.save(path, batch)
            batches[name] = str(path)
        cases.append({"name": example, "dir": str(detector), "policy": policy,
                      "resave": str(base / f"{example}-alibi"), "batches": batches})
        expected[example] = (DRIFT_DETECTORS[spec.drift.method], len(monitored))
    request = base / "request.json"
    request.write_text(json.dumps({"cases": cases}))
    proc = subprocess.run([str(alibi_python), str(HERE / "alibi_oracle.py"), str(request)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout), expected


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES)
def test_alibi_loads_the_registered_detector(predictions, example):
    answer, expected = predictions
    detector, features = expected[example]
    assert answer[example]["class"] == detector
    assert answer[example]["ours_config"]["meta"]["version"] == "0.11.4"


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES)
def test_the_registered_detector_sees_drift_only_on_the_shifted_copy(predictions, example):
    answer, _ = predictions
    got = {batch: answer[example]["predict"][batch]["is_drift"] for batch in ("reference", "fresh", "shifted")}
    assert got == {"reference": 0, "fresh": 0, "shifted": 1}
