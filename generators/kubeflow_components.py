"""The step bodies of mlspec's Kubeflow training pipeline (KFP lightweight components).

Every function here is turned into a KFP component by :mod:`mlspec.generators.kubeflow`
(``dsl.component(func, base_image=..., packages_to_install=...)``).  KFP ships each
function's *source text* to the step's container and runs it there, so every function
is self-contained: all imports are inside the body, no module-level helpers are used,
and helpers a step needs are nested functions.  Editing a function changes the compiled
pipeline (its source is embedded in the IR), which is intended: the IR says exactly what
runs.

Conventions shared by the steps (documented once here):

* Datasets are Parquet files at ``dataset.path``; timestamps are ``datetime64[us, UTC]``.
* A failing check raises with a message that starts with a line
  ``MLSPEC-FAILURE: <message>``, printed first, so ``mlspec run --local`` can show the
  message rather than a traceback.  ``select_best`` prints ``MLSPEC-CANDIDATES: <json>``.
* Credentials never appear in arguments: warehouse steps read them from environment
  variables or from a Kubernetes Secret mounted at ``/var/run/secrets/mlspec/<source>``
  (the mount is declared in the pipeline's platform spec).

:func:`trigger_run` is not a pipeline step: it is the stdlib-only script that the
schedule's CronJob runs to start a run of the committed PipelineVersion.
"""

# No ``from __future__ import annotations`` here: KFP reads the annotations at run time.
from typing import List, Optional

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

# ----------------------------------------------------------------------------------------
# ingest
# ----------------------------------------------------------------------------------------


def ingest_file(
    source: str,
    data_root: str,
    path: str,
    file_format: str,
    timestamp_columns: str,
    declared_columns: str,
    dataset: Output[Dataset],
) -> str:
    """Read a Parquet/CSV file (relative paths resolve against ``data_root``; URIs are
    read as they are, through fsspec), normalise timestamps to UTC and write Parquet.
    Returns the sha256 of the bytes read (the data snapshot)."""
    import hashlib
    import io
    import json

    import pandas as pd

    def resolve(root: str, rel: str) -> str:
        if "://" in rel or rel.startswith("/"):
            target = rel
        else:
            target = root.rstrip("/") + "/" + rel
        if target.startswith("file://"):
            target = target[len("file://"):]
        if target.startswith("minio://"):  # KFP's name for MinIO; s3fs speaks S3 to it
            target = "s3://" + target[len("minio://"):]
        return target

    location = resolve(data_root, path)
    if "://" in location:
        import fsspec

        with fsspec.open(location, "rb") as handle:
            raw = handle.read()
    else:
        with open(location, "rb") as handle:
            raw = handle.read()
    digest = hashlib.sha256(raw).hexdigest()
    if file_format == "csv":
        frame = pd.read_csv(io.BytesIO(raw))
    else:
        frame = pd.read_parquet(io.BytesIO(raw))

    declared = json.loads(declared_columns)
    missing = [c for c in declared if c not in frame.columns]
    if missing:
        message = f"source '{source}' ({location}) lacks declared column(s): {', '.join(missing)}"
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)
    for column in json.loads(timestamp_columns):
        if column not in frame.columns:
            continue
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            values = pd.to_datetime(values, unit="s", utc=True)
        else:
            values = pd.to_datetime(values, utc=True, format="ISO8601")
        frame[column] = values.dt.as_unit("us")

    frame.to_parquet(dataset.path, index=False)
    dataset.metadata["source"] = source
    dataset.metadata["location"] = location
    dataset.metadata["rows"] = int(len(frame))
    dataset.metadata["sha256"] = digest
    print(f"ingested {len(frame)} rows from {location} (sha256 {digest})", flush=True)
    return digest


def ingest_bigquery(
    source: str,
    project: str,
    table: str,
    query: str,
    timestamp_columns: str,
    declared_columns: str,
    dataset: Output[Dataset],
) -> str:
    """Run a BigQuery query (or read a table) with the google-cloud-bigquery client.
    ``table`` arrives quoted by the compiler; ``query`` is the spec's raw SQL.

    Credentials: Application Default Credentials only -- workload identity of the run's
    service account, or ``GOOGLE_APPLICATION_CREDENTIALS`` pointing at a key file that the
    pipeline mounts from the spec's Secret.  Returns the sha256 of the result as CSV."""
    import hashlib
    import json
    import os

    import pandas as pd
    from google.cloud import bigquery

    mount = f"/var/run/secrets/mlspec/{source}"
    if "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ and os.path.isdir(mount):
        keys = sorted(os.listdir(mount))
        if keys:
            os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = os.path.join(mount, os.environ.get("MLSPEC_SECRET_KEY", keys[0]))
    client = bigquery.Client(project=project or None)
    sql = query or f"SELECT * FROM {table}"  # table: quoted by the compiler
    frame = client.query(sql).to_dataframe()

    declared = json.loads(declared_columns)
    missing = [c for c in declared if c not in frame.columns]
    if missing:
        message = f"source '{source}' lacks declared column(s): {', '.join(missing)}"
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)
    for column in json.loads(timestamp_columns):
        if column in frame.columns:
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values):
                values = pd.to_datetime(values, unit="s", utc=True)
            else:
                values = pd.to_datetime(values, utc=True)
            frame[column] = values.dt.as_unit("us")
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    frame.to_parquet(dataset.path, index=False)
    dataset.metadata.update({"source": source, "rows": int(len(frame)), "sha256": digest})
    return digest


