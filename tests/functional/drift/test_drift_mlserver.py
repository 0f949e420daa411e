"""The written detector directory served by MLServer's alibi-detect runtime, as Seldon Core 2
serves a drift Model: ``mlserver start`` (1.3.5, in ``.venv-alibi``) on 127.0.0.1 finds
``model-settings.json``, loads the detector from ``parameters.uri`` "./", and answers V2
inference requests carrying the *whole served vector* (all four features) -- the detector
selects the three it monitors."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from drift_project import MONITORED, SERVED, sample
from mlspec.generators.drift_components import write_detector

POLICY = {"method": "ks", "detector": "KSDrift", "features": MONITORED["ks"], "served": list(SERVED),
          "dtypes": {f: SERVED[f] for f in MONITORED["ks"]}, "p_value": 0.05, "correction": "bonferroni",
          "batch_size": 200, "sample_size": 300}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: dict | None = None, timeout: float = 10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def server(alibi_python, tmp_path_factory):
    root = tmp_path_factory.mktemp("mlserver")
    write_detector(root / "drift-ks", sample(500, seed=11), POLICY, "v7")
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    (root / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "parallel_workers": 0, **ports}))
    log = open(root / "mlserver.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(alibi_python.parent / "mlserver"), "start", str(root)], cwd=root,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{ports['http_port']}/v2/models/drift-ks"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (root / "mlserver.log").read_text()[-3000:]
            try:
                if call(base + "/ready", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, (root / "mlserver.log").read_text()[-3000:]
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def infer(base: str, frame) -> dict:
    values = frame[list(SERVED)].astype("float64").to_numpy()
    body = {"inputs": [{"name": "svc", "shape": list(values.shape), "datatype": "FP64",
                        "data": values.reshape(-1).tolist()}]}
    status, answer = call(base + "/infer", body)
    assert status == 200
    return {o["name"]: o["data"] for o in answer["outputs"]}


def test_mlserver_serves_the_directory_and_selects_the_monitored_columns(server):
    status, metadata = call(server)
    assert status == 200 and metadata["name"] == "drift-ks"  # no name in the file: the folder names it
    same, shifted = infer(server, sample(200, seed=12)), infer(server, sample(200, seed=13, shift=True))
    assert same["is_drift"] == [0] and shifted["is_drift"] == [1]
    assert len(same["p_val"]) == len(MONITORED["ks"]) == 3  # four served features in, three tested
    assert same["threshold"] == pytest.approx([0.05 / 3])
