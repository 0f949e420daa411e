"""The Kubeflow target: IR validity, Kubernetes-native manifests, schedule, determinism,
hyper-parameter candidates, and the step functions' semantics (run in-process)."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from mlspec import registry
from mlspec.compiler import context as target_context
from mlspec.context import Context
from mlspec.environments import model_for
from mlspec.models import Spec
from mlspec.project import resolve_paths

from mlspec.generators import kubeflow as kf
from mlspec.generators import kubeflow_pipeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("churn", "fraud")
ENVS = ("dev", "prod", "staging")
K8S_VALIDATE = Path(os.environ.get("MLSPEC_K8S_VALIDATE", ROOT.parent / "shared" / "tools" / "k8s-validate.py"))


# --------------------------------------------------------------------------- helpers


def _contexts() -> dict[tuple[str, str], Context]:
    out = {}
    cwd = os.getcwd()
    os.chdir(ROOT)  # spec paths as the user names them: relative to the repository root
    try:
        for example in EXAMPLES:
            result = resolve_paths([Path("examples") / example / "mlops.yaml"])
            assert not result.errors, result.errors
            for r in result.resolved:
                out[(example, r.env.name)] = target_context(r, kf.target)
    finally:
        os.chdir(cwd)
    return out


CONTEXTS = _contexts()
CASES = sorted(CONTEXTS)
_ARTEFACTS: dict = {}


def artefacts(case):
    if case not in _ARTEFACTS:
        _ARTEFACTS[case] = {a.path.rsplit("/", 1)[-1]: a for a in kf.generate(CONTEXTS[case])}
    return _ARTEFACTS[case]


def variant(example: str, mutate, env: str = "dev", mutate_env=None) -> Context:
    """A context for a modified copy of an example spec (validated by the pydantic model only)."""
    data = yaml.safe_load((ROOT / "examples" / example / "mlops.yaml").read_text())
    data.pop("overrides", None)
    mutate(data)
    spec = Spec.model_validate(data)
    env_data = yaml.safe_load((ROOT / "environments" / f"{env}.yaml").read_text())
    if mutate_env is not None:
        mutate_env(env_data)
    environment = model_for(registry.select(None)).model_validate(env_data)
    resolved = SimpleNamespace(spec=spec, env=environment, spec_path=f"examples/{example}/mlops.yaml")
    return target_context(resolved, kf.target)


def source(data: dict, name: str) -> dict:
    return next(s for s in data["data"]["sources"] if s["name"] == name)


def all_dags(ir: dict):
    """(name, dag) of the root and of every DAG component."""
    yield "root", ir["root"]["dag"]
    for name, comp in ir["components"].items():
        if "dag" in comp:
            yield name, comp["dag"]


def root_tasks_by_display(ir: dict) -> dict[str, dict]:
    return {t["taskInfo"]["name"]: t for _, dag in all_dags(ir) for t in dag["tasks"].values()}


def assert_plain(obj, where="content"):
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str, f"{where}: key {k!r}"
            assert_plain(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            assert_plain(v, f"{where}[{i}]")
    else:
        assert type(obj) in (str, int, float, bool, type(None)), f"{where}: {type(obj).__name__}"


# --------------------------------------------------------------------------- import & API


def test_importing_the_target_does_not_import_kfp():
    """Nor does importing its generator; and the module the registry loads leaves the generator
    unimported until it generates."""
    code = ("import sys, mlspec.generators.kubeflow as k; assert callable(k.generate); "
            "print('mlspec.generators.kubeflow_pipeline' in sys.modules); "
            "import mlspec.generators.kubeflow_pipeline as p; assert callable(p.build_pipeline); "
            "print('kfp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_artefact_paths_and_plain_content(case):
    ctx = CONTEXTS[case]
    arts = kf.generate(ctx)
    paths = [a.path for a in arts]
    base = f"deploy/{ctx.env.name}/{ctx.spec.name}/kubeflow"
    retrain = ctx.spec.drift is not None and ctx.spec.drift.action == "retrain"  # churn: the version's ConfigMap
    assert paths == [f"{base}/pipeline-ir.yaml", f"{base}/pipeline.yaml", f"{base}/schedule.yaml",
                     *([f"{base}/pipeline-version.yaml"] if retrain else [])]
    for a in arts:
        assert a.kind == "yaml"
        assert_plain(a.content, a.path)
    assert arts[1].multi_document and [d["kind"] for d in arts[1].content] == ["Pipeline", "PipelineVersion"]


# --------------------------------------------------------------------------- candidates


def test_grid_candidates_are_the_sorted_cartesian_product():
    training = CONTEXTS[("churn", "dev")].spec.training
    got = kubeflow_pipeline.candidates(training)
    assert len(got) == 8
    assert got[0] == {"learning_rate": 0.05, "max_depth": 2, "n_estimators": 50}
    assert got[1] == {"learning_rate": 0.05, "max_depth": 2, "n_estimators": 100}
    assert got[-1] == {"learning_rate": 0.1, "max_depth": 3, "n_estimators": 100}
    assert all(list(c) == sorted(c) for c in got)
    assert all(type(c["n_estimators"]) is int and type(c["learning_rate"]) is float for c in got)


def test_random_candidates_are_seeded_in_range_and_unique():
    training = CONTEXTS[("fraud", "dev")].spec.training
    got = kubeflow_pipeline.candidates(training)
    assert got == kubeflow_pipeline.candidates(training)  # same seed, same draws
    assert 1 <= len(got) <= training.search.trials
    assert len({kubeflow_pipeline.canonical(c) for c in got}) == len(got)
    for c in got:
        assert c["n_estimators"] in (50, 100, 200)
        assert type(c["max_depth"]) is int and 2 <= c["max_depth"] <= 8
        assert type(c["min_samples_leaf"]) is int and 1 <= c["min_samples_leaf"] <= 20
    other = training.model_copy(update={"search": training.search.model_copy(update={"seed": 12})})
    assert kubeflow_pipeline.candidates(other) != got


def test_random_candidates_deduplicate_and_float_ranges():
    def mutate(data):
        data["training"]["search"] = {"strategy": "random", "trials": 5, "seed": 1,
                                      "parameters": {"a": [1], "lr": {"min": 0.001, "max": 1.0, "scale": "log"}}}

    training = variant("churn", mutate).spec.training
    got = kubeflow_pipeline.candidates(training)
    assert len(got) == 5 and all(c["a"] == 1 and 0.001 <= c["lr"] <= 1.0 for c in got)

    def only_choice(data):
        data["training"]["search"] = {"strategy": "random", "trials": 5, "seed": 1, "parameters": {"a": [1]}}

    assert kubeflow_pipeline.candidates(variant("churn", only_choice).spec.training) == [{"a": 1}]


def test_no_parameters_means_one_default_candidate():
    def mutate(data):
        data["training"]["search"] = {"strategy": "grid", "parameters": {}}

    assert kubeflow_pipeline.candidates(variant("churn", mutate).spec.training) == [{}]


# --------------------------------------------------------------------------- IR


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_ir_parses_strictly_and_references_resolve(case):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    art = artefacts(case)["pipeline-ir.yaml"]
    docs = art.content if art.multi_document else [art.content]
    ir = docs[0]
    json_format.ParseDict(ir, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    if len(docs) > 1:
        json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
    components = ir["components"]
    executors = ir["deploymentSpec"]["executors"]
    for dag_name, dag in all_dags(ir):
        for task_name, task in dag["tasks"].items():
            assert task["componentRef"]["name"] in components, (dag_name, task_name)
            for dep in task.get("dependentTasks", []):
                assert dep in dag["tasks"], f"{dag_name}/{task_name} depends on {dep}, not in the same DAG"
    for name, comp in components.items():
        if "executorLabel" in comp:
            assert comp["executorLabel"] in executors, name
        else:
            assert "dag" in comp, name


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_ir_shape_follows_the_spec(case):
    ctx = CONTEXTS[case]
    spec, training = ctx.spec, ctx.spec.training
    ir = artefacts(case)["pipeline-ir.yaml"].content
    ir = ir[0] if isinstance(ir, list) else ir
    assert ir["pipelineInfo"]["name"] == kubeflow_pipeline.pipeline_version_name(ctx)
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert params["data_root"]["defaultValue"] == f"{ctx.env.storage.artifacts}/data/{spec.name}"
    assert params["registry_root"]["defaultValue"] == ctx.env.storage.models
    assert ir["defaultPipelineRoot"] == ctx.env.storage.artifacts

    tasks = root_tasks_by_display(ir)
    plan = kubeflow_pipeline.plan(ctx)
    for step in plan.ingests:
        assert tasks[f"ingest {step.name}"]["cachingOptions"].get("enableCache", False) is False
        assert (f"check {step.name}" in tasks) == bool(step.checks)
    assert "label table" in tasks and "select best" in tasks and "quality gate" in tasks
    assert tasks["register model"]["cachingOptions"].get("enableCache", False) is False

    loops = [t for _, dag in all_dags(ir) for t in dag["tasks"].values() if "parameterIterator" in t]
    assert len(loops) == 1
    loop = loops[0]
    assert loop["iteratorPolicy"]["parallelismLimit"] == training.parallelism
    items = json.loads(loop["parameterIterator"]["items"]["raw"])
    assert items == [kubeflow_pipeline.canonical(c) for c in kubeflow_pipeline.candidates(training)]
    assert all(isinstance(i, str) for i in items)

    # training resources and the pinned, deterministic packages
    train_exec = next(e for n, e in ir["deploymentSpec"]["executors"].items() if n.startswith("exec-train-candidate"))
    container = train_exec["container"]
    assert container["image"] == (training.image or "python:3.11-slim")
    assert container["resources"]["cpuLimit"] == float(training.resources.limits.cpu)
    assert container["resources"]["memoryLimit"] > 0
    command = " ".join(container["command"])
    import kfp

    for pin in ("scikit-learn==1.9.1", "pandas==3.1.1", "pyarrow==26.0.1", f"kfp=={kfp.__version__}"):
        assert pin in command
    # the label table comes before every join, the joins are chained, training reads the last one
    assert "label table" in root_tasks_by_display(ir)
    select = tasks["select best"]
    assert "taskOutputArtifact" in select["inputs"]["artifacts"]["models"]


def test_version_name_is_the_hash_of_the_ir_without_its_name():
    ctx = CONTEXTS[("churn", "dev")]
    pipeline = kubeflow_pipeline.build_pipeline(ctx)  # under the placeholder name
    from google.protobuf import json_format

    ir = kubeflow_pipeline._sorted(json_format.MessageToDict(pipeline.pipeline_spec))
    platform = kubeflow_pipeline._sorted(json_format.MessageToDict(pipeline.platform_spec))
    assert ir["pipelineInfo"]["name"] == kf.VERSION_PLACEHOLDER
    name = kubeflow_pipeline.pipeline_version_name(ctx)
    assert name == f"churn-{kubeflow_pipeline.ir_sha256(ir, platform)[:10]}"
    final, _ = kubeflow_pipeline.compile_ir(ctx)
    assert kf.VERSION_PLACEHOLDER not in json.dumps(final)
    register = next(t for t in final["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"] == "register model")
    assert register["inputs"]["parameters"]["pipeline_version"]["runtimeValue"]["constant"] == name


def test_version_name_changes_if_and_only_if_the_pipeline_does():
    base = kubeflow_pipeline.pipeline_version_name(variant("churn", lambda d: None))
    same = {
        "labels": lambda d: d.setdefault("labels", {}).update({"team": "other"}),
        "description": lambda d: d.update(description="new words"),
        "owner": lambda d: d.update(owner="someone-else@acme.example"),
        "traffic": lambda d: d["serving"].update(traffic={"champion": 70, "challenger": 30}),
    }
    for what, edit in same.items():
        assert kubeflow_pipeline.pipeline_version_name(variant("churn", edit)) == base, what
    grid = variant("churn", lambda d: d["training"]["search"]["parameters"].update(max_depth=[2, 9]))
    assert kubeflow_pipeline.pipeline_version_name(grid) != base


# Edits, each to one part of the resolved document: (path it touches, spec edit, environment edit).
EDITS = [
    ("spec.owner", lambda d: d.update(owner="someone@acme.example"), None),
    ("spec.description", lambda d: d.update(description="Other words."), None),
    ("spec.labels", lambda d: d["labels"].update(team="other"), None),
    ("spec.serving", lambda d: d["serving"].update(traffic={"champion": 60, "challenger": 40}), None),
    ("spec.drift", lambda d: d.pop("drift"), None),
    ("spec.gitops", lambda d: d.update(gitops={"sync": "manual"}), None),
    ("spec.ci", lambda d: d.update(ci={"python": "3.12"}), None),
    ("spec.training.schedule", lambda d: d["training"].update(schedule="@hourly"), None),
    ("env.argocd", lambda d: None, lambda e: e["argocd"].update(revision="other")),
    ("env.policies", lambda d: None, lambda e: e.update(policies={"min_replicas": 1})),
    ("env.registry", lambda d: None, lambda e: e.update(registry="quay.io/acme")),
]


def test_each_file_depends_on_nothing_outside_its_declared_reads():
    """An artefact's ``reads`` are what its manifest ``inputs`` hash covers: an edit anywhere
    else must leave its bytes exactly as they are (else the hash would miss a real change)."""
    from mlspec.inputs import covers
    from mlspec.render import render

    def rendered(ctx):
        return {a.path.rsplit("/", 1)[-1]: (render(a, source="s"), a.reads) for a in kf.generate(ctx)}

    base = rendered(variant("churn", lambda d: None))
    checked = 0
    for path, edit_spec, edit_env in EDITS:
        after = rendered(variant("churn", edit_spec, mutate_env=edit_env))
        for name, (data, reads) in base.items():
            assert reads is not None and all(covers(kf.target.reads, r) for r in reads)
            if name not in after:  # the edit removed the file (no schedule): it read the path
                assert any(covers([r], path) or covers([path], r) for r in reads), (name, path)
                continue
            if not any(covers([r], path) or covers([path], r) for r in reads):
                assert after[name][0] == data, f"{name} changed after an edit of {path}, which it does not read"
                checked += 1
    assert checked >= 20


# --------------------------------------------------------------------------- Kubernetes-native form


def _strip_ours(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("labels")
    doc["metadata"].pop("annotations")
    return doc


@pytest.mark.parametrize("case", [("churn", "dev"), ("fraud", "prod")], ids=lambda c: "-".join(c))
def test_kubernetes_manifests_equal_the_kfp_compilers(case, tmp_path):
    from kfp import compiler
    from kfp.compiler import KubernetesManifestOptions

    ctx = CONTEXTS[case]
    version = kubeflow_pipeline.pipeline_version_name(ctx)
    pipeline = kubeflow_pipeline.build_pipeline(ctx, version_name=version)
    k8s_path = tmp_path / "k8s.yaml"
    compiler.Compiler().compile(
        pipeline, str(k8s_path), kubernetes_manifest_format=True,
        kubernetes_manifest_options=KubernetesManifestOptions(
            pipeline_name=ctx.spec.name, pipeline_version_name=version,
            namespace=ctx.env.kubeflow.namespace, include_pipeline_manifest=True))
    theirs = list(yaml.safe_load_all(k8s_path.read_text()))
    ours = copy.deepcopy(artefacts(case)["pipeline.yaml"].content)
    assert ours[0]["spec"].pop("description", None) == ctx.spec.description  # ours: on the Pipeline only
    assert [_strip_ours(d) for d in ours] == theirs
    for doc in ours:
        assert doc["metadata"]["labels"] == ctx.labels("training-pipeline")
        assert doc["metadata"]["annotations"] == ctx.annotations()
    # KFP's webhook: a PipelineVersion's name must equal its pipelineSpec.pipelineInfo.name
    assert ours[1]["metadata"]["name"] == ours[1]["spec"]["pipelineSpec"]["pipelineInfo"]["name"] == version
    assert ours[1]["spec"]["pipelineName"] == ours[0]["metadata"]["name"] == ctx.spec.name

    ir_path = tmp_path / "ir.yaml"
    compiler.Compiler().compile(pipeline, str(ir_path))
    ir_art = artefacts(case)["pipeline-ir.yaml"]
    assert list(yaml.safe_load_all(ir_path.read_text())) == (ir_art.content if ir_art.multi_document else [ir_art.content])


@pytest.mark.skipif(not K8S_VALIDATE.is_file(), reason=f"k8s-validate not found at {K8S_VALIDATE}")
def test_kubernetes_documents_pass_strict_validation(tmp_path):
    for case in CASES:
        for name, art in artefacts(case).items():
            if name == "pipeline-ir.yaml":
                continue
            docs = art.content if art.multi_document else [art.content]
            (tmp_path / f"{'-'.join(case)}-{name}").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    proc = subprocess.run([sys.executable, str(K8S_VALIDATE), "--strict", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == len(CASES) * 3 + 3  # + the three churn pipeline-version ConfigMaps


# --------------------------------------------------------------------------- schedule


def test_schedule_is_a_cronjob_that_runs_the_committed_version():
    ctx = CONTEXTS[("fraud", "staging")]
    cron = artefacts(("fraud", "staging"))["schedule.yaml"].content
    assert cron["apiVersion"] == "batch/v1" and cron["kind"] == "CronJob"
    assert cron["metadata"]["namespace"] == ctx.namespace
    assert cron["spec"]["schedule"] == "0 0 * * *"  # @daily, expanded
    assert cron["spec"]["timeZone"] == "Etc/UTC" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["KFP_PIPELINE_VERSION"] == kubeflow_pipeline.pipeline_version_name(ctx)
    assert env["KFP_PIPELINE_NAME"] == "fraud" and env["KFP_PIPELINE_NAMESPACE"] == ctx.env.kubeflow.namespace
    token = pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "pipelines.kubeflow.org"
    script = pod["containers"][0]["command"][2]
    compile(script, "trigger", "exec")  # the embedded script is valid Python
    assert CONTEXTS[("churn", "dev")] and artefacts(("churn", "dev"))["schedule.yaml"].content["spec"]["schedule"] == "0 3 * * 1"


def test_schedule_time_zone_is_the_spec_s():
    ctx = variant("churn", lambda d: d["training"].update(timezone="Europe/Berlin"))
    cron = {a.path.rsplit("/", 1)[-1]: a for a in kf.generate(ctx)}["schedule.yaml"].content
    assert cron["spec"]["timeZone"] == "Europe/Berlin"


def test_no_schedule_no_schedule_artefact():
    ctx = variant("churn", lambda d: d["training"].pop("schedule"))
    assert [a.path.rsplit("/", 1)[-1] for a in kf.generate(ctx)] == ["pipeline-ir.yaml", "pipeline.yaml", "pipeline-version.yaml"]


class _Response:
    def __init__(self, body):
        self.body = json.dumps(body).encode()

    def read(self):
        return self.body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_trigger_run_resolves_names_and_creates_a_run(tmp_path):
    from urllib.parse import parse_qs, urlparse

    from mlspec.generators.kubeflow_components import trigger_run

    token = tmp_path / "token"
    token.write_text("s3cr3t\n")
    calls = []

    def urlopen(request, timeout):
        url = urlparse(request.full_url)
        body = json.loads(request.data) if request.data else None
        calls.append((request.get_method(), url.path, parse_qs(url.query), body, request.headers.get("Authorization")))
        if url.path == "/apis/v2beta1/pipelines/names/churn":
            return _Response({"pipeline_id": "p-1"})
        if url.path == "/apis/v2beta1/pipelines/p-1/versions":
            if "page_token" not in parse_qs(url.query):
                return _Response({"pipeline_versions": [{"name": "churn-old", "pipeline_version_id": "v-0"}],
                                  "next_page_token": "t2"})
            return _Response({"pipeline_versions": [{"name": "churn-abc", "pipeline_version_id": "v-1"}]})
        if url.path == "/apis/v2beta1/experiments" and request.get_method() == "GET":
            return _Response({})
        if url.path == "/apis/v2beta1/experiments":
            return _Response({"experiment_id": "e-1"})
        if url.path == "/apis/v2beta1/runs":
            return _Response({"run_id": "r-1"})
        raise AssertionError(url.path)

    env = {"KFP_HOST": "http://kfp:8888", "KFP_PIPELINE_NAMESPACE": "kubeflow", "KFP_PIPELINE_NAME": "churn",
           "KFP_PIPELINE_VERSION": "churn-abc", "KFP_RUN_NAMESPACE": "ml-dev", "KFP_EXPERIMENT": "churn",
           "KFP_SERVICE_ACCOUNT": "trainer", "KFP_RUN_PARAMETERS": "{}", "KF_PIPELINES_SA_TOKEN_PATH": str(token)}
    assert trigger_run(env, urlopen) == 0
    assert [c[:2] for c in calls] == [
        ("GET", "/apis/v2beta1/pipelines/names/churn"), ("GET", "/apis/v2beta1/pipelines/p-1/versions"),
        ("GET", "/apis/v2beta1/pipelines/p-1/versions"), ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/runs")]
    assert all(c[4] == "Bearer s3cr3t" for c in calls)
    assert calls[4][3] == {"display_name": "churn", "namespace": "ml-dev"}
    run = calls[5][3]
    assert run["pipeline_version_reference"] == {"pipeline_id": "p-1", "pipeline_version_id": "v-1"}
    assert run["experiment_id"] == "e-1" and run["service_account"] == "trainer"
    assert run["display_name"].startswith("churn-abc-scheduled-")

    missing = dict(env, KFP_PIPELINE_VERSION="churn-nope")
    assert trigger_run(missing, urlopen) == 1


# --------------------------------------------------------------------------- determinism


DUMP = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from mlspec.compiler import context
    from mlspec.project import resolve_paths
    from mlspec.generators import kubeflow
    out = {}
    for example in ("churn", "fraud"):
        for r in resolve_paths([Path("examples") / example / "mlops.yaml"]).resolved:
            ctx = context(r, kubeflow.target)
            for a in kubeflow.generate(ctx):
                out[a.path] = a.content
    json.dump(out, sys.stdout, sort_keys=True)
""")


