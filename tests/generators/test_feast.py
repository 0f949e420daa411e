"""The Feast target, without Feast: layout, safe code generation, rules, the operator resource.

Real Feast runs in tests/functional/feast/."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlspec.compiler import context
from mlspec.generators import feast as ft
from mlspec.generators import feast_repo
from mlspec.generators import feast_code as code
from mlspec.generators import kubeflow
from mlspec.project import resolve_paths
from mlspec.render import render

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
KEEP = {"name", "namespace", "registry", "argocd", "storage", "policies", "overrides", "kubeflow", "feast"}
PROD_LIKE = {
    "online_store": {"type": "redis", "options": {"redis_type": "redis_cluster", "key_ttl_seconds": 86400}},
    "registry": {"type": "sql", "cache_ttl_seconds": 30},
    "batch_engine": {"type": "spark.engine", "options": {"partitions": 8,
                                                         "spark_conf": {"spark.executor.memory": "4g"}}},
    "credentials_secret": "feast-credentials",
    "schedule": "15 * * * *",
}


def project(tmp: Path, feast: dict | None = None, env: str = "prod") -> Path:
    work = tmp / "project"
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (work / "environments").mkdir()
    for env_file in sorted((ROOT / "environments").glob("*.yaml")):
        data = {k: v for k, v in yaml.safe_load(env_file.read_text()).items() if k in KEEP}
        if feast is not None and env_file.stem == env:
            data["feast"] = feast
        (work / "environments" / env_file.name).write_text(yaml.safe_dump(data, sort_keys=False))
    (work / ".git").mkdir()
    return work


def resolved(paths, envs=None):
    result = resolve_paths(list(paths), envs, targets=[kubeflow.target, ft.target])
    return result


def ctx_of(tmp: Path, name="churn", env="dev", feast=None):
    result = resolved([project(tmp, feast, env) / "examples" / name], [env])
    assert not result.errors, [str(e) for e in result.errors]
    return result.resolved[0], context(result.resolved[0], ft.target)


# --------------------------------------------------------------------------- layout


def test_layout_separates_kubernetes_objects_from_the_repository(tmp_path):
    r, ctx = ctx_of(tmp_path)
    paths = {a.path: a for a in ft.generate(ctx)}
    base = "deploy/dev/churn/feast/"
    assert set(paths) == {base + p for p in ("featurestore.yaml", "repo/feature_store.yaml", "repo/features.py",
                                             "repo/.feastignore", "repo/.gitignore", "jobs/prepare.py")}
    docs = list(yaml.safe_load_all(render(paths[base + "featurestore.yaml"], source=r.spec_path)))
    assert [d["kind"] for d in docs] == ["FeatureStore", "ConfigMap"]
    for path in paths:
        if "/repo/" in path or "/jobs/" in path:
            text = render(paths[path], source=r.spec_path).decode()
            assert "apiVersion:" not in text or path.endswith(".py")
    assert docs[0]["spec"]["feastProjectDir"]["git"]["featureRepoPath"] == base + "repo"
    assert "registry.db" in feast_repo.GITIGNORE and "*.db" in feast_repo.GITIGNORE and "data/" in feast_repo.FEASTIGNORE


def test_every_artefact_declares_a_subset_of_the_target_reads_and_output_is_deterministic(tmp_path):
    from mlspec import inputs

    r, ctx = ctx_of(tmp_path, "fraud")
    first = {a.path: render(a, source=r.spec_path) for a in ft.generate(ctx)}
    again = {a.path: render(a, source=r.spec_path) for a in ft.generate(context(r, ft.target))}
    assert first == again
    for artefact in ft.generate(ctx):
        assert artefact.reads and all(inputs.covers(ft.target.reads, p) for p in artefact.reads)


def test_importing_the_target_and_compiling_import_no_feast_kfp_or_pandas_for_feast(tmp_path):
    work = project(tmp_path)
    script = f"""
import sys
from pathlib import Path
from mlspec.generators import feast, feast_local, feast_code, kubeflow
assert not [m for m in ("feast", "kfp", "pandas", "pyarrow") if m in sys.modules], sys.modules.keys()
from mlspec.project import resolve_paths
from mlspec.compiler import compile_resolved
res = resolve_paths([Path({str(work / 'examples')!r})], targets=[kubeflow.target, feast.target])
assert not res.errors, res.errors
out = compile_resolved(res.resolved, [feast.target])
assert not out.errors and len(out.outputs) >= 30, len(out.outputs)
assert "feast" not in sys.modules and not any(m.startswith("feast.") for m in sys.modules)
assert "pandas" not in sys.modules and "kfp" not in sys.modules
print("ok", len(out.outputs))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr


