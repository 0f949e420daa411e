"""Runs a generated Feast repository with real Feast, in an interpreter that has Feast.

Not imported by mlspec: ``mlspec features --local`` and the tests run this file as a
script (``<python with feast> feast_runner.py REQUEST.json RESULT.json``), so that mlspec
itself never imports Feast (whose pins, e.g. ``pandas<3``, need not agree with the
environment mlspec runs in).  Standard library, Feast, pandas and pyarrow only.

The request (JSON) says what to do, in this order, with the repository in ``repo``:

* ``apply``: run ``feast apply`` (the CLI beside this interpreter) in the repository;
* ``prepare``: ``{"data_root", "outputs"}``: run ``python ../jobs/prepare.py`` there, as the
  materialization schedule does;
* ``range_sources``: ``[{"path", "format", "timestamp"}]``: the time range of those files
  becomes ``materialize`` (start = earliest, end = latest timestamp);
* ``materialize``: ``[start, end]`` ISO-8601: ``feast materialize START END``;
* ``sample_entities``: ``{"path", "format", "keys", "limit"}``: entity rows to read
  (distinct key tuples in file order), added to ``online``;
* ``online``: ``{"service", "entities": [{key: value}]}``: ``get_online_features``;
* ``historical``: ``{"service", "entity_parquet", "out"}``: ``get_historical_features`` of
  the rows of ``entity_parquet`` (in their order; full_feature_names False), one call per
  view of the service, joined on the row (see ``feast_components``), written to ``out``;
* ``registry``: dump the registered objects' free-text fields (for round-trip checks).

The result (JSON): ``{"steps": [{"step", "seconds", "output"}], "range", "online", "rows",
"registry", "error"}``; a failing step stops the run with its output in ``error``.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

# This file sits beside mlspec's own feast.py: never let `import feast` find that one.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _run(command, cwd, steps, name):
    started = time.monotonic()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "FEAST_USAGE": "False"})
    steps.append({"step": name, "seconds": round(time.monotonic() - started, 3),
                  "output": (proc.stdout + proc.stderr)[-4000:]})
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _read(path, fmt, columns=None):
    import pandas as pd

    frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path, columns=columns)
    return frame if columns is None else frame[columns]


def _timestamps(values):
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="s", utc=True)
    return pd.to_datetime(values, utc=True, format="ISO8601")


def _plain(value):
    import math

    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _registry(store):
    def fields(view):
        return [{"name": f.name, "description": f.description, "tags": dict(f.tags)} for f in view.features]

    out = {"project": None, "entities": {}, "sources": {}, "views": {}, "services": {}}
    for project in store.list_projects():
        if project.name == store.project:
            out["project"] = {"name": project.name, "description": project.description,
                              "tags": dict(project.tags), "owner": project.owner}
    for entity in store.list_entities():
        out["entities"][entity.name] = {"description": entity.description, "owner": entity.owner,
                                        "tags": dict(entity.tags), "join_key": entity.join_key}
    for source in store.list_data_sources():
        out["sources"][source.name] = {"description": source.description, "owner": source.owner,
                                       "tags": dict(source.tags), "type": type(source).__name__}
    for view in store.list_feature_views():
        out["views"][view.name] = {"description": view.description, "owner": view.owner, "tags": dict(view.tags),
                                   "fields": fields(view), "ttl_seconds": view.ttl.total_seconds() if view.ttl else 0,
                                   "online": view.online}
    for service in store.list_feature_services():
        out["services"][service.name] = {
            "description": service.description, "owner": service.owner, "tags": dict(service.tags),
            "features": [[p.name, [f.name for f in p.features]] for p in service.feature_view_projections]}
    return out


def main(argv):
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = {"steps": [], "online": [], "error": None}
    repo = Path(request["repo"]).resolve()
    feast_cli = str(Path(sys.executable).parent / "feast")
    try:
        if request.get("apply", True):
            _run([feast_cli, "apply"], repo, result["steps"], "feast apply")
        prepare = request.get("prepare")
        if prepare:
            _run([sys.executable, "../jobs/prepare.py", "--data-root", prepare["data_root"],
                  "--outputs", json.dumps(prepare.get("outputs", {}))], repo, result["steps"], "prepare")
        window = request.get("materialize")
        if request.get("range_sources"):
            stamps = []
            for source in request["range_sources"]:
                values = _timestamps(_read(source["path"], source["format"], [source["timestamp"]])[source["timestamp"]])
                stamps += [values.min(), values.max()]
            window = [min(stamps).isoformat(), max(stamps).isoformat()]
            result["range"] = window
        if window:
            start, end = (w.replace("+00:00", "") for w in window)
            _run([feast_cli, "materialize", start, end], repo, result["steps"], "feast materialize")

        from feast import FeatureStore

        store = FeatureStore(repo_path=str(repo))
        queries = list(request.get("online", []))
        sample = request.get("sample_entities")
        if sample:
            frame = _read(sample["path"], sample["format"])[sample["keys"]].drop_duplicates()
            rows = [{k: _plain(v) for k, v in row.items()} for row in frame.head(sample.get("limit", 5)).to_dict("records")]
            queries.append({"service": sample["service"], "entities": rows})
        for query in queries:
            started = time.monotonic()
            response = store.get_online_features(features=store.get_feature_service(query["service"]),
                                                 entity_rows=query["entities"]).to_dict()
            result["online"].append({"service": query["service"], "entities": query["entities"],
                                     "values": {k: [_plain(v) for v in vs] for k, vs in response.items()},
                                     "seconds": round(time.monotonic() - started, 3)})
        historical = request.get("historical")
        if historical:
            import pandas as pd

            started = time.monotonic()
            entity = pd.read_parquet(historical["entity_parquet"])
            entity["__mlspec_row"] = range(len(entity))
            frame = entity  # per view, as feast_components.feast_training_features (Feast drops rows otherwise)
            for projection in store.get_feature_service(historical["service"]).feature_view_projections:
                refs = [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
                part = store.get_historical_features(entity_df=entity, features=refs, full_feature_names=False).to_df()
                frame = frame.merge(part[["__mlspec_row", *[f.name for f in projection.features]]],
                                    on="__mlspec_row", how="left")
            frame = frame.sort_values("__mlspec_row", kind="mergesort").drop(columns=["__mlspec_row"])
            frame.reset_index(drop=True).to_parquet(historical["out"], index=False)
            result["rows"] = int(len(frame))
            result["steps"].append({"step": "get_historical_features", "seconds": round(time.monotonic() - started, 3),
                                    "output": ""})
        if request.get("registry"):
            result["registry"] = _registry(store)
    except Exception as exc:  # reported to the caller, which decides
        result["error"] = f"{type(exc).__name__}: {exc}"
    Path(argv[2]).write_text(json.dumps(result, sort_keys=True, default=str), encoding="utf-8")
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
