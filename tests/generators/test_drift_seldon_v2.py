"""The drift target for Seldon Core 2: the detector Model and the Pipeline pass the upstream
schemas (``k8s-validate.py --strict``, SeldonIO/seldon-core@v2.6.0), the KafkaSource (no schema
in ../shared/crd-schemas) is checked field by field against the upstream Go types written out
below, and the wiring holds across files: the Pipeline's steps are the champion Model and the
detector, the KafkaSource reads the detector Model's output topic and delivers to the actions
Service, whose event filter is exactly what the KafkaSource emits."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlspec import commands
from mlspec.generators import drift_actions

ROOT = Path(__file__).resolve().parents[2]
K8S_VALIDATE = Path(os.environ.get("MLSPEC_K8S_VALIDATE", ROOT.parent / "shared" / "tools" / "k8s-validate.py"))
TARGETS = ["kubeflow", "seldon-v2", "drift"]
KAFKA = ["kafka-0.kafka.svc.cluster.local:9092", "kafka-1.kafka.svc.cluster.local:9092"]

# knative-extensions/eventing-kafka-broker@knative-v1.22.2 control-plane/pkg/apis/sources/v1beta1/kafka_types.go
# (KafkaSourceSpec: consumers, inline bindings/v1beta1 KafkaAuthSpec {bootstrapServers, net}, topics,
# consumerGroup, initialOffset, delivery, ordering, inline duck/v1 SourceSpec {sink, ceOverrides});
# kafka_validation.go: topics and bootstrapServers required, initialOffset earliest|latest, ordering
# ordered|unordered; consumerGroup immutable and, when empty, defaulted to a random UUID (kafka_defaults.go).
KAFKA_SOURCE_SPEC_FIELDS = {"consumers", "bootstrapServers", "net", "topics", "consumerGroup", "initialOffset",
                            "delivery", "ordering", "sink", "ceOverrides"}
INITIAL_OFFSETS = {"earliest", "latest"}
# The event a KafkaSource makes of a record without CloudEvent headers (Seldon writes none):
# data-plane/dispatcher/.../InvalidCloudEventInterceptor.java TYPE and source(); v1beta1 KafkaEventSource.
KAFKA_EVENT_TYPE = "dev.knative.kafka.event"
KAFKA_EVENT_SOURCE = "/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}"
# knative/eventing@knative-v1.22.2 pkg/apis/duck/v1/delivery_types.go; knative.dev/pkg duck/v1 Destination
DELIVERY_FIELDS = {"deadLetterSink", "retry", "backoffPolicy", "backoffDelay", "timeout", "retryAfterMax", "format"}
DESTINATION_FIELDS = {"ref", "uri", "CACerts", "audience"}
# SeldonIO/seldon-core@v2.6.0 scheduler/pkg/kafka/topics.go GetModelTopicOutputs, default prefix "seldon"
OUTPUT_TOPIC = "{prefix}.{namespace}.model.{model}.outputs"


def _spec(text: str) -> str:
    spec = yaml.safe_load(text)
    sv = spec["serving"]
    sv["runtime"] = "seldon-v2"
    sv.pop("autoscaling", None)  # Seldon Core 2 scales by itself
    sv["storage_secret"] = "seldon-rclone-gs"
    spec["overrides"]["dev"]["serving"].pop("autoscaling", None)
    return yaml.safe_dump(spec, sort_keys=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("sv2")
    project = work / "project"
    shutil.copytree(ROOT / "examples" / "churn", project / "churn")
    shutil.copytree(ROOT / "environments", project / "environments")
    spec = project / "churn" / "mlops.yaml"
    spec.write_text(_spec(spec.read_text()))
    env = project / "environments" / "dev.yaml"
    env.write_text(env.read_text() + f"drift:\n  kafka:\n    bootstrap_servers: {KAFKA}\n    topic_prefix: acme.seldon\n")
    out = work / "out"
    buf = io.StringIO()
    code = commands.compile([project / "churn"], ["dev"], None, out, TARGETS, check=False, dry_run=False,
                            force=False, fmt="text", out=buf)
    assert code == 0, buf.getvalue()
    return out / "deploy" / "dev" / "churn"


def _doc(path: Path) -> dict:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return doc


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _env() -> dict:
    return yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())


def test_files(tree):
    assert sorted(p.name for p in (tree / "drift").iterdir()) == [
        "actions.yaml", "detector.yaml", "kafka-source.yaml", "pipeline.yaml"]  # no Broker, no Triggers


def test_seldon_and_knative_objects_pass_the_upstream_schemas(tree):
    files = [tree / "drift" / n for n in ("detector.yaml", "pipeline.yaml", "actions.yaml")]
    files += sorted((tree / "seldon-v2").glob("*.yaml"))
    proc = subprocess.run([sys.executable, str(K8S_VALIDATE), "--strict", *map(str, files)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_detector_model(tree):
    model = _doc(tree / "drift" / "detector.yaml")
    champion = next(m for m in _docs(tree / "seldon-v2" / "models.yaml") if m["metadata"]["name"].endswith("-champion"))
    assert (model["apiVersion"], model["kind"]) == ("mlops.seldon.io/v1alpha1", "Model")
    assert model["metadata"]["namespace"] == _env()["namespace"]
    # beside the champion's registered model: <version>/model and <version>/drift-detector
    assert model["spec"]["storageUri"] == champion["spec"]["storageUri"].removesuffix("/model") + "/drift-detector"
    assert model["spec"]["requirements"] == ["mlserver", "alibi-detect"]  # MLServer's default capabilities
    assert model["spec"]["secretName"] == champion["spec"]["secretName"] == "seldon-rclone-gs"


def test_pipeline_runs_the_detector_off_the_output_path(tree):
    pipeline = _doc(tree / "drift" / "pipeline.yaml")
    detector = _doc(tree / "drift" / "detector.yaml")["metadata"]["name"]
    models = {m["metadata"]["name"] for m in _docs(tree / "seldon-v2" / "models.yaml")}
    experiment = _doc(tree / "seldon-v2" / "experiment.yaml")
    champion = experiment["spec"]["default"]  # the Experiment splits the champion's route
    assert champion in models
    steps = {s["name"]: s for s in pipeline["spec"]["steps"]}
    assert set(steps) == {champion, detector}
    assert all("inputs" not in s for s in steps.values())  # both get the pipeline inputs (docs: pipelines)
    spec = yaml.safe_load((ROOT / "examples" / "churn" / "mlops.yaml").read_text())
    assert steps[detector]["batch"] == {"size": spec["drift"]["batch_size"]}
    assert pipeline["spec"]["output"] == {"steps": [champion]}  # the detector does not reach output: async
    assert pipeline["metadata"]["name"] not in models | {experiment["metadata"]["name"]}


def test_kafka_source_fields_match_upstream(tree):
    source = _doc(tree / "drift" / "kafka-source.yaml")
    assert (source["apiVersion"], source["kind"]) == ("sources.knative.dev/v1beta1", "KafkaSource")
    spec = source["spec"]
    assert set(spec) <= KAFKA_SOURCE_SPEC_FIELDS
    assert spec["bootstrapServers"] == KAFKA and spec["topics"]
    assert spec["initialOffset"] in INITIAL_OFFSETS
    assert spec["consumerGroup"]  # set: the default is random and the field immutable
    assert set(spec["sink"]) <= DESTINATION_FIELDS and set(spec["sink"]["ref"]) <= {"apiVersion", "kind", "name",
                                                                                   "namespace"}
    assert set(spec["delivery"]) <= DELIVERY_FIELDS
    assert set(spec["delivery"]["deadLetterSink"]) <= DESTINATION_FIELDS


def test_wiring_topic_sink_and_event_filter(tree):
    namespace = _env()["namespace"]
    source = _doc(tree / "drift" / "kafka-source.yaml")
    detector = _doc(tree / "drift" / "detector.yaml")["metadata"]["name"]
    actions = _doc(tree / "drift" / "actions.yaml")
    topic = OUTPUT_TOPIC.format(prefix="acme.seldon", namespace=namespace, model=detector)
    assert source["spec"]["topics"] == [topic]
    assert source["metadata"]["namespace"] == actions["metadata"]["namespace"] == namespace
    assert source["spec"]["sink"]["ref"] == {"apiVersion": actions["apiVersion"], "kind": actions["kind"],
                                             "name": actions["metadata"]["name"]}
    container = actions["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLSPEC_EVENT_TYPE"] == KAFKA_EVENT_TYPE
    assert env["MLSPEC_EVENT_SOURCE"] == KAFKA_EVENT_SOURCE.format(namespace=namespace,
                                                                   name=source["metadata"]["name"], topic=topic)
    assert env["MLSPEC_ACTION"] == "retrain"
    secrets = {e["name"]: "x" for e in container["env"] if "valueFrom" in e}
    assert drift_actions.check_config({**env, **secrets}) == []
    assert container["command"][:2] == ["python3", "-c"] and "def decode_infer_response" in container["command"][2]
    compile(container["command"][2], "drift-actions", "exec")


def test_retrain_runs_this_environments_pipeline_version(tree):
    actions = _doc(tree / "drift" / "actions.yaml")
    pod = actions["spec"]["template"]["spec"]
    configmap = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
    names = {d["metadata"]["name"] for f in (tree / "kubeflow").glob("*.yaml") for d in _docs(f)
             if d.get("kind") == "ConfigMap"}
    assert configmap in names
