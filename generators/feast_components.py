"""The Feast training step of the Kubeflow pipeline (a KFP lightweight component body).

Self-contained like :mod:`mlspec.generators.kubeflow_components`: KFP ships the function's
source text to the step's container (image with ``feast==<FEAST_VERSION>``, see
:data:`mlspec.generators.feast.FEAST_PIN`), so every import is inside the body.  Importing
this module imports kfp (for the annotations), never feast.

It replaces the pipeline's per-view point-in-time joins when training reads through Feast:
the entity frame (the label table the pipeline built) goes to ``get_historical_features``
with the spec's FeatureService, so training reads the very definitions online serving
uses.  The step applies the generated repository into a throw-away registry (a file below
its own work folder; the registry holds only what the repository defines), prepares the
tables of prepared views from the same source files (``feast_prepare.prepare_tables``,
passed in as source text), and fills count features with 0 where the entity has no rows
yet, as the pipeline does.

``mlspec run --local`` runs every step in mlspec's own interpreter, which has no Feast:
there :func:`feast_training_features_local` runs the source text of the very same
:func:`feast_training_features` with a Python that has Feast, in a subprocess.
:func:`chain_snapshot` keeps the data lineage the joins kept (one per view source).
"""

from kfp.dsl import Dataset, Input, Output


def feast_training_features(
    repo: str,
    roots: str,
    data_root: str,
    prepare_source: str,
    prepare_plan: str,
    feature_service: str,
    count_features: str,
    entity: Input[Dataset],
    joined: Output[Dataset],
) -> str:
    """``repo``: JSON ``{relative path: text}`` of ``generators.feast_repo.repo_files`` with a local
    ``repo/feature_store.yaml`` (``local_feature_store_config``); ``roots``: JSON
    ``{compiled data root: placeholder}`` -- ``"{data_root}"`` is replaced by ``data_root``
    and ``"{work}"`` by this step's work folder.  Returns JSON ``{"rows", "features"}``."""
    import ast
    import json
    import os
    import subprocess
    import sys
    import tempfile

    import pandas as pd

    work = tempfile.mkdtemp(prefix="feast-training-")
    mapping = {old.rstrip("/"): new.replace("{data_root}", data_root.rstrip("/")).replace("{work}", work).rstrip("/")
               for old, new in json.loads(roots).items()}
    ordered = sorted(mapping.items(), key=lambda pair: -len(pair[0]))

    def move(path: str) -> str:  # as generators.feast_prepare.localize_repo
        for old, new in ordered:
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

    files = json.loads(repo)
    for rel, text in files.items():
        if rel.startswith("repo/") and rel.endswith(".py"):
            text = ast.unparse(ast.fix_missing_locations(Paths().visit(ast.parse(text)))) + "\n"
        path = os.path.join(work, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    repo_dir = os.path.join(work, "repo")
    feast_cli = os.path.join(os.path.dirname(sys.executable), "feast")
    subprocess.run([feast_cli if os.path.exists(feast_cli) else "feast", "apply"], cwd=repo_dir, check=True)
    plan = json.loads(prepare_plan)
    if plan:
        namespace: dict = {}
        exec(compile(prepare_source, "feast_prepare.py", "exec"), namespace)  # mlspec's own code, not the spec's
        outputs = {entry["view"]: move(entry["output"]) for entry in plan}
        namespace["prepare_tables"](json.dumps(plan), data_root, json.dumps(outputs))

    from feast import FeatureStore

    store = FeatureStore(repo_path=repo_dir)
    frame = pd.read_parquet(entity.path)
    frame["__mlspec_row"] = range(len(frame))
    # One call per view of the service: Feast 0.67.0's file offline store drops an entity row
    # whose rows of a view are all outside [t - ttl, t] (dask.py _filter_ttl) -- from the
    # whole result; per view, only that view's features are null, as in the pipeline.
    result = frame
    for projection in store.get_feature_service(feature_service).feature_view_projections:
        refs = [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
        part = store.get_historical_features(entity_df=frame, features=refs, full_feature_names=False).to_df()
        names = [f.name for f in projection.features]
        result = result.merge(part[["__mlspec_row", *names]], on="__mlspec_row", how="left")
    result = result.sort_values("__mlspec_row", kind="mergesort").drop(columns=["__mlspec_row"]).reset_index(drop=True)
    for name in json.loads(count_features):
        result[name] = result[name].fillna(0).astype("int64")
    result.to_parquet(joined.path, index=False)
    names = [c for c in result.columns if c not in frame.columns]
    print(f"feast: {len(result)} training rows, {len(names)} features from service {feature_service}", flush=True)
    return json.dumps({"rows": int(len(result)), "features": names}, sort_keys=True)


#: Runs :func:`feast_training_features` in a Feast interpreter (``mlspec run --local``).
_LOCAL_RUNNER = '''
import json, sys, types
request = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {}
exec(compile("from __future__ import annotations\\n" + request["source"], "feast_components.py", "exec"), namespace)
result = namespace["feast_training_features"](**request["args"], entity=types.SimpleNamespace(path=request["entity"]),
                                               joined=types.SimpleNamespace(path=request["joined"]))
open(sys.argv[2], "w", encoding="utf-8").write(json.dumps(result))
'''


def feast_training_features_local(
    feast_python: str,
    step_source: str,
    runner_source: str,
    repo: str,
    roots: str,
    data_root: str,
    prepare_source: str,
    prepare_plan: str,
    feature_service: str,
    count_features: str,
    entity: Input[Dataset],
    joined: Output[Dataset],
) -> str:
    """The same step for ``mlspec run --local``, whose interpreter has no Feast: runs the very
    source of :func:`feast_training_features` (``step_source``) with ``feast_python`` in a
    subprocess (``runner_source``: :data:`_LOCAL_RUNNER`), with the same arguments and paths."""
    import json
    import os
    import subprocess
    import tempfile

    work = tempfile.mkdtemp(prefix="feast-step-")
    request = {"source": step_source, "entity": entity.path, "joined": joined.path,
               "args": {"repo": repo, "roots": roots, "data_root": data_root, "prepare_source": prepare_source,
                        "prepare_plan": prepare_plan, "feature_service": feature_service,
                        "count_features": count_features}}
    paths = {name: os.path.join(work, name) for name in ("request.json", "result.json", "runner.py")}
    with open(paths["request.json"], "w", encoding="utf-8") as handle:
        json.dump(request, handle)
    with open(paths["runner.py"], "w", encoding="utf-8") as handle:
        handle.write(runner_source)
    os.makedirs(os.path.dirname(joined.path) or ".", exist_ok=True)
    proc = subprocess.run([feast_python, paths["runner.py"], paths["request.json"], paths["result.json"]], cwd=work,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "FEAST_USAGE": "False"})
    print(proc.stdout + proc.stderr, flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the Feast step failed in {feast_python} (exit {proc.returncode}): "
                           + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    with open(paths["result.json"], encoding="utf-8") as handle:
        return json.load(handle)


def chain_snapshot(upstream: str, source_name: str, source_sha256: str) -> str:
    """Extends the data-snapshot lineage of ``upstream`` (JSON with ``snapshots``) with one source,
    as the pipeline's join steps do: with Feast, one per source of the service's views."""
    import json

    return json.dumps({"snapshots": {**json.loads(upstream).get("snapshots", {}), source_name: source_sha256}},
                      sort_keys=True)