# --------------------------------------------------------------------------- safe code


HOSTILE = ["'", '"', '"""', "'''", "\\", "\\n", "a\nb", "__import__('os').system('id')", "{{ x }}", "{% x %}",
           "${HOME}", "é✓中文", "\u202e", "\u2028", "\x00", "\ud800", "\")\nimport os\n#", "'''+__import__('os')+'''"]


@pytest.mark.parametrize("value", HOSTILE + [HOSTILE, {h: h for h in HOSTILE if h}, (1, 2.5, None, True)])
def test_literal_round_trips_and_is_only_a_literal(value):
    text = code.literal(value)
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):  # nothing but containers of constants
        assert isinstance(node, (ast.Expression, ast.Constant, ast.List, ast.Dict, ast.Tuple, ast.Load)), ast.dump(node)
    expected = list(value) if isinstance(value, list) else value
    assert ast.literal_eval(text) == expected


@pytest.mark.parametrize("bad", [object(), b"bytes", {1: 2}, float("nan"), code.Code("os.system('x')"), {"a"}])
def test_literal_refuses_anything_but_plain_data(bad):
    with pytest.raises(TypeError):
        code.literal(bad)


def test_identifiers_and_callees_are_checked():
    assert code.identifier("view", "customer_spend") == "view_customer_spend"
    for name in ("a-b", "x y", "a;b", "é"):
        with pytest.raises(ValueError):
            code.identifier("view", name)
    with pytest.raises(ValueError):
        code.call("os.system('x') or print")


def test_the_definitions_module_holds_only_imports_and_assignments_of_feast_calls(tmp_path):
    _r, ctx = ctx_of(tmp_path, "fraud")
    tree = ast.parse(feast_repo.definitions(ctx))
    allowed = {"Entity", "FeatureService", "FeatureView", "Field", "FileSource", "Project", "KafkaSource",
               "JsonFormat", "timedelta"}
    for stmt in tree.body[1:]:
        assert isinstance(stmt, (ast.ImportFrom, ast.Assign)), ast.dump(stmt)
        if isinstance(stmt, ast.ImportFrom):
            assert stmt.module in ("datetime", "feast", "feast.types", "feast.data_format")
            continue
        for node in ast.walk(stmt.value):
            if isinstance(node, ast.Call):
                assert isinstance(node.func, ast.Name) and node.func.id in allowed, ast.dump(node.func)
            assert not isinstance(node, (ast.Lambda, ast.BinOp, ast.JoinedStr, ast.Starred))


# --------------------------------------------------------------------------- plans


def test_aggregation_and_csv_views_are_prepared_and_read_with_ttl_zero(tmp_path):
    _r, ctx = ctx_of(tmp_path, "fraud")
    plans = {p.name: p for p in feast_repo.view_plans(ctx.spec)}
    assert plans["card_activity"].prepared and plans["card_activity"].ttl_seconds == 0
    assert plans["merchant_risk"].prepared and plans["merchant_risk"].ttl_seconds == 2 * 86400  # a CSV file
    entries = {e["view"]: e for e in feast_repo.prepare_plan(ctx)}
    assert entries["card_activity"]["path"] == "data/card_events.parquet"  # the kafka source's batch log
    assert entries["card_activity"]["output"] == "s3://acme-ml-dev/pipelines/feast/fraud/card_activity.parquet"
    assert feast_repo.materialization_commands(ctx)[0] == "python3 ../jobs/prepare.py"


