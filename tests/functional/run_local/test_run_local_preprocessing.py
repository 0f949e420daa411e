"""``mlspec run --local`` of a regression with a string categorical feature (issue 7, item 15 and
"preprocessing"): one real kfp.local run, checked against an independent computation -- naive
point-in-time features and the same scikit-learn Pipeline refitted here on the same split -- and
the registered model.joblib predicting raw rows, unseen categories included."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from mlspec.compiler import context
from mlspec.generators import kubeflow as kf
from mlspec.generators import kubeflow_pipeline
from mlspec.project import resolve_paths
from mlspec.run_local import run_local

ROOT = Path(__file__).resolve().parents[3]

SPEC = """\
name: store-demand
owner: ml@acme.example
data:
  sources:
    - name: stores
      type: file
      path: data/stores.csv
      timestamp: event_timestamp
      columns: {store_id: int64, store_type: string, size_sqm: float64, event_timestamp: unix_timestamp}
      checks:
        - {type: not_null, columns: [store_id, store_type]}
    - name: demand
      type: file
      path: data/demand.csv
      timestamp: event_timestamp
      columns: {store_id: int64, units: float64, event_timestamp: unix_timestamp}
features:
  feature_store: false
  entities:
    - {name: store, join_key: store_id}
  views:
    - name: store_profile
      source: stores
      entities: [store]
      fields:
        - {name: store_type, dtype: string}
        - {name: size_sqm, dtype: float64}
  services:
    - {name: demand_model, features: [store_profile]}
training:
  label: {source: demand, column: units}
  feature_service: demand_model
  estimator: sklearn.linear_model.Ridge
  search:
    parameters:
      alpha: [0.1, 30.0]
  metric: {name: rmse, goal: minimize, threshold: 10}
  split: {test_size: 0.25, seed: 7}
  preprocessing: {numeric: standard}