def test_output_is_identical_across_processes_and_hash_seeds():
    runs = []
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", DUMP], capture_output=True, text=True, cwd=ROOT, env=env)
        assert proc.returncode == 0, proc.stderr
        runs.append(proc.stdout)
    assert runs[0] == runs[1]
    here = {a.path: a.content for case in CASES for a in artefacts(case).values()}
    assert json.loads(runs[0]) == json.loads(json.dumps(here, sort_keys=True))


# --------------------------------------------------------------------------- other training and data shapes


def test_container_training_compiles_a_container_component():
    def mutate(data):
        data["training"].pop("estimator")
        data["training"]["container"] = {"image": "ghcr.io/acme/trainer:1.2", "command": ["python", "-m", "train"],
                                         "args": ["--verbose"]}

    ctx = variant("churn", mutate)
    ir = kf.generate(ctx)[0].content
    ir = ir[0] if isinstance(ir, list) else ir
    execs = ir["deploymentSpec"]["executors"]
    train = next(e for n, e in execs.items() if n.startswith("exec-train-container"))["container"]
    assert train["image"] == "ghcr.io/acme/trainer:1.2" and train["command"] == ["python", "-m", "train"]
    assert train["args"][0] == "--verbose" and "--candidate" in train["args"] and "--model-dir" in train["args"]
    assert not any(n.startswith("exec-train-candidate") for n in execs)
    select = root_tasks_by_display(ir)["select best"]
    assert select["inputs"]["parameters"]["results"]["taskOutputParameter"]["outputParameterKey"].endswith("result")