@pytest.mark.parametrize("closed", ["left", "right"])
def test_prepared_tables_give_the_pipelines_aggregates_at_every_label_time(tmp_path, closed):
    """prepare_tables + a latest-row-at-or-before lookup == kubeflow_components.join_view_aggregations."""
    import pandas as pd

    from mlspec.generators import feast_prepare
    from mlspec.generators import kubeflow_components as steps

    r, ctx = ctx_of(tmp_path, "churn")
    [entry] = feast_repo.prepare_plan(ctx)
    assert {a["closed"] for a in entry["aggregations"]} == {"left"}  # the examples keep the default
    entry["aggregations"] = [{**a, "closed": closed} for a in entry["aggregations"]]
    out = tmp_path / "spend.parquet"
    feast_prepare.prepare_tables(json.dumps([entry]), str(r.base_dir), json.dumps({"customer_spend": str(out)}))
    prepared = pd.read_parquet(out)

    class A:
        def __init__(self, path):
            self.path, self.metadata = str(path), {}

    source, labels = A(tmp_path / "tx.parquet"), A(tmp_path / "labels.parquet")
    steps.ingest_file("transactions", str(r.base_dir), "data/transactions.parquet", "parquet", '["event_timestamp"]',
                      "[]", source)
    steps.ingest_file("labels", str(r.base_dir), "data/labels.csv", "csv", '["event_timestamp"]', "[]", labels)
    prepared["customer_id"] = prepared["customer_id"].astype("int64")
    label_times = pd.read_parquet(labels.path)
    # label times and shifted ones: the lookup is exact at any time, not only at the labels
    for shift in ("0s", "1h", "-72h", "408h"):
        at = label_times.assign(event_timestamp=label_times.event_timestamp + pd.Timedelta(shift))
        at.to_parquet(tmp_path / "at.parquet", index=False)
        joined = A(tmp_path / "joined.parquet")
        steps.join_view_aggregations("customer_spend", '["customer_id"]', "event_timestamp", "event_timestamp",
                                     json.dumps(entry["aggregations"]), "t", "x", "{}", A(tmp_path / "at.parquet"),
                                     source, joined)
        want = pd.read_parquet(joined.path).sort_values("customer_id").reset_index(drop=True)
        got = pd.merge_asof(at.sort_values("event_timestamp"), prepared.sort_values("event_timestamp"),
                            on="event_timestamp", by="customer_id").sort_values("customer_id").reset_index(drop=True)
        assert len(got) == len(want) == 400
        for agg in entry["aggregations"]:
            name = agg["name"]
            g, w = got[name].astype("float64"), want[name].astype("float64")
            if agg["function"] == "count":  # customers without any transaction: no prepared row; the step fills 0
                g = g.fillna(0)
            assert (g.isna() == w.isna()).all(), (shift, name)
            assert ((g - w).abs().fillna(0) <= 1e-9).all(), (shift, name)
        buyers = got.customer_id.isin(pd.read_parquet(source.path).customer_id)
        assert buyers.sum() > 350 and got.loc[buyers, "purchases_30d"].notna().all()  # a 1970 row at least


def test_localize_moves_only_path_arguments(tmp_path):
    from mlspec.generators import feast_prepare

    _r, ctx = ctx_of(tmp_path, "churn")
    files = feast_repo.repo_files(ctx)
    roots = {feast_repo.data_root(ctx): "/local/data", feast_repo.prepared_root(ctx): "/local/prepared"}
    out = json.loads(feast_prepare.localize_repo(json.dumps(files), json.dumps(roots), "project: x\n"))
    module = out["repo/features.py"]
    assert "path='/local/data/data/customers.parquet'" in module
    assert "path='/local/prepared/customer_spend.parquet'" in module and "s3://" not in module
    assert ast.dump(ast.parse(module)).count("Constant") == ast.dump(ast.parse(files["repo/features.py"])).count("Constant")
    assert out["repo/feature_store.yaml"] == "project: x\n"


# --------------------------------------------------------------------------- rules


def errors_for(tmp: Path, edit, name="churn", feast=None, env="dev"):
    work = project(tmp, feast, env)
    spec = work / "examples" / name / "mlops.yaml"
    data = yaml.safe_load(spec.read_text())
    edit(data)
    spec.write_text(json.dumps(data, indent=1))
    result = resolved([spec], [env])
    return [(e.line, e.message, e.code) for e in result.errors]


def test_the_examples_and_the_valid_corpus_stay_valid_with_the_feast_target(tmp_path):
    corpus = tmp_path / "corpus"
    for folder in ("valid", "data", "environments"):
        shutil.copytree(ROOT / "tests" / "corpus" / folder, corpus / folder)
    for env_file in (corpus / "environments").glob("*.yaml"):  # only the blocks of the targets used here
        data = {k: v for k, v in yaml.safe_load(env_file.read_text()).items() if k in KEEP}
        env_file.write_text(yaml.safe_dump(data, sort_keys=False))
    (corpus / ".git").mkdir()
    specs = sorted((corpus / "valid").glob("*.yaml"))
    problems, with_env = [], 0
    for spec in specs:  # as tests/test_corpus.py: the '# env: NAME' line, else no environment
        env = next((line.split(":", 1)[1].strip() for line in spec.read_text().splitlines()
                    if line.startswith("# env:")), None)
        with_env += env is not None
        result = resolve_paths([spec], [env] if env else [], corpus / "environments",
                               targets=[kubeflow.target, ft.target])
        problems += [f"{e.file}:{e.line}: {e.message}" for e in result.errors]
    assert len(specs) >= 20 and with_env >= 3
    # one known consequence: aggregations over a BigQuery table are not served by Feast (see rules)
    assert all("source_bigquery.yaml" in p and "from files" in p for p in problems), problems
    assert not resolved([project(tmp_path / "examples") / "examples"]).errors


