"""`mlspec verify` end to end: the real CLI and the real Kubernetes Python client, against the fake
API server of fake_apiserver.py (there is no cluster here; the e2e workflow runs it against kind).

Asserted: the exact requests (discovery once per group-version; one server-side dry-run apply
per Kubernetes object of the compiled examples, with its path, query, content type and the
file's object as body; nothing for the KFP IR, Feast's code and feature_store.yaml or the
kustomizations), the reports in text, json and github formats, the exit codes, the one-line
message when no cluster is reachable, and which context is used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from fake_apiserver import KINDS, status

from mlspec import writer

QUERY = [("dryRun", "All"), ("fieldManager", "mlspec"), ("force", "true"), ("fieldValidation", "Strict")]
SAFE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the output is over a megabyte
RESOURCES = {(group, version, kind): (plural, namespaced) for group, version, kind, plural, namespaced in KINDS}


def kube_documents(out: Path, env: str | None = None) -> list[tuple[str, int, dict]]:
    """(file, document number, object) of every Kubernetes object the manifest's files hold,
    read independently of mlspec (PyYAML's safe loader, timestamps and all)."""
    files = json.loads((out / ".mlspec/manifest.json").read_text())["files"]
    found = []
    for rel in sorted(files):
        if not rel.endswith((".yaml", ".yml")) or (env and files[rel].get("env") != env):
            continue
        for number, doc in enumerate(yaml.load_all((out / rel).read_text(), Loader=SAFE), 1):
            if isinstance(doc, dict) and {"apiVersion", "kind"} <= doc.keys() \
                    and not doc["apiVersion"].startswith("kustomize.config.k8s.io/"):
                found.append((rel, number, doc))
    return found


def rest_path(doc: dict, default_namespace: str = "default") -> str:
    group, _, version = doc["apiVersion"].rpartition("/")
    plural, namespaced = RESOURCES[(group, version, doc["kind"])]
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    scope = f"/namespaces/{doc['metadata'].get('namespace') or default_namespace}" if namespaced else ""
    return f"{prefix}{scope}/{plural}/{doc['metadata']['name']}"


def discovery_path(api_version: str) -> str:
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def line_of(path: Path, text: str, start: int = 1) -> int:
    """The 1-based number of the first line at or after ``start`` that contains ``text``."""
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if n >= start and text in line)


# --------------------------------------------------------------------------- all accepted