def test_warehouse_sources_get_real_ingest_steps_with_secret_mounts_only():
    def mutate(data):
        labels = source(data, "labels")
        labels.clear()
        labels.update({"name": "labels", "type": "postgres", "host": "db.internal", "database": "crm",
                       "table": "churn_labels", "timestamp": "event_timestamp",
                       "columns": {"customer_id": "int64", "churned": "int64", "event_timestamp": "unix_timestamp"},
                       "credentials": {"secret_ref": {"secret": "crm-db", "key": "password"}}})
        customers = source(data, "customers")
        for k in ("path",):
            customers.pop(k)
        customers.update({"type": "bigquery", "project": "acme", "table": "acme.crm.customers",
                          "credentials": {"service_account": "bq-reader"}})
        tx = source(data, "transactions")
        tx.pop("path")
        tx.update({"type": "snowflake", "database": "SALES", "schema": "PUBLIC", "warehouse": "WH",
                   "query": "SELECT * FROM TX", "credentials": {"secret_ref": {"secret": "snow", "key": "pw"}}})
        data["features"]["feature_store"] = False  # the pipeline's own joins (Feast reads windows from files)

    ctx = variant("churn", mutate)
    art = kf.generate(ctx)[0]
    assert art.multi_document
    ir, platform = art.content
    execs = ir["deploymentSpec"]["executors"]
    commands = {n: " ".join(e["container"]["command"]) for n, e in execs.items()}
    assert any("google-cloud-bigquery==3.47.0" in c and "def ingest_bigquery" in c for c in commands.values())
    assert any("psycopg2-binary==2.9.13" in c for c in commands.values())
    assert any("snowflake-connector-python[pandas]==5.2.0" in c for c in commands.values())
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounts = sorted((v["secretAsVolume"][0]["secretName"], v["secretAsVolume"][0]["mountPath"]) for v in k8s.values())
    assert mounts == [("crm-db", "/var/run/secrets/mlspec/labels"), ("snow", "/var/run/secrets/mlspec/transactions")]
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    json_format.ParseDict(ir, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
    # only non-secret settings travel as arguments; the secret key name is passed, never a value
    tasks = root_tasks_by_display(ir)
    connection = json.loads(tasks["ingest labels"]["inputs"]["parameters"]["connection"]["runtimeValue"]["constant"])
    assert connection == {"database": "crm", "host": "db.internal", "port": 5432}
    env = next(e for n, e in execs.items() if "ingest-sql" in n)["container"]["env"]
    assert {"name": "MLSPEC_SECRET_KEY", "value": "password"} in env
    pv = kf.generate(ctx)[1].content[1]
    assert pv["spec"]["platformSpec"] == platform


def test_the_label_table_carries_every_join_key():
    # a label source without a join key is refused by validation
    # (tests/corpus/invalid/data_label_source_missing_join_key.yaml); the generator relies on that
    assert kubeflow_pipeline.plan(CONTEXTS[("fraud", "dev")]).entity_keys == ("card_id", "merchant_id")


def test_stream_sources_read_their_batch_log():
    p = kubeflow_pipeline.plan(CONTEXTS[("fraud", "dev")])
    names = [s.name for s in p.ingests]
    assert "card_events" not in names and "card_events_log" in names
    step = next(s for s in p.ingests if s.name == "card_events_log")
    assert "card_events" in step.requested_as and len(step.checks) == 3


# --------------------------------------------------------------------------- step semantics (in-process)


def _artifact(path: Path, metadata=None):
    return SimpleNamespace(path=str(path), metadata=dict(metadata or {}))


def _write(tmp_path: Path, name: str, frame: pd.DataFrame):
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    return _artifact(path)


def _ts(*values):
    return pd.to_datetime(list(values), utc=True).as_unit("us")


def test_field_join_is_point_in_time_with_ttl(tmp_path):
    from mlspec.generators.kubeflow_components import join_view_fields

    entity = _write(tmp_path, "e", pd.DataFrame({
        "k": [1, 1, 2, 3], "t": _ts("2026-01-10", "2026-01-02", "2026-01-10", "2026-01-10"), "y": [0, 1, 0, 1]}))
    src = _write(tmp_path, "s", pd.DataFrame({
        "k": [1, 1, 1, 2, 2], "ts": _ts("2026-01-01", "2026-01-09", "2026-01-11", "2026-01-01", "2026-01-10"),
        "v": [10.0, 20.0, 30.0, 40.0, 50.0]}))
    out = _artifact(tmp_path / "o")
    result = join_view_fields(view="v", keys='["k"]', entity_timestamp="t", source_timestamp="ts",
                                 created_timestamp="", fields='["v"]', ttl_seconds=2 * 86400,
                                 source_name="s", source_sha256="22", upstream='{"snapshots": {"l": "11"}}',
                                 entity=entity, source=src, joined=out)
    assert json.loads(result)["snapshots"] == {"l": "11", "s": "22"}  # the lineage chain grows
    got = pd.read_parquet(out.path)
    assert got["y"].tolist() == [0, 1, 0, 1]  # order kept
    # row 0: latest <= 01-10 is 01-09 (the 01-11 row is in the future); row 1: 01-01 within 2d of 01-02;
    # row 2: exact timestamp match counts; row 3: no rows for key 3
    assert got["v"].tolist()[:3] == [20.0, 10.0, 50.0] and math.isnan(got["v"].tolist()[3])

    out2 = _artifact(tmp_path / "o2")
    join_view_fields(view="v", keys='["k"]', entity_timestamp="t", source_timestamp="ts",
                                 created_timestamp="", fields='["v"]', ttl_seconds=3600,
                                 source_name="s", source_sha256="22", upstream="{}",
                                 entity=entity, source=src, joined=out2)
    got2 = pd.read_parquet(out2.path)["v"].tolist()
    assert math.isnan(got2[0]) and math.isnan(got2[1]) and got2[2] == 50.0  # older than the ttl: NaN


@pytest.mark.parametrize("closed", ["left", "right"])
def test_window_aggregations_by_closed_edge(tmp_path, closed):
    from mlspec.generators.kubeflow_components import join_view_aggregations

    entity = _write(tmp_path, "e", pd.DataFrame({"k": [1, 2], "t": _ts("2026-01-10T12:00", "2026-01-10T12:00")}))
    src = _write(tmp_path, "s", pd.DataFrame({
        "k": [1, 1, 1, 1],
        "ts": _ts("2026-01-10T11:00", "2026-01-10T12:00", "2026-01-10T10:00", "2026-01-10T12:01"),
        "amount": [1.0, 2.0, 4.0, 8.0]}))
    aggs = [{"column": "amount", "function": f, "name": f"{f}_2h", "window_seconds": 7200, "closed": closed}
            for f in ("sum", "count", "mean", "max", "last", "std")]
    out = _artifact(tmp_path / "o")
    join_view_aggregations(view="v", keys='["k"]', entity_timestamp="t", source_timestamp="ts",
                                       aggregations=json.dumps(aggs), source_name="s", source_sha256="22",
                                       upstream="{}", entity=entity, source=src, joined=out)
    got = pd.read_parquet(out.path)
    first = got.iloc[0]
    if closed == "left":  # [10:00, 12:00): 10:00 and 11:00; the row at the label's time is not seen; 12:01 is later
        assert first["sum_2h"] == 5.0 and first["count_2h"] == 2 and first["mean_2h"] == 2.5
        assert first["max_2h"] == 4.0 and first["last_2h"] == 1.0
    else:  # (10:00, 12:00]: 11:00 and 12:00 count; 10:00 is on the open edge
        assert first["sum_2h"] == 3.0 and first["count_2h"] == 2 and first["mean_2h"] == 1.5
        assert first["max_2h"] == 2.0 and first["last_2h"] == 2.0
    second = got.iloc[1]
    assert second["count_2h"] == 0 and math.isnan(second["sum_2h"]) and math.isnan(second["mean_2h"])
    assert got["count_2h"].dtype == "int64"


def test_check_data_lists_every_violated_check(tmp_path, capsys):
    from mlspec.generators.kubeflow_components import check_data

    ds = _write(tmp_path, "d", pd.DataFrame({"a": [1, 2, 2, None], "plan": ["x", "basic", "basic", "basic"]}))
    checks = [{"type": "row_count", "min": 10}, {"type": "not_null", "columns": ["a"]},
              {"type": "range", "column": "a", "max": 1}, {"type": "allowed_values", "column": "plan", "values": ["basic"]},
              {"type": "unique", "columns": ["a", "plan"]}, {"type": "not_null", "columns": ["nope"]}]
    with pytest.raises(ValueError) as info:
        check_data(source="s", checks=json.dumps(checks), dataset=ds)
    message = str(info.value)
    assert "6 violation(s)" in message
    for part in ("row_count: 4 rows < min 10", "not_null: column 'a' has 1 null", "range: column 'a' has 2 value(s) > max 1",
                 "allowed_values: column 'plan' has 1 value(s)", "unique: 1 duplicate row(s)", "not found: nope"):
        assert part in message
    assert "MLSPEC-FAILURE: data-quality checks failed for source 's'" in capsys.readouterr().out
    assert json.loads(check_data(source="s", checks="[]", dataset=ds))["rows"] == 4


@pytest.mark.parametrize("goal,score,threshold,ok", [
    ("maximize", 0.62, 0.7, False), ("maximize", 0.7, 0.7, True), ("minimize", 0.3, 0.2, False),
    ("minimize", 0.2, 0.25, True), ("maximize", float("nan"), 0.1, False)])
def test_quality_gate(goal, score, threshold, ok):
    from mlspec.generators.kubeflow_components import quality_gate

    selection = json.dumps({"metric": "roc_auc", "goal": goal, "best": {"score": score, "params": {}},
                            "candidates": []})
    if ok:
        assert json.loads(quality_gate(selection=selection, threshold=threshold))["gate"] == "passed"
    else:
        with pytest.raises(RuntimeError, match="quality gate failed: best roc_auc .* threshold .* — no model registered"):
            quality_gate(selection=selection, threshold=threshold)
    if goal == "maximize" and score == 0.62:
        with pytest.raises(RuntimeError) as info:
            quality_gate(selection=selection, threshold=threshold)
        assert str(info.value) == "quality gate failed: best roc_auc 0.6200 < threshold 0.7000 — no model registered"


def test_select_best_breaks_ties_by_spec_order_and_ignores_nan(tmp_path):
    from mlspec.generators.kubeflow_components import select_best

    cands = [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]
    models = []
    for i in range(4):
        (tmp_path / f"m{i}").mkdir()
        (tmp_path / f"m{i}" / "model.joblib").write_text(str(i))
        models.append(_artifact(tmp_path / f"m{i}"))
    # results arrive in any order; candidate 1 and 3 tie, 0 is NaN
    results = [json.dumps({"params": {"a": 4}, "score": 0.8}), json.dumps({"params": {"a": 2}, "score": 0.8}),
               json.dumps({"params": {"a": 1}, "score": float("nan")}), json.dumps({"params": {"a": 3}, "score": 0.5})]
    best = _artifact(tmp_path / "best")
    out = json.loads(select_best(candidates=json.dumps(cands), metric="f1", goal="maximize",
                                 results=results, models=models, best_model=best))
    assert out["best"] == {"index": 1, "params": {"a": 2}, "score": 0.8}
    assert (tmp_path / "best" / "model.joblib").read_text() == "1"  # the model of that candidate
    assert [c["index"] for c in out["candidates"]] == [0, 1, 2, 3]
    # a container trainer that reports only a score: the loop order names the candidate
    out = json.loads(select_best(candidates=json.dumps(cands), metric="mse", goal="minimize",
                                 results=[json.dumps({"score": s}) for s in (3.0, 1.0, 2.0, 1.0)],
                                 models=models, best_model=_artifact(tmp_path / "best2")))
    assert out["best"]["params"] == {"a": 2}


def test_register_model_writes_to_a_uri_through_fsspec(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    from mlspec.generators.kubeflow_components import register_model

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.joblib").write_bytes(b"model")
    selection = json.dumps({"metric": "f1", "goal": "maximize", "threshold": 0.5, "gate": "passed",
                            "best": {"index": 0, "params": {"a": 1}, "score": 0.9},
                            "candidates": [{"index": 0, "params": {"a": 1}, "score": 0.9}], "n_train": 7, "n_test": 3})
    metrics = SimpleNamespace(logged={}, log_metric=lambda k, v: metrics.logged.__setitem__(k, v))
    out = json.loads(register_model(
        registry_root="memory://registry", model_name="m", pipeline_version="m-ababababab",
        lineage=json.dumps({"spec": "m"}), snapshots=json.dumps({"s": "00"}), selection=selection,
        model=_artifact(tmp_path / "model"), registered=_artifact(tmp_path / "registered"), metrics=metrics))
    fs = fsspec.filesystem("memory")
    version = out["version"]
    assert version.startswith("ababababab-")
    assert fs.cat(f"/registry/m/{version}/model/model.joblib") == b"model"
    assert json.loads(fs.cat(f"/registry/m/{version}/params.json")) == {"a": 1}
    lineage = json.loads(fs.cat(f"/registry/m/{version}/lineage.json"))
    assert lineage["data_snapshot"] == {"s": "00"} and lineage["pipeline_version"] == "m-ababababab"
    assert json.loads(fs.cat("/registry/m/latest.json"))["version"] == version
    assert metrics.logged == {"f1": 0.9, "threshold": 0.5, "candidates": 1}


@pytest.mark.parametrize("estimator,metric,classes", [
    ("sklearn.linear_model.LogisticRegression", m, 2) for m in ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
] + [("sklearn.linear_model.LogisticRegression", m, 3) for m in ("roc_auc", "f1", "log_loss")]
  + [("sklearn.linear_model.LinearRegression", m, 0) for m in ("r2", "mae", "mse", "rmse")])
def test_train_candidate_scores_every_metric(tmp_path, estimator, metric, classes):
    import numpy as np
    from sklearn import metrics as skm
    from sklearn.model_selection import train_test_split

    from mlspec.generators.kubeflow_components import train_candidate

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    x[::10, 1] = np.nan  # LogisticRegression rejects NaN: an imputer is put in front
    if classes:
        y = (np.nan_to_num(x[:, 0]) * 2 + rng.normal(size=120) > 0).astype(int)
        if classes == 3:
            y = y + (x[:, 0] > 1).astype(int)
    else:
        y = 3 * x[:, 0] + rng.normal(size=120)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})
    features = _write(tmp_path, "f", frame)
    model = _artifact(tmp_path / "model")
    result = json.loads(train_candidate(
        candidate=json.dumps({} if not classes else {"C": 0.5}), estimator=estimator, feature_columns='["a", "b"]',
        label="y", metric=metric, test_size=0.25, split_seed=3, stratify=bool(classes), features=features, model=model))
    assert result["metric"] == metric and result["n_test"] == 30 and math.isfinite(result["score"])
    fitted = joblib_load(tmp_path / "model" / "model.joblib")
    _, X_test, _, y_test = train_test_split(frame[["a", "b"]], frame["y"], test_size=0.25, random_state=3,
                                            stratify=frame["y"] if classes else None)
    if metric == "rmse":
        assert result["score"] == pytest.approx(math.sqrt(skm.mean_squared_error(y_test, fitted.predict(X_test))))
    if metric == "accuracy":
        assert result["score"] == pytest.approx(skm.accuracy_score(y_test, fitted.predict(X_test)))


