"""The tables mlspec prepares for Feast: windowed aggregations and CSV sources.

Self-contained on purpose (every import inside the function, no module-level helpers):
the Feast target ships :func:`prepare_tables`' source text as
``deploy/<env>/<spec>/feast/jobs/prepare.py``, which the materialization schedule runs in
the Feast server pod before ``feast materialize-incremental``; ``mlspec features --local``
and the Feast training step run the same function.  It needs pandas, numpy and pyarrow
(every Feast installation has them) and fsspec for URIs.

Why a prepared table, not a ``BatchFeatureView`` with ``Aggregation`` (checked against
real Feast 0.67.0, see ``generators/feast.py``): Feast's local compute engine refuses
time-windowed aggregations, its Spark engine aggregates over tumbling windows of the
*first* aggregation's size only, and neither gives what the training pipeline computes --
the function over the rows in ``[t - window, t)`` at each query time ``t`` (by default;
the aggregation's ``closed`` names the edges).  So mlspec computes that itself, exactly as
the pipeline's ``join_view_aggregations`` does, at every time the value can change, and
Feast serves the result as a plain ``FeatureView``:

* an aggregate only changes when ``t`` passes an event time ``e`` (``e`` enters: at ``e``
  when the window's right edge is closed, at ``e + 1µs`` when it is open, as for the
  default ``[t - w, t)``) or ``e + w`` (``e`` leaves: at ``e + w + 1µs`` when the left edge
  is closed, at ``e + w`` when it is open); a field with ``ttl`` only changes at ``e`` or
  when the latest row goes stale at ``e + ttl + 1µs``.  Times are whole microseconds, as
  the pipeline's ingest step stores them.  The prepared table has one row per entity and
  such *change point* ``c``, holding the values as of ``c``;
* so the latest prepared row at or before any time ``t`` holds exactly the values as of
  ``t``: Feast's point-in-time join (``get_historical_features``, view ``ttl`` 0) and its
  materialization (latest row up to the end time) both return what the pipeline computes.

No rows in a window: ``count`` is 0, every other function null (as the pipeline).  Every
entity also gets a row at 1970-01-01 (all windows empty): Feast 0.67.0's file offline store
*drops* an entity row from ``get_historical_features`` when all of a view's rows for it
are later than the row's time (``dask.py`` ``_filter_ttl`` filters instead of masking), and
that row keeps it.  An entity with no rows at all has no prepared row: Feast returns null
(the training step fills counts with 0, as the pipeline does).

Plan entries (JSON list, one per view; made by ``generators.feast_repo.prepare_plan``)::

    {"view", "path", "format" ("parquet"|"csv"), "timestamp", "created_timestamp",
     "timestamp_columns", "keys", "key_dtypes", "fields", "field_dtypes", "ttl_seconds",
     "aggregations": [{"column", "function", "name", "window_seconds", "closed"}], "output"}

Relative ``path``s resolve against ``data_root`` (as the pipeline's ingest step does);
``outputs`` (JSON object view -> path) overrides where each table is written.
"""


