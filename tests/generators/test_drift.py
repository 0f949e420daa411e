"""The drift target's objects: upstream schemas (``k8s-validate.py --strict``), the fields of
the objects whose CRDs carry no schema for ``spec`` (Knative Broker and Trigger) checked against
the upstream facts (knative/eventing@knative-v1.22.2 trigger_types.go, delivery_types.go; facts
§5), and the wiring across files and targets: the payload logger posts to the Broker, each
Trigger filters on exactly what its producer emits, the detector's results reach the action,
the retrain action runs this environment's PipelineVersion."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlspec import commands

ROOT = Path(__file__).resolve().parents[2]
K8S_VALIDATE = Path(os.environ.get("MLSPEC_K8S_VALIDATE", ROOT.parent / "shared" / "tools" / "k8s-validate.py"))
TARGETS = ["kubeflow", "kserve", "seldon", "drift"]

# What the payload loggers emit, as upstream has it (facts §1.5 and §2; the extension
# ``inferenceservicename`` is set by KServe's agent and by Seldon's executor to the
# InferenceService / SeldonDeployment name) -- written here, not imported from the target.
LOGGER_EVENTS = {"kserve": "org.kubeflow.serving.inference.request", "seldon": "io.seldon.serving.inference.request"}
MT_BROKER_INGRESS = "http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{broker}"
# knative/eventing@knative-v1.22.2 pkg/apis/eventing/v1/trigger_types.go, broker_types.go, duck/v1/delivery_types.go
TRIGGER_SPEC_FIELDS = {"broker", "brokerRef", "filter", "filters", "subscriber", "delivery"}
BROKER_SPEC_FIELDS = {"config", "delivery"}
DELIVERY_FIELDS = {"deadLetterSink", "retry", "backoffPolicy", "backoffDelay", "timeout", "retryAfterMax", "format"}
DESTINATION_FIELDS = {"ref", "uri", "CACerts", "audience"}
KREFERENCE_FIELDS = {"apiVersion", "kind", "name", "namespace"}
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9]*$")  # trigger_validation.go ValidateAttributesNames
ISO_DURATION = re.compile(r"^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
# alibi-detect-server (SeldonIO/seldon-core@v1.17.1 components/alibi-detect-server/adserver/__main__.py)
SERVER_FLAGS = {"--http_port", "--protocol", "--reply_url", "--event_source", "--event_type", "--model_name",
                "--storage_uri", "--elasticsearch_uri"}
SERVER_PROTOCOLS = {"tensorflow.http", "seldon.http", "seldonfeedback.http", "kfserving.http"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("drift")
    buf = io.StringIO()
    code = commands.compile([ROOT / "examples"], None, None, root, TARGETS, check=False, dry_run=False, force=False,
                            fmt="text", out=buf)
    assert code == 0, buf.getvalue()
    return root


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _spec_dirs(tree: Path) -> list[Path]:
    return sorted(p.parent.parent for p in tree.glob("deploy/*/*/drift/actions.yaml"))


def _env_file(env: str) -> dict:
    return yaml.safe_load((ROOT / "environments" / f"{env}.yaml").read_text())


def test_every_spec_with_drift_gets_its_objects(tree):
    found = {(p.parent.name, p.name) for p in _spec_dirs(tree)}
    assert found == {(env, spec) for env in ("dev", "staging", "prod") for spec in ("churn", "fraud")}


def test_objects_pass_the_upstream_schemas(tree):
    files = sorted(tree.glob("deploy/*/*/drift/*.yaml")) + sorted(tree.glob("deploy/*/*/kubeflow/pipeline-version.yaml"))
    files += sorted(tree.glob("deploy/*/*/kserve/*.yaml")) + sorted(tree.glob("deploy/*/*/seldon/*.yaml"))
    proc = subprocess.run([sys.executable, str(K8S_VALIDATE), "--strict", *map(str, files)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _check_destination(dest: dict) -> None:
    assert set(dest) <= DESTINATION_FIELDS and dest
    if "ref" in dest:
        assert set(dest["ref"]) <= KREFERENCE_FIELDS and {"apiVersion", "kind", "name"} <= set(dest["ref"])


def _check_delivery(delivery: dict) -> None:
    assert set(delivery) <= DELIVERY_FIELDS
    assert isinstance(delivery["retry"], int) and delivery["retry"] >= 0
    assert delivery["backoffPolicy"] in ("linear", "exponential")
    assert ISO_DURATION.match(delivery["backoffDelay"]), delivery["backoffDelay"]
    _check_destination(delivery["deadLetterSink"])


def test_knative_eventing_fields_are_upstream_ones(tree):
    """The Trigger and Broker CRDs preserve unknown fields in ``spec``: a typo would pass the
    schema, so the fields are checked against the upstream types here."""
    for folder in _spec_dirs(tree):
        for trigger in _docs(folder / "drift" / "triggers.yaml"):
            spec = trigger["spec"]
            assert trigger["kind"] == "Trigger" and set(spec) <= TRIGGER_SPEC_FIELDS
            assert ("broker" in spec) != ("brokerRef" in spec)
            attributes = spec["filter"]["attributes"]
            assert attributes and all(ATTRIBUTE_NAME.match(k) for k in attributes)
            _check_destination(spec["subscriber"])
            _check_delivery(spec["delivery"])
        broker = folder / "drift" / "broker.yaml"
        if broker.exists():
            (doc,) = _docs(broker)
            assert doc["kind"] == "Broker" and set(doc["spec"]) <= BROKER_SPEC_FIELDS
            # the ingress URL form below is the MT channel-based broker's (facts §5.1)
            assert doc["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "MTChannelBasedBroker"
            _check_delivery(doc["spec"]["delivery"])


def _broker_url(folder: Path) -> tuple[str, str]:
    """(broker name, its ingress URL) for a spec folder: the generated Broker, else the env's."""
    env = folder.parent.name
    namespace = _env_file(env)["namespace"]
    broker = folder / "drift" / "broker.yaml"
    if broker.exists():
        (doc,) = _docs(broker)
        assert doc["metadata"]["namespace"] == namespace
        name = doc["metadata"]["name"]
    else:
        name = _env_file(env)["drift"]["broker"]
    return name, MT_BROKER_INGRESS.format(namespace=namespace, broker=name)