def _independent_score(metric, y_test, fitted, X_test):
    """``metric`` computed here, with scikit-learn, from the fitted model and the hold-out."""
    import numpy as np
    from sklearn import metrics as skm
    from sklearn.preprocessing import label_binarize

    if metric in ("mape", "mae", "r2"):
        fn = {"mape": skm.mean_absolute_percentage_error, "mae": skm.mean_absolute_error, "r2": skm.r2_score}[metric]
        return fn(y_test, fitted.predict(X_test))
    if metric == "f1":
        return skm.f1_score(y_test, fitted.predict(X_test), average="binary" if y_test.nunique() == 2 else "macro")
    proba = fitted.predict_proba(X_test)
    binary = proba.shape[1] == 2
    if metric == "pr_auc":
        if binary:
            return skm.average_precision_score(y_test == fitted.classes_[1], proba[:, 1])
        onehot = label_binarize(y_test, classes=fitted.classes_)
        return float(np.mean([skm.average_precision_score(onehot[:, k], proba[:, k]) for k in range(proba.shape[1])]))
    assert metric == "gini"
    auc = skm.roc_auc_score(y_test, proba[:, 1]) if binary else skm.roc_auc_score(y_test, proba, multi_class="ovr")
    return 2 * auc - 1


@pytest.mark.parametrize("metric,classes", [
    ("pr_auc", 2), ("pr_auc", 3), ("gini", 2), ("gini", 3), ("f1", 2), ("f1", 3),
    ("mape", 0), ("mae", 0), ("r2", 0),
])
def test_train_candidate_metrics_agree_with_scikit_learn(tmp_path, metric, classes):
    """Issue 7, metrics: every score of the training step is what scikit-learn gives for the
    fitted model on the hold-out, computed here independently."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from mlspec.generators.kubeflow_components import train_candidate
    from mlspec.validate import METRICS

    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 2))
    if classes:
        y = (x[:, 0] * 2 + rng.normal(size=200) > 0).astype(int)
        if classes == 3:
            y = y + (x[:, 1] > 0.5).astype(int)
        estimator = "sklearn.linear_model.LogisticRegression"
    else:
        y = 50 + 3 * x[:, 0] + rng.normal(size=200)  # away from 0: mape is well defined
        estimator = "sklearn.linear_model.LinearRegression"
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})
    features = _write(tmp_path, "f", frame)
    model = _artifact(tmp_path / "model")
    result = json.loads(train_candidate(
        candidate="{}", estimator=estimator, feature_columns='["a", "b"]', label="y", metric=metric,
        test_size=0.3, split_seed=5, stratify=bool(classes), features=features, model=model))
    fitted = joblib_load(tmp_path / "model" / "model.joblib")
    _, X_test, _, y_test = train_test_split(frame[["a", "b"]], frame["y"], test_size=0.3, random_state=5,
                                            stratify=frame["y"] if classes else None)
    expected = _independent_score(metric, y_test, fitted, X_test)
    assert result["score"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    info = METRICS[metric]
    assert info.low <= result["score"] <= info.high
    assert info.kind == ("classifier" if classes else "regressor")


def test_metric_table_covers_every_metric_name():
    """The table of directions and ranges has exactly the metrics the spec accepts."""
    import typing

    from mlspec.models import Metric
    from mlspec.validate import METRICS

    names = set(typing.get_args(Metric.model_fields["name"].annotation))
    assert names == set(METRICS)
    assert {"mape", "pr_auc", "gini", "mae", "r2", "f1"} <= names
    assert METRICS["mape"].goal == "minimize" and (METRICS["mape"].low, METRICS["mape"].high) == (0.0, math.inf)
    assert METRICS["pr_auc"].goal == "maximize" and (METRICS["pr_auc"].low, METRICS["pr_auc"].high) == (0.0, 1.0)
    assert METRICS["gini"].goal == "maximize" and (METRICS["gini"].low, METRICS["gini"].high) == (-1.0, 1.0)
    assert METRICS["gini"].proba and METRICS["pr_auc"].proba and not METRICS["mape"].proba


def joblib_load(path):
    import joblib

    return joblib.load(path)


def test_version_key_is_stable_and_imports_no_kfp():
    code = ("import sys; from mlspec.generators import kubeflow as k; a = k.version_key(); "
            "assert a == k.version_key() and len(a) == 64; print('kfp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("uri,package", [("s3://lake/customers.parquet", "s3fs==2026.9.0"),
                                         ("gs://lake/customers.parquet", "gcsfs==2026.10.1"),
                                         ("abfs://lake@acct.dfs.core.windows.net/customers.parquet", "adlfs==2026.8.0"),
                                         ("az://lake/customers.parquet", "adlfs==2026.8.0")])
def test_ingest_step_installs_the_filesystem_of_its_uri(uri, package):
    """Issue 7 item 16: a remote file source's ingest step installs what fsspec needs for its scheme."""
    ctx = variant("churn", lambda data: source(data, "customers").update(path=uri))
    art = kf.generate(ctx)[0]
    ir = art.content[0] if art.multi_document else art.content
    commands = {n: " ".join(e["container"]["command"]) for n, e in ir["deploymentSpec"]["executors"].items()}
    ingest = [c for c in commands.values() if "def ingest_file" in c]
    assert ingest and any(package in c for c in ingest)