def ingest_sql(
    source: str,
    dialect: str,
    connection: str,
    table: str,
    query: str,
    timestamp_columns: str,
    declared_columns: str,
    dataset: Output[Dataset],
) -> str:
    """Read a table or query from Postgres, Redshift or Snowflake into Parquet.

    ``table`` arrives as SQL, its identifiers validated and quoted by the compiler (one rule
    for every dialect, mlspec.validate.quote_table); ``query`` is the spec's raw SQL.

    ``connection`` is JSON of the *non-secret* settings from the spec (host, port,
    database, schema, warehouse, cluster_id, region, user).  Secrets come from the
    environment or from files of the spec's Secret, mounted at
    ``/var/run/secrets/mlspec/<source>``:

    * postgres:  password = file ``<key>`` (``MLSPEC_SECRET_KEY``) or ``PGPASSWORD``;
      user = file ``user`` or ``PGUSER``;  driver: SQLAlchemy + psycopg2.
    * redshift:  IAM authentication (``redshift_connector``, ``iam=True``) with the
      AWS credential chain -- IRSA/workload identity, or the mounted key used as
      ``AWS_SHARED_CREDENTIALS_FILE``.
    * snowflake: password = file ``<key>`` or ``SNOWFLAKE_PASSWORD``; account/user =
      files ``account``/``user`` or ``SNOWFLAKE_ACCOUNT``/``SNOWFLAKE_USER``.

    Returns the sha256 of the result as CSV."""
    import hashlib
    import json
    import os

    import pandas as pd

    settings = json.loads(connection)
    mount = f"/var/run/secrets/mlspec/{source}"
    key = os.environ.get("MLSPEC_SECRET_KEY", "")

    def secret_file(name: str) -> str | None:
        path = os.path.join(mount, name)
        if name and os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        return None

    def need(value, what: str) -> str:
        if not value:
            message = f"source '{source}': no {what} (see the ingest_sql docstring for where it is read from)"
            print(f"MLSPEC-FAILURE: {message}", flush=True)
            raise RuntimeError(message)
        return value

    if dialect == "postgres":
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import URL

        url = URL.create(
            "postgresql+psycopg2",
            username=need(secret_file("user") or os.environ.get("PGUSER"), "user"),
            password=need(secret_file(key) or os.environ.get("PGPASSWORD"), "password"),
            host=settings["host"],
            port=int(settings["port"]),
            database=settings["database"],
        )
        sql = query or f"SELECT * FROM {table}"
        with create_engine(url).connect() as conn:
            frame = pd.read_sql(text(sql), conn)
    elif dialect == "redshift":
        import redshift_connector

        if key and os.path.isfile(os.path.join(mount, key)):
            os.environ.setdefault("AWS_SHARED_CREDENTIALS_FILE", os.path.join(mount, key))
        conn = redshift_connector.connect(
            iam=True,
            cluster_identifier=settings["cluster_id"],
            region=settings["region"],
            database=settings["database"],
            db_user=need(settings.get("user") or os.environ.get("REDSHIFT_USER"), "database user"),
        )
        try:
            cursor = conn.cursor()
            cursor.execute(query or f"SELECT * FROM {table}")
            frame = cursor.fetch_dataframe()
        finally:
            conn.close()
    elif dialect == "snowflake":
        import snowflake.connector

        conn = snowflake.connector.connect(
            account=need(secret_file("account") or os.environ.get("SNOWFLAKE_ACCOUNT"), "account"),
            user=need(secret_file("user") or os.environ.get("SNOWFLAKE_USER"), "user"),
            password=need(secret_file(key) or os.environ.get("SNOWFLAKE_PASSWORD"), "password"),
            database=settings["database"],
            schema=settings["schema"],
            warehouse=settings.get("warehouse") or None,
        )
        try:
            cursor = conn.cursor()
            cursor.execute(query or f"SELECT * FROM {table}")
            frame = cursor.fetch_pandas_all()
        finally:
            conn.close()
    else:
        raise ValueError(f"unknown SQL dialect {dialect!r}")

    declared = json.loads(declared_columns)
    missing = [c for c in declared if c not in frame.columns]
    if missing:
        message = f"source '{source}' lacks declared column(s): {', '.join(missing)}"
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)
    for column in json.loads(timestamp_columns):
        if column in frame.columns:
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values):
                values = pd.to_datetime(values, unit="s", utc=True)
            else:
                values = pd.to_datetime(values, utc=True)
            frame[column] = values.dt.as_unit("us")
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    frame.to_parquet(dataset.path, index=False)
    dataset.metadata.update({"source": source, "rows": int(len(frame)), "sha256": digest})
    return digest


# ----------------------------------------------------------------------------------------
# data quality
# ----------------------------------------------------------------------------------------


def check_data(source: str, checks: str, dataset: Input[Dataset]) -> str:
    """Run the spec's data-quality checks; fail listing every violated check."""
    import json

    import pandas as pd

    frame = pd.read_parquet(dataset.path)
    problems: list[str] = []
    specs = json.loads(checks)
    for check in specs:
        kind = check["type"]
        if kind == "row_count":
            rows = len(frame)
            if check.get("min") is not None and rows < check["min"]:
                problems.append(f"row_count: {rows} rows < min {check['min']}")
            if check.get("max") is not None and rows > check["max"]:
                problems.append(f"row_count: {rows} rows > max {check['max']}")
            continue
        columns = check.get("columns") or [check["column"]]
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            problems.append(f"{kind}: column(s) not found: {', '.join(absent)}")
            continue
        if kind == "not_null":
            for column in columns:
                nulls = int(frame[column].isna().sum())
                if nulls:
                    problems.append(f"not_null: column '{column}' has {nulls} null value(s)")
        elif kind == "range":
            values = frame[check["column"]].dropna()
            if check.get("min") is not None:
                below = int((values < check["min"]).sum())
                if below:
                    problems.append(f"range: column '{check['column']}' has {below} value(s) < min {check['min']} (lowest {values.min()})")
            if check.get("max") is not None:
                above = int((values > check["max"]).sum())
                if above:
                    problems.append(f"range: column '{check['column']}' has {above} value(s) > max {check['max']} (highest {values.max()})")
        elif kind == "allowed_values":
            values = frame[check["column"]].dropna()
            bad = values[~values.isin(check["values"])]
            if len(bad):
                shown = ", ".join(repr(v) for v in sorted({str(v) for v in bad})[:5])
                problems.append(f"allowed_values: column '{check['column']}' has {len(bad)} value(s) outside {check['values']}: {shown}")
        elif kind == "unique":
            dupes = int(frame.duplicated(subset=columns, keep="first").sum())
            if dupes:
                problems.append(f"unique: {dupes} duplicate row(s) over ({', '.join(columns)})")
        else:
            problems.append(f"{kind}: unknown check type")
    if problems:
        message = (f"data-quality checks failed for source '{source}' ({len(problems)} violation(s)): "
                   + "; ".join(problems))
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)
    print(f"source '{source}': {len(specs)} check(s) passed on {len(frame)} rows", flush=True)
    return json.dumps({"source": source, "rows": int(len(frame)), "checks": len(specs)}, sort_keys=True)


# ----------------------------------------------------------------------------------------
# point-in-time feature engineering
# ----------------------------------------------------------------------------------------


def build_entity_frame(
    keys: str,
    timestamp: str,
    label: str,
    source_name: str,
    source_sha256: str,
    labels: Input[Dataset],
    entity: Output[Dataset],
) -> str:
    """The label table: entity join keys + label timestamp + label column, in source order.
    Rows without a label or timestamp are dropped (they cannot be trained on).
    Returns JSON whose ``snapshots`` starts the data-snapshot lineage (source -> sha256)
    that every join step extends and the register step records."""
    import json

    import pandas as pd

    frame = pd.read_parquet(labels.path)
    wanted = [k for k in json.loads(keys) if k in frame.columns] + [timestamp, label]
    missing = [c for c in (timestamp, label) if c not in frame.columns]
    if missing:
        message = f"label source lacks column(s): {', '.join(missing)}"
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)
    out = frame[wanted]
    before = len(out)
    out = out.dropna(subset=[timestamp, label]).reset_index(drop=True)
    out.to_parquet(entity.path, index=False)
    entity.metadata["rows"] = int(len(out))
    print(f"entity frame: {len(out)} rows ({before - len(out)} dropped without label/timestamp)", flush=True)
    return json.dumps({"rows": int(len(out)), "dropped": int(before - len(out)),
                       "snapshots": {source_name: source_sha256}}, sort_keys=True)


