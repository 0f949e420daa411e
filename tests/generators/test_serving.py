"""The serving targets (KServe, Seldon Core v1, Seldon Core 2): every object passes the upstream
schemas, the traffic each backend would route equals the spec's split in every environment
(overrides included) and obeys the backend's own rules, and pods are locked down."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from mlspec.compiler import generate_scope
from mlspec.generators import kserve, seldon, seldon_v2
from mlspec.generators import serving as common
from mlspec.project import resolve_paths

ROOT = Path(__file__).resolve().parents[2]
K8S_VALIDATE = Path(os.environ.get("MLSPEC_K8S_VALIDATE", ROOT.parent / "shared" / "tools" / "k8s-validate.py"))
TARGETS = {"kserve": kserve.target, "seldon": seldon.target, "seldon-v2": seldon_v2.target}
PROJECTS = [ROOT / "examples", ROOT / "tests" / "serving" / "knative", ROOT / "tests" / "serving" / "standard"]
GOLDEN = ROOT / "tests" / "golden-serving"


def _resolved():
    out = []
    for project in PROJECTS:
        result = resolve_paths([project])
        assert not result.errors, result.errors
        out.extend(r for r in result.resolved if r.env is not None)
    return out


RESOLVED = _resolved()
CASES = {f"{r.spec.name}@{r.env_name}": r for r in RESOLVED}


def objects(resolved) -> dict[str, list[dict]]:
    """File name → the Kubernetes objects the spec's serving target generates."""
    files = generate_scope(resolved, TARGETS[resolved.spec.serving.runtime])
    return {path.rsplit("/", 1)[-1]: list(yaml.safe_load_all(data)) for path, (data, _, _) in files.items()}


def test_every_runtime_and_rollout_is_covered():
    seen = {(r.spec.serving.runtime, r.spec.serving.rollout,
             r.env.kserve.deployment_mode if r.spec.serving.runtime == "kserve" else "-") for r in RESOLVED}
    assert {("kserve", "canary", "Knative"), ("kserve", "ab", "Knative"), ("kserve", "ab", "Standard"),
            ("kserve", "shadow", "Standard"), ("seldon", "ab", "-"), ("seldon", "shadow", "-"),
            ("seldon-v2", "ab", "-"), ("seldon-v2", "shadow", "-"), ("seldon-v2", "canary", "-")} <= seen


def split_of(resolved) -> tuple[dict[str, Fraction], Fraction]:
    """(share of the traffic each role gets, share mirrored to the challenger), read back from
    the generated objects the way each backend reads them, checking its rules on the way."""
    runtime, files = resolved.spec.serving.runtime, objects(resolved)
    names = {resolved.spec.name + "-champion": "champion", resolved.spec.name + "-challenger": "challenger"}
    if runtime == "kserve":
        if "inferencegraph.yaml" in files:
            [graph] = files["inferencegraph.yaml"]
            root = graph["spec"]["nodes"]["root"]
            assert root["routerType"] == "Splitter"
            weights = [step["weight"] for step in root["steps"]]  # every step has one (KServe webhook)
            assert sum(weights) == 100, "KServe: splitter weights must sum to exactly 100"
            isvcs = {o["metadata"]["name"] for o in files["inferenceservice.yaml"]}
            assert {s["serviceName"] for s in root["steps"]} == isvcs
            return {names[s["serviceName"]]: Fraction(s["weight"], 100) for s in root["steps"]}, Fraction(0)
        if "httproute.yaml" in files:
            [route] = files["httproute.yaml"]
            [rule] = route["spec"]["rules"]
            [backend] = rule["backendRefs"]
            [mirror] = [f["requestMirror"] for f in rule["filters"] if f["type"] == "RequestMirror"]
            assert backend["name"] == f"{resolved.spec.name}-champion-predictor" and backend["port"] == 80
            assert mirror["backendRef"]["name"] == f"{resolved.spec.name}-challenger-predictor"
            return {"champion": Fraction(1)}, Fraction(mirror["percent"], 100)
        [isvc] = files["inferenceservice.yaml"]
        canary = isvc["spec"]["predictor"].get("canaryTrafficPercent")
        if canary is None:
            return {"champion": Fraction(1)}, Fraction(0)
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == resolved.spec.serving.challenger.uri
        return {"champion": Fraction(100 - canary, 100), "challenger": Fraction(canary, 100)}, Fraction(0)
    if runtime == "seldon":
        [deployment] = files["seldondeployment.yaml"]
        predictors = deployment["spec"]["predictors"]
        shadows = [p for p in predictors if p.get("shadow")]
        main = [p for p in predictors if not p.get("shadow")]
        assert len(shadows) <= 1 and main, "Seldon v1: at most one shadow, never the only predictor"
        assert len({p["name"] for p in predictors}) == len(predictors)
        if len(main) > 1:
            assert sum(p["traffic"] for p in main) == 100, "Seldon v1: non-shadow traffic must sum to 100"
        mirrored = Fraction(shadows[0]["traffic"] or 100, 100) if shadows else Fraction(0)
        return {p["name"]: Fraction(p["traffic"], 100) for p in main}, mirrored
    experiment = files.get("experiment.yaml", [None])[0]
    if experiment is None:
        return {"champion": Fraction(1)}, Fraction(0)
    spec = experiment["spec"]
    models = {o["metadata"]["name"] for o in files["models.yaml"]}
    assert spec["default"] in {c["name"] for c in spec["candidates"]}, "Seldon Core 2: default is a candidate"
    listed = [c["name"] for c in spec["candidates"]] + ([spec["mirror"]["name"]] if "mirror" in spec else [])
    assert len(set(listed)) == len(listed) and set(listed) <= models
    total = sum(c["weight"] for c in spec["candidates"])  # weights are relative
    shares = {names[c["name"]]: Fraction(c["weight"], total) for c in spec["candidates"]}
    return shares, Fraction(spec["mirror"]["percent"], 100) if "mirror" in spec else Fraction(0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_backend_routes_the_specs_split(case):
    resolved = CASES[case]
    sv = resolved.spec.serving
    shares, mirrored = split_of(resolved)
    want = {"champion": Fraction(sv.traffic.champion, 100)}
    if sv.challenger is not None and sv.rollout != "shadow" and (sv.traffic.challenger or sv.rollout == "ab"):
        want["challenger"] = Fraction(sv.traffic.challenger, 100)
    if sv.runtime == "seldon-v2" and not sv.traffic.challenger:
        want.pop("challenger", None)
    assert {k: v for k, v in shares.items() if v or k in want} == want
    assert mirrored == (Fraction(sv.mirror, 100) if sv.rollout == "shadow" else 0)


def test_overrides_reach_the_weights():
    dev, prod = CASES["churn@dev"], CASES["churn@prod"]
    assert dev.spec.serving.traffic.challenger == 50 and prod.spec.serving.traffic.challenger == 10
    assert split_of(dev)[0] == {"champion": Fraction(1, 2), "challenger": Fraction(1, 2)}
    assert split_of(prod)[0] == {"champion": Fraction(9, 10), "challenger": Fraction(1, 10)}


def pods(resolved):
    """(pod-level spec, model container) pairs of every generated workload."""
    for name, docs in objects(resolved).items():
        for doc in docs:
            if doc["kind"] == "InferenceService":
                yield doc["spec"]["predictor"], doc["spec"]["predictor"]["model"]
            elif doc["kind"] == "SeldonDeployment":
                for predictor in doc["spec"]["predictors"]:
                    for component in predictor["componentSpecs"]:
                        yield component["spec"], component["spec"]["containers"][0]


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c].spec.serving.runtime != "seldon-v2"))
def test_pods_are_locked_down_and_bounded(case):
    resolved = CASES[case]
    found = list(pods(resolved))
    assert found
    for pod, container in found:
        assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                                "runAsNonRoot": True}
        assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
        assert set(container["resources"]["limits"]) >= {"cpu", "memory"}
        if resolved.spec.serving.service_account:
            assert pod["serviceAccountName"] == resolved.spec.serving.service_account
        else:
            assert pod["automountServiceAccountToken"] is False