def test_a_local_run_names_the_filesystem_package_it_lacks():
    """Issue 7 item 16: `run --local` refuses up front, naming the package, rather than failing in
    the step with fsspec's "Install s3fs"."""
    import importlib.util

    from mlspec.run_local import preflight

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here")
    ctx = variant("churn", lambda data: source(data, "customers").update(path="s3://lake/customers.csv"))
    problem = preflight(ctx)
    assert problem is not None and "s3fs for customers (s3://)" in problem and "s3fs==2026.9.0" in problem


def test_train_candidate_writes_a_nan_score_as_a_string_in_metadata(tmp_path):
    """Issue 7 item 1: roc_auc on a one-class test split is NaN; the step completes (protobuf
    metadata cannot hold NaN) and reports the NaN score for select_best to rank last."""
    import numpy as np

    from mlspec.generators.kubeflow_components import train_candidate

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=40), "y": [1, 1] + [0] * 38})
    features = _write(tmp_path, "f", frame)
    model = _artifact(tmp_path / "model")
    with pytest.warns(Warning):  # scikit-learn: roc_auc is undefined with one class
        result = json.loads(train_candidate(
            candidate="{}", estimator="sklearn.linear_model.LogisticRegression", feature_columns='["a"]', label="y",
            metric="roc_auc", test_size=0.25, split_seed=0, stratify=False, features=features, model=model))
    assert math.isnan(result["score"])
    assert model.metadata["roc_auc"] == "nan"
    json.dumps(model.metadata, allow_nan=False)  # representable as a protobuf Struct