def join_view_fields(
    view: str,
    keys: str,
    entity_timestamp: str,
    source_timestamp: str,
    created_timestamp: str,
    fields: str,
    ttl_seconds: int,
    source_name: str,
    source_sha256: str,
    upstream: str,
    entity: Input[Dataset],
    source: Input[Dataset],
    joined: Output[Dataset],
) -> str:
    """Point-in-time join of plain fields: for each entity row, the latest source row with
    the same keys and ``label_ts - ttl <= source_ts <= label_ts`` (``ttl`` 0: unbounded;
    equal timestamps are broken by ``created_timestamp``).  No match: NaN.
    ``upstream`` is the previous step's JSON; its ``snapshots`` are extended with
    ``source_name: source_sha256``."""
    import json

    import numpy as np
    import pandas as pd

    left = pd.read_parquet(entity.path)
    right = pd.read_parquet(source.path)
    key_list = json.loads(keys)
    field_list = json.loads(fields)
    clash = [f for f in field_list if f in left.columns]
    if clash:
        message = f"view '{view}': feature(s) {', '.join(clash)} already exist in the feature table"
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)
    order = ["__src_ts"] + ([created_timestamp] if created_timestamp else [])
    cols = key_list + [source_timestamp] + ([created_timestamp] if created_timestamp else []) + field_list
    right = right[cols].rename(columns={source_timestamp: "__src_ts"})
    right = right.dropna(subset=["__src_ts"] + key_list).sort_values(order, kind="mergesort")
    for key in key_list:  # merge_asof needs identical key dtypes
        if left[key].dtype != right[key].dtype:
            if pd.api.types.is_numeric_dtype(left[key]) and pd.api.types.is_numeric_dtype(right[key]):
                left[key] = left[key].astype("float64")
                right[key] = right[key].astype("float64")
            else:
                left[key] = left[key].astype("string")
                right[key] = right[key].astype("string")
    left = left.reset_index(drop=True)
    left["__row"] = np.arange(len(left))
    usable = left.dropna(subset=[entity_timestamp] + key_list).sort_values(entity_timestamp, kind="mergesort")
    merged = pd.merge_asof(
        usable, right.drop(columns=[created_timestamp] if created_timestamp else []),
        left_on=entity_timestamp, right_on="__src_ts", by=key_list,
        direction="backward", allow_exact_matches=True,
    )
    if ttl_seconds > 0:
        stale = (merged[entity_timestamp] - merged["__src_ts"]) > pd.Timedelta(seconds=ttl_seconds)
        for field in field_list:
            if stale.any():
                if not pd.api.types.is_float_dtype(merged[field]) and pd.api.types.is_numeric_dtype(merged[field]):
                    merged[field] = merged[field].astype("float64")
                merged.loc[stale, field] = np.nan
    found = merged[["__row"] + field_list].set_index("__row")
    out = left.join(found, on="__row").drop(columns=["__row"])
    out.to_parquet(joined.path, index=False)
    hits = int(merged["__src_ts"].notna().sum()) if len(merged) else 0
    print(f"view '{view}': {hits}/{len(left)} rows matched", flush=True)
    snapshots = {**json.loads(upstream).get("snapshots", {}), source_name: source_sha256}
    return json.dumps({"view": view, "rows": int(len(out)), "matched": hits, "snapshots": snapshots}, sort_keys=True)


def join_view_aggregations(
    view: str,
    keys: str,
    entity_timestamp: str,
    source_timestamp: str,
    aggregations: str,
    source_name: str,
    source_sha256: str,
    upstream: str,
    entity: Input[Dataset],
    source: Input[Dataset],
    joined: Output[Dataset],
) -> str:
    """Point-in-time window aggregations: for each entity row, the function over the
    source rows with the same keys in the window before the label time, whose edges each
    aggregation's ``closed`` names (as pandas' ``rolling``): ``left`` (the default)
    ``label_ts - window <= source_ts < label_ts`` -- a row at the label's own time never
    counts; ``right`` ``label_ts - window < source_ts <= label_ts``; ``both``; ``neither``.
    No rows in the window: count 0, every other function NaN (as SQL aggregates).
    Extends the ``snapshots`` of ``upstream`` like :func:`join_view_fields`."""
    import json

    import numpy as np
    import pandas as pd

    left = pd.read_parquet(entity.path)
    right = pd.read_parquet(source.path)
    key_list = json.loads(keys)
    specs = json.loads(aggregations)
    clash = [a["name"] for a in specs if a["name"] in left.columns]
    if clash:
        message = f"view '{view}': feature(s) {', '.join(clash)} already exist in the feature table"
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)
    value_cols = sorted({a["column"] for a in specs})
    right = right[key_list + [source_timestamp] + value_cols].rename(columns={source_timestamp: "__src_ts"})
    right = right.dropna(subset=["__src_ts"] + key_list)
    for key in key_list:
        if left[key].dtype != right[key].dtype:
            if pd.api.types.is_numeric_dtype(left[key]) and pd.api.types.is_numeric_dtype(right[key]):
                left[key] = left[key].astype("float64")
                right[key] = right[key].astype("float64")
            else:
                left[key] = left[key].astype("string")
                right[key] = right[key].astype("string")
    queries = left[key_list + [entity_timestamp]].drop_duplicates().dropna().reset_index(drop=True)
    queries["__q"] = np.arange(len(queries))
    pairs = queries.merge(right, on=key_list, how="inner")
    pairs = pairs[pairs["__src_ts"] <= pairs[entity_timestamp]]
    results = pd.DataFrame(index=queries["__q"])
    for spec in specs:
        window = pd.Timedelta(seconds=int(spec["window_seconds"]))
        closed = spec["closed"]
        start = pairs[entity_timestamp] - window
        after = pairs["__src_ts"] >= start if closed in ("left", "both") else pairs["__src_ts"] > start
        before = pairs["__src_ts"] <= pairs[entity_timestamp] if closed in ("right", "both") \
            else pairs["__src_ts"] < pairs[entity_timestamp]
        inside = pairs[after & before]
        column, function, name = spec["column"], spec["function"], spec["name"]
        grouped = inside.groupby("__q")[column]
        if function == "count":
            values = grouped.count().reindex(results.index, fill_value=0).astype("int64")
        elif function == "sum":
            values = grouped.sum(min_count=1).reindex(results.index)
        elif function in ("mean", "min", "max", "std"):
            values = grouped.agg(function).reindex(results.index)
        elif function == "last":
            latest = inside.sort_values("__src_ts", kind="mergesort").drop_duplicates("__q", keep="last")
            values = latest.set_index("__q")[column].reindex(results.index)
        else:
            raise ValueError(f"unknown aggregation function {function!r}")
        results[name] = values.to_numpy()
    queries = queries.join(results, on="__q").drop(columns=["__q"])
    out = left.merge(queries, on=key_list + [entity_timestamp], how="left", sort=False)
    for spec in specs:
        if spec["function"] == "count":
            out[spec["name"]] = out[spec["name"]].fillna(0).astype("int64")
    if len(out) != len(left):
        raise RuntimeError(f"view '{view}': join changed the row count ({len(left)} -> {len(out)})")
    out.to_parquet(joined.path, index=False)
    print(f"view '{view}': {len(specs)} aggregation(s) over {len(pairs)} candidate rows", flush=True)
    snapshots = {**json.loads(upstream).get("snapshots", {}), source_name: source_sha256}
    return json.dumps({"view": view, "rows": int(len(out)), "snapshots": snapshots}, sort_keys=True)


