"""Time-aware evaluation (issue 7): ``training.split.strategy: time`` holds out the latest labels
by the label timestamp, optionally everything at or after a ``cutoff``, with a ``gap`` embargo.

The training step is run directly on a dataset with a trend over time whose rows are stored
shuffled; what it held out and what it trained on are proved by refitting the same estimator
independently on the rows that should have been used, and comparing the fitted coefficients
and the score."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")

N = 200
START = pd.Timestamp("2024-01-01", tz="UTC")


def _artifact(path: Path):
    return SimpleNamespace(path=str(path), metadata={})


def _trend_frame(seed: int = 0) -> pd.DataFrame:
    """Daily labels with a trend: y grows with time, so the future differs from the past."""
    rng = np.random.default_rng(seed)
    day = np.arange(N)
    x = rng.normal(size=N)
    frame = pd.DataFrame({
        "customer_id": day,
        "label_ts": START + pd.to_timedelta(day, unit="D"),
        "x": x,
        "t": day.astype(float),
        "y": 0.05 * day + 2.0 * x + rng.normal(scale=0.1, size=N),
    })
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # stored out of order


def _train(tmp_path, frame, metric="rmse", **split):
    from mlspec.generators.kubeflow_components import train_candidate

    features = tmp_path / "features.parquet"
    frame.to_parquet(features, index=False)
    model = _artifact(tmp_path / "model")
    result = json.loads(train_candidate(
        candidate="{}", estimator="sklearn.linear_model.LinearRegression", feature_columns='["x", "t"]',
        label="y", metric=metric, test_size=split.pop("test_size", 0.25), split_seed=0, stratify=False,
        features=_artifact(features), model=model, split_strategy="time", timestamp="label_ts", **split))
    import joblib

    return result, joblib.load(tmp_path / "model" / "model.joblib")


def _independent(train: pd.DataFrame, test: pd.DataFrame):
    from sklearn import metrics as skm
    from sklearn.linear_model import LinearRegression

    fitted = LinearRegression().fit(train[["x", "t"]], train["y"])
    return fitted, math.sqrt(skm.mean_squared_error(test["y"], fitted.predict(test[["x", "t"]])))


def _check(result, fitted, frame, train, test, gap=pd.Timedelta(0)):
    # no training row is later than any test row, and the gap between them is respected
    assert train["label_ts"].max() < test["label_ts"].min() - gap
    assert (result["n_train"], result["n_test"]) == (len(train), len(test))
    assert pd.Timestamp(result["split"]["test_from"]) == test["label_ts"].min()
    assert pd.Timestamp(result["split"]["train_until"]) == train["label_ts"].max()
    assert pd.Timestamp(result["split"]["test_from"]) - pd.Timestamp(result["split"]["train_until"]) > gap
    # the step trained on exactly `train` and scored on exactly `test`
    expected, score = _independent(train, test)
    np.testing.assert_allclose(fitted.coef_, expected.coef_, rtol=1e-9)
    assert result["score"] == pytest.approx(score, rel=1e-9)


def test_time_split_holds_out_exactly_the_latest_rows(tmp_path):
    frame = _trend_frame()
    result, fitted = _train(tmp_path, frame, test_size=0.25)
    ordered = frame.sort_values("label_ts")
    train, test = ordered.iloc[:150], ordered.iloc[150:]  # the latest 25% (50 of 200 rows)
    _check(result, fitted, frame, train, test)
    assert result["split"]["strategy"] == "time" and result["split"]["embargoed"] == 0
    # a random split of the same data would have trained on the future
    from sklearn.model_selection import train_test_split

    rtrain, rtest = train_test_split(frame, test_size=0.25, random_state=0)
    assert rtrain["label_ts"].max() > rtest["label_ts"].min()


def test_time_split_gap_is_an_embargo_before_the_hold_out(tmp_path):
    frame = _trend_frame(1)
    result, fitted = _train(tmp_path, frame, test_size=0.25, gap_seconds=10 * 86400)
    ordered = frame.sort_values("label_ts")
    test = ordered.iloc[150:]
    boundary = test["label_ts"].min()
    train = ordered[ordered["label_ts"] < boundary - pd.Timedelta(days=10)]
    assert len(train) == 140  # days 0..139: day 140..149 are within the 10-day embargo
    _check(result, fitted, frame, train, test, gap=pd.Timedelta(days=10))
    assert result["split"]["embargoed"] == 10


def test_time_split_cutoff_holds_out_everything_from_it(tmp_path):
    frame = _trend_frame(2)
    result, fitted = _train(tmp_path, frame, cutoff="2024-06-01", gap_seconds=86400)
    cutoff = pd.Timestamp("2024-06-01", tz="UTC")
    test = frame[frame["label_ts"] >= cutoff]
    train = frame[frame["label_ts"] < cutoff - pd.Timedelta(days=1)]
    assert len(test) == N - 152 and len(train) == 151
    _check(result, fitted, frame, train.sort_values("label_ts"), test.sort_values("label_ts"))


def test_time_split_ties_at_the_boundary_are_all_held_out(tmp_path):
    frame = _trend_frame(3)
    frame["label_ts"] = START + pd.to_timedelta(frame["customer_id"] // 4, unit="D")  # four labels a day
    result, fitted = _train(tmp_path, frame, test_size=0.11)  # 22 rows would split day 44's four labels
    day44 = START + pd.Timedelta(days=44)
    test, train = frame[frame["label_ts"] >= day44], frame[frame["label_ts"] < day44]
    assert len(test) == 24 and len(train) == 176
    _check(result, fitted, frame, train, test)


def test_time_split_names_an_empty_part(tmp_path, capsys):
    with pytest.raises(ValueError, match="hold-out is empty"):
        _train(tmp_path, _trend_frame(), cutoff="2030-01-01T00:00:00Z")
    assert "MLSPEC-FAILURE: time split: the hold-out is empty" in capsys.readouterr().out
    with pytest.raises(ValueError, match="training part is empty"):
        _train(tmp_path, _trend_frame(), test_size=0.5, gap_seconds=400 * 86400)


def test_pipeline_passes_the_label_timestamp_to_the_training_step():
    """The compiled pipeline gives the training step the strategy, the label timestamp column,
    the cutoff and the gap in seconds; a random split passes none of them."""
    import yaml

    from mlspec.generators import kubeflow as kf
    from tests.generators.test_kubeflow import variant

    def timed(data):
        data["training"]["split"] = {"strategy": "time", "cutoff": "2024-06-01", "gap": "7d"}
        data["training"]["split"].pop("stratify", None)

    def train_inputs(ctx):
        art = kf.generate(ctx)[0]
        ir = art.content[0] if art.multi_document else art.content
        found = []

        def walk(node):
            if isinstance(node, dict):
                for name, task in (node.get("tasks") or {}).items():
                    if name.startswith("train-candidate"):
                        found.append(task["inputs"]["parameters"])
                for value in node.values():
                    walk(value)

        walk(yaml.safe_load(yaml.safe_dump(ir)))
        assert found
        return found[0]

    params = train_inputs(variant("churn", timed))
    value = {k: v.get("runtimeValue", {}).get("constant") for k, v in params.items()}
    assert value["split_strategy"] == "time" and value["cutoff"] == "2024-06-01" and value["gap_seconds"] == 7 * 86400
    assert value["timestamp"] == "event_timestamp"
    plain = train_inputs(variant("churn", lambda d: None))
    assert "split_strategy" not in plain and "timestamp" not in plain