def test_table_names_are_quoted_one_way_for_every_dialect():
    """Issue 7 item 17: the compiler quotes each validated part of a table name with the
    dialect's identifier quotes; the step splices nothing else (``query`` stays raw SQL)."""
    from mlspec.validate import quote_table, table_problem

    assert quote_table("bigquery", "acme-analytics.sales.orders") == "`acme-analytics`.`sales`.`orders`"
    assert quote_table("postgres", "public.loans") == '"public"."loans"'
    assert quote_table("redshift", "sessions", "web") == '"web"."sessions"'
    assert quote_table("snowflake", "SALES.PUBLIC.TX") == '"SALES"."PUBLIC"."TX"'
    assert table_problem("postgres", 'loans"; DROP TABLE x; --') is not None
    assert table_problem("bigquery", "orders") == "expected [project.]dataset.table"
    assert table_problem("snowflake", "a.b.c.d") is not None

    def mutate(data):
        labels = source(data, "labels")
        labels.clear()
        labels.update({"name": "labels", "type": "redshift", "cluster_id": "c1", "region": "eu-west-1",
                       "database": "crm", "schema": "marts", "table": "churn_labels", "user": "reader",
                       "timestamp": "event_timestamp",
                       "columns": {"customer_id": "int64", "churned": "int64", "event_timestamp": "unix_timestamp"}})

    art = kf.generate(variant("churn", mutate))[0]
    ir = art.content[0] if art.multi_document else art.content
    task = root_tasks_by_display(ir)["ingest labels"]
    assert task["inputs"]["parameters"]["table"]["runtimeValue"]["constant"] == '"marts"."churn_labels"'