serving:
  runtime: kserve
  model_format: sklearn
  champion: {uri: s3://acme-ml-dev/models/store-demand/v1}
"""
TYPES = {"mall": 40.0, "street": 10.0, "outlet": -20.0}


def write_project(folder: Path) -> None:
    """60 stores, each profiled on 1 January and a third of them re-profiled (new type and size)
    on 1 March; four demand labels per store, two before and two after the re-profiling."""
    rng = np.random.default_rng(2024)
    stores, demand = [], []
    for store in range(1, 61):
        kind, size = rng.choice(list(TYPES)), float(rng.uniform(80, 600))
        stores.append({"store_id": store, "store_type": kind, "size_sqm": round(size, 1),
                       "event_timestamp": "2024-01-01T00:00:00Z"})
        profile = [("2024-01-01", kind, round(size, 1))]
        if store % 3 == 0:
            kind, size = rng.choice(list(TYPES)), float(rng.uniform(80, 600))
            stores.append({"store_id": store, "store_type": kind, "size_sqm": round(size, 1),
                           "event_timestamp": "2024-03-01T00:00:00Z"})
            profile.append(("2024-03-01", kind, round(size, 1)))
        for day in ("2024-02-01", "2024-02-15", "2024-03-15", "2024-04-01"):
            _, k, s = [p for p in profile if p[0] <= day][-1]
            units = 0.1 * s + TYPES[k] + float(rng.normal(scale=3.0))
            demand.append({"store_id": store, "units": round(units, 3), "event_timestamp": f"{day}T12:00:00Z"})
    (folder / "data").mkdir(parents=True)
    pd.DataFrame(stores).to_csv(folder / "data" / "stores.csv", index=False)
    pd.DataFrame(demand).to_csv(folder / "data" / "demand.csv", index=False)
    (folder / "mlops.yaml").write_text(SPEC)


def naive_table(folder: Path) -> pd.DataFrame:
    """The training table row by row: each label with its store's latest profile at or before it."""
    stores = pd.read_csv(folder / "data" / "stores.csv")
    demand = pd.read_csv(folder / "data" / "demand.csv")
    for frame in (stores, demand):
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    rows = []
    for _, label in demand.iterrows():
        seen = stores[(stores.store_id == label.store_id) & (stores.event_timestamp <= label.event_timestamp)]
        latest = seen.sort_values("event_timestamp", kind="mergesort").iloc[-1]
        rows.append({"store_type": latest.store_type, "size_sqm": float(latest.size_sqm), "units": label.units})
    return pd.DataFrame(rows)


def oracle_pipeline(alpha: float, seed: int):
    """The Pipeline the spec asks for, written out here: store_type one-hot (unseen: zeros),
    size_sqm median-imputed (Ridge rejects NaN) and standardised, then Ridge."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return Pipeline([
        ("preprocess", ColumnTransformer([
            ("store_type", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [0]),
            ("size_sqm", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                   ("scale", StandardScaler())]), [1]),
        ], sparse_threshold=0.0)),
        ("model", Ridge(alpha=alpha, random_state=seed)),
    ])


@pytest.fixture(scope="module")
def the_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store-demand")
    write_project(folder)
    result = resolve_paths([folder / "mlops.yaml"], ["dev"], ROOT / "environments")
    assert not result.errors, result.errors
    resolved = result.resolved[0]
    ctx = context(resolved, kf.target)
    out = io.StringIO()
    code = run_local(ctx, resolved.base_dir, folder / "out", out)
    return folder, ctx, code, out.getvalue()


def _version_dir(folder: Path) -> Path:
    latest = json.loads((folder / "out" / "registry" / "store-demand" / "latest.json").read_text())
    return Path(latest["uri"])


@pytest.mark.slow
def test_a_string_feature_trains_passes_its_gate_and_matches_an_independent_refit(the_run):
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split

    folder, ctx, code, output = the_run
    assert code == 0, output
    assert "quality gate passed" in output
    version_dir = _version_dir(folder)
    metrics = json.loads((version_dir / "metrics.json").read_text())
    chosen = json.loads((version_dir / "params.json").read_text())

    table = naive_table(folder)
    X, y = table[["store_type", "size_sqm"]], table["units"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=7)
    candidates = kubeflow_pipeline.candidates(ctx.spec.training)
    scores = [math.sqrt(mean_squared_error(y_test, oracle_pipeline(c["alpha"], 7).fit(X_train, y_train).predict(X_test)))
              for c in candidates]
    best = min(range(len(scores)), key=lambda i: (scores[i], i))
    assert chosen == candidates[best]
    got = {json.dumps(c["params"], sort_keys=True): c["score"] for c in metrics["candidates"]}
    for cand, score in zip(candidates, scores):
        assert got[json.dumps(cand, sort_keys=True)] == pytest.approx(score, abs=1e-9)
    assert metrics["score"] == pytest.approx(scores[best], abs=1e-9) and metrics["score"] <= 10
    assert (metrics["n_train"], metrics["n_test"]) == (len(X_train), len(X_test))

    # the registered model is that Pipeline: the same predictions as the refit on the hold-out
    model = joblib.load(version_dir / "model" / "model.joblib")
    assert list(model.named_steps) == ["preprocess", "model"]
    assert list(model.feature_names_in_) == ["store_type", "size_sqm"]
    refit = oracle_pipeline(candidates[best]["alpha"], 7).fit(X_train, y_train)
    np.testing.assert_allclose(model.predict(X_test), refit.predict(X_test), rtol=1e-9)
    lineage = json.loads((version_dir / "lineage.json").read_text())
    assert lineage["preprocessing"] == [{"name": "store_type", "categorical": "one_hot"},
                                        {"name": "size_sqm", "numeric": "standard", "impute": "auto"}]


@pytest.mark.slow
def test_the_registered_model_predicts_raw_rows_with_unseen_categories(the_run):
    folder, _, code, output = the_run
    assert code == 0, output
    model = joblib.load(_version_dir(folder) / "model" / "model.joblib")
    rows = pd.DataFrame({"store_type": ["kiosk", "mall", None, "street"], "size_sqm": [250.0, 250.0, 250.0, np.nan]})
    predicted = model.predict(rows)
    assert predicted.shape == (4,) and np.isfinite(predicted).all()
    # a mall is predicted well above an unseen type of the same size (the mall effect is +40 units)
    assert predicted[1] - predicted[0] > 20
