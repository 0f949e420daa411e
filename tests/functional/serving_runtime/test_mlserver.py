"""Real runtime test: the model directory ``mlspec run --local`` registers for the churn example
is served by the real MLServer (``mlserver`` + ``mlserver-sklearn`` from PyPI, in the virtual
environment of :mod:`conftest`), started here on 127.0.0.1 and stopped here, and a V2 inference
request built from the feature service's fields for known rows answers what the scikit-learn
model loaded directly with joblib predicts.

The rows' features are computed independently of the pipeline (the naive point-in-time oracle
of ``tests/functional/run_local``); missing window aggregates travel as JSON ``null``.  The
server runs as KServe's MLServer runtime runs it: the model's name comes from
``MLSERVER_MODEL_NAME`` (KServe sets it to the InferenceService's name), the ports are free
ones, and the metrics server is off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import joblib
import pytest

ROOT = Path(__file__).resolve().parents[3]

TEST_TIMEOUT_S = 600  # the whole test, local run and server included (not the one-off venv setup)
READY_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 30
STOP_TIMEOUT_S = 20


def _run_local_module(name: str):
    """``tests/functional/run_local/<name>.py``, the very module pytest collects when it
    collects that file (loaded by path: the test folders are not packages)."""
    path = ROOT / "tests" / "functional" / "run_local" / f"{name}.py"
    module = sys.modules.get(name)
    if module is not None and Path(module.__file__).resolve() == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: ``run``, ``context_for``, ``registered``, ``naive_features``
LOCAL = _run_local_module("test_run_local")


# --------------------------------------------------------------------------- time, ports, HTTP


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Fail ``what`` once ``seconds`` have passed (SIGALRM; the test runs in the main thread)."""
    def expired(signum, frame):
        raise TimeoutError(f"{what} took longer than {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 (all held open until each is chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def http(method: str, url: str, body: dict | None = None, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, dict]:
    data = json.dumps(body, allow_nan=False).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"error": text}


# --------------------------------------------------------------------------- the server


