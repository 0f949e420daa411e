"""The Argo CD target, checked with tools nobody here wrote: real kustomize (``kubectl
kustomize``) builds every folder to exactly the objects mlspec generated there, the Argo CD
objects pass the upstream CRD schemas (``k8s-validate.py --strict``), the AppProject admits
exactly the kinds built, and the Lua health checks run in a real Lua runtime (lupa)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlspec import commands, writer
from mlspec.generators import argocd

ROOT = Path(__file__).resolve().parents[2]
K8S_VALIDATE = Path(os.environ.get("MLSPEC_K8S_VALIDATE", ROOT.parent / "shared" / "tools" / "k8s-validate.py"))
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) is not installed")
PROJECTS = {"examples": ROOT / "examples", "knative": ROOT / "tests" / "serving" / "knative",
            "standard": ROOT / "tests" / "serving" / "standard"}


def _compile(paths: list[Path], out: Path, targets: list[str] | None = None) -> str:
    buf = io.StringIO()
    code = commands.compile(paths, None, None, out, targets, check=False, dry_run=False, force=False, fmt="text",
                            out=buf)
    assert code == 0, buf.getvalue()
    return buf.getvalue()


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """Each project compiled with every target."""
    out = {}
    for name, project in PROJECTS.items():
        root = tmp_path_factory.mktemp(name)
        _compile([project], root)
        out[name] = root
    return out


def _objects(files: list[Path]) -> list[dict]:
    docs = []
    for path in files:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and "kind" in d]
    return docs


def _key(obj: dict) -> tuple:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])


def _generated(root: Path, folder: str) -> list[Path]:
    """The files under ``folder`` that mlspec owns and that hold Kubernetes objects of the
    other targets (not the kustomizations themselves)."""
    owned = writer.owned_files(root)
    files = [root / rel for rel, o in owned.items() if rel.startswith(folder + "/") and o.info["target"] != "argocd"]
    return sorted(p for p in files if p.suffix == ".yaml" and _objects([p]))


def _build(folder: Path) -> list[dict]:
    proc = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _spec_roots(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("deploy/*/*") if (p / "kustomization.yaml").is_file())


def _strip_wave(obj: dict) -> tuple[dict, str | None]:
    obj = yaml.safe_load(yaml.safe_dump(obj))
    annotations = obj.get("metadata", {}).get("annotations", {})
    wave = annotations.pop(argocd.WAVE_ANNOTATION, None)
    return obj, wave


@needs_kubectl
@pytest.mark.parametrize("name", list(PROJECTS))
def test_every_folder_builds_to_exactly_the_generated_objects(trees, name):
    root = trees[name]
    spec_roots = _spec_roots(root)
    assert spec_roots
    for spec_root in spec_roots:
        rel = spec_root.relative_to(root).as_posix()
        for sub in sorted(p for p in spec_root.iterdir() if (p / "kustomization.yaml").is_file()):
            built = _build(sub)
            expected = _objects(_generated(root, sub.relative_to(root).as_posix()))
            assert sorted(map(_key, built)) == sorted(map(_key, expected)), sub
            assert {_key(o): o for o in built} == {_key(o): o for o in expected}, sub  # byte-for-byte objects
            listed = yaml.safe_load((sub / "kustomization.yaml").read_text())["resources"]
            assert listed == sorted(p.name for p in _generated(root, sub.relative_to(root).as_posix()))
        # the Application path: every object of the spec, each with its sync wave
        built = _build(spec_root)
        expected = {_key(o): o for o in _objects(_generated(root, rel))}
        assert sorted(map(_key, built)) == sorted(expected)
        for obj in built:
            plain, wave = _strip_wave(obj)
            assert plain == expected[_key(obj)]
            group = obj["apiVersion"].rpartition("/")[0]
            assert wave == (str(argocd.WAVES[group]) if group in argocd.WAVES else None), _key(obj)


@needs_kubectl
@pytest.mark.parametrize("name", list(PROJECTS))
def test_app_project_admits_exactly_the_built_kinds(trees, name):
    root = trees[name]
    for spec_root in _spec_roots(root):
        env, spec = spec_root.parts[-2:]
        here = root / "argocd" / env / spec
        app = yaml.safe_load((here / "application.yaml").read_text())
        source = app["spec"]["source"]
        assert (root / source["path"]).resolve() == spec_root.resolve()  # the path exists and is the spec's
        assert source["path"] == f"deploy/{env}/{spec}"
        built = _build(spec_root)
        bootstrap = _build(here)
        assert [o["kind"] for o in bootstrap] == ["AppProject", "Application"]
        project = bootstrap[0]
        assert app["spec"]["project"] == project["metadata"]["name"]
        kinds = {(o["apiVersion"].rpartition("/")[0], o["kind"]) for o in built}
        allowed = {(w["group"], w["kind"]) for w in project["spec"]["namespaceResourceWhitelist"]}
        assert allowed == kinds
        destination = app["spec"]["destination"]["namespace"]
        assert project["spec"]["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace", "name": destination}]
        namespaces = {o["metadata"].get("namespace") or destination for o in built} | {destination}
        assert {d["namespace"] for d in project["spec"]["destinations"]} == namespaces
        assert project["spec"]["sourceRepos"] == [source["repoURL"]]


@pytest.mark.skipif(not K8S_VALIDATE.is_file(), reason=f"k8s-validate not found at {K8S_VALIDATE}")
def test_argo_cd_objects_pass_the_upstream_schemas(trees):
    files = [p for root in trees.values() for p in sorted(root.glob("argocd/*/*/*.yaml"))
             if p.name != "kustomization.yaml"]
    assert any(p.name == "project.yaml" for p in files) and any(p.name == "application.yaml" for p in files)
    proc = subprocess.run([sys.executable, str(K8S_VALIDATE), "--strict", *map(str, files)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == len(files)


def test_sync_policy_and_project_follow_the_environment(tmp_path):
    project = tmp_path / "repo"
    shutil.copytree(ROOT / "examples", project / "examples")
    shutil.copytree(ROOT / "environments", project / "environments")
    (project / ".git").mkdir()
    prod = project / "environments" / "prod.yaml"
    prod.write_text(prod.read_text().replace("  namespace: argocd\n",
                                              "  namespace: argocd\n  sync: manual\n  project: platform\n"))
    spec_file = project / "examples" / "churn" / "mlops.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["overrides"].setdefault("staging", {})["gitops"] = {"sync": "manual"}  # the spec's own, per environment
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    _compile([project], out, ["kserve", "seldon", "feast", "argocd"])
    staging = yaml.safe_load((out / "argocd/staging/churn/application.yaml").read_text())
    assert "automated" not in staging["spec"]["syncPolicy"]
    app = yaml.safe_load((out / "argocd/prod/churn/application.yaml").read_text())
    assert "automated" not in app["spec"]["syncPolicy"] and "finalizers" not in app["metadata"]
    assert app["spec"]["project"] == "platform"
    assert not (out / "argocd/prod/churn/project.yaml").exists()
    assert yaml.safe_load((out / "argocd/prod/churn/kustomization.yaml").read_text())["resources"] == ["application.yaml"]
    dev = yaml.safe_load((out / "argocd/dev/churn/application.yaml").read_text())
    assert dev["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert dev["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert dev["spec"]["project"] == "churn-dev"


def test_compiling_argocd_alone_gives_the_same_bytes_and_touches_nothing_else(trees, tmp_path):
    out = tmp_path / "alone"
    _compile([ROOT / "examples"], out, ["argocd"])
    mine = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".mlspec" not in p.parts)
    full = trees["examples"]
    theirs = sorted(rel for rel, o in writer.owned_files(full).items() if o.info["target"] == "argocd")
    assert mine == theirs
    for rel in mine:
        assert (out / rel).read_bytes() == (full / rel).read_bytes(), rel


# ------------------------------------------------------------------- health checks in Lua


def _lua_health(script: str, obj: dict) -> dict:
    lupa = pytest.importorskip("lupa")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)

    def table(value):
        if isinstance(value, dict):
            return lua.table_from({k: table(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([table(v) for v in value])
        return value

    lua.globals().obj = table(obj)
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


def _isvc(*conditions):
    return {"status": {"conditions": [{"type": t, "status": s, **({"reason": r} if r else {})} for t, s, r in conditions]}}


@pytest.mark.parametrize("obj, status", [
    ({}, "Progressing"),
    # KServe >= 0.15.1 in Standard mode: no Knative conditions, Stopped False -- healthy
    (_isvc(("IngressReady", "True", None), ("PredictorReady", "True", None), ("Ready", "True", None),
           ("Stopped", "False", None)), "Healthy"),
    (_isvc(("PredictorReady", "False", "RevisionFailed"), ("Ready", "False", "RevisionFailed")), "Degraded"),
    (_isvc(("Ready", "Unknown", None)), "Progressing"),
])
def test_inference_service_health(obj, status):
    assert _lua_health(argocd.HEALTH_INFERENCESERVICE, obj)["status"] == status


@pytest.mark.parametrize("phase, status", [(None, "Progressing"), ("Pending", "Progressing"), ("Ready", "Healthy"),
                                           ("Failed", "Degraded")])
def test_feature_store_health(phase, status):
    obj = {"status": {"phase": phase, "conditions": [{"type": "Registry", "status": "False", "message": "crash"}]}} \
        if phase else {}
    health = _lua_health(argocd.HEALTH_FEATURESTORE, obj)
    assert health["status"] == status
    if phase == "Failed":
        assert health["message"] == "Registry: crash"


def test_health_checks_are_in_the_config_patch_for_the_kinds_present(trees):
    patch = yaml.safe_load((trees["examples"] / "argocd/prod/churn/argocd-cm.patch.yaml").read_text())
    assert patch["metadata"] == {"name": "argocd-cm", "namespace": "argocd", "labels": {"app.kubernetes.io/part-of": "argocd"}}
    assert patch["data"] == {"resource.customizations.health.feast.dev_FeatureStore": argocd.HEALTH_FEATURESTORE,
                             "resource.customizations.health.serving.kserve.io_InferenceService":
                                 argocd.HEALTH_INFERENCESERVICE}
