"""The leakage guard for window aggregations (issue 7): by default (``closed: left``) a label
at time t sees the rows in ``[t - window, t)`` -- never a source row at t itself.

Both implementations -- the pipeline's ``join_view_aggregations`` and the Feast prepared
tables (``feast_prepare.prepare_tables`` read as Feast reads them: the latest row at or
before the label time) -- are recomputed here row by row with a plain loop, on data whose
source rows sit exactly on label times and exactly one window before them.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from mlspec.generators import feast_prepare
from mlspec.generators import kubeflow_components as steps

FUNCTIONS = ("sum", "count", "mean", "min", "max", "std", "last")
WINDOW = 3600  # seconds


def _artifact(path: Path) -> SimpleNamespace:
    return SimpleNamespace(path=str(path), metadata={})


def _ts(seconds: list[int]) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True)).dt.as_unit("us")


def _data(seed: int = 7):
    """Source rows at whole minutes.  60 label times sit on a source row that also has a row
    exactly one window before it (both edges are exercised); 80 sit between rows."""
    rnd = random.Random(seed)
    base = 1_767_225_600  # 2026-01-01
    src_k, src_t, src_v = [], [], []
    for _ in range(400):
        src_k.append(rnd.randint(1, 6))
        src_t.append(base + 60 * rnd.randint(0, 600))
        src_v.append(round(rnd.uniform(-5, 50), 3))
    label_k, label_t = [], []
    for i in rnd.sample(range(len(src_t)), 60):  # labels at a source row's own time
        label_k.append(src_k[i])
        label_t.append(src_t[i])
        src_k.append(src_k[i])  # ... and a row exactly one window earlier
        src_t.append(src_t[i] - WINDOW)
        src_v.append(round(rnd.uniform(-5, 50), 3))
    for i in rnd.sample(range(400), 40):  # labels between rows: just after one, just after one leaves the window
        label_k += [src_k[i], src_k[i]]
        label_t += [src_t[i] + 30, src_t[i] + WINDOW + 30]
    label_k += [9, 1]  # a key with no rows at all; a time before every row
    label_t += [base + 3000, base - 10 * WINDOW]
    source = pd.DataFrame({"k": src_k, "ts": _ts(src_t), "amount": src_v})
    labels = pd.DataFrame({"k": label_k, "t": _ts(label_t), "y": range(len(label_k))})
    return source, labels


def _inside(closed: str, at: pd.Timestamp, ts: pd.Timestamp) -> bool:
    start = at - pd.Timedelta(seconds=WINDOW)
    after = ts >= start if closed in ("left", "both") else ts > start
    before = ts <= at if closed in ("right", "both") else ts < at
    return bool(after and before)


def _by_hand(source: pd.DataFrame, key: int, at: pd.Timestamp, closed: str) -> dict:
    rows = [(ts, v) for k, ts, v in zip(source.k, source.ts, source.amount) if k == key and _inside(closed, at, ts)]
    rows.sort(key=lambda r: r[0])  # stable: ties keep source order, as both implementations
    values = [v for _, v in rows]
    n = len(values)
    mean = sum(values) / n if n else math.nan
    return {
        "sum": sum(values) if n else math.nan, "count": n, "mean": mean,
        "min": min(values) if n else math.nan, "max": max(values) if n else math.nan,
        "std": math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan,
        "last": values[-1] if n else math.nan,
    }


def _aggs(closed: str) -> list[dict]:
    return [{"column": "amount", "function": f, "name": f"a_{f}", "window_seconds": WINDOW, "closed": closed}
            for f in FUNCTIONS]


def _same(got: float, want: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return abs(got - want) <= 1e-9 * max(1.0, abs(want))


def _pipeline(tmp_path: Path, source: pd.DataFrame, labels: pd.DataFrame, closed: str) -> pd.DataFrame:
    source.to_parquet(tmp_path / "s.parquet", index=False)
    labels.to_parquet(tmp_path / "e.parquet", index=False)
    out = _artifact(tmp_path / "o.parquet")
    steps.join_view_aggregations(view="v", keys='["k"]', entity_timestamp="t", source_timestamp="ts",
                                 aggregations=json.dumps(_aggs(closed)), source_name="s", source_sha256="0",
                                 upstream="{}", entity=_artifact(tmp_path / "e.parquet"),
                                 source=_artifact(tmp_path / "s.parquet"), joined=out)
    return pd.read_parquet(out.path)


@pytest.mark.parametrize("closed", ["left", "right", "both", "neither"])
def test_the_pipeline_join_agrees_with_a_row_by_row_recomputation(tmp_path, closed):
    source, labels = _data()
    got = _pipeline(tmp_path, source, labels, closed)
    assert got["y"].tolist() == labels["y"].tolist()  # every label row, in order
    for row in got.itertuples(index=False):
        want = _by_hand(source, row.k, row.t, closed)
        for f in FUNCTIONS:
            assert _same(float(getattr(row, f"a_{f}")), float(want[f])), (closed, row.k, row.t, f)


def test_by_default_a_label_never_sees_the_row_at_its_own_time(tmp_path):
    source, labels = _data()
    left = _pipeline(tmp_path, source, labels, "left")
    right = _pipeline(tmp_path, source, labels, "right")
    on_own_row = labels["k"].isin(source["k"]) & labels["t"].isin(source["ts"])
    assert on_own_row.sum() >= 60
    # a label on a source row: with the right edge closed it would count, by default it does not
    own = source.groupby(["k", "ts"]).size()
    for i in labels.index[on_own_row]:
        k, t = labels.at[i, "k"], labels.at[i, "t"]
        rows_at_t = int(own.get((k, t), 0))
        assert right.at[i, "a_count"] - left.at[i, "a_count"] == rows_at_t - int(own.get((k, t - pd.Timedelta(seconds=WINDOW)), 0))
        history = source[(source.k == k) & (source.ts < t) & (source.ts >= t - pd.Timedelta(seconds=WINDOW))]
        assert left.at[i, "a_count"] == len(history)  # only rows strictly before the label


@pytest.mark.parametrize("closed", ["left", "right", "both", "neither"])
def test_the_feast_prepared_table_read_as_of_each_label_agrees_row_by_row(tmp_path, closed):
    source, labels = _data()
    source.assign(ts=source.ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(tmp_path / "s.csv", index=False)
    entry = {"view": "v", "path": "s.csv", "format": "csv", "timestamp": "ts", "created_timestamp": "",
             "timestamp_columns": ["ts"], "keys": ["k"], "key_dtypes": ["int64"], "fields": [], "field_dtypes": [],
             "ttl_seconds": 0, "aggregations": _aggs(closed), "output": str(tmp_path / "v.parquet")}
    feast_prepare.prepare_tables(json.dumps([entry]), str(tmp_path))
    prepared = pd.read_parquet(tmp_path / "v.parquet")
    prepared["k"] = prepared["k"].astype("int64")
    # Feast's point-in-time read: the latest prepared row at or before the label time, per key
    at = labels.rename(columns={"t": "ts"}).sort_values("ts")
    read = pd.merge_asof(at, prepared.sort_values("ts"), on="ts", by="k").sort_values("y")
    for row in read.itertuples(index=False):
        want = _by_hand(source, row.k, row.ts, closed)
        for f in FUNCTIONS:
            value = float(getattr(row, f"a_{f}"))
            if f == "count" and math.isnan(value):  # a key with no rows has no prepared row: the step fills 0
                value = 0.0
            assert _same(value, float(want[f])), (closed, row.k, row.ts, f)