def test_entity_dtype_must_match_the_join_key_column(tmp_path):
    # the core check (mlspec.validate, issue 7 item 8) catches it in every environment, once per
    # entity, before the Feast rules run
    errs = errors_for(tmp_path, lambda d: d["features"]["entities"][0].update(dtype="string"))
    assert [m for _, m, _ in errs] == ["entity 'customer' has dtype string, but its join key 'customer_id' is int64 "
                                       "in source 'customers'"]
    assert all(line > 1 for line, _, _ in errs)


def test_aggregations_over_a_warehouse_source_are_refused_with_a_location(tmp_path):
    def edit(d):
        d["data"]["sources"][1] = {"name": "transactions", "type": "bigquery", "table": "acme.tx",
                                   "timestamp": "event_timestamp", "columns": d["data"]["sources"][1]["columns"]}
    errs = errors_for(tmp_path, edit)
    assert [c for _, m, c in errs if "computes the windowed aggregations of view 'customer_spend' from files" in m]


def test_views_must_share_one_offline_store(tmp_path):
    def edit(d):
        d["data"]["sources"].append({"name": "warehouse", "type": "postgres", "table": "p", "host": "pg",
                                     "database": "d", "timestamp": "ts", "credentials": {"service_account": "sa"},
                                     "columns": {"customer_id": "int64", "score": "float64", "ts": "unix_timestamp"}})
        d["features"]["views"].append({"name": "scores", "source": "warehouse", "entities": ["customer"],
                                       "fields": [{"name": "score", "dtype": "float64"}]})
    errs = errors_for(tmp_path, edit)
    assert [m for _, m, _ in errs if "reads all its sources through one offline store" in m and "'scores'" in m]


def test_a_field_named_like_a_join_key_and_protobuf_kafka_are_refused(tmp_path):
    errs = errors_for(tmp_path, lambda d: d["features"]["views"][0]["fields"].append(
        {"name": "customer_id", "dtype": "int64"}))
    assert [m for _, m, _ in errs if "field 'customer_id' is the join key of entity 'customer'" in m]
    errs = errors_for(tmp_path / "b", lambda d: d["data"]["sources"][0].update(message_format="protobuf"), "fraud")
    assert [m for _, m, _ in errs if "needs the protobuf message class" in m]


def test_settings_rules_are_located_in_the_environment_file(tmp_path):
    feast = {"online_store": {"type": "redis", "options": {"password": "hunter2", "host": "r$HOME"}}}
    errs = errors_for(tmp_path, lambda d: None, feast=feast, env="dev")
    messages = [m for _, m, _ in errs]
    assert any("feast.online_store.options.password looks like a credential" in m for m in messages)
    assert any("contains '$'" in m for m in messages)
    assert any("feast.credentials_secret names no Secret" in m for m in messages)


def test_project_names_the_online_store_rejects():
    assert ft._project_problem("churn_v2", "sqlite") is None
    assert "SQLite" in ft._project_problem("churn-v2", "sqlite")
    assert ft._project_problem("churn-v2", "redis") is None
    assert ft._project_problem("_x", "redis") and ft._project_problem("a.b", "redis")


def test_a_postgres_online_store_limits_table_names(tmp_path):
    feast = {"online_store": {"type": "postgres", "options": {"host": "pg", "database": "feast"}},
             "credentials_secret": "feast-credentials"}
    def edit(d):
        d["features"]["views"][1]["name"] = "v" * 60
        d["features"]["services"][0]["features"] = ["customer_profile", "v" * 60]
    errs = errors_for(tmp_path, edit, feast=feast, env="dev")
    assert [m for _, m, _ in errs if "Postgres online store table 'churn_" in m]


# --------------------------------------------------------------------------- the operator resource


