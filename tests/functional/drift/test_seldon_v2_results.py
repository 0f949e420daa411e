"""Seldon Core 2 drift results as the drift actions Service receives them: protobuf bytes made by
the real MLServer 1.3.5 (in ``.venv-alibi``), decoded by the stdlib decoder of
:mod:`mlspec.generators.drift_actions`.

How they are made, upstream: Seldon's model gateway calls the detector Model over gRPC and writes
``proto.Marshal(ModelInferResponse)`` to ``seldon.<ns>.model.<detector>.outputs``
(SeldonIO/seldon-core@v2.6.0 scheduler/pkg/kafka/gateway/worker.go ``grpcRequest``); MLServer's
gRPC servicer builds that message with ``ModelInferResponseConverter.from_types(result,
use_raw=<request had raw inputs>)`` (mlserver 1.3.5 mlserver/grpc/servicers.py).  The script
below does exactly that with the answer of ``mlserver_alibi_detect.AlibiDetectRuntime`` for a
detector directory written by mlspec, on a batch of the reference distribution and a shifted
one, both with and without raw contents; the REST answer (``InferenceResponse`` as JSON) is the
comparison.  A KafkaSource hands the record value over as the CloudEvent data, unchanged, with
``type: dev.knative.kafka.event`` (knative-extensions/eventing-kafka-broker@knative-v1.22.2
data-plane InvalidCloudEventInterceptor.java) in binary mode, without a content type.
"""

from __future__ import annotations

import base64
import http.server
import json
import subprocess
import threading

import numpy as np
import pytest

from drift_project import MONITORED, SERVED, sample
from mlspec.generators import drift_actions
from mlspec.generators.drift_components import write_detector

POLICY = {"method": "ks", "detector": "KSDrift", "features": MONITORED["ks"], "served": list(SERVED),
          "dtypes": {f: SERVED[f] for f in MONITORED["ks"]}, "p_value": 0.05, "correction": "bonferroni",
          "batch_size": 200, "sample_size": 300}