def _serving(folder: Path) -> tuple[str, dict, str]:
    """(runtime, the logged object's logger, the logged object's name)."""
    kserve = folder / "kserve" / "inferenceservice.yaml"
    if kserve.exists():
        logged = [d for d in _docs(kserve) if "logger" in d["spec"]["predictor"]]
        assert len(logged) == 1, "exactly one InferenceService (the champion) logs its requests"
        assert logged[0]["metadata"]["name"].endswith("-champion") or len(_docs(kserve)) == 1
        return "kserve", logged[0]["spec"]["predictor"]["logger"], logged[0]["metadata"]["name"]
    (sdep,) = _docs(folder / "seldon" / "seldondeployment.yaml")
    logged = [p for p in sdep["spec"]["predictors"] if "logger" in p["graph"]]
    assert [p["name"] for p in logged] == ["champion"]
    return "seldon", logged[0]["graph"]["logger"], sdep["metadata"]["name"]


def _service(folder: Path, name: str) -> dict:
    (doc,) = _docs(folder / "drift" / name)
    assert doc["apiVersion"] == "serving.knative.dev/v1" and doc["kind"] == "Service"
    return doc


def _args(service: dict) -> list[str]:
    (container,) = service["spec"]["template"]["spec"]["containers"]
    return container["args"]


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_wiring_logger_broker_detector_action(tree):
    for folder in _spec_dirs(tree):
        spec_name, env = folder.name, folder.parent.name
        namespace = _env_file(env)["namespace"]
        broker, url = _broker_url(folder)
        runtime, logger, served = _serving(folder)
        assert logger == {"mode": "request", "url": url}, "the logger posts the champion's requests to the Broker"
        assert "default-broker" not in logger["url"]

        detector = _service(folder, "detector.yaml")
        actions = _service(folder, "actions.yaml")
        for obj in (detector, actions):
            assert obj["metadata"]["namespace"] == namespace
        args = _args(detector)
        split = args.index("DriftDetector")
        assert {a for a in args[:split] if a.startswith("--")} <= SERVER_FLAGS, "global flags come before the method"
        assert args[split + 1:][0] == "--drift_batch_size" and int(args[split + 2]) >= 1
        assert _flag(args, "--protocol") in SERVER_PROTOCOLS
        assert _flag(args, "--reply_url") == url, "the detector's results go back into the Broker"
        assert _flag(args, "--storage_uri").endswith("/drift-detector")
        annotations = detector["spec"]["template"]["metadata"]["annotations"]
        assert annotations["autoscaling.knative.dev/min-scale"] == annotations["autoscaling.knative.dev/max-scale"] == "1"

        triggers = {t["metadata"]["name"]: t for t in _docs(folder / "drift" / "triggers.yaml")}
        for trigger in triggers.values():
            assert trigger["metadata"]["namespace"] == namespace and trigger["spec"]["broker"] == broker
            ref = trigger["spec"]["subscriber"]["ref"]
            assert ref["kind"] == "Service" and ref["name"] in (detector["metadata"]["name"], actions["metadata"]["name"])
        to_detector = [t for t in triggers.values()
                       if t["spec"]["subscriber"]["ref"]["name"] == detector["metadata"]["name"]]
        to_actions = [t for t in triggers.values()
                      if t["spec"]["subscriber"]["ref"]["name"] == actions["metadata"]["name"]]
        assert len(to_detector) == len(to_actions) == 1
        assert to_detector[0]["spec"]["filter"]["attributes"] == {"type": LOGGER_EVENTS[runtime],
                                                                   "inferenceservicename": served}
        assert to_actions[0]["spec"]["filter"]["attributes"] == {"type": _flag(args, "--event_type"),
                                                                  "source": _flag(args, "--event_source")}
        (container,) = actions["spec"]["template"]["spec"]["containers"]
        env_vars = {e["name"]: e for e in container["env"]}
        action = env_vars["MLSPEC_ACTION"]["value"]
        assert to_actions[0]["metadata"]["name"] == f"{spec_name}-{action}-trigger"
        assert env_vars["MLSPEC_EVENT_TYPE"]["value"] == _flag(args, "--event_type")
        # undeliverable events end at the actions Service's /dead-letter (or the env's sink)
        for obj in [*triggers.values()]:
            dls = obj["spec"]["delivery"]["deadLetterSink"]
            assert dls.get("uri") == "/dead-letter" and dls["ref"]["name"] == actions["metadata"]["name"]