def operator_feature_store_yaml(objects: list[dict]) -> dict:
    """feature_store.yaml as the Feast operator builds it from our objects: a port of
    getServiceRepoConfig for the fields we set (feast@v0.66.0
    infra/feast-operator/internal/controller/services/repo_config.go)."""
    [fs] = [o for o in objects if o["kind"] == "FeatureStore"]
    secrets = {k: yaml.safe_load(v) for o in objects if o["kind"] == "Secret" for k, v in o["stringData"].items()}
    configmaps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    spec = fs["spec"]
    authz = spec.get("authz", {"kubernetes": {}})
    config: dict = {"project": spec["feastProject"], "provider": "local", "entity_key_serialization_version": 3,
                    "auth": {"type": "no_auth" if authz.get("noAuth") else "kubernetes"},
                    "online_store": {"type": "sqlite", "path": ft.OPERATOR_ONLINE_PATH},
                    "registry": {"registry_type": "file", "path": ft.OPERATOR_REGISTRY_PATH}}
    services = spec["services"]
    offline = services["offlineStore"]["persistence"]
    config["offline_store"] = {"type": offline["file"]["type"]} if "file" in offline else \
        {"type": offline["store"]["type"], **secrets[offline["store"]["secretKeyName"]]}
    online = services["onlineStore"]["persistence"]
    if "file" in online:
        config["online_store"]["path"] = online["file"]["path"]
    else:
        config["online_store"] = {"type": online["store"]["type"], **secrets[online["store"]["secretKeyName"]]}
    registry = services["registry"]["local"]["persistence"]
    if "file" in registry:
        config["registry"] = {"registry_type": "file", "path": registry["file"]["path"],
                              **({"cache_ttl_seconds": registry["file"]["cache_ttl_seconds"]}
                                 if "cache_ttl_seconds" in registry["file"] else {})}
    else:
        config["registry"] = {"registry_type": registry["store"]["type"], **secrets[registry["store"]["secretKeyName"]]}
    engine = yaml.safe_load(configmaps[spec["batchEngine"]["configMapRef"]["name"]][spec["batchEngine"]["configMapKey"]])
    config["batch_engine"] = engine
    return config


@pytest.mark.parametrize("feast", [None, PROD_LIKE])
def test_the_operator_builds_the_same_feature_store_yaml_as_the_repository_has(tmp_path, feast):
    _r, ctx = ctx_of(tmp_path, "churn", "prod", feast)
    assert operator_feature_store_yaml(feast_repo.feature_store_objects(ctx)) == feast_repo.feature_store_config(ctx)
    config = feast_repo.feature_store_config(ctx)
    if feast:
        assert config["online_store"]["connection_string"] == "${FEAST_ONLINE_STORE_CONNECTION_STRING}"
        assert config["registry"]["path"] == "${FEAST_REGISTRY_PATH}"
        [fs] = [o for o in feast_repo.feature_store_objects(ctx) if o["kind"] == "FeatureStore"]
        assert fs["spec"]["services"]["onlineStore"]["server"]["envFrom"] == [{"secretRef": {"name": "feast-credentials"}}]
        assert fs["spec"]["cronJob"]["schedule"] == "15 * * * *"


def _validate(files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SHARED / "tools" / "k8s-validate.py"), "--strict", *map(str, files)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not (SHARED / "tools" / "k8s-validate.py").exists(), reason="../shared is not beside the checkout")
def test_feature_store_objects_pass_k8s_validate_strict_with_cel(tmp_path):
    import importlib.util

    assert importlib.util.find_spec("celpy") is not None, "cel-python is needed to check the CRD's CEL rules"
    files = []
    for n, feast in enumerate((None, PROD_LIKE, {**PROD_LIKE, "auth": "no_auth", "ui": True})):
        for name in ("churn", "fraud"):
            for env in ("dev", "prod"):
                r, ctx = ctx_of(tmp_path / f"{n}{name}{env}", name, env, feast)
                [art] = [a for a in ft.generate(ctx) if a.path.endswith("featurestore.yaml")]
                path = tmp_path / f"{n}-{name}-{env}.yaml"
                path.write_bytes(render(art, source=r.spec_path))
                files.append(path)
    proc = _validate(files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not checked" not in proc.stderr  # the CEL rules ran
    # and a broken resource is caught by a CEL rule, so the check above means something
    docs = list(yaml.safe_load_all(files[0].read_text()))
    docs[0]["spec"]["feastProjectDir"]["init"] = {"minimal": True}
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    proc = _validate([broken])
    assert proc.returncode == 1 and "[CEL]" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_training_step_names_the_service_the_entity_frame_and_the_pinned_feast(tmp_path):
    _r, ctx = ctx_of(tmp_path, "fraud")
    step = feast_repo.training_step(ctx)
    assert step.feature_service == "fraud_scoring" and step.entity_keys == ("card_id", "merchant_id")
    assert step.feature_columns == ("spend_1h", "txn_count_1h", "max_amount_1d", "foreign_share_1d", "risk_score")
    assert step.count_features == ("txn_count_1h",) and step.packages == ("feast==0.67.0",)
    files = json.loads(step.repo)
    assert yaml.safe_load(files["repo/feature_store.yaml"])["registry"]["path"] == "data/registry.db"
    assert json.loads(step.roots) == {"s3://acme-ml-dev/pipelines/data/fraud": "{data_root}",
                                      "s3://acme-ml-dev/pipelines/feast/fraud": "{work}/prepared"}
