"""The drift detector writer without Alibi Detect: sampling, determinism, failures, and that the
KFP component's body runs on its own source alone (KFP ships only that)."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from drift_project import SERVED, sample
from mlspec.generators import drift_components
from mlspec.generators.drift_components import fit_drift_detector, write_detector

POLICY = {"method": "tabular", "detector": "TabularDrift", "features": ["monthly_charges", "premium"],
          "served": list(SERVED), "dtypes": {"monthly_charges": "float64", "premium": "bool"},
          "p_value": 0.05, "correction": "bonferroni", "batch_size": 100, "sample_size": 100}


def digests(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_same_inputs_same_bytes_and_the_version_draws_the_sample(tmp_path):
    frame = sample(600, seed=5)
    one = write_detector(tmp_path / "a", frame, POLICY, "v1")
    write_detector(tmp_path / "b", frame.copy(), POLICY, "v1")
    write_detector(tmp_path / "c", frame, POLICY, "v2")
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert set(digests(tmp_path / "a")) == {"config.toml", "x_ref.npy", "model-settings.json",
                                            "preprocess_fn/function.dill"}
    assert one == {"rows": 100, "features": ["monthly_charges", "premium"], "detector": "TabularDrift",
                   "dropped_missing": 0}
    a, c = np.load(tmp_path / "a" / "x_ref.npy"), np.load(tmp_path / "c" / "x_ref.npy")
    assert a.dtype == np.float64 and a.shape == (100, 2)
    assert not np.array_equal(a, c)  # another version, another sample
    # rows of the frame (monthly_charges is continuous: it names its row), none twice, in frame order
    rows = {v: i for i, v in enumerate(frame["monthly_charges"])}
    picked = [rows[v] for v in a[:, 0]]
    assert len(set(picked)) == 100 and picked == sorted(picked)
    assert np.array_equal(a[:, 1], frame["premium"].to_numpy(dtype=float)[picked])
    settings = json.loads((tmp_path / "a" / "model-settings.json").read_text())
    assert settings == {"implementation": "mlserver_alibi_detect.AlibiDetectRuntime",
                        "parameters": {"uri": "./", "version": "v1"}}


def test_all_rows_when_fewer_than_the_sample_size_and_missing_values_dropped(tmp_path, capsys):
    frame = sample(80, seed=6)
    frame["monthly_charges"] = frame["monthly_charges"].astype("float64")
    frame.loc[[3, 10, 11], "monthly_charges"] = np.nan
    summary = write_detector(tmp_path / "d", frame, POLICY, "v1")
    assert summary["rows"] == 77 and summary["dropped_missing"] == 3
    assert "3 row(s) with missing values dropped" in capsys.readouterr().out


def test_a_missing_column_fails_the_step(tmp_path, capsys):
    frame = sample(50, seed=7).drop(columns=["premium"])
    with pytest.raises(ValueError, match="no column"):
        write_detector(tmp_path / "e", frame, POLICY, "v1")
    assert capsys.readouterr().out.startswith("MLSPEC-FAILURE: the training frame has no column(s) premium")


def test_the_component_body_needs_nothing_of_its_module(tmp_path):
    """KFP embeds the function's source only: run that source in a namespace holding only the
    KFP names of its signature, and get the same files as through the module."""
    from kfp.dsl import Artifact, Dataset, Input, Output

    namespace = {"Input": Input, "Output": Output, "Dataset": Dataset, "Artifact": Artifact}
    exec(compile(inspect.getsource(fit_drift_detector), "<component>", "exec"), namespace)
    frame = sample(300, seed=8)
    frame.to_parquet(tmp_path / "features.parquet", index=False)
    features, out = drift_components._Local(str(tmp_path / "features.parquet")), drift_components._Local(str(tmp_path / "x"))
    summary = json.loads(namespace["fit_drift_detector"](features, json.dumps(POLICY), "v9", out))
    write_detector(tmp_path / "y", tmp_path / "features.parquet", POLICY, "v9")
    assert digests(tmp_path / "x") == digests(tmp_path / "y")
    assert out.metadata == {"detector": "TabularDrift", "rows": 100, "features": POLICY["features"], "version": "v9"}
    assert summary["rows"] == 100


def test_it_builds_as_a_kfp_component():
    from kfp import dsl

    component = dsl.component(fit_drift_detector, base_image="python:3.11-slim",
                              packages_to_install=["numpy", "pandas", "pyarrow"])
    spec = component.component_spec
    assert set(spec.inputs) == {"features", "policy", "version"}
    assert set(spec.outputs) == {"detector", "Output"}