# ----------------------------------------------------------------------------------------
# training, selection, gate, registration
# ----------------------------------------------------------------------------------------


def train_candidate(
    candidate: str,
    estimator: str,
    feature_columns: str,
    label: str,
    metric: str,
    test_size: float,
    split_seed: int,
    stratify: bool,
    features: Input[Dataset],
    model: Output[Model],
    split_strategy: str = "random",
    timestamp: str = "",
    cutoff: str = "",
    gap_seconds: int = 0,
    preprocessing: str = "",
) -> str:
    """Fit ``estimator`` with the candidate's hyper-parameters on the training split and
    score it on the hold-out.  ``random_state`` is the split seed unless the candidate
    sets it.

    ``split_strategy="time"`` orders the rows by the label ``timestamp`` column: the hold-out
    is every row at or after the boundary -- ``cutoff`` (ISO 8601, naive means UTC) or the
    timestamp of the row that starts the latest ``test_size`` fraction (rows sharing it are
    all held out) -- and the training rows are those more than ``gap_seconds`` before it.

    Without ``preprocessing`` the features are used as they are; an estimator that does not
    accept NaN gets a median imputer in front (``sklearn.pipeline``) when there are gaps.  With
    it (the spec's ``training.preprocessing``), each candidate is one scikit-learn
    ``Pipeline([("preprocess", ColumnTransformer(...)), ("model", estimator)])`` fitted on the
    training part, so the saved ``model.joblib`` takes the raw feature values, in
    ``feature_columns`` order, and applies the transforms fitted in training itself: serving
    (which calls ``predict``/``predict_proba`` on it) cannot skew from training.

    ``preprocessing`` is JSON, one entry per feature in ``feature_columns`` order: ``{"name": F,
    "categorical": "one_hot" | "ordinal"}`` or ``{"name": F, "numeric": "none" | "standard" |
    "minmax", "impute": "auto" | "none" | "mean" | "median" | "most_frequent"}``.  The
    ColumnTransformer has one transformer per feature, selecting it by position (so the model
    also takes a plain array, as a serving runtime decodes a tensor); its output is dense, the
    features in order:

    * one_hot: ``OneHotEncoder(handle_unknown="ignore", sparse_output=False)`` -- a category not
      seen in training is all zeros, never an error; a missing value is a category of its own;
    * ordinal: ``OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
      encoded_missing_value=-2)`` -- categories numbered in sorted order;
    * numeric: cast to float64 first (as served: an FP64 tensor; a bool column with gaps is
      0/1/NaN), then ``SimpleImputer(strategy=..., keep_empty_features=True)`` (``auto``: the
      median when the estimator's tags say it rejects NaN, else none), then ``StandardScaler``
      or ``MinMaxScaler``; none of these: ``"passthrough"``."""
    import importlib
    import inspect
    import json
    import math
    import os

    import joblib
    import numpy as np
    import pandas as pd
    from sklearn import metrics as skm
    from sklearn.model_selection import train_test_split

    def fail(message: str):
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)

    params = json.loads(candidate)
    columns = json.loads(feature_columns)
    prepare = json.loads(preprocessing) if preprocessing else None
    if prepare is not None and [entry["name"] for entry in prepare] != columns:
        fail(f"preprocessing covers {[entry['name'] for entry in prepare]}, not the features {columns}")
    frame = pd.read_parquet(features.path)
    X = frame[columns]
    if prepare is not None:
        X = X.copy()
        for entry in prepare:
            if "categorical" not in entry:
                X[entry["name"]] = X[entry["name"]].astype("float64")
    y = frame[label]
    split_info = {"strategy": split_strategy}
    if split_strategy == "time":
        if timestamp not in frame.columns:
            fail(f"time split: the feature table has no label timestamp column '{timestamp}'")
        ts = pd.to_datetime(frame[timestamp], utc=True)
        known = ts.notna().to_numpy()
        if not known.any():
            fail(f"time split: no row has a label timestamp in '{timestamp}'")
        if cutoff:
            boundary = pd.Timestamp(cutoff)
            boundary = boundary.tz_localize("UTC") if boundary.tzinfo is None else boundary.tz_convert("UTC")
        else:
            ordered = ts[known].sort_values(kind="mergesort")
            n_test = int(math.ceil(test_size * len(ordered)))  # as train_test_split rounds the test part
            boundary = ordered.iloc[len(ordered) - max(n_test, 1)]
        gap = pd.Timedelta(seconds=int(gap_seconds))
        test_mask = known & (ts >= boundary).to_numpy()
        train_mask = known & (ts < boundary - gap).to_numpy()
        if not test_mask.any() or not train_mask.any():
            part = "hold-out" if not test_mask.any() else "training part"
            fail(f"time split: the {part} is empty (labels {ts.min()} .. {ts.max()}, hold-out from {boundary}"
                 + (f", gap {gap}" if gap_seconds else "") + ")")
        X_train, X_test, y_train, y_test = X[train_mask], X[test_mask], y[train_mask], y[test_mask]
        split_info.update(test_from=boundary.isoformat(), train_until=ts[train_mask].max().isoformat(),
                          embargoed=int((known & ~test_mask & ~train_mask).sum()))
        print(f"time split: train {int(train_mask.sum())} rows until {split_info['train_until']}, "
              f"hold-out {int(test_mask.sum())} rows from {split_info['test_from']}, "
              f"{split_info['embargoed']} in the gap", flush=True)
    else:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=split_seed, stratify=y if stratify else None)

    module_name, _, class_name = estimator.rpartition(".")
    factory = getattr(importlib.import_module(module_name), class_name)
    kwargs = dict(params)
    if "random_state" in inspect.signature(factory).parameters and "random_state" not in kwargs:
        kwargs["random_state"] = split_seed
    final = factory(**kwargs)
    try:
        from sklearn.utils import get_tags

        allow_nan = bool(get_tags(final).input_tags.allow_nan)
    except Exception:  # older scikit-learn, or not a scikit-learn estimator
        allow_nan = False
    if prepare is None:
        fitted = final
        if not allow_nan and bool(X.isna().to_numpy().any()):
            from sklearn.impute import SimpleImputer
            from sklearn.pipeline import Pipeline

            fitted = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("model", final)])
    else:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

        reserved = set(ColumnTransformer([]).get_params(deep=False))
        transformers = []
        unfilled = []
        for position, entry in enumerate(prepare):
            column = entry["name"]
            name = column if "__" not in column and column not in reserved else f"feature_{position}"
            if entry.get("categorical") == "one_hot":
                step = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            elif entry.get("categorical") == "ordinal":
                step = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
            else:
                strategy = ("median" if not allow_nan else None) if entry["impute"] == "auto" else entry["impute"]
                strategy = None if strategy == "none" else strategy
                chain = []
                if strategy is not None:
                    chain.append(("impute", SimpleImputer(strategy=strategy, keep_empty_features=True)))
                elif not allow_nan and bool(X[column].isna().any()):
                    unfilled.append(f"{column} ({int(X[column].isna().sum())} missing)")
                if entry["numeric"] == "standard":
                    chain.append(("scale", StandardScaler()))
                elif entry["numeric"] == "minmax":
                    chain.append(("scale", MinMaxScaler()))
                step = "passthrough" if not chain else chain[0][1] if len(chain) == 1 else Pipeline(chain)
            transformers.append((name, step, [position]))
        if unfilled:
            fail(f"{estimator} does not accept missing values, and impute is none for: {', '.join(unfilled)} "
                 "(set training.preprocessing.impute, or fill them in the source)")
        fitted = Pipeline([("preprocess", ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)),
                           ("model", final)])
    fitted.fit(X_train, y_train)

    def proba():
        scores = fitted.predict_proba(X_test)
        return scores[:, 1] if scores.shape[1] == 2 else scores

    if metric in ("roc_auc", "gini"):
        p = proba()
        score = skm.roc_auc_score(y_test, p) if p.ndim == 1 else skm.roc_auc_score(y_test, p, multi_class="ovr")
        if metric == "gini":  # the Gini coefficient (accuracy ratio) of credit scoring: 2·AUC − 1
            score = 2 * score - 1
    elif metric == "pr_auc":  # area under the precision-recall curve (average precision)
        p = proba()
        if p.ndim == 1:
            score = skm.average_precision_score(y_test, p, pos_label=fitted.classes_[1])
        else:  # one-vs-rest, macro-averaged over the classes
            from sklearn.preprocessing import label_binarize

            score = skm.average_precision_score(label_binarize(y_test, classes=fitted.classes_), p, average="macro")
    elif metric == "log_loss":
        score = skm.log_loss(y_test, fitted.predict_proba(X_test), labels=list(fitted.classes_))
    elif metric in ("accuracy", "f1", "precision", "recall"):
        predicted = fitted.predict(X_test)
        if metric == "accuracy":
            score = skm.accuracy_score(y_test, predicted)
        else:
            average = "binary" if len(np.unique(y)) == 2 else "macro"
            fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}[metric]
            score = fn(y_test, predicted, average=average, zero_division=0)
    else:
        predicted = fitted.predict(X_test)
        mse = skm.mean_squared_error(y_test, predicted)
        score = {"r2": skm.r2_score(y_test, predicted), "mae": skm.mean_absolute_error(y_test, predicted),
                 "mape": skm.mean_absolute_percentage_error(y_test, predicted),
                 "mse": mse, "rmse": math.sqrt(mse)}[metric]
    score = float(score)

    os.makedirs(model.path, exist_ok=True)
    joblib.dump(fitted, os.path.join(model.path, "model.joblib"))
    # metadata is a protobuf Struct, which cannot hold NaN (e.g. roc_auc on a one-class test
    # split): the score is then written as the string "nan", and select_best ranks it last
    model.metadata.update({"framework": "sklearn", "estimator": estimator, "params": json.dumps(params, sort_keys=True),
                           metric: score if math.isfinite(score) else "nan"})
    if prepare is not None:
        model.metadata["preprocessing"] = json.dumps(prepare, sort_keys=True)
    result = {"params": params, "score": score, "metric": metric,
              "n_train": int(len(X_train)), "n_test": int(len(X_test))}
    if split_strategy == "time":
        result["split"] = split_info
    print(f"candidate {json.dumps(params, sort_keys=True)}: {metric} = {score:.6f}", flush=True)
    return json.dumps(result, sort_keys=True)


