"""An independent, row-by-row point-in-time computation from the sample files.

Plain Python over the rows of each file (pyarrow only reads them): no pandas joins, no
Feast, nothing of mlspec's Feast target.  Times are integer microseconds since the epoch.

* a field at time ``T``: the latest row (by timestamp, then created timestamp, then file
  order) with ``ts <= T``; with ``ttl`` > 0 nothing when ``T - ts > ttl`` (historical reads);
* an aggregate at ``T``: the function over the non-null values of the rows in the window
  its ``closed`` names -- by default ``T - window <= ts < T`` (strictly before ``T``) --
  count 0 and every other function null when there are none;
  null (Feast has no row) when the entity is not in the source at all;
* online, after materializing ``[start, end]``: fields are the latest row in that range
  (Feast's SQLite online store does not apply ``ttl`` when reading), aggregates are as of
  ``end``.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import statistics
from pathlib import Path

US = 1_000_000


def _micros(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value * US)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def read_rows(resolved, source) -> list[dict]:
    """The rows of a local file source, timestamps in microseconds, numbers typed by the spec."""
    path = Path(resolved.base_dir) / source.path
    ts_cols = {c for c in (source.timestamp, source.created_timestamp) if c} | \
        {c for c, t in source.columns.items() if t == "unix_timestamp"}
    if source.file_format == "csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        kinds = dict(source.columns)
        for row in rows:
            for column, value in row.items():
                kind = kinds.get(column, "string")
                if value == "":
                    row[column] = None
                elif kind in ("int32", "int64") and column not in ts_cols:
                    row[column] = int(value)
                elif kind in ("float32", "float64"):
                    row[column] = float(value)
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    for row in rows:
        for column in ts_cols:
            if column in row:
                row[column] = _micros(row[column])
    return rows


def batch_of(spec, view):
    source = spec.source(view.source)
    return spec.source(source.batch_source) if source.type in ("kafka", "push") else source


def label_rows(resolved) -> list[dict]:
    spec = resolved.spec
    return read_rows(resolved, spec.source(spec.training.label.source))


def entity_keys(spec) -> list[str]:
    keys: list[str] = []
    for view_name in dict.fromkeys(v for v, _ in spec.served_features(spec.training.feature_service)):
        for e in spec.view(view_name).entities:
            if spec.entity(e).join_key not in keys:
                keys.append(spec.entity(e).join_key)
    return keys


def write_entity_frame(labels: list[dict], keys: list[str], ts: str, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {k: [r[k] for r in labels] for k in keys}
    columns[ts] = pa.array([r[ts] for r in labels], type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table(columns), path)


def _aggregate(values: list, function: str):
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if function == "count":
        return len(present)
    if function == "last":
        return values[-1] if values else None
    if not present:
        return None
    if function == "sum":
        return math.fsum(present)
    if function == "mean":
        return math.fsum(present) / len(present)
    if function == "min":
        return min(present)
    if function == "max":
        return max(present)
    if function == "std":
        return statistics.stdev(present) if len(present) > 1 else None
    raise ValueError(function)


class Oracle:
    """Feature values of one resolved spec, computed row by row."""

    def __init__(self, resolved):
        from mlspec import units

        self.spec = resolved.spec
        self.units = units
        self.rows: dict[str, list[dict]] = {}
        for view in self.spec.features.views:
            batch = batch_of(self.spec, view)
            rows = read_rows(resolved, batch)
            self.rows[view.name] = [dict(r, __order=i) for i, r in enumerate(rows)]

    def _matching(self, view, key: dict) -> list[dict]:
        keys = [self.spec.entity(e).join_key for e in view.entities]
        return [r for r in self.rows[view.name] if all(r[k] == key[k] for k in keys)]

    def _ts(self, view) -> tuple[str, str | None]:
        batch = batch_of(self.spec, view)
        return (batch.timestamp or self.spec.source(view.source).timestamp,
                batch.created_timestamp or self.spec.source(view.source).created_timestamp)

    def value(self, view_name: str, feature: str, key: dict, at: int, *, online_from: int | None = None):
        view = self.spec.view(view_name)
        ts, created = self._ts(view)
        rows = self._matching(view, key)
        agg = next((a for a in view.aggregations if a.output_name == feature), None)
        if agg is None:
            lower = online_from if online_from is not None else -math.inf
            candidates = [r for r in rows if r[ts] is not None and lower <= r[ts] <= at]
            if not candidates:
                return None
            best = max(candidates, key=lambda r: (r[ts], r.get(created) or 0 if created else 0, r["__order"]))
            ttl = self.units.parse_duration(view.ttl) * US
            historical_ttl = online_from is None or bool(view.aggregations)  # prepared views carry the ttl
            if ttl and historical_ttl and at - best[ts] > ttl:
                return None
            return best[feature]
        if not rows:  # the entity is not in the source: Feast has no row for it
            return None
        window = self.units.parse_duration(agg.window) * US
        after = (lambda t: t >= at - window) if agg.closed in ("left", "both") else (lambda t: t > at - window)
        before = (lambda t: t <= at) if agg.closed in ("right", "both") else (lambda t: t < at)
        inside = sorted((r for r in rows if r[ts] is not None and after(r[ts]) and before(r[ts])),
                        key=lambda r: (r[ts], r["__order"]))
        return _aggregate([r[agg.column] for r in inside], agg.function)


def close(a, b) -> bool:
    if a is None or b is None:
        return (a is None or (isinstance(a, float) and math.isnan(a))) and \
            (b is None or (isinstance(b, float) and math.isnan(b)))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b
