"""The sample data files of examples/churn and examples/fraud.

They are written by ``examples/make_sample_data.py``; these tests hold them to the
specs that point at them: the declared columns and types, every data-quality check,
point-in-time joinability within the views' TTLs, learnable labels, and a
deterministic generator.  pandas, pyarrow and scikit-learn are test dependencies only.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mlspec.datafiles import compatible, read_columns
from mlspec.units import parse_duration

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
GENERATOR = EXAMPLES / "make_sample_data.py"
EXAMPLE_NAMES = ("churn", "fraud")

ARROW_TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "unix_timestamp": pa.timestamp("us", tz="UTC"),
}
# What a CSV cell of each declared type must look like.
CSV_CELL = {
    "int64": re.compile(r"-?[0-9]+"),
    "float64": re.compile(r"-?[0-9]+\.[0-9]+"),
    "string": re.compile(r"[^,\"\r\n]+"),
    "unix_timestamp": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"),
}
MAX_FILE_BYTES = 200_000


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_spec(example: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / example / "mlops.yaml").read_text(encoding="utf-8"))


SPECS = {name: load_spec(name) for name in EXAMPLE_NAMES}
FILE_SOURCES = [
    (example, source)
    for example, spec in SPECS.items()
    for source in spec["data"]["sources"]
    if source["type"] == "file"
]
FILE_IDS = [f"{example}/{source['name']}" for example, source in FILE_SOURCES]


def source_path(example: str, source: dict[str, Any], root: Path = EXAMPLES) -> Path:
    return root / example / source["path"]


def read_frame(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """A data file as a DataFrame with timestamps as ``datetime64[us, UTC]``."""
    if path.suffix == ".parquet":
        df = pq.read_table(path).to_pandas()
    else:
        df = pd.read_csv(path, dtype={c: "string" for c, t in columns.items() if t == "string"})
    for name, dtype in columns.items():
        if dtype == "unix_timestamp":
            df[name] = pd.to_datetime(df[name], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    return df


def read_table(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    return pa.Table.from_pandas(pd.read_csv(path, dtype=str, keep_default_na=False), preserve_index=False)


def frame(example: str, name: str, root: Path = EXAMPLES) -> pd.DataFrame:
    source = source_by_name(example, name)
    return read_frame(source_path(example, source, root), source["columns"])


def source_by_name(example: str, name: str) -> dict[str, Any]:
    """The file source named ``name``, or the batch source of a streaming one."""
    for source in SPECS[example]["data"]["sources"]:
        if source["name"] == name:
            return source_by_name(example, source["batch_source"]) if "batch_source" in source else source
    raise KeyError(name)


def duration(text: str) -> pd.Timedelta:
    """A spec duration (``30d``, ``1h``) as a Timedelta."""
    return pd.Timedelta(seconds=parse_duration(text))


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_data", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------
# Columns and types
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("example, source", FILE_SOURCES, ids=FILE_IDS)
def test_file_exists_and_is_small(example: str, source: dict[str, Any]) -> None:
    path = source_path(example, source)
    assert path.is_file(), f"{path} missing: run python examples/make_sample_data.py"
    assert 0 < path.stat().st_size < MAX_FILE_BYTES


@pytest.mark.parametrize("example, source", FILE_SOURCES, ids=FILE_IDS)
def test_columns_and_types_match_spec(example: str, source: dict[str, Any]) -> None:
    path = source_path(example, source)
    declared: dict[str, str] = source["columns"]
    if path.suffix == ".parquet":
        schema = pq.read_schema(path)
        assert schema.names == list(declared)
        assert {f.name: f.type for f in schema} == {c: ARROW_TYPES[t] for c, t in declared.items()}
        assert b"pandas" not in (schema.metadata or {}), "no pandas metadata / index column"
    else:
        raw = path.read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n")
        lines = raw.decode("utf-8").splitlines()
        assert lines[0].split(",") == list(declared)
        for line in lines[1:]:
            cells = line.split(",")
            assert len(cells) == len(declared), line
            for cell, dtype in zip(cells, declared.values()):
                assert CSV_CELL[dtype].fullmatch(cell), (line, dtype)
    # mlspec's own dependency-free reader agrees with the spec
    found = read_columns(path)
    assert list(found) == list(declared)
    assert all(compatible(declared[c], found[c]) for c in declared), found


# --------------------------------------------------------------------------------------
# Data-quality checks, as declared in the specs
# --------------------------------------------------------------------------------------


def failed_check(df: pd.DataFrame, check: dict[str, Any]) -> str | None:
    """Why ``check`` fails on ``df``, or None when it holds."""
    kind = check["type"]
    if kind == "row_count":
        n = len(df)
        if n < check.get("min", 0) or n > check.get("max", float("inf")):
            return f"{n} rows"
    elif kind == "not_null":
        nulls = {c: int(df[c].isna().sum()) for c in check["columns"] if df[c].isna().any()}
        return f"nulls: {nulls}" if nulls else None
    elif kind == "range":
        values = df[check["column"]].dropna()
        if "min" in check and (values < check["min"]).any():
            return f"below min: {values.min()}"
        if "max" in check and (values > check["max"]).any():
            return f"above max: {values.max()}"
    elif kind == "allowed_values":
        extra = set(df[check["column"]].dropna().tolist()) - set(check["values"])
        return f"values outside the list: {sorted(extra)}" if extra else None
    elif kind == "unique":
        dups = int(df.duplicated(subset=check["columns"]).sum())
        return f"{dups} duplicate rows" if dups else None
    else:
        pytest.fail(f"unknown check type {kind!r}: teach failed_check about it")
    return None


@pytest.mark.parametrize("example, source", FILE_SOURCES, ids=FILE_IDS)
def test_declared_checks_hold(example: str, source: dict[str, Any]) -> None:
    df = read_frame(source_path(example, source), source["columns"])
    assert not df.isna().any().any(), "the samples have no nulls at all"
    failures = {check["type"]: why for check in source.get("checks", []) if (why := failed_check(df, check))}
    assert not failures, failures


def test_churn_shapes() -> None:
    customers, transactions, labels = (frame("churn", n) for n in ("customers", "transactions", "labels"))
    assert len(customers) == customers["customer_id"].nunique() == 400
    assert customers["tenure_months"].between(0, 240).all()
    assert (customers["monthly_charges"] > 0).all() and (customers["support_calls"] >= 0).all()
    assert set(customers["plan"]) == {"basic", "standard", "premium"}
    snapshots = customers["event_timestamp"]
    assert snapshots.min() >= pd.Timestamp("2026-09-01", tz="UTC") and snapshots.max() < pd.Timestamp("2026-10-01", tz="UTC")

    assert 2500 <= len(transactions) <= 3500
    assert (transactions["amount"] >= 0).all()
    assert set(transactions["customer_id"]) <= set(customers["customer_id"])
    ts = transactions["event_timestamp"]
    assert ts.min() >= pd.Timestamp("2026-09-01", tz="UTC") and ts.max() < pd.Timestamp("2026-11-01", tz="UTC")

    assert sorted(labels["customer_id"]) == sorted(customers["customer_id"])
    assert set(labels["churned"]) == {0, 1} and 0.2 <= labels["churned"].mean() <= 0.5
    joined = labels.merge(customers, on="customer_id", suffixes=("_label", ""))
    assert (joined["event_timestamp_label"] > joined["event_timestamp"]).all(), "labels come after the features"


def test_fraud_shapes() -> None:
    events, merchants, chargebacks = (frame("fraud", n) for n in ("card_events_log", "merchants", "chargebacks"))
    assert 1200 <= len(events) <= 1800
    assert events["card_id"].nunique() == 200 and events["merchant_id"].nunique() == 40
    assert events["amount"].between(0, 50000).all() and set(events["is_foreign"]) == {0, 1}

    assert len(merchants) == merchants["merchant_id"].nunique() == 40
    assert set(events["merchant_id"]) == set(merchants["merchant_id"])
    assert set(merchants["category"]) <= {"grocery", "travel", "electronics", "fuel", "online"}
    assert merchants["risk_score"].between(0, 1).all()

    assert sorted(chargebacks["card_id"]) == sorted(events["card_id"].unique())
    assert set(chargebacks["is_fraud"]) == {0, 1} and 0.2 <= chargebacks["is_fraud"].mean() <= 0.5
    last_event = events.groupby("card_id")["event_timestamp"].max()
    label_time = chargebacks.set_index("card_id")["event_timestamp"]
    assert (label_time > last_event.reindex(label_time.index)).all(), "labels come after each card's events"
    assert (merchants["updated_at"].max() < events["event_timestamp"].min())


# --------------------------------------------------------------------------------------
# Point-in-time features, as the spec's feature service defines them
# --------------------------------------------------------------------------------------


def feature_table(example: str, root: Path = EXAMPLES) -> tuple[pd.DataFrame, pd.Series]:
    """Per label row: the feature service's features at the label's timestamp, and the label.

    A direct pandas rendering of the spec: a view with ``fields`` is an as-of join (the
    latest row at or before the label time, no older than the view's ``ttl``); a view
    with ``aggregations`` aggregates the rows in ``(label time - window, label time]``.
    Every as-of join must find a row, which checks that the timestamps fit the TTLs.
    """
    spec = SPECS[example]
    training = spec["training"]
    keys = {e["name"]: e["join_key"] for e in spec["features"]["entities"]}
    views = {v["name"]: v for v in spec["features"]["views"]}
    service = next(s for s in spec["features"]["services"] if s["name"] == training["feature_service"])
    label_source = source_by_name(example, training["label"]["source"])
    label_ts = "__label_ts"
    rows = frame(example, label_source["name"], root).rename(columns={label_source["timestamp"]: label_ts})
    rows = rows.reset_index(drop=True)
    rows["__row"] = rows.index

    if example == "fraud":
        # a chargeback names the merchant of the card's last event (the disputed transaction)
        events = frame(example, "card_events_log", root)
        last = rows[["__row", "card_id", label_ts]].merge(events, on="card_id")
        last = last[last["event_timestamp"] <= last[label_ts]].sort_values("event_timestamp")
        disputed = last.groupby("__row")["merchant_id"].last().reindex(rows["__row"]).to_numpy()
        assert (rows["merchant_id"].to_numpy() == disputed).all()

    features = pd.DataFrame(index=rows["__row"])
    for item in service["features"]:
        view_name, _, only = item.partition(":")
        view = views[view_name]
        source = source_by_name(example, view["source"])
        data = frame(example, source["name"], root).rename(columns={source["timestamp"]: "__ts"})
        (key,) = (keys[e] for e in view["entities"])
        if "fields" in view:
            names = [f["name"] for f in view["fields"] if not only or f["name"] == only]
            joined = pd.merge_asof(
                rows.sort_values(label_ts)[["__row", key, label_ts]],
                data.sort_values("__ts")[[key, "__ts", *names]],
                left_on=label_ts,
                right_on="__ts",
                by=key,
                tolerance=duration(view["ttl"]),
                direction="backward",
            ).set_index("__row")
            assert joined[names].notna().all().all(), f"{view_name}: rows outside the {view['ttl']} ttl"
            features[names] = joined[names]
        else:
            pairs = rows[["__row", key, label_ts]].merge(data, on=key)
            for agg in view["aggregations"]:
                age = pairs[label_ts] - pairs["__ts"]
                inside = pairs[(age >= pd.Timedelta(0)) & (age < duration(agg["window"]))]
                values = inside.groupby("__row")[agg["column"]].agg(agg["function"])
                features[agg["name"]] = values.reindex(features.index)
    label = rows.set_index("__row")[training["label"]["column"]]
    return features.fillna(0.0), label


@pytest.fixture(scope="module", params=EXAMPLE_NAMES)
def learning_data(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame, pd.Series]:
    X, y = feature_table(request.param)
    return request.param, X, y


def test_feature_tables_cover_every_label(learning_data: tuple[str, pd.DataFrame, pd.Series]) -> None:
    example, X, y = learning_data
    expected = {"churn": 400, "fraud": 200}[example]
    assert len(X) == len(y) == expected
    if example == "churn":
        assert (X["purchases_30d"] > 0).mean() > 0.8
    else:
        assert (X["txn_count_1h"] >= 1).all(), "every card's burst falls in its 1h window"


def test_labels_are_learnable(learning_data: tuple[str, pd.DataFrame, pd.Series]) -> None:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    example, X, y = learning_data
    split = SPECS[example]["training"]["split"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=split["test_size"], random_state=split["seed"], stratify=y if split["stratify"] else None
    )
    assert 0.2 <= y_test.mean() <= 0.5

    gb = GradientBoostingClassifier(n_estimators=100, max_depth=2, learning_rate=0.1, random_state=0)
    gb_auc = roc_auc_score(y_test, gb.fit(X_train, y_train).predict_proba(X_test)[:, 1])
    rf = RandomForestClassifier(n_estimators=100, max_depth=6, min_samples_leaf=2, random_state=0, n_jobs=1)
    rf.fit(X_train, y_train)
    rf_f1 = f1_score(y_test, rf.predict(X_test))
    rf_auc = roc_auc_score(y_test, rf.predict_proba(X_test)[:, 1])

    assert 0.8 <= gb_auc < 0.98, f"GradientBoosting ROC AUC {gb_auc:.3f}"
    assert 0.6 <= rf_f1, f"RandomForest F1 {rf_f1:.3f}"
    assert rf_auc < 0.98, f"RandomForest ROC AUC {rf_auc:.3f}: too easy"
    metric = SPECS[example]["training"]["metric"]
    reached = {"roc_auc": gb_auc if example == "churn" else rf_auc, "f1": rf_f1}[metric["name"]]
    assert reached >= metric["threshold"] + 0.05, f"{metric['name']} {reached:.3f} vs threshold {metric['threshold']}"


# --------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------


def test_regeneration_is_deterministic(tmp_path: Path) -> None:
    generator = load_generator()
    counts = generator.main(tmp_path / "a")
    generator.main(tmp_path / "b")
    assert counts["churn"]["customers"] == 400 and counts["fraud"]["chargebacks"] == 200
    for example, source in FILE_SOURCES:
        a, b = source_path(example, source, tmp_path / "a"), source_path(example, source, tmp_path / "b")
        assert a.read_bytes() == b.read_bytes(), f"{example}/{source['path']} differs between two runs"
        committed = source_path(example, source)
        assert read_table(a).equals(read_table(committed)), f"{committed} is stale: rerun make_sample_data.py"
        if committed.suffix == ".csv":
            assert a.read_bytes() == committed.read_bytes()
    # only the six files are written
    written = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert written == sorted(f"{example}/{source['path']}" for example, source in FILE_SOURCES)


def test_regenerated_data_yields_the_same_features(tmp_path: Path) -> None:
    load_generator().main(tmp_path)
    for example in EXAMPLE_NAMES:
        X_new, y_new = feature_table(example, tmp_path)
        X_old, y_old = feature_table(example)
        pd.testing.assert_frame_equal(X_new, X_old)
        pd.testing.assert_series_equal(y_new, y_old)
        assert np.isfinite(X_new.to_numpy()).all()