def select_best(
    candidates: str,
    metric: str,
    goal: str,
    results: List[str],
    models: Input[List[Model]],
    best_model: Output[Model],
) -> str:
    """Fan-in: pick the best candidate by ``metric`` and ``goal`` (ties: the earlier
    candidate in the spec's order; NaN scores never win) and copy its model."""
    import json
    import math
    import os
    import shutil

    listed = json.loads(candidates)
    order = {json.dumps(c, sort_keys=True): i for i, c in enumerate(listed)}
    rows = []
    for position, raw in enumerate(results):
        result = json.loads(raw) if isinstance(raw, str) else dict(raw)
        if "params" not in result:  # a container trainer may report only its score: loop order
            result["params"] = listed[position] if position < len(listed) else {}
        result["score"] = float(result["score"]) if result.get("score") is not None else float("nan")
        key = json.dumps(result["params"], sort_keys=True)
        result["index"] = order.get(key, len(order) + position)
        result["position"] = position
        rows.append(result)
    rows.sort(key=lambda r: r["index"])

    def rank(row):
        score = row.get("score")
        if score is None or (isinstance(score, float) and math.isnan(score)):
            return (1, 0.0, row["index"])
        return (0, -score if goal == "maximize" else score, row["index"])

    best = min(rows, key=rank)
    source = models[best["position"]].path
    if os.path.isdir(source):
        shutil.copytree(source, best_model.path, dirs_exist_ok=True)
    else:
        os.makedirs(os.path.dirname(best_model.path) or ".", exist_ok=True)
        shutil.copy(source, best_model.path)
    finite = not math.isnan(best["score"]) and not math.isinf(best["score"])
    best_model.metadata.update({"params": json.dumps(best["params"], sort_keys=True),
                                metric: best["score"] if finite else "nan"})
    summary = {
        "metric": metric,
        "goal": goal,
        "best": {"index": best["index"], "params": best["params"], "score": best["score"]},
        "candidates": [{"index": r["index"], "params": r["params"], "score": r["score"]} for r in rows],
        "n_train": best.get("n_train"),
        "n_test": best.get("n_test"),
    }
    text = json.dumps(summary, sort_keys=True)
    print(f"MLSPEC-CANDIDATES: {text}", flush=True)
    return text