def test_every_object_is_dry_run_applied_once_with_the_exact_request(compiled, apiserver, kubeconfig_file, run):
    proc = run("verify", "--out", str(compiled), "--kubeconfig", str(kubeconfig_file), process=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    expected = kube_documents(compiled)
    kinds = {(d["apiVersion"], d["kind"]) for _, _, d in expected}
    assert {("serving.kserve.io/v1beta1", "InferenceService"), ("serving.kserve.io/v1alpha1", "InferenceGraph"),
            ("machinelearning.seldon.io/v1", "SeldonDeployment"), ("feast.dev/v1", "FeatureStore"),
            ("pipelines.kubeflow.org/v2beta1", "Pipeline"), ("pipelines.kubeflow.org/v2beta1", "PipelineVersion"),
            ("batch/v1", "CronJob"), ("v1", "ConfigMap")} <= kinds
    skipped = len([r for r in json.loads((compiled / ".mlspec/manifest.json").read_text())["files"]
                   if not any(r == rel for rel, _, _ in expected)])
    files = len({rel for rel, _, _ in expected})
    assert proc.stdout == (f"ok: {len(expected)} object(s) in {files} file(s) accepted by the API server of context "
                           f"'fake' ({apiserver.url}) in a server-side dry run; {skipped} non-Kubernetes file(s) "
                           "skipped\n")

    patches = [r for r in apiserver.requests if r.method == "PATCH"]
    assert [(r.path, r.query, r.headers["content-type"], r.body) for r in patches] == \
        [(rest_path(doc), QUERY, "application/apply-patch+yaml", doc) for _, _, doc in expected]
    # Discovery: one GET per group-version, before its first apply; nothing else is asked.
    gets = [r for r in apiserver.requests if r.method == "GET"]
    assert sorted(r.path for r in gets) == sorted({discovery_path(v) for v, _ in kinds})
    for get in gets:
        first_use = next(i for i, r in enumerate(apiserver.requests)
                         if r.method == "PATCH" and r.path.startswith(get.path + "/"))
        assert apiserver.requests.index(get) < first_use
    assert len(apiserver.requests) == len(patches) + len(gets)
    assert {r.headers["authorization"] for r in apiserver.requests} == {"Bearer fake-token"}
    assert {r.headers["user-agent"] for r in apiserver.requests} == {"mlspec/0.1.0"}


def test_json_lists_every_object_and_the_skipped_files(compiled, apiserver, kubeconfig_file, run):
    proc = run("verify", "--out", str(compiled), "--kubeconfig", str(kubeconfig_file), "--env", "dev", "-f", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    expected = kube_documents(compiled, env="dev")
    assert report["ok"] is True and report["errors"] == [] and report["warnings"] == []
    assert (report["context"], report["server"], report["field_manager"]) == ("fake", apiserver.url, "mlspec")
    assert (report["accepted"], report["rejected"]) == (len(expected), 0)
    assert [(o["file"], o["document"], o["kind"], o["name"], o["namespace"], o["path"], o["accepted"])
            for o in report["objects"]] == \
        [(str(compiled / rel), n, d["kind"], d["metadata"]["name"], d["metadata"]["namespace"], rest_path(d), True)
         for rel, n, d in expected]
    skipped = {Path(f).relative_to(compiled).as_posix() for f in report["skipped"]}
    assert {"deploy/dev/churn/kubeflow/pipeline-ir.yaml", "deploy/dev/churn/feast/repo/feature_store.yaml",
            "deploy/dev/churn/feast/repo/features.py", "deploy/dev/fraud/kubeflow/pipeline-ir.yaml"} <= skipped
    assert not skipped & {rel for rel, _, _ in expected}
    assert {r.path for r in apiserver.requests if r.method == "PATCH"} == {rest_path(d) for _, _, d in expected}


# --------------------------------------------------------------------------- rejections


def _reject(apiserver) -> None:
    """prod's churn challenger fails the CRD schema; Seldon Core is not installed; the cluster's
    Feast operator serves only feast.dev/v1alpha1."""
    message = "Invalid value: 3: spec.predictor.minReplicas in body should be less than or equal to 2"
    apiserver.rejections[("InferenceService", "ml-prod", "churn-challenger")] = (422, status(
        422, "Invalid", f'InferenceService.serving.kserve.io "churn-challenger" is invalid: '
                        f'spec.predictor.minReplicas: {message}',
        {"name": "churn-challenger", "group": "serving.kserve.io", "kind": "InferenceService",
         "causes": [{"reason": "FieldValueInvalid", "message": message, "field": "spec.predictor.minReplicas"}]}))
    apiserver.uninstalled |= {"machinelearning.seldon.io", "feast.dev/v1"}


def _expected_problems(out: Path) -> list[tuple[str, int, int, str, str, str | None]]:
    """(file, line, col, code, message, hint) of the rejections :func:`_reject` causes in prod."""
    isvc = out / "deploy/prod/churn/kserve/inferenceservice.yaml"
    second = line_of(isvc, "name: churn-challenger")
    feast_hint = "install the CRD for FeatureStore.feast.dev (feast.dev/v1) first, e.g. with its operator's manifests"
    return [
        ("deploy/prod/churn/feast/featurestore.yaml", 2, 1, "verify-unknown-kind",
         "FeatureStore ml-prod/churn (document 1): unknown kind: the cluster does not serve feast.dev/v1 "
         "(it serves feast.dev in version(s) v1alpha1)", feast_hint),
        ("deploy/prod/churn/kserve/inferenceservice.yaml", line_of(isvc, "minReplicas:", second), 5, "verify-rejected",
         "InferenceService ml-prod/churn-challenger (document 2) rejected by the API server (422 Invalid): "
         'InferenceService.serving.kserve.io "churn-challenger" is invalid: spec.predictor.minReplicas: '
         "Invalid value: 3: spec.predictor.minReplicas in body should be less than or equal to 2", None),
        ("deploy/prod/fraud/feast/featurestore.yaml", 2, 1, "verify-unknown-kind",
         "FeatureStore ml-prod/fraud (document 1): unknown kind: the cluster does not serve feast.dev/v1 "
         "(it serves feast.dev in version(s) v1alpha1)", feast_hint),
        ("deploy/prod/fraud/seldon/seldondeployment.yaml", 2, 1, "verify-unknown-kind",
         "SeldonDeployment ml-prod/fraud (document 1): unknown kind: the cluster does not serve "
         "machinelearning.seldon.io/v1 (no machinelearning.seldon.io API at all)",
         "install the CRD for SeldonDeployment.machinelearning.seldon.io (machinelearning.seldon.io/v1) first, "
         "e.g. with its operator's manifests"),
    ]


def test_rejections_in_text(compiled, apiserver, kubeconfig_file, run):
    _reject(apiserver)
    proc = run("verify", "--out", ".", "--env", "prod", "--kubeconfig", str(kubeconfig_file), cwd=compiled)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    total = len(kube_documents(compiled, env="prod"))
    lines = []
    for file, line, col, _, message, hint in _expected_problems(compiled):
        lines.append(f"{file}:{line}:{col}: error: {message}")
        lines += [f"  hint: {hint}"] if hint else []
    skipped = proc.stdout.rsplit("; ", 1)[-1]
    lines.append(f"4 of {total} object(s) rejected by the API server of context 'fake' ({apiserver.url}) in a "
                 f"server-side dry run; {skipped}")
    assert proc.stdout == "\n".join(lines)
    assert skipped.endswith("non-Kubernetes file(s) skipped\n")
    # Discovery asked for the group of an unserved group-version, to say which versions it has.
    assert [r.path for r in apiserver.requests if r.path.startswith(("/apis/feast.dev", "/apis/machinelearning"))] \
        == ["/apis/feast.dev/v1", "/apis/feast.dev", "/apis/machinelearning.seldon.io/v1",
            "/apis/machinelearning.seldon.io"]
    assert not [r for r in apiserver.requests if r.method == "PATCH" and "/featurestores/" in r.path]


def test_rejections_in_json(compiled, apiserver, kubeconfig_file, run):
    _reject(apiserver)
    proc = run("verify", "--out", ".", "--env", "prod", "--kubeconfig", str(kubeconfig_file), "-f", "json",
               cwd=compiled)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["rejected"] == 4
    assert report["accepted"] == len(kube_documents(compiled, env="prod")) - 4
    assert [(e["file"], e["line"], e["col"], e["code"], e["message"], e["hint"]) for e in report["errors"]] == \
        _expected_problems(compiled)
    rejected = {(o["kind"], o["name"]): o for o in report["objects"] if not o["accepted"]}
    assert sorted(rejected) == [("FeatureStore", "churn"), ("FeatureStore", "fraud"),
                                ("InferenceService", "churn-challenger"), ("SeldonDeployment", "fraud")]
    challenger = rejected[("InferenceService", "churn-challenger")]
    assert (challenger["document"], challenger["path"]) == (
        2, "/apis/serving.kserve.io/v1beta1/namespaces/ml-prod/inferenceservices/churn-challenger")
    assert challenger["status"] == apiserver.rejections[("InferenceService", "ml-prod", "churn-challenger")][1]
    assert challenger["status"]["details"]["causes"][0]["field"] == "spec.predictor.minReplicas"
    assert rejected[("SeldonDeployment", "fraud")]["path"] is None
    assert rejected[("SeldonDeployment", "fraud")]["status"]["code"] == 404


def test_rejections_as_github_annotations(compiled, apiserver, kubeconfig_file, run):
    _reject(apiserver)
    proc = run("verify", "--out", ".", "--env", "prod", "--kubeconfig", str(kubeconfig_file), cwd=compiled,
               env={"GITHUB_ACTIONS": "true"}, process=True)  # the default format there
    assert proc.returncode == 1, proc.stdout + proc.stderr
    annotations = proc.stdout.splitlines()[:-1]
    expected = []
    for file, line, col, code, message, hint in _expected_problems(compiled):
        text = message + (f" (hint: {hint})" if hint else "")
        expected.append(f"::error file={file},line={line},col={col},title=mlspec {code}::{text}")
    assert annotations == expected
    assert proc.stdout.splitlines()[-1].startswith("4 of ")


def test_rejection_causes_missing_namespace_and_warnings(tmp_path, apiserver, make_kubeconfig, run):
    """Hand-made output: a namespaced object without a namespace goes to the context's; a
    cluster-scoped one has no namespace in its path; a missing namespace and a status with
    causes the message does not list are reported with their hints; Warning headers are warnings."""
    files = {
        "deploy/dev/a/objects.yaml": (
            "# a comment\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  when: 2024-01-01\n"
            "---\n"
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n"
            "---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lost\n  namespace: ghost\n"
            "---\n"
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\n  namespace: team-a\n"
            "spec:\n  schedule: '0 3 * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
            "          containers:\n          - name: main\n            image: busybox\n"
            "          - name: side\n            imagePullPolicy: Sometimes\n"),
        "deploy/dev/a/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                           "resources:\n- objects.yaml\n",
        "deploy/dev/a/notes.yaml": "just: data\n",
    }
    out = tmp_path / "out"
    outputs = {rel: (text.encode(), "a@dev/t") for rel, text in files.items()}
    writer.apply(writer.plan(out, outputs, {"a@dev/t"}, file_info={rel: {"env": "dev", "spec": "a/mlops.yaml"}
                                                                    for rel in files}))
    apiserver.namespaces = {"team-a"}
    cron_causes = [{"reason": "FieldValueRequired", "message": "Required value",
                    "field": "spec.jobTemplate.spec.template.spec.containers[1].image"},
                   {"reason": "FieldValueNotSupported",
                    "message": 'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"',
                    "field": "spec.jobTemplate.spec.template.spec.containers[1].imagePullPolicy"}]
    apiserver.rejections[("CronJob", "team-a", "nightly")] = (422, status(
        422, "Invalid", 'CronJob.batch "nightly" is invalid: [spec.jobTemplate.spec.template.spec.containers[1].image: '
                        "Required value, <nil>: Invalid value: \"\": some validation rules were not checked]",
        {"name": "nightly", "group": "batch", "kind": "CronJob", "causes": cron_causes}))
    apiserver.warnings[("ConfigMap", "plain")] = ['metadata.labels: "x" is not a "quoted" label']
    config = make_kubeconfig([{"name": "fake", "server": apiserver.url, "token": apiserver.token,
                               "namespace": "team-a"}], "fake")
    proc = run("verify", "--out", ".", "--kubeconfig", str(config), cwd=out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    f = "deploy/dev/a/objects.yaml"
    assert proc.stdout.splitlines() == [
        f"{f}:2:1: warning: ConfigMap team-a/plain (document 1): metadata.labels: \"x\" is not a \"quoted\" label",
        f"{f}:14:1: error: ConfigMap ghost/lost (document 3) rejected by the API server (404 NotFound): "
        'namespaces "ghost" not found',
        "  hint: create namespace ghost first (Argo CD: syncOptions CreateNamespace=true)",
        f"{f}:34:13: error: CronJob team-a/nightly (document 4) rejected by the API server (422 Invalid): "
        'CronJob.batch "nightly" is invalid: [spec.jobTemplate.spec.template.spec.containers[1].image: Required value, '
        '<nil>: Invalid value: "": some validation rules were not checked]',
        '  * spec.jobTemplate.spec.template.spec.containers[1].imagePullPolicy: Unsupported value: "Sometimes": '
        'supported values: "Always", "IfNotPresent", "Never"',
        f"2 of 4 object(s) rejected by the API server of context 'fake' ({apiserver.url}) in a server-side dry run; "
        "2 non-Kubernetes file(s) skipped",
    ]
    patches = [r for r in apiserver.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == ["/api/v1/namespaces/team-a/configmaps/plain", "/api/v1/namespaces/team-b",
                                         "/api/v1/namespaces/ghost/configmaps/lost",
                                         "/apis/batch/v1/namespaces/team-a/cronjobs/nightly"]
    # The body is the file's object as written: no namespace added, the date still a string.
    assert patches[0].body == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain"},
                               "data": {"when": "2024-01-01"}}
    # Without a namespace in the context, it is "default".
    apiserver.requests.clear()
    plain = make_kubeconfig([{"name": "fake", "server": apiserver.url, "token": apiserver.token}], "fake", "plain")
    assert run("verify", "--out", ".", "--kubeconfig", str(plain), cwd=out).returncode == 1
    assert [r.path for r in apiserver.requests if r.method == "PATCH"][0] == "/api/v1/namespaces/default/configmaps/plain"


def test_a_failing_discovery_rejects_that_group_only(tmp_path, apiserver, kubeconfig_file, run):
    files = {"deploy/dev/a/monitor.yaml": "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"
                                          "metadata:\n  name: m\n  namespace: team\n",
             "deploy/dev/a/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: team\n"}
    out = tmp_path / "out"
    writer.apply(writer.plan(out, {rel: (text.encode(), "a@dev/t") for rel, text in files.items()}, {"a@dev/t"},
                             file_info={rel: {"env": "dev", "spec": "a/mlops.yaml"} for rel in files}))
    apiserver.broken["monitoring.coreos.com/v1"] = (503, status(
        503, "ServiceUnavailable", "the server is currently unable to handle the request"))
    proc = run("verify", "--out", ".", "--kubeconfig", str(kubeconfig_file), "-f", "json", cwd=out)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [(o["kind"], o["accepted"]) for o in report["objects"]] == [("ConfigMap", True), ("ServiceMonitor", False)]
    assert [e["message"] for e in report["errors"]] == [
        "ServiceMonitor team/m (document 1): discovery of monitoring.coreos.com/v1 failed (503 ServiceUnavailable): "
        "the server is currently unable to handle the request"]


# --------------------------------------------------------------------------- no cluster


def test_no_cluster_reachable_is_one_line_and_exit_2(compiled, closed_port, make_kubeconfig, run):
    server = f"http://127.0.0.1:{closed_port}"
    config = make_kubeconfig([{"name": "kind-mlspec", "server": server, "token": "t"}], "kind-mlspec")
    proc = run("verify", "--out", str(compiled), "--kubeconfig", str(config), process=True)
    assert proc.returncode == 2
    assert proc.stdout == (f"mlspec: error: cannot reach the Kubernetes API server of context 'kind-mlspec' at "
                           f"{server}: connection refused (is the cluster running? pick another with --context)\n")
    assert proc.stderr == ""
    proc = run("verify", "--out", str(compiled), "--kubeconfig", str(config), "-f", "json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert (report["ok"], report["context"], report["server"]) == (False, "kind-mlspec", server)
    assert [e["code"] for e in report["errors"]] == ["cluster-unreachable"]


def test_no_kubeconfig_and_refused_credentials_exit_2(compiled, tmp_path, apiserver, make_kubeconfig, run):
    proc = run("verify", "--out", str(compiled), process=True)  # HOME has no .kube/config, KUBECONFIG unset
    assert proc.returncode == 2 and proc.stderr == ""
    assert proc.stdout == (f"mlspec: error: no kubeconfig: {tmp_path / 'home/.kube/config'} does not exist (pass "
                           "--kubeconfig FILE or set KUBECONFIG, e.g. after `kind create cluster`)\n")
    proc = run("verify", "--out", str(compiled), env={"KUBECONFIG": str(tmp_path / "nope")})
    assert proc.returncode == 2
    assert proc.stdout.startswith(f"mlspec: error: no kubeconfig: KUBECONFIG={tmp_path / 'nope'} does not exist")
    config = make_kubeconfig([{"name": "stale", "server": apiserver.url, "token": "expired"}], "stale")
    proc = run("verify", "--out", str(compiled), "--kubeconfig", str(config))
    assert proc.returncode == 2
    assert proc.stdout == (f"mlspec: error: the Kubernetes API server of context 'stale' at {apiserver.url} refused "
                           "its credentials (401 Unauthorized: Unauthorized)\n")
    assert len(apiserver.requests) == 1  # it stops at the first refusal


# --------------------------------------------------------------------------- contexts


def test_context_picks_the_cluster(compiled, apiserver, second_apiserver, make_kubeconfig, run):
    config = make_kubeconfig([{"name": "one", "server": apiserver.url, "token": apiserver.token},
                              {"name": "two", "server": second_apiserver.url, "token": second_apiserver.token}], "one")
    dev = len(kube_documents(compiled, env="dev"))
    proc = run("verify", "--out", str(compiled), "--env", "dev", "--kubeconfig", str(config), "--context", "two")
    assert proc.returncode == 0, proc.stdout
    assert f"context 'two' ({second_apiserver.url})" in proc.stdout
    assert apiserver.requests == []
    assert len([r for r in second_apiserver.requests if r.method == "PATCH"]) == dev
    assert {r.headers["authorization"] for r in second_apiserver.requests} == {"Bearer other-token"}

    second_apiserver.requests.clear()
    proc = run("verify", "--out", str(compiled), "--env", "dev", env={"KUBECONFIG": str(config)})  # current: one
    assert proc.returncode == 0, proc.stdout
    assert f"context 'one' ({apiserver.url})" in proc.stdout
    assert len([r for r in apiserver.requests if r.method == "PATCH"]) == dev and second_apiserver.requests == []

    proc = run("verify", "--out", str(compiled), "--kubeconfig", str(config), "--context", "three")
    assert proc.returncode == 2
    assert proc.stdout == f"mlspec: error: context 'three' is not in kubeconfig {config} (its contexts: one, two)\n"

    # No current context: --context is needed, and enough.
    apiserver.requests.clear()
    bare = make_kubeconfig([{"name": "one", "server": apiserver.url, "token": apiserver.token}], None, "bare")
    proc = run("verify", "--out", str(compiled), "--kubeconfig", str(bare))
    assert proc.returncode == 2
    assert proc.stdout == (f"mlspec: error: kubeconfig {bare} has no current context (pick one with --context; "
                           "its contexts: one)\n")
    assert run("verify", "--out", str(compiled), "--env", "dev", "--kubeconfig", str(bare), "--context",
               "one").returncode == 0
    assert len([r for r in apiserver.requests if r.method == "PATCH"]) == dev


def test_paths_select_the_specs_output(compiled, apiserver, kubeconfig_file, run):
    proc = run("verify", "examples/fraud", "--out", str(compiled), "--env", "staging", "--kubeconfig",
               str(kubeconfig_file), "-f", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {Path(o["file"]).relative_to(compiled).as_posix() for o in json.loads(proc.stdout)["objects"]}
    assert files and all(f.startswith(("deploy/staging/fraud/", "argocd/staging/fraud/")) for f in files)
    manifest = json.loads((compiled / ".mlspec/manifest.json").read_text())["files"]
    assert files == {rel for rel, _, _ in kube_documents(compiled, env="staging")
                     if manifest[rel]["spec"] == "examples/fraud/mlops.yaml"}


@pytest.mark.parametrize("args, message", [
    (["--env", "qa"], "lists no file compiled for environment(s) qa"),
    (["examples/nothing-here.yaml"], "no such spec file: examples/nothing-here.yaml"),
])
def test_selecting_nothing_is_an_error(compiled, kubeconfig_file, run, args, message):
    proc = run("verify", *args, "--out", str(compiled), "--kubeconfig", str(kubeconfig_file))
    assert proc.returncode == 1 and message in proc.stdout, proc.stdout


def test_output_root_without_manifest(tmp_path, kubeconfig_file, run):
    proc = run("verify", "--out", str(tmp_path), "--kubeconfig", str(kubeconfig_file))
    assert proc.returncode == 1
    assert f"no compiled output to verify: {tmp_path}/.mlspec/manifest.json not found" in proc.stdout


def test_the_compiled_examples_are_unchanged(compiled):
    """verify reads the output and writes nothing (the session fixture is shared)."""
    files = json.loads((compiled / ".mlspec/manifest.json").read_text())["files"]
    for rel, entry in files.items():
        assert hashlib.sha256((compiled / rel).read_bytes()).hexdigest() == entry["sha256"], rel