def test_default_limits_never_fall_below_the_request():
    class R:  # a resources block as the model has it
        def __init__(self, **kw):
            self.cpu, self.memory, self.gpu = kw.get("cpu"), kw.get("memory"), kw.get("gpu")

    class Res:
        def __init__(self, requests, limits):
            self.requests, self.limits = requests, limits

    got = common.resources(Res(R(cpu="4", memory="8Gi"), R()))
    assert got == {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}
    assert common.resources(Res(R(), R()))["limits"] == common.DEFAULT_LIMITS
    assert common.resources(Res(R(), R(gpu=1)))["limits"]["nvidia.com/gpu"] == "1"


def test_the_deployment_mode_is_always_written():
    for resolved in RESOLVED:
        if resolved.spec.serving.runtime != "kserve":
            continue
        for docs in objects(resolved).values():
            for doc in docs:
                if doc["kind"] in ("InferenceService", "InferenceGraph"):
                    mode = doc["metadata"]["annotations"][kserve.MODE_ANNOTATION]
                    assert mode == resolved.env.kserve.deployment_mode


@pytest.mark.skipif(not K8S_VALIDATE.is_file(), reason=f"k8s-validate not found at {K8S_VALIDATE}")
def test_every_serving_object_passes_strict_validation(tmp_path):
    count = 0
    for case, resolved in CASES.items():
        for name, docs in objects(resolved).items():
            (tmp_path / f"{case}-{name}").write_text(yaml.safe_dump_all(docs, sort_keys=False))
            count += len(docs)
    proc = subprocess.run([sys.executable, str(K8S_VALIDATE), "--strict", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == count


@pytest.mark.parametrize("project", ["knative", "standard"])
def test_serving_golden_files_are_current(project):
    proc = subprocess.run([sys.executable, "-m", "mlspec.cli", "compile", f"tests/serving/{project}", "--targets",
                           "kserve,seldon,seldon-v2", "--out", f"tests/golden-serving/{project}", "--check"],
                          cwd=ROOT, capture_output=True, text=True)
    regen = (f".venv/bin/mlspec compile tests/serving/{project} --targets kserve,seldon,seldon-v2 "
             f"--out tests/golden-serving/{project} --force")
    assert proc.returncode == 0, f"stale; regenerate with: {regen}\n{proc.stdout}{proc.stderr}"


def test_the_matrix_names_only_known_formats():
    from mlspec.models import Serving

    formats = set(Serving.model_fields["model_format"].annotation.__args__)
    for runtime, table in common.MATRIX.items():
        assert set(table) <= formats, runtime
        assert all(s.protocols and set(s.protocols) <= {"v1", "v2"} for s in table.values())
    assert set(common.MATRIX) == set(common.URI_SCHEMES) == set(TARGETS)


def test_resources_are_written_in_canonical_form():
    """KServe's and Seldon's webhooks decode the PodSpec and write quantities back canonically;
    anything else in git shows as drift in Argo CD (argoproj/argo-cd#12463)."""
    from types import SimpleNamespace as NS

    res = NS(requests=NS(cpu="1.5", memory="2048Mi", gpu=None), limits=NS(cpu="2000m", memory="4096Mi", gpu=None))
    assert common.resources(res) == {"requests": {"cpu": "1500m", "memory": "2Gi"},
                                     "limits": {"cpu": "2", "memory": "4Gi"}}