def quality_gate(selection: str, threshold: float) -> str:
    """Fail unless the best candidate reaches ``threshold`` (>= to maximize, <= to minimize)."""
    import json
    import math

    summary = json.loads(selection)
    metric, goal, score = summary["metric"], summary["goal"], summary["best"]["score"]
    ok = score is not None and not math.isnan(score) and (score >= threshold if goal == "maximize" else score <= threshold)
    if not ok:
        sign = "<" if goal == "maximize" else ">"
        shown = "nan" if score is None or math.isnan(score) else f"{score:.4f}"
        message = f"quality gate failed: best {metric} {shown} {sign} threshold {threshold:.4f} — no model registered"
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise RuntimeError(message)
    summary["threshold"] = threshold
    summary["gate"] = "passed"
    print(f"quality gate passed: best {metric} {score:.4f} (threshold {threshold:.4f}, {goal})", flush=True)
    return json.dumps(summary, sort_keys=True)


def register_model(
    registry_root: str,
    model_name: str,
    pipeline_version: str,
    lineage: str,
    snapshots: str,
    selection: str,
    model: Input[Model],
    registered: Output[Model],
    metrics: Output[Metrics],
    model_format: str = "",
    feature_service: str = "",
    feature_columns: str = "[]",
    detector: Optional[Input[Artifact]] = None,
    announce: str = "",
    champion_uri: str = "",
    string_features: str = "[]",
) -> str:
    """Write the model, its metrics, parameters and lineage into the registry:
    ``<registry_root>/<model_name>/<version>/{model/, metrics.json, params.json,
    lineage.json}`` and ``<registry_root>/<model_name>/latest.json``.  The version is
    ``<pipeline hash>-<sha256 of the data snapshot>[:10]``, the pipeline hash being the
    content hash in the PipelineVersion name ``<spec>-<hash>``: same pipeline and same
    data, same version (re-registering writes identical files).

    ``model/`` is laid out for the serving runtime.  With ``model_format`` ``sklearn``
    (estimator training) it holds ``model.joblib`` and ``model-settings.json`` for MLServer
    (``mlserver_sklearn.SKLearnModel``; KServe's v2 protocol and Seldon Core 2 run it)::

        implementation     mlserver_sklearn.SKLearnModel
        parameters         uri ./model.joblib (relative to the file), version = the
                           registered version, extra.predict_fn "predict"
        inputs             one FP64 tensor named after ``feature_service``, shape
                           [-1, n_features], columns in ``feature_columns`` order (the
                           feature service's order, also in parameters.feature_names);
                           parameters.content_type "np"; missing values are JSON null.
                           With ``string_features`` (JSON list; served strings, which a
                           tensor of numbers cannot carry): one input per feature, in
                           that order, shape [-1, 1] -- BYTES with content_type "str" for
                           a string, FP64 "np" for the rest -- and the model's
                           parameters.content_type "pd", so MLServer hands the fitted
                           Pipeline a DataFrame of raw values named by feature
        outputs            predict: shape [-1, 1] (datatype of the class labels; FP64 for
                           a regressor); predict_proba (classifiers): FP64 [-1, n_classes]
        platform/versions  sklearn / scikit-learn/<version that registered it>

    No ``name``: the serving platform names the model -- KServe sets
    ``MLSERVER_MODEL_NAME`` to the InferenceService's name, which only applies when the
    file has no name (so one version can serve as champion or challenger), and Seldon
    Core 2's agent writes its Model's name into the file.  Without either, MLServer uses
    the folder name.

    What is served: ``predict`` -- the class label for a classifier, the value for a
    regressor.  It is MLServer's default (SKLearnModel answers with ``predict`` unless
    ``parameters.extra.predict_fn`` or the request's ``outputs`` name another method), the
    one method every estimator has (MLServer refuses ``predict_proba`` for models without
    it), and the same when a platform rewrites the file (Seldon Core 2's agent keeps no
    ``extra`` and no ``inputs``/``outputs``).  A client asks for probabilities with
    ``"outputs": [{"name": "predict_proba"}]`` in the V2 request.

    The model is loaded once to derive the outputs and to check the signature: a model
    fitted on other columns (``feature_names_in_``) or another number of features fails
    the step.  With any other ``model_format`` (container training) the model directory is
    registered as the trainer wrote it (also the default, for callers that predate the layout).

    ``detector`` (a spec with a drift policy): the drift detector fitted on this model's
    training frame (:func:`mlspec.generators.drift_components.fit_drift_detector`), registered
    as ``<version>/drift-detector/`` before ``latest.json`` names the version, so a served
    version always has its detector beside it.

    ``announce`` (an environment with ``drift.new_models``): JSON ``{repository, event_type,
    api, token_file, spec, env, traffic}``; ``champion_uri`` the model being served (a run
    parameter).  After registering, the step sends a
    GitHub ``repository_dispatch`` to the GitOps repository with the new model (spec, env, uri,
    version, traffic, metric, goal, score, threshold, and the champion's score read from the
    ``metrics.json`` beside the champion's model when there is one); the generated workflow
    opens the pull request that makes it the challenger.  A failed dispatch fails the step:
    the model is registered, and re-running registers the same version again."""
    import hashlib
    import json
    import os
    import shutil

    summary = json.loads(selection)
    data = json.loads(snapshots)
    data = data.get("snapshots", data) if isinstance(data.get("snapshots"), dict) else data
    snapshot_id = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    version = f"{pipeline_version.rsplit('-', 1)[-1]}-{snapshot_id[:10]}"
    base = registry_root.rstrip("/") + "/" + model_name
    if base.startswith("file://"):
        base = base[len("file://"):]
    if base.startswith("minio://"):
        base = "s3://" + base[len("minio://"):]
    target = base + "/" + version

    def fail(message: str):
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)

    def v2_datatype(dtype) -> str:  # numpy dtype -> V2 inference protocol datatype
        bits = str(dtype.itemsize * 8)
        return {"b": "BOOL", "i": "INT" + bits, "u": "UINT" + bits, "f": "FP" + bits}.get(dtype.kind, "BYTES")

    def mlserver_sklearn_settings(joblib_path: str, service: str, features: list, strings: list) -> dict:
        import joblib
        import numpy as np
        import sklearn

        fitted = joblib.load(joblib_path)
        trained_on = getattr(fitted, "feature_names_in_", None)
        if trained_on is not None and [str(c) for c in trained_on] != list(features):
            fail(f"model was fitted on columns {[str(c) for c in trained_on]}, not the feature service "
                 f"'{service}' order {list(features)}")
        if getattr(fitted, "n_features_in_", len(features)) != len(features):
            fail(f"model expects {fitted.n_features_in_} features; feature service '{service}' has {len(features)}")
        final = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted  # a Pipeline's estimator
        classes = getattr(final, "classes_", None)
        outputs = []
        if isinstance(classes, list):  # multi-output classifier: one label column per output
            outputs.append({"name": "predict", "datatype": v2_datatype(np.asarray(classes[0]).dtype),
                            "shape": [-1, len(classes)]})
        elif classes is not None:
            outputs.append({"name": "predict", "datatype": v2_datatype(np.asarray(classes).dtype), "shape": [-1, 1]})
            if hasattr(final, "predict_proba"):
                outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
        else:
            outputs.append({"name": "predict", "datatype": "FP64", "shape": [-1, int(getattr(final, "n_outputs_", 1))]})
        parameters = {"uri": "./model.joblib", "version": version, "extra": {"predict_fn": "predict"}}
        if strings:  # columns of raw values: MLServer's PandasCodec builds the DataFrame
            unknown = sorted(set(strings) - set(features))
            if unknown:
                fail(f"string feature(s) {unknown} are not among the features {list(features)}")
            parameters["content_type"] = "pd"
            inputs = [{"name": f, "datatype": "BYTES" if f in strings else "FP64", "shape": [-1, 1],
                       "parameters": {"content_type": "str" if f in strings else "np"}} for f in features]
        else:
            inputs = [{"name": service, "datatype": "FP64", "shape": [-1, len(features)],
                       "parameters": {"content_type": "np", "feature_names": list(features)}}]
        return {
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": parameters,
            "inputs": inputs,
            "outputs": outputs,
            "platform": "sklearn",
            "versions": [f"scikit-learn/{sklearn.__version__}"],
        }

    # the model directory as served: the trained files plus the runtime's settings
    shutil.copytree(model.path, registered.path, dirs_exist_ok=True)
    if model_format == "sklearn":
        joblib_path = os.path.join(registered.path, "model.joblib")
        if not os.path.isfile(joblib_path):
            fail("the trained model has no model.joblib")
        settings = mlserver_sklearn_settings(joblib_path, feature_service, json.loads(feature_columns),
                                             json.loads(string_features))
        with open(os.path.join(registered.path, "model-settings.json"), "w", encoding="utf-8") as handle:
            handle.write(json.dumps(settings, indent=2, sort_keys=True) + "\n")

    info = {**json.loads(lineage), "pipeline_version": pipeline_version,
            "data_snapshot": data, "data_snapshot_sha256": snapshot_id, "version": version}
    files = {
        "metrics.json": {"metric": summary["metric"], "goal": summary["goal"], "threshold": summary["threshold"],
                         "score": summary["best"]["score"], "candidates": summary["candidates"],
                         "n_train": summary.get("n_train"), "n_test": summary.get("n_test")},
        "params.json": summary["best"]["params"],
        "lineage.json": info,
    }
    latest = {"version": version, "uri": target, "score": summary["best"]["score"], "metric": summary["metric"]}
    if "://" in target:
        import fsspec

        fs, root = fsspec.core.url_to_fs(target)
        fs.put(registered.path.rstrip("/") + "/", root + "/model/", recursive=True)
        if detector is not None:
            fs.put(detector.path.rstrip("/") + "/", root + "/drift-detector/", recursive=True)
        for name, content in files.items():
            with fs.open(root + "/" + name, "w") as handle:
                handle.write(json.dumps(content, indent=2, sort_keys=True) + "\n")
        with fs.open(fsspec.core.url_to_fs(base)[1] + "/latest.json", "w") as handle:
            handle.write(json.dumps(latest, indent=2, sort_keys=True) + "\n")
    else:
        os.makedirs(target, exist_ok=True)
        shutil.copytree(registered.path, os.path.join(target, "model"), dirs_exist_ok=True)
        if detector is not None:
            shutil.copytree(detector.path, os.path.join(target, "drift-detector"), dirs_exist_ok=True)
        for name, content in files.items():
            with open(os.path.join(target, name), "w", encoding="utf-8") as handle:
                handle.write(json.dumps(content, indent=2, sort_keys=True) + "\n")
        with open(os.path.join(base, "latest.json"), "w", encoding="utf-8") as handle:
            handle.write(json.dumps(latest, indent=2, sort_keys=True) + "\n")

    registered.metadata.update({"registry_uri": target, "version": version, summary["metric"]: summary["best"]["score"]})
    metrics.log_metric(summary["metric"], summary["best"]["score"])
    metrics.log_metric("threshold", summary["threshold"])
    metrics.log_metric("candidates", len(summary["candidates"]))
    print(f"registered {model_name} version {version} at {target}", flush=True)
    if announce:
        import urllib.request

        cfg = json.loads(announce)
        champion_score = None
        champion = champion_uri or ""
        if champion.rstrip("/").endswith("/model"):
            metrics_uri = champion.rstrip("/")[: -len("/model")] + "/metrics.json"
            try:
                if "://" in metrics_uri and not metrics_uri.startswith("file://"):
                    import fsspec

                    with fsspec.open(metrics_uri, "r") as handle:
                        champion_score = json.load(handle).get("score")
                else:
                    with open(metrics_uri.removeprefix("file://"), encoding="utf-8") as handle:
                        champion_score = json.load(handle).get("score")
            except (OSError, ValueError) as exc:
                print(f"no champion metrics at {metrics_uri}: {exc!r}", flush=True)
        payload = {"spec": cfg["spec"], "env": cfg["env"], "uri": target + "/model", "version": version,
                   "traffic": int(cfg["traffic"]), "metric": summary["metric"], "goal": summary["goal"],
                   "score": summary["best"]["score"], "threshold": summary["threshold"],
                   "champion_score": champion_score}
        with open(cfg["token_file"], encoding="utf-8") as handle:
            token = handle.read().strip()
        request = urllib.request.Request(
            cfg.get("api", "https://api.github.com").rstrip("/") + f"/repos/{cfg['repository']}/dispatches",
            data=json.dumps({"event_type": cfg["event_type"], "client_payload": payload}).encode(), method="POST",
            headers={"Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
                     "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except OSError as exc:
            fail(f"could not announce version {version} to {cfg['repository']}: {exc!r}")
        print(f"announced version {version} to {cfg['repository']} ({cfg['event_type']}, HTTP {status})", flush=True)
    return json.dumps({"version": version, "uri": target, "model_uri": target + "/model",
                       "metrics_uri": target + "/metrics.json", "selection": summary}, sort_keys=True)


# ----------------------------------------------------------------------------------------
# the schedule's trigger (runs in the CronJob, not in the pipeline)
# ----------------------------------------------------------------------------------------


def trigger_run(env=None, urlopen=None, outcome=None) -> int:
    """Start one run of the committed PipelineVersion through the KFP REST API (v2beta1).

    Stdlib only.  Reads ``KFP_HOST``, ``KFP_PIPELINE_NAMESPACE``, ``KFP_PIPELINE_NAME``,
    ``KFP_PIPELINE_VERSION``, ``KFP_RUN_NAMESPACE``, ``KFP_EXPERIMENT``,
    ``KFP_SERVICE_ACCOUNT`` (may be empty) and the bearer token at
    ``KF_PIPELINES_SA_TOKEN_PATH`` (a projected ServiceAccount token with audience
    ``pipelines.kubeflow.org``; no file: no Authorization header).  Resolves the
    pipeline and version IDs by name, finds or creates the experiment, creates the run.
    Returns the process exit code.

    Optional, for the drift actions Service (the schedule's CronJob sets none of them):
    ``KFP_PIPELINE_VERSION_FILE`` names a file holding the version name, read at each call
    (a mounted ConfigMap key, which the kubelet updates when Argo CD syncs a new version);
    absent or empty, ``KFP_PIPELINE_VERSION`` is used.  ``KFP_COOLDOWN_SECONDS`` > 0: no
    run is created (exit 0) when the experiment has any run created in the last that many
    seconds (scheduled or not), so the cooldown needs no state but KFP's run history.
    ``KFP_RUN_TRIGGER`` is the word in the run's display name (default ``scheduled``) and
    ``KFP_RUN_REASON`` its description.  ``outcome``, a dict, receives ``status``
    (``started``, ``skipped`` or ``failed``), ``detail`` and, when known, ``version``
    and ``run_id``."""
    import datetime
    import json
    import os
    import sys
    import urllib.error
    import urllib.parse
    import urllib.request

    env = os.environ if env is None else env
    urlopen = urllib.request.urlopen if urlopen is None else urlopen
    outcome = {} if outcome is None else outcome
    host = env["KFP_HOST"].rstrip("/")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token_path = env.get("KF_PIPELINES_SA_TOKEN_PATH", "")
    if token_path and os.path.isfile(token_path):
        with open(token_path, encoding="utf-8") as handle:
            headers["Authorization"] = "Bearer " + handle.read().strip()

    def call(method: str, path: str, query=None, body=None) -> dict:
        url = host + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urlopen(request, timeout=60) as response:
            text = response.read().decode() or "{}"
        return json.loads(text)

    def one_filter(operation: str, key: str, kind: str, value: str) -> str:
        # filter.proto Predicate; the server parses it with protojson, proto (snake_case) names
        return json.dumps({"predicates": [{"operation": operation, "key": key, kind: value}]})

    def fail(message: str) -> int:
        print(message, file=sys.stderr)
        outcome.update(status="failed", detail=message)
        return 1

    pipeline_name = env["KFP_PIPELINE_NAME"]
    version_name = ""
    version_file = env.get("KFP_PIPELINE_VERSION_FILE", "")
    if version_file and os.path.isfile(version_file):
        with open(version_file, encoding="utf-8") as handle:
            version_name = handle.read().strip()
    version_name = version_name or env["KFP_PIPELINE_VERSION"]
    outcome["version"] = version_name
    run_namespace = env.get("KFP_RUN_NAMESPACE", "")
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        cooldown = int(env.get("KFP_COOLDOWN_SECONDS") or 0)
        pipeline = call("GET", "/apis/v2beta1/pipelines/names/" + urllib.parse.quote(pipeline_name),
                        {"namespace": env.get("KFP_PIPELINE_NAMESPACE", "")})
        pipeline_id = pipeline["pipeline_id"]
        version_id, token = None, ""
        while version_id is None:
            query = {"page_size": 100}
            if token:
                query["page_token"] = token
            page = call("GET", f"/apis/v2beta1/pipelines/{pipeline_id}/versions", query)
            for version in page.get("pipeline_versions") or []:
                if version_name in (version.get("name"), version.get("display_name")):
                    version_id = version["pipeline_version_id"]
                    break
            token = page.get("next_page_token") or ""
            if not token:
                break
        if version_id is None:
            return fail(f"pipeline version {version_name!r} of pipeline {pipeline_name!r} not found; "
                        "has Argo CD synced the PipelineVersion?")
        experiment_name = env.get("KFP_EXPERIMENT") or pipeline_name
        query = {"filter": one_filter("EQUALS", "display_name", "string_value", experiment_name), "page_size": 1}
        if run_namespace:
            query["namespace"] = run_namespace
        experiments = call("GET", "/apis/v2beta1/experiments", query).get("experiments") or []
        if experiments:
            experiment_id = experiments[0]["experiment_id"]
        else:
            body = {"display_name": experiment_name}
            if run_namespace:
                body["namespace"] = run_namespace
            experiment_id = call("POST", "/apis/v2beta1/experiments", body=body)["experiment_id"]
        if cooldown > 0:
            since = (now - datetime.timedelta(seconds=cooldown)).strftime("%Y-%m-%dT%H:%M:%SZ")
            query = {"experiment_id": experiment_id, "page_size": 1,
                     "filter": one_filter("GREATER_THAN", "created_at", "timestamp_value", since)}
            recent = call("GET", "/apis/v2beta1/runs", query).get("runs") or []
            if recent:
                message = (f"not starting a run: run {recent[0].get('run_id')} of experiment {experiment_name!r} "
                           f"was created after {since} (cooldown {cooldown}s)")
                print(message)
                outcome.update(status="skipped", detail=message, run_id=recent[0].get("run_id"))
                return 0
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        run = {
            "display_name": f"{version_name}-{env.get('KFP_RUN_TRIGGER') or 'scheduled'}-{stamp}",
            "description": env.get("KFP_RUN_REASON") or "started by the mlspec schedule CronJob",
            "experiment_id": experiment_id,
            "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": version_id},
            "runtime_config": {"parameters": json.loads(env.get("KFP_RUN_PARAMETERS") or "{}")},
        }
        if env.get("KFP_SERVICE_ACCOUNT"):
            run["service_account"] = env["KFP_SERVICE_ACCOUNT"]
        created = call("POST", "/apis/v2beta1/runs", body=run)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        return fail(f"KFP API error {exc.code} for {exc.url}: {detail}")
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        return fail(f"could not start the run: {exc!r}")
    message = f"started run {created.get('run_id')} of {pipeline_name}/{version_name}"
    print(message)
    outcome.update(status="started", detail=message, run_id=created.get("run_id"))
    return 0