#: Runs in .venv-alibi: the runtime's answers, as JSON and as MLServer's own protobuf, plus a
#: message made with the protobuf classes that uses every contents field the decoder reads.
SCRIPT = r"""
import asyncio, base64, json, sys
import numpy as np
from mlserver.grpc import dataplane_pb2 as pb
from mlserver.grpc.converters import ModelInferResponseConverter
from mlserver.metrics import model_context
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest
from mlserver_alibi_detect import AlibiDetectRuntime

directory, batches = sys.argv[1], sys.argv[2:]
settings = json.load(open(directory + "/model-settings.json"))
settings["name"] = "churn-drift-detector"
settings["parameters"]["uri"] = directory
settings = ModelSettings(**settings)

def message(response, raw):
    return base64.b64encode(ModelInferResponseConverter.from_types(response.copy(deep=True), use_raw=raw)
                            .SerializeToString()).decode()

async def main():
    runtime = AlibiDetectRuntime(settings)
    await runtime.load()
    out = {}
    for path in batches:
        x = np.load(path)
        request = InferenceRequest(inputs=[{"name": "svc", "shape": list(x.shape), "datatype": "FP64",
                                            "data": x.reshape(-1).tolist()}])
        with model_context(settings):
            response = await runtime.predict(request)
        out[path] = {"json": json.loads(response.json(exclude_none=True)),
                     "proto": message(response, False), "proto_raw": message(response, True)}
    # every contents field, packed (proto3's default) as the classes write them
    kinds = pb.ModelInferResponse(model_name="m", id="x", outputs=[
        pb.ModelInferResponse.InferOutputTensor(name="b", datatype="BOOL", shape=[3],
            contents=pb.InferTensorContents(bool_contents=[True, False, True])),
        pb.ModelInferResponse.InferOutputTensor(name="i", datatype="INT32", shape=[3],
            contents=pb.InferTensorContents(int_contents=[-3, 0, 2147483647])),
        pb.ModelInferResponse.InferOutputTensor(name="l", datatype="INT64", shape=[2],
            contents=pb.InferTensorContents(int64_contents=[-(2 ** 40), 7])),
        pb.ModelInferResponse.InferOutputTensor(name="u", datatype="UINT64", shape=[1],
            contents=pb.InferTensorContents(uint64_contents=[2 ** 63 + 5])),
        pb.ModelInferResponse.InferOutputTensor(name="f", datatype="FP32", shape=[2, 1],
            contents=pb.InferTensorContents(fp32_contents=[0.25, -1.5])),
        pb.ModelInferResponse.InferOutputTensor(name="d", datatype="FP64", shape=[1],
            contents=pb.InferTensorContents(fp64_contents=[0.1])),
    ])
    kinds.parameters["content_type"].string_param = "np"
    out["kinds"] = base64.b64encode(kinds.SerializeToString()).decode()
    # raw_output_contents of several datatypes, read back by MLServer's own converter
    raw = pb.ModelInferResponse(model_name="m", outputs=[
        pb.ModelInferResponse.InferOutputTensor(name=n, datatype=t, shape=[len(v)])
        for n, t, v in (("p_val", "FP32", [0.5, 0.001]), ("is_drift", "INT64", [1]), ("flag", "BOOL", [True, False]))],
        raw_output_contents=[np.array([0.5, 0.001], "<f4").tobytes(), np.array([1], "<i8").tobytes(),
                             np.array([True, False], "?").tobytes()])
    out["raw"] = base64.b64encode(raw.SerializeToString()).decode()
    out["raw_expected"] = {o.name: list(o.data) for o in ModelInferResponseConverter.to_types(raw).outputs}
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def answers(alibi_python, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("seldon-v2-results")
    write_detector(root / "detector", sample(500, seed=11), POLICY, "v7")
    batches = {}
    for name, frame in (("same", sample(200, seed=12)), ("shifted", sample(200, seed=13, shift=True))):
        batches[name] = root / f"{name}.npy"
        np.save(batches[name], frame[list(SERVED)].astype("float64").to_numpy())
    proc = subprocess.run([str(alibi_python), "-c", SCRIPT, str(root / "detector"), *map(str, batches.values())],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**{name: out[str(path)] for name, path in batches.items()},
            **{k: out[k] for k in ("kinds", "raw", "raw_expected")}}


def _by_name(outputs: list) -> dict:
    return {o["name"]: o for o in outputs}


@pytest.mark.parametrize("case", ["same", "shifted"])
@pytest.mark.parametrize("encoding", ["proto", "proto_raw"])
def test_mlserver_protobuf_decodes_to_the_json_answer(answers, case, encoding):
    answer = answers[case]
    decoded = _by_name(drift_actions.decode_infer_response(base64.b64decode(answer[encoding])))
    expected = _by_name(answer["json"]["outputs"])
    # MLServer's alibi-detect runtime: one output per key of the detector's result data
    assert {"is_drift", "p_val", "threshold", "distance"} <= set(decoded) == set(expected)
    for name, output in expected.items():
        assert decoded[name]["datatype"] == output["datatype"]
        assert decoded[name]["shape"] == output["shape"]
        assert decoded[name]["data"] == output["data"]  # exact: the same float32/float64 values
    assert len(decoded["p_val"]["data"]) == len(MONITORED["ks"])


@pytest.mark.parametrize("encoding", ["proto", "proto_raw"])
def test_summary_of_protobuf_equals_summary_of_json(answers, encoding):
    for case, drifted in (("same", False), ("shifted", True)):
        answer = answers[case]
        from_proto = drift_actions.drift_summary(base64.b64decode(answer[encoding]))
        from_json = drift_actions.drift_summary(answer["json"])  # the V2 JSON answer
        assert from_proto == from_json
        assert from_proto["drift"] is drifted
        assert from_proto["p_val"] == min(_by_name(answer["json"]["outputs"])["p_val"]["data"])
        assert from_proto["threshold"] == pytest.approx(0.05 / 3)


def test_every_contents_field_and_raw_contents(answers):
    kinds = _by_name(drift_actions.decode_infer_response(base64.b64decode(answers["kinds"])))
    assert kinds["b"]["data"] == [1, 0, 1]
    assert kinds["i"]["data"] == [-3, 0, 2147483647]
    assert kinds["l"]["data"] == [-(2 ** 40), 7]
    assert kinds["u"]["data"] == [2 ** 63 + 5]
    assert kinds["f"] == {"name": "f", "datatype": "FP32", "shape": [2, 1], "data": [0.25, -1.5]}
    assert kinds["d"]["data"] == [0.1]
    raw = _by_name(drift_actions.decode_infer_response(base64.b64decode(answers["raw"])))
    assert {k: v["data"] for k, v in raw.items()} == {  # exact, as MLServer's converter reads them
        k: [int(x) if isinstance(x, bool) else x for x in v] for k, v in answers["raw_expected"].items()}
    assert raw["p_val"]["data"] == [0.5, float(np.float32(0.001))]


def test_not_a_message_is_rejected():
    for junk in (b"\x2a\x05ab", b"\x0f", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"):
        with pytest.raises(ValueError):
            drift_actions.decode_infer_response(junk)


def test_kafka_source_event_reaches_the_alert(answers):
    """What the KafkaSource delivers (binary mode, no content type, ``kafkaheader*`` extensions from
    the record headers) goes through ``handle_request`` to the webhook, as JSON."""
    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    source = "/apis/v1/namespaces/ml-dev/kafkasources/churn-drift-results#seldon.ml-dev.model.churn-drift-detector.outputs"
    env = {"MLSPEC_ACTION": "alert", "MLSPEC_EVENT_TYPE": "dev.knative.kafka.event", "MLSPEC_EVENT_SOURCE": source,
           "MLSPEC_SPEC": "churn/mlops.yaml", "MLSPEC_ENV": "dev",
           "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/hook"}
    try:
        for case, outcome in (("same", "no-drift"), ("shifted", "sent")):
            headers = {"ce-specversion": "1.0", "ce-type": "dev.knative.kafka.event", "ce-source": source,
                       "ce-id": "partition:0/offset:7", "ce-subject": "partition:0#7",
                       "ce-kafkaheaderxseldonalibitype": "drift", "ce-kafkaheaderpipeline": "churn-monitored"}
            body = base64.b64decode(answers[case]["proto_raw"])
            code, result, _ = drift_actions.handle_request("POST", "/", headers, body, env, threading.Lock())
            assert (code, result) == (200, outcome)
        other = dict(headers, **{"ce-source": source.replace("churn-", "fraud-")})
        assert drift_actions.handle_request("POST", "/", other, body, env, threading.Lock())[1] == "ignored"
    finally:
        server.shutdown()
        server.server_close()
    assert len(got) == 1
    assert got[0]["result"]["data"]["is_drift"] == 1
    assert got[0]["event"]["type"] == "dev.knative.kafka.event"