def prepare_tables(plan: str, data_root: str, outputs: str = "{}") -> str:
    """Write every prepared table of ``plan``; returns JSON ``{view: rows written}``."""
    import io
    import json
    import os

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    def resolve(root: str, rel: str) -> str:  # as kubeflow_components.ingest_file
        target = rel if ("://" in rel or rel.startswith("/")) else root.rstrip("/") + "/" + rel
        if target.startswith("file://"):
            target = target[len("file://"):]
        if target.startswith("minio://"):
            target = "s3://" + target[len("minio://"):]
        return target

    def read(location: str, fmt: str) -> "pd.DataFrame":
        if "://" in location:
            import fsspec

            with fsspec.open(location, "rb") as handle:
                raw = handle.read()
        else:
            with open(location, "rb") as handle:
                raw = handle.read()
        return pd.read_csv(io.BytesIO(raw)) if fmt == "csv" else pd.read_parquet(io.BytesIO(raw))

    def write(frame: "pd.DataFrame", location: str) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if "://" in location:
            import fsspec

            with fsspec.open(location, "wb") as handle:
                pq.write_table(table, handle)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(location)), exist_ok=True)
            partial = location + ".partial"
            pq.write_table(table, partial)
            os.replace(partial, location)

    def timestamps(values: "pd.Series") -> "pd.Series":  # as kubeflow_components.ingest_file
        if pd.api.types.is_numeric_dtype(values):
            values = pd.to_datetime(values, unit="s", utc=True)
        else:
            values = pd.to_datetime(values, utc=True, format="ISO8601")
        return values.dt.as_unit("us")

    def cast(values: "pd.Series", dtype: str) -> "pd.Series":
        nullable = {"int32": "Int32", "int64": "Int64", "float32": "float32", "float64": "float64",
                    "string": "string", "bool": "boolean"}
        if dtype == "unix_timestamp":
            return timestamps(values)
        return values.astype(nullable[dtype]) if dtype in nullable else values

    def aggregate(values: "np.ndarray", function: str):
        present = values[~pd.isna(values)] if values.dtype == object else values[~np.isnan(values)]
        if function == "count":
            return int(len(present))
        if function == "last":
            return values[-1] if len(values) else None
        if not len(present):
            return None
        if function == "sum":
            return float(pd.Series(present).sum())
        if function == "mean":
            return float(pd.Series(present).mean())
        if function == "min":
            return float(present.min())
        if function == "max":
            return float(present.max())
        if function == "std":
            return float(pd.Series(present).std()) if len(present) > 1 else None
        raise ValueError(f"unknown aggregation function {function!r}")

    def as_of_table(rows: "pd.DataFrame", entry: dict) -> "pd.DataFrame":
        keys, ts = entry["keys"], entry["timestamp"]
        created = entry.get("created_timestamp") or None
        fields, aggs = entry["fields"], entry["aggregations"]
        ttl_us = int(entry["ttl_seconds"]) * 1_000_000
        order = [ts] + ([created] if created else [])
        rows = rows.sort_values(order, kind="mergesort")
        out: dict[str, list] = {k: [] for k in keys}
        out[ts] = []
        for name in fields + [a["name"] for a in aggs]:
            out[name] = []
        # per aggregation: its window in microseconds, whether its left and its right edge count
        windows = [(a, int(a["window_seconds"]) * 1_000_000, a["closed"] in ("left", "both"),
                    a["closed"] in ("right", "both")) for a in aggs]
        for key_values, group in rows.groupby(keys, sort=True, dropna=True):
            key_values = key_values if isinstance(key_values, tuple) else (key_values,)
            times = group[ts].to_numpy(dtype="datetime64[us]").astype("int64")
            points = set(times.tolist()) | {0}  # 1970-01-01: every entity has a row before its first event
            for _, window_us, left_closed, right_closed in windows:
                points.update((times + (0 if right_closed else 1)).tolist())
                points.update((times + window_us + (1 if left_closed else 0)).tolist())
            if fields and ttl_us > 0:
                points.update((times + ttl_us + 1).tolist())
            columns = {c: group[c].to_numpy() for c in {a["column"] for a in aggs} | set(fields)}
            for point in sorted(points):
                hi = int(np.searchsorted(times, point, side="right"))
                for k, v in zip(keys, key_values):
                    out[k].append(v)
                out[ts].append(point)
                for name in fields:
                    fresh = hi > 0 and (ttl_us == 0 or point - times[hi - 1] <= ttl_us)
                    out[name].append(columns[name][hi - 1] if fresh else None)
                for a, window_us, left_closed, right_closed in windows:
                    lo = int(np.searchsorted(times, point - window_us, side="left" if left_closed else "right"))
                    end = hi if right_closed else int(np.searchsorted(times, point, side="left"))
                    window = columns[a["column"]][lo:end]
                    if a["function"] != "count" and window.dtype != object:
                        window = window.astype("float64")
                    out[a["name"]].append(aggregate(window, a["function"]))
        frame = pd.DataFrame(out)
        frame[ts] = pd.to_datetime(frame[ts].astype("int64"), unit="us", utc=True).dt.as_unit("us")
        for a in aggs:
            if a["function"] == "count":
                frame[a["name"]] = frame[a["name"]].astype("int64")
            elif a["function"] != "last":
                frame[a["name"]] = frame[a["name"]].astype("float64")
        return frame

    entries = json.loads(plan)
    targets = json.loads(outputs)
    written: dict[str, int] = {}
    for entry in entries:
        location = resolve(data_root, entry["path"])
        frame = read(location, entry["format"])
        for column in entry["timestamp_columns"]:
            if column in frame.columns:
                frame[column] = timestamps(frame[column])
        keys, ts = entry["keys"], entry["timestamp"]
        created = entry.get("created_timestamp") or None
        wanted = list(dict.fromkeys(keys + [ts] + ([created] if created else []) + entry["fields"]
                                    + [a["column"] for a in entry["aggregations"]]))
        rows = frame[wanted].dropna(subset=keys + [ts]).reset_index(drop=True)
        for key, dtype in zip(keys, entry["key_dtypes"]):
            rows[key] = cast(rows[key], dtype)
        if entry["aggregations"]:
            table = as_of_table(rows, entry)
        else:  # a CSV source read as it is: Feast's FileSource reads Parquet only
            table = rows[list(dict.fromkeys(keys + [ts] + ([created] if created else []) + entry["fields"]))]
        for name, dtype in zip(entry["fields"], entry["field_dtypes"]):
            table[name] = cast(table[name], dtype)
        for key, dtype in zip(keys, entry["key_dtypes"]):
            table[key] = cast(table[key], dtype)
        table = table.sort_values(keys + [ts], kind="mergesort").reset_index(drop=True)
        write(table, targets.get(entry["view"], entry["output"]))
        written[entry["view"]] = int(len(table))
        print(f"prepared {entry['view']}: {len(table)} rows from {location}", flush=True)
    return json.dumps(written, sort_keys=True)


def localize_repo(files: str, roots: str, feature_store_yaml: str) -> str:
    """The generated repository made to run elsewhere (``mlspec features --local``, the
    training step, the tests): every ``path=`` string of a call in ``repo/features.py``
    that starts with a compiled root (``roots``: JSON ``{compiled root: local root}``)
    is moved below the local root, and ``repo/feature_store.yaml`` is replaced.  Nothing
    else of the module changes (it is parsed and unparsed with ``ast``; comments go)."""
    import ast
    import json

    mapping = sorted(((old.rstrip("/"), new.rstrip("/")) for old, new in json.loads(roots).items()),
                     key=lambda pair: -len(pair[0]))

    def move(path: str) -> str:
        for old, new in mapping:
            if path.startswith(old + "/"):
                return new + path[len(old):]
        return path

    class Paths(ast.NodeTransformer):
        def visit_Call(self, node):
            self.generic_visit(node)
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "path" and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    keyword.value = ast.copy_location(ast.Constant(move(value.value)), value)
            return node

    out = json.loads(files)
    module = next(name for name in out if name.startswith("repo/") and name.endswith(".py"))
    tree = Paths().visit(ast.parse(out[module]))
    out[module] = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    out["repo/feature_store.yaml"] = feature_store_yaml
    return json.dumps(out, sort_keys=True)