def _log_tail(path: Path, chars: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


@contextlib.contextmanager
def mlserver(bin_dir: Path, model_dir: Path, model_name: str, workdir: Path):
    """``mlserver start <model_dir>`` on 127.0.0.1 with free HTTP and gRPC ports and no metrics
    server; yields the HTTP base URL once the server and the model are ready; always stops it."""
    http_port, grpc_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER")}
    env.update({
        "MLSERVER_HOST": "127.0.0.1",
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_ENDPOINT": "",  # empty: no metrics server (and no metrics port)
        "MLSERVER_MODEL_NAME": model_name,  # as KServe's runtime sets it; the file has no name
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "true",
    })
    log_path = workdir / "mlserver.log"
    url = f"http://127.0.0.1:{http_port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(bin_dir / "mlserver"), "start", str(model_dir)], cwd=workdir, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"mlserver exited with {proc.returncode} before it was ready:\n{_log_tail(log_path)}")
                try:
                    if (http("GET", f"{url}/v2/health/ready", timeout=2)[0] == 200
                            and http("GET", f"{url}/v2/models/{model_name}/ready", timeout=2)[0] == 200):
                        break
                except OSError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    pytest.fail(f"mlserver was not ready after {READY_TIMEOUT_S}s:\n{_log_tail(log_path)}")
                time.sleep(0.2)
            yield url, log_path
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything the server started, in the group it leads


# --------------------------------------------------------------------------- the test


def v2_tensor(tensor: dict, rows: list[list[float]]) -> dict:
    """A V2 request input: row-major flat data, NaN as null (the protocol's JSON has no NaN)."""
    flat = [None if isinstance(v, float) and math.isnan(v) else v for row in rows for v in row]
    return {"name": tensor["name"], "datatype": tensor["datatype"], "shape": [len(rows), len(rows[0])], "data": flat}


@pytest.mark.slow
def test_mlserver_serves_the_registered_churn_model_as_scikit_learn_predicts(mlserver_bin, tmp_path):
    with time_limit(TEST_TIMEOUT_S, "the real runtime test"):
        spec_path = ROOT / "examples" / "churn" / "mlops.yaml"
        out = tmp_path / "out"
        code, output = LOCAL.run(spec_path, out)
        assert code == 0, output
        ctx, base_dir = LOCAL.context_for(spec_path)
        spec = ctx.spec
        version_dir = LOCAL.registered(out, spec.name)
        model_dir = version_dir / "model"
        assert sorted(p.name for p in model_dir.iterdir()) == ["model-settings.json", "model.joblib"]

        # the signature: the feature service's fields, in its order, which the model was trained on
        features = [feature for _, feature in spec.served_features(spec.training.feature_service)]
        settings = json.loads((model_dir / "model-settings.json").read_text())
        [tensor] = settings["inputs"]
        assert tensor["parameters"]["feature_names"] == features and tensor["shape"] == [-1, len(features)]
        direct = joblib.load(model_dir / "model.joblib")
        assert list(direct.feature_names_in_) == features

        # known rows: every labelled row, its features computed independently of the pipeline
        table = LOCAL.naive_features(spec, base_dir)
        X = table[features]
        assert X.isna().to_numpy().any(), "the rows should include missing aggregates (sent as null)"
        expected_labels = direct.predict(X).tolist()
        expected_proba = direct.predict_proba(X).tolist()
        assert len(set(expected_labels)) == 2, "both classes predicted: the comparison is not trivial"
        rows = X.astype("float64").to_numpy().tolist()

        with mlserver(mlserver_bin, model_dir, spec.name, tmp_path) as (url, log_path):
            status, metadata = http("GET", f"{url}/v2/models/{spec.name}")
            assert status == 200, metadata
            assert metadata["inputs"] == settings["inputs"] and metadata["outputs"] == settings["outputs"]
            assert metadata["platform"] == "sklearn"

            # what is served by default: predict (class labels)
            status, answer = http("POST", f"{url}/v2/models/{spec.name}/infer", {"inputs": [v2_tensor(tensor, rows)]})
            assert status == 200, f"{answer}\n{_log_tail(log_path)}"
            assert answer["model_name"] == spec.name and answer["model_version"] == version_dir.name
            [labels] = answer["outputs"]
            declared = {o["name"]: o for o in settings["outputs"]}
            assert labels["name"] == "predict" and labels["datatype"] == declared["predict"]["datatype"] == "INT64"
            assert labels["shape"] == [len(rows), 1]
            assert labels["data"] == expected_labels

            # probabilities on request
            status, answer = http("POST", f"{url}/v2/models/{spec.name}/infer",
                                  {"inputs": [v2_tensor(tensor, rows)], "outputs": [{"name": "predict_proba"}]})
            assert status == 200, f"{answer}\n{_log_tail(log_path)}"
            [proba] = answer["outputs"]
            assert proba["name"] == "predict_proba" and proba["shape"] == [len(rows), 2]
            assert proba["datatype"] == declared["predict_proba"]["datatype"] == "FP64"
            assert proba["data"] == pytest.approx([p for row in expected_proba for p in row], rel=0, abs=1e-12)


@pytest.mark.slow
def test_mlserver_serves_a_string_feature_model_from_raw_values(mlserver_bin, tmp_path):
    """A model with a string feature is served column by column: MLServer's PandasCodec hands
    the registered Pipeline a DataFrame of raw values (a string store type, unseen ones and a
    null included), and the answers are what the Pipeline loaded with joblib predicts."""
    import pandas as pd

    with time_limit(TEST_TIMEOUT_S, "the string-feature runtime test"):
        folder = tmp_path / "store-demand"
        _run_local_module("test_run_local_preprocessing").write_project(folder)  # a string feature
        out = tmp_path / "out"
        code, output = LOCAL.run(folder / "mlops.yaml", out)
        assert code == 0, output
        version_dir = LOCAL.registered(out, "store-demand")
        model_dir = version_dir / "model"
        settings = json.loads((model_dir / "model-settings.json").read_text())
        assert settings["parameters"]["content_type"] == "pd"
        assert settings["inputs"] == [
            {"name": "store_type", "datatype": "BYTES", "shape": [-1, 1], "parameters": {"content_type": "str"}},
            {"name": "size_sqm", "datatype": "FP64", "shape": [-1, 1], "parameters": {"content_type": "np"}}]
        direct = joblib.load(model_dir / "model.joblib")
        rows = pd.DataFrame({"store_type": ["mall", "street", "outlet", "kiosk", "mall", None],
                             "size_sqm": [250.0, 250.0, 120.5, 250.0, float("nan"), 300.0]})
        expected = direct.predict(rows).tolist()
        assert expected[0] - expected[1] > 20  # the mall effect: the string reached the encoder

        with mlserver(mlserver_bin, model_dir, "store-demand", tmp_path) as (url, log_path):
            status, metadata = http("GET", f"{url}/v2/models/store-demand")
            assert status == 200, metadata
            assert metadata["inputs"] == settings["inputs"]
            request = {"inputs": [
                {"name": "store_type", "datatype": "BYTES", "shape": [len(rows), 1],
                 "data": [None if pd.isna(v) else v for v in rows.store_type]},
                {"name": "size_sqm", "datatype": "FP64", "shape": [len(rows), 1],
                 "data": [None if math.isnan(v) else v for v in rows.size_sqm]}]}
            status, answer = http("POST", f"{url}/v2/models/store-demand/infer", request)
            assert status == 200, f"{answer}\n{_log_tail(log_path)}"
            [predicted] = answer["outputs"]
            assert predicted["name"] == "predict" and predicted["datatype"] == "FP64"
            assert predicted["data"] == pytest.approx(expected, rel=0, abs=1e-9)