def test_retrain_runs_the_pipeline_version_of_the_same_environment(tree):
    checked = 0
    for folder in _spec_dirs(tree):
        (container,) = _service(folder, "actions.yaml")["spec"]["template"]["spec"]["containers"]
        env_vars = {e["name"]: e.get("value") for e in container["env"]}
        if env_vars["MLSPEC_ACTION"] != "retrain":
            continue
        pipeline, version = [d for d in _docs(folder / "kubeflow" / "pipeline.yaml")]
        (configmap,) = _docs(folder / "kubeflow" / "pipeline-version.yaml")
        assert configmap["data"] == {"pipeline": pipeline["metadata"]["name"], "version": version["metadata"]["name"]}
        assert env_vars["KFP_PIPELINE_NAME"] == pipeline["metadata"]["name"]
        assert env_vars["KFP_PIPELINE_NAMESPACE"] == pipeline["metadata"]["namespace"]
        pod = _service(folder, "actions.yaml")["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if "configMap" in v)
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        assert env_vars["KFP_PIPELINE_VERSION_FILE"] == mount["mountPath"] + "/version"
        assert configmap["metadata"]["namespace"] == _service(folder, "actions.yaml")["metadata"]["namespace"]
        cooldown = int(env_vars["KFP_COOLDOWN_SECONDS"])
        assert cooldown == 24 * 3600  # churn's cooldown: 24h
        checked += 1
    assert checked == 3  # churn in dev, staging and prod


def test_alert_reads_the_webhook_url_from_the_secret(tree):
    for folder in _spec_dirs(tree):
        (container,) = _service(folder, "actions.yaml")["spec"]["template"]["spec"]["containers"]
        env_vars = {e["name"]: e for e in container["env"]}
        if env_vars["MLSPEC_ACTION"]["value"] == "alert":
            assert env_vars["ALERT_WEBHOOK_URL"] == {"name": "ALERT_WEBHOOK_URL", "valueFrom": {
                "secretKeyRef": {"name": "fraud-oncall-webhook", "key": "url"}}}
            assert "value" not in env_vars["ALERT_WEBHOOK_URL"]