# --------------------------------------------------------------------------- preprocessing (issue 7 item 15)


def _string_variant(preprocessing=None):
    """churn with a string feature (the customers' plan) in its service, and ``preprocessing``."""
    def mutate(data):
        profile = next(v for v in data["features"]["views"] if v["name"] == "customer_profile")
        profile["fields"].append({"name": "plan", "dtype": "string"})
        if preprocessing is not None:
            data["training"]["preprocessing"] = preprocessing
    return variant("churn", mutate)


def _executor_sources(ir: dict) -> str:
    return "\n".join(" ".join(e["container"]["command"]) for e in ir["deploymentSpec"]["executors"].values()
                     if "container" in e)


def test_numeric_specs_keep_the_plain_training_step_and_their_inputs_hash():
    """Default preprocessing on numeric features has nothing to do: the training step gets no
    preprocessing (it trains on the features as they are), and the resolved document -- so
    every artefact's inputs hash -- has no preprocessing key."""
    from mlspec.inputs import document

    for example in EXAMPLES:
        spec = Spec.model_validate(yaml.safe_load((ROOT / "examples" / example / "mlops.yaml").read_text()))
        assert "preprocessing" not in document(spec, None)["spec"]["training"]
    for case in CASES:
        ctx = CONTEXTS[case]
        assert kubeflow_pipeline.preprocessing(ctx.spec) is None
        ir = artefacts(case)["pipeline-ir.yaml"].content
        ir = ir[0] if isinstance(ir, list) else ir
        code = _executor_sources(ir)
        assert "def train_candidate(" in code
        trains = [t for _, dag in all_dags(ir) for t in dag["tasks"].values()
                  if t["taskInfo"]["name"] == "train candidate"]
        assert trains and all("preprocessing" not in t["inputs"]["parameters"] for t in trains)
    # written out as the defaults, it is still nothing to do
    same = variant("churn", lambda d: d["training"].update(preprocessing={"categorical": "one_hot", "impute": "auto"}))
    assert kubeflow_pipeline.pipeline_version_name(same) == kubeflow_pipeline.pipeline_version_name(CONTEXTS[("churn", "dev")])


def test_a_string_feature_trains_through_the_preprocessing_step():
    ctx = _string_variant()
    entries = kubeflow_pipeline.preprocessing(ctx.spec)
    features = [f for _, f in ctx.spec.served_features(ctx.spec.training.feature_service)]
    assert [e["name"] for e in entries] == features  # the served order
    assert {"name": "plan", "categorical": "one_hot"} in entries
    assert all(e == {"name": e["name"], "numeric": "none", "impute": "auto"} for e in entries if e["name"] != "plan")
    ir, _ = kubeflow_pipeline.compile_ir(ctx)
    code = _executor_sources(ir)
    assert "def train_candidate(" in code
    train = next(t for _, dag in all_dags(ir) for t in dag["tasks"].values() if t["taskInfo"]["name"] == "train candidate")
    assert json.loads(train["inputs"]["parameters"]["preprocessing"]["runtimeValue"]["constant"]) == list(entries)
    register = root_tasks_by_display(ir)["register model"]
    lineage = json.loads(register["inputs"]["parameters"]["lineage"]["runtimeValue"]["constant"])
    assert lineage["preprocessing"] == list(entries)


def test_per_feature_preprocessing_overrides_the_defaults():
    ctx = _string_variant({"categorical": "ordinal", "numeric": "standard", "impute": "median",
                           "features": {"tenure_months": {"categorical": "one_hot"},
                                        "monthly_charges": {"numeric": "minmax"}}})
    entries = {e["name"]: e for e in kubeflow_pipeline.preprocessing(ctx.spec)}
    assert entries["plan"] == {"name": "plan", "categorical": "ordinal"}
    assert entries["tenure_months"] == {"name": "tenure_months", "categorical": "one_hot"}
    assert entries["monthly_charges"] == {"name": "monthly_charges", "numeric": "minmax", "impute": "median"}
    rest = [e for n, e in entries.items() if n not in ("plan", "tenure_months", "monthly_charges")]
    assert rest and all((e["numeric"], e["impute"]) == ("standard", "median") for e in rest)
    # scaling alone (no string feature) is work for the preprocessing step too
    scaled = variant("churn", lambda d: d["training"].update(preprocessing={"numeric": "standard"}))
    assert kubeflow_pipeline.preprocessing(scaled.spec) is not None


def _numeric_frame(classes: int, n: int = 160, seed: int = 11) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    x[::9, 1] = np.nan
    if classes:
        y = (x[:, 0] * 2 + rng.normal(size=n) > 0).astype(int)
    else:
        y = 20 + 3 * x[:, 0] + rng.normal(size=n)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="h")
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "n": rng.integers(0, 5, size=n), "y": y,
                         "ts": ts.as_unit("us")})


@pytest.mark.parametrize("estimator,metric,classes,split", [
    ("sklearn.linear_model.LogisticRegression", "roc_auc", 2, {}),
    ("sklearn.linear_model.LogisticRegression", "f1", 2, {"split_strategy": "time", "timestamp": "ts", "gap_seconds": 3600}),
    ("sklearn.ensemble.RandomForestRegressor", "rmse", 0, {}),
    ("sklearn.ensemble.HistGradientBoostingRegressor", "mae", 0, {"split_strategy": "time", "timestamp": "ts"}),
    ("sklearn.linear_model.Ridge", "r2", 0, {"split_strategy": "time", "timestamp": "ts", "cutoff": "2024-01-06"}),
])
def test_the_preprocessing_step_scores_numbers_as_the_plain_step_does(tmp_path, estimator, metric, classes, split):
    """With nothing to prepare, the preprocessing Pipeline gives the plain fit's score, split and
    predictions."""
    import numpy as np

    from mlspec.generators.kubeflow_components import train_candidate

    frame = _numeric_frame(classes)
    features = _write(tmp_path, "f", frame)
    common = dict(candidate="{}", estimator=estimator, feature_columns='["a", "b", "n"]', label="y", metric=metric,
                  test_size=0.25, split_seed=4, stratify=False, features=features, **split)
    plain = json.loads(train_candidate(model=_artifact(tmp_path / "plain"), **common))
    prepare = json.dumps([{"name": c, "numeric": "none", "impute": "auto"} for c in ("a", "b", "n")])
    prepared = json.loads(train_candidate(model=_artifact(tmp_path / "prep"), preprocessing=prepare, **common))
    assert prepared["score"] == pytest.approx(plain["score"], rel=1e-12, abs=1e-15)
    assert {**prepared, "score": None} == {**plain, "score": None}  # the same split, rows and parameters
    X = frame[["a", "b", "n"]].astype("float64")
    a, b = joblib_load(tmp_path / "plain" / "model.joblib"), joblib_load(tmp_path / "prep" / "model.joblib")
    assert list(b.named_steps) == ["preprocess", "model"]
    np.testing.assert_allclose(b.predict(X), a.predict(X), rtol=1e-12, atol=1e-12)


def test_the_preprocessing_step_fits_one_pipeline_that_takes_raw_values(tmp_path):
    """A string feature (with gaps), an int code encoded ordinally, a scaled number with gaps:
    one Pipeline, fitted on the training part; its score is an independent scikit-learn refit's,
    and the saved model predicts rows with unseen categories, missing values and plain arrays."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from mlspec.generators.kubeflow_components import train_candidate

    rng = np.random.default_rng(3)
    n = 200
    kind = rng.choice(["mall", "street", "outlet"], size=n).astype(object)
    kind[::13] = None
    size = rng.uniform(50, 500, size=n)
    size[::11] = np.nan
    code = rng.integers(1, 4, size=n)
    effect = pd.Series(kind).map({"mall": 40.0, "street": 10.0, "outlet": -20.0}).fillna(0).to_numpy()
    y = 0.2 * np.nan_to_num(size, nan=250) + effect + 5 * code + rng.normal(size=n)
    frame = pd.DataFrame({"kind": pd.array(kind, dtype="str"), "size": size, "code": code, "y": y})
    features = _write(tmp_path, "f", frame)
    prepare = [{"name": "kind", "categorical": "one_hot"}, {"name": "size", "numeric": "standard", "impute": "auto"},
               {"name": "code", "categorical": "ordinal"}]
    model = _artifact(tmp_path / "model")
    result = json.loads(train_candidate(
        candidate='{"alpha": 0.5}', estimator="sklearn.linear_model.Ridge", feature_columns='["kind", "size", "code"]',
        preprocessing=json.dumps(prepare), label="y", metric="rmse", test_size=0.25, split_seed=9, stratify=False,
        features=features, model=model))
    assert json.loads(model.metadata["preprocessing"]) == prepare

    data = pd.read_parquet(tmp_path / "f")
    X = data[["kind", "size", "code"]].assign(size=lambda f: f["size"].astype("float64"))
    X_train, X_test, y_train, y_test = train_test_split(X, data["y"], test_size=0.25, random_state=9)
    oracle = Pipeline([
        ("preprocess", ColumnTransformer([
            ("kind", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [0]),
            ("size", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                               ("scale", StandardScaler())]), [1]),
            ("code", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2), [2]),
        ], sparse_threshold=0.0)),
        ("model", Ridge(alpha=0.5, random_state=9)),
    ]).fit(X_train, y_train)
    expected = math.sqrt(mean_squared_error(y_test, oracle.predict(X_test)))
    assert result["score"] == pytest.approx(expected, rel=1e-12)

    fitted = joblib_load(tmp_path / "model" / "model.joblib")
    assert list(fitted.named_steps) == ["preprocess", "model"]
    assert list(fitted.feature_names_in_) == ["kind", "size", "code"]
    np.testing.assert_allclose(fitted.predict(X_test), oracle.predict(X_test), rtol=1e-12)
    unseen = pd.DataFrame({"kind": ["kiosk", None, "mall"], "size": [120.0, np.nan, 80.0], "code": [9, 2, 1]})
    predicted = fitted.predict(unseen)
    assert np.isfinite(predicted).all()
    # an unseen category is all zeros: as if the category's effect were unknown
    onehot = fitted.named_steps["preprocess"].transform(unseen)
    assert onehot[0, :4].tolist() == [0.0, 0.0, 0.0, 0.0] and onehot[0, -1] == -1  # kind one-hot, code unknown
    with pytest.warns(UserWarning, match="feature names"):  # a tensor's plain array: by position
        assert fitted.predict(unseen.to_numpy(dtype=object)) == pytest.approx(predicted)


def test_the_preprocessing_step_refuses_missing_values_it_may_not_fill(tmp_path, capsys):
    from mlspec.generators.kubeflow_components import train_candidate

    frame = _numeric_frame(0)
    features = _write(tmp_path, "f", frame)
    with pytest.raises(ValueError, match="impute is none for: b"):
        train_candidate(
            candidate="{}", estimator="sklearn.linear_model.LinearRegression", feature_columns='["a", "b"]',
            preprocessing=json.dumps([{"name": "a", "numeric": "none", "impute": "none"},
                                      {"name": "b", "numeric": "none", "impute": "none"}]),
            label="y", metric="rmse", test_size=0.25, split_seed=0, stratify=False, features=features,
            model=_artifact(tmp_path / "model"))
    out = capsys.readouterr().out
    assert "MLSPEC-FAILURE: sklearn.linear_model.LinearRegression does not accept missing values" in out
    assert "b (18 missing)" in out
