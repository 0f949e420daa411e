"""The drift actions Service's program (mlspec.generators.drift_actions), run as the cluster runs it:
``python -c <script()>`` in a subprocess (``-I -S``: no site-packages, so stdlib only), on 127.0.0.1,
against fake upstreams on 127.0.0.1 (the KFP v2beta1 API, a webhook, GitHub's dispatches endpoint).

The fake KFP API answers like KFP 2.17.0's API server: snake_case bodies, ``filter`` parsed the way
backend/src/apiserver/server/list_request_util.go does (camelCase value keys rewritten, then a strict
protojson parse of filter.proto's Filter: unknown keys are an error), ``created_at`` compared in
seconds (backend/src/apiserver/filter/filter.go).  Bodies the launcher sends are checked against the
installed ``kfp_server_api`` models (no unknown field at any depth) and deserialised with them.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import inspect
import json
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from mlspec.generators import drift_actions

from mlspec import naming

EVENT_TYPE = naming.DRIFT_EVENT_TYPE
UTC = datetime.timezone.utc
DRIFT = {"data": {"is_drift": 1, "distance": [0.41, 0.08], "p_val": [0.0004, 0.31], "threshold": 0.025},
         "meta": {"name": "KSDrift", "detector_type": "drift", "data_type": "tabular", "version": "0.11.4"}}
NO_DRIFT = {"data": {"is_drift": 0, "distance": [0.02, 0.03], "p_val": [0.61, 0.44], "threshold": 0.025},
            "meta": {"name": "KSDrift", "detector_type": "drift"}}


# --------------------------------------------------------------------------- fake upstreams


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def unknown_fields(value, type_name: str, where: str = "") -> list[str]:
    """Keys of ``value`` that the kfp_server_api model ``type_name`` does not have, at any depth."""
    from kfp_server_api import models

    if type_name.startswith("list["):
        return [f for i, item in enumerate(value) for f in unknown_fields(item, type_name[5:-1], f"{where}[{i}]")]
    if type_name.startswith("dict(") or type_name in ("object", "str", "int", "bool", "float", "datetime", "date"):
        return []
    model = getattr(models, type_name)
    if not model.openapi_types:  # an enum
        return [] if value in model.allowable_values else [f"{where}={value!r}"]
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    out = []
    for key, item in value.items():
        if key not in by_key:
            out.append(f"{where}.{key}")
        else:
            out += unknown_fields(item, model.openapi_types[by_key[key]], f"{where}.{key}")
    return out


def as_model(body: dict, type_name: str):
    """``body`` deserialised by kfp_server_api, after checking it has no field the model lacks."""
    import kfp_server_api

    assert unknown_fields(body, type_name) == [], (type_name, body)
    with kfp_server_api.ApiClient() as client:
        return client.deserialize(types.SimpleNamespace(data=json.dumps(body)), type_name)


def kfp_filter(encoded: str) -> list[dict]:
    """The predicates of a ``filter`` query parameter, parsed as KFP 2.17.0 does (or AssertionError)."""
    text = unquote(encoded)
    for camel, snake in (("intValue", "int_value"), ("longValue", "long_value"), ("stringValue", "string_value"),
                         ("timestampValue", "timestamp_value"), ("intValues", "int_values"),
                         ("longValues", "long_values"), ("stringValues", "string_values")):
        text = text.replace(f'"{camel}":', f'"{snake}":')
    document = json.loads(text)
    as_model(document, "V2beta1Filter")
    return document["predicates"]


class Upstream:
    """A ThreadingHTTPServer on 127.0.0.1 whose requests go to ``self.answer(method, path, query, headers, body)``."""

    def __init__(self) -> None:
        self.requests: list[tuple] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def go(self) -> None:
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                with owner.lock:
                    owner.requests.append((self.command, url.path, query, headers, body))
                    code, answer = owner.answer(self.command, url.path, query, headers, body)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = go

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method, path, query, headers, body):
        raise NotImplementedError


class FakeKFP(Upstream):
    """pipelines/names, versions (paged), experiments list/create, runs list (experiment_id, filter)/create."""

    TOKEN = "sa-token"

    def __init__(self) -> None:
        super().__init__()
        self.pipelines = {"churn": "p-1"}
        self.versions = {"p-1": [{"name": "churn-a1", "display_name": "churn-a1", "pipeline_version_id": "v-1"},
                                 {"name": "churn-b2", "display_name": "churn-b2", "pipeline_version_id": "v-2"}]}
        self.experiments: list[dict] = []
        self.runs: list[dict] = []
        self.created: list[dict] = []  # run bodies as received
        self.errors: list[str] = []

    def age_runs(self, seconds: int) -> None:
        """Time passes: every run is ``seconds`` older."""
        with self.lock:
            for run in self.runs:
                run["created_at"] = rfc3339(parse_rfc3339(run["created_at"]) - datetime.timedelta(seconds=seconds))

    def answer(self, method, path, query, headers, body):
        try:
            if headers.get("authorization") != f"Bearer {self.TOKEN}":
                return 401, {"code": 16, "message": "Unauthenticated"}
            return self.route(method, path, query, body)
        except AssertionError as exc:
            self.errors.append(f"{method} {path}: {exc}")
            return 400, {"code": 3, "message": str(exc)}

    def route(self, method, path, query, body):
        parts = path.strip("/").split("/")
        assert parts[:2] == ["apis", "v2beta1"], path
        parts = parts[2:]
        if method == "GET" and parts[:2] == ["pipelines", "names"]:
            name = unquote(parts[2])
            if name not in self.pipelines:
                return 404, {"code": 5, "message": f"pipeline {name} not found"}
            return 200, {"pipeline_id": self.pipelines[name], "name": name, "display_name": name}
        if method == "GET" and parts[0] == "pipelines" and parts[2:] == ["versions"]:
            versions = self.versions[parts[1]]
            start = int(query.get("page_token") or 0)
            page = versions[start:start + 1]  # one per page: the launcher must follow next_page_token
            answer = {"pipeline_versions": page, "total_size": len(versions)}
            if start + 1 < len(versions):
                answer["next_page_token"] = str(start + 1)
            return 200, answer
        if parts == ["experiments"] and method == "GET":
            (predicate,) = kfp_filter(query["filter"])
            assert predicate["operation"] == "EQUALS" and predicate["key"] == "display_name", predicate
            found = [e for e in self.experiments if e["display_name"] == predicate["string_value"]
                     and e["namespace"] == query.get("namespace", "")]
            return 200, {"experiments": found[: int(query.get("page_size", 0)) or None], "total_size": len(found)}
        if parts == ["experiments"] and method == "POST":
            as_model(body, "V2beta1Experiment")
            experiment = {"experiment_id": f"e-{len(self.experiments) + 1}", "display_name": body["display_name"],
                          "namespace": body.get("namespace", ""), "created_at": rfc3339(datetime.datetime.now(UTC))}
            self.experiments.append(experiment)
            return 200, experiment
        if parts == ["runs"] and method == "GET":
            runs = [r for r in self.runs if r["experiment_id"] == query.get("experiment_id")]
            for predicate in kfp_filter(query["filter"]) if "filter" in query else []:
                assert predicate["key"] == "created_at" and predicate["operation"] == "GREATER_THAN", predicate
                # filter.go: timestamps compare as Unix seconds
                bound = int(parse_rfc3339(predicate["timestamp_value"]).timestamp())
                runs = [r for r in runs if int(parse_rfc3339(r["created_at"]).timestamp()) > bound]
            answer = {"runs": runs[: int(query.get("page_size", 0)) or None], "total_size": len(runs)}
            return 200, answer if runs else {}  # protojson omits empty fields
        if parts == ["runs"] and method == "POST":
            as_model(body, "V2beta1Run")
            assert body["experiment_id"] in {e["experiment_id"] for e in self.experiments}, body
            self.created.append(body)
            run = dict(body, run_id=f"r-{len(self.runs) + 1}", created_at=rfc3339(datetime.datetime.now(UTC)),
                       state="PENDING")
            self.runs.append(run)
            return 200, run
        raise AssertionError(f"unexpected {method} {path}")


class Recorder(Upstream):
    """A webhook or GitHub: answers ``code`` and records what it got."""

    def __init__(self, code: int = 204) -> None:
        super().__init__()
        self.code = code

    def answer(self, method, path, query, headers, body):
        return self.code, ({"message": "Bad credentials"} if self.code >= 400 else None)


@pytest.fixture
def kfp():
    server = FakeKFP()
    yield server
    server.stop()


# --------------------------------------------------------------------------- the Service, as a process


class Actions:
    """The script running in a subprocess; its stderr lines are collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", drift_actions.script()], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        first = self.proc.stderr.readline()
        if not first:
            self.proc.wait(5)
            raise AssertionError(f"the Service did not start: {self.proc.stderr.read()}")
        self.address = json.loads(first)["listening"]
        for stream, lines in ((self.proc.stderr, self.stderr), (self.proc.stdout, self.stdout)):
            threading.Thread(target=lambda s=stream, out=lines: out.extend(iter(s.readline, "")), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def logs(self) -> list[dict]:
        return [json.loads(line) for line in list(self.stderr) if line.startswith("{")]

    def post(self, data, *, type_: str = EVENT_TYPE, mode: str = "binary", path: str = "/", event_id: str = "ev-1",
             extra_headers: dict | None = None):
        """A CloudEvent as the Broker delivers it: ``(status, outcome header, body text)``."""
        if mode == "binary":
            body = json.dumps(data).encode()
            headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-type": type_,
                       "ce-source": "io.mlspec/ml-dev/churn/drift-detector", "ce-id": event_id}
        elif mode == "structured":
            body = json.dumps({"specversion": "1.0", "type": type_, "source": "io.mlspec/ml-dev/churn/drift-detector",
                               "id": event_id, "datacontenttype": "application/json", "data": data}).encode()
            headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
        else:
            body, headers = data, {"Content-Type": "application/json"}
        headers.update(extra_headers or {})
        return request(self.url + path, body, headers)


def request(url: str, body: bytes | None, headers: dict | None = None, method: str = "POST"):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.headers.get("X-Mlspec-Outcome"), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("X-Mlspec-Outcome"), exc.read().decode()


def base_env(action: str, **extra: str) -> dict[str, str]:
    # no proxy variables: the fakes are on 127.0.0.1
    return {"PORT": "0", "MLSPEC_LISTEN_HOST": "127.0.0.1", "MLSPEC_ACTION": action, "MLSPEC_EVENT_TYPE": EVENT_TYPE,
            "MLSPEC_SPEC": "examples/churn/mlops.yaml", "MLSPEC_ENV": "dev", "MLSPEC_HTTP_TIMEOUT": "5", **extra}


def retrain_env(kfp: FakeKFP, tmp_path, version_file=None, **extra: str) -> dict[str, str]:
    token = tmp_path / "token"
    token.write_text(FakeKFP.TOKEN + "\n")
    env = base_env("retrain", **{
        "KFP_HOST": kfp.url, "KFP_PIPELINE_NAMESPACE": "kubeflow", "KFP_PIPELINE_NAME": "churn",
        "KFP_PIPELINE_VERSION": "churn-a1", "KFP_RUN_NAMESPACE": "ml-dev", "KFP_EXPERIMENT": "churn",
        "KFP_SERVICE_ACCOUNT": "trainer", "KFP_RUN_PARAMETERS": "{}", "KFP_COOLDOWN_SECONDS": "3600",
        "KF_PIPELINES_SA_TOKEN_PATH": str(token), **extra})
    if version_file is not None:
        env["KFP_PIPELINE_VERSION_FILE"] = str(version_file)
    return env


@pytest.fixture
def running():
    started: list[Actions] = []

    def start(env: dict[str, str]) -> Actions:
        started.append(Actions(env))
        return started[-1]

    yield start
    for actions in started:
        actions.stop()


def burst(actions: Actions, count: int, data=DRIFT, prefix: str = "ev") -> list[tuple]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: actions.post(data, event_id=f"{prefix}-{i}"), range(count)))


# --------------------------------------------------------------------------- the script itself


def test_script_is_the_program_functions_and_the_one_launcher():
    from mlspec.generators import kubeflow_components

    text = drift_actions.script()
    assert text == drift_actions.script.__wrapped__()  # deterministic
    launcher = inspect.getsource(kubeflow_components.trigger_run)
    assert drift_actions.launcher_source() == launcher
    assert text.count(launcher) == 1 and text.count("def trigger_run(") == 1
    for name in drift_actions.PROGRAM:
        assert inspect.getsource(getattr(drift_actions, name)) in text
    assert text.rstrip().endswith("raise SystemExit(serve())")
    compile(text, "<drift-actions>", "exec")
    assert "mlspec" not in "\n".join(line for line in text.splitlines() if line.lstrip().startswith(("import", "from")))


def test_bad_configuration_stops_at_start():
    env = base_env("retrain")  # no KFP_* at all
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", drift_actions.script()], env=dict(env, MLSPEC_ACTION="x"),
                          capture_output=True, text=True, timeout=10, check=False)
    assert proc.returncode == 2 and "MLSPEC_ACTION must be retrain, alert or rollback, not 'x'" in proc.stderr
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", drift_actions.script()], env=env,
                          capture_output=True, text=True, timeout=10, check=False)
    assert proc.returncode == 2
    assert "KFP_HOST is not set" in proc.stderr and "KFP_PIPELINE_VERSION or KFP_PIPELINE_VERSION_FILE" in proc.stderr


def test_drift_summary_reads_batch_and_feature_results():
    batch = drift_actions.drift_summary(DRIFT)
    assert batch["drift"] and batch["p_val"] == 0.0004 and batch["threshold"] == 0.025
    assert (batch["features"], batch["drifted_features"]) == (2, 1)
    assert batch["text"] == "drift detected by KSDrift on 1 of 2 features: min p-value 0.0004 (threshold 0.025)"
    feature = drift_actions.drift_summary({"data": {"is_drift": [0, 1, 0], "p_val": [0.5, 0.001, 0.2], "threshold": 0.05}})
    assert feature["drift"] and (feature["features"], feature["drifted_features"]) == (3, 1)
    assert not drift_actions.drift_summary({"data": {"is_drift": [0, 0], "p_val": [0.5, 0.6]}})["drift"]
    mmd = drift_actions.drift_summary({"is_drift": 1, "p_val": 0.0, "threshold": 0.05, "distance": 0.3})
    assert mmd["drift"] and mmd["p_val"] == 0.0 and "features" not in mmd
    with pytest.raises(ValueError, match="no is_drift"):
        drift_actions.drift_summary({"data": {"instances": [[1, 2]]}})


def test_cloudevent_modes():
    attrs, data = drift_actions.parse_cloudevent(
        {"content-type": "application/json", "ce-type": EVENT_TYPE, "ce-source": "a%2Fb", "ce-id": "1",
         "ce-inferenceservicename": "churn"}, json.dumps(DRIFT).encode())
    assert attrs["source"] == "a/b" and attrs["inferenceservicename"] == "churn" and data == DRIFT
    encoded = base64.b64encode(json.dumps(DRIFT).encode()).decode()
    attrs, data = drift_actions.parse_cloudevent(
        {"content-type": "application/cloudevents+json"},
        json.dumps({"specversion": "1.0", "type": EVENT_TYPE, "source": "s", "id": "2", "data_base64": encoded}).encode())
    assert attrs["type"] == EVENT_TYPE and data == DRIFT
    with pytest.raises(ValueError, match="not a CloudEvent"):
        drift_actions.parse_cloudevent({"content-type": "application/json"}, b"{}")
    with pytest.raises(ValueError, match="batched"):
        drift_actions.parse_cloudevent({"content-type": "application/cloudevents-batch+json"}, b"[]")


# --------------------------------------------------------------------------- retrain


def test_a_flood_of_drift_events_starts_one_run_per_cooldown(kfp, running, tmp_path):
    version_file = tmp_path / "pipeline-version"
    version_file.write_text("churn-a1\n")
    actions = running(retrain_env(kfp, tmp_path, version_file))

    # results without drift, events of other types: answered 2xx, nothing started
    assert actions.post(NO_DRIFT)[:2] == (200, "no-drift")
    assert actions.post({"data": {"is_drift": [0, 0], "p_val": [0.4, 0.5], "threshold": 0.05}})[:2] == (200, "no-drift")
    assert actions.post(DRIFT, type_="org.kubeflow.serving.inference.request")[:2] == (200, "ignored")
    assert actions.post(b"{}", mode="raw")[0] == 400  # not a CloudEvent: not retried by Knative
    assert actions.post({"data": {"instances": [[1]]}})[0] == 400
    assert kfp.created == [] and not [r for r in kfp.requests if r[1] == "/apis/v2beta1/runs"]

    # 100 drift events at once: exactly one run
    answers = burst(actions, 100)
    assert all(code == 200 and body == "" for code, _, body in answers), answers
    assert sorted(o for _, o, _ in answers).count("started") == 1
    assert {o for _, o, _ in answers} == {"started", "skipped"}
    assert len(kfp.created) == 1 and kfp.errors == []
    (run,) = kfp.created
    model = as_model(run, "V2beta1Run")
    assert model.pipeline_version_reference.pipeline_id == "p-1"
    assert model.pipeline_version_reference.pipeline_version_id == "v-1"
    assert model.experiment_id == "e-1" and model.service_account == "trainer"
    assert model.display_name.startswith("churn-a1-drift-")
    assert "examples/churn/mlops.yaml (dev)" in model.description and "min p-value 0.0004" in model.description
    assert [e["display_name"] for e in kfp.experiments] == ["churn"] and kfp.experiments[0]["namespace"] == "ml-dev"

    # the cooldown is asked of KFP: runs of the experiment created after now - 3600 s
    lists = [r for r in kfp.requests if r[:2] == ("GET", "/apis/v2beta1/runs")]
    assert len(lists) == 100
    (predicate,) = kfp_filter(lists[0][2]["filter"])
    assert lists[0][2]["experiment_id"] == "e-1"
    since = parse_rfc3339(predicate["timestamp_value"])
    assert abs((datetime.datetime.now(UTC) - since).total_seconds() - 3600) < 30

    # an hour passes, Argo CD syncs a new PipelineVersion (the ConfigMap file changes): the next
    # burst starts one run of the new version
    kfp.age_runs(3601)
    version_file.write_text("churn-b2\n")
    answers = burst(actions, 30, prefix="later")
    assert sorted(o for _, o, _ in answers).count("started") == 1 and all(c == 200 for c, _, _ in answers)
    assert len(kfp.created) == 2 and kfp.errors == []
    assert kfp.created[1]["pipeline_version_reference"]["pipeline_version_id"] == "v-2"
    assert kfp.created[1]["display_name"].startswith("churn-b2-drift-")

    # a structured-mode event within the cooldown: skipped
    assert actions.post(DRIFT, mode="structured")[:2] == (200, "skipped")
    assert len(kfp.created) == 2
    deadline = time.monotonic() + 5
    while len([x for x in actions.logs() if "outcome" in x]) < 136 and time.monotonic() < deadline:
        time.sleep(0.02)
    outcomes = [line["outcome"] for line in actions.logs() if "outcome" in line]
    assert outcomes.count("started") == 2 and outcomes.count("skipped") == 129
    assert outcomes.count("no-drift") == 2 and outcomes.count("ignored") == 1 and outcomes.count("rejected") == 2


def test_any_recent_run_of_the_experiment_counts(kfp, running, tmp_path):
    """A scheduled run (started by the CronJob) 10 minutes ago also holds the cooldown."""
    kfp.experiments.append({"experiment_id": "e-7", "display_name": "churn", "namespace": "ml-dev"})
    ten_minutes_ago = rfc3339(datetime.datetime.now(UTC) - datetime.timedelta(minutes=10))
    kfp.runs.append({"run_id": "r-cron", "experiment_id": "e-7", "display_name": "churn-a1-scheduled-x",
                     "created_at": ten_minutes_ago})
    actions = running(retrain_env(kfp, tmp_path, KFP_COOLDOWN_SECONDS="900"))
    assert actions.post(DRIFT)[:2] == (200, "skipped")
    kfp.age_runs(300)  # now 15 minutes old: out of the window
    assert actions.post(DRIFT)[:2] == (200, "started")
    assert [r["experiment_id"] for r in kfp.created] == ["e-7"] and kfp.errors == []


def test_kfp_failures_answer_5xx(kfp, running, tmp_path):
    actions = running(retrain_env(kfp, tmp_path, KFP_PIPELINE_VERSION="churn-zz"))
    code, outcome, body = actions.post(DRIFT)
    assert (code, outcome) == (502, "failed") and "'churn-zz'" in body and "not found" in body
    down = running(retrain_env(kfp, tmp_path, KFP_HOST="http://127.0.0.1:9"))
    assert down.post(DRIFT)[:2] == (502, "failed")
    assert kfp.created == []


def test_the_cronjob_launcher_is_unchanged_without_the_new_variables(kfp, tmp_path):
    """No cooldown, version, trigger or reason variables: no runs list, the CronJob's run body."""
    from mlspec.generators.kubeflow_components import trigger_run

    env = retrain_env(kfp, tmp_path)
    for name in ("KFP_COOLDOWN_SECONDS", "PORT", "MLSPEC_ACTION"):
        env.pop(name)
    outcome: dict = {}
    assert trigger_run(env, None, outcome) == 0 and outcome["status"] == "started"
    assert [r[:2] for r in kfp.requests] == [
        ("GET", "/apis/v2beta1/pipelines/names/churn"), ("GET", "/apis/v2beta1/pipelines/p-1/versions"),
        ("GET", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/runs")]
    (run,) = kfp.created
    assert run["display_name"].startswith("churn-a1-scheduled-")
    assert run["description"] == "started by the mlspec schedule CronJob" and kfp.errors == []


# --------------------------------------------------------------------------- alert, rollback, dead letters


def test_alert_posts_the_result_to_the_webhook(running):
    hook = Recorder(200)
    try:
        actions = running(base_env("alert", ALERT_WEBHOOK_URL=hook.url + "/hooks/T0/B0/xyz"))
        assert actions.post(NO_DRIFT)[:2] == (200, "no-drift")
        assert actions.post(DRIFT, event_id="ev-9")[:2] == (200, "sent")
        (method, path, _, headers, body), = hook.requests
        assert (method, path, headers["content-type"]) == ("POST", "/hooks/T0/B0/xyz", "application/json")
        assert body["spec"] == "examples/churn/mlops.yaml" and body["env"] == "dev" and body["result"] == DRIFT
        assert body["event"] == {"id": "ev-9", "source": "io.mlspec/ml-dev/churn/drift-detector", "type": EVENT_TYPE}
        assert abs((datetime.datetime.now(UTC) - parse_rfc3339(body["time"])).total_seconds()) < 30
        hook.code = 503  # the webhook is down: 5xx, so the Broker retries
        assert actions.post(DRIFT)[:2] == (502, "failed")
    finally:
        hook.stop()


def test_rollback_sends_a_repository_dispatch(running):
    github = Recorder(204)
    try:
        actions = running(base_env("rollback", GITHUB_API_URL=github.url, GITHUB_REPOSITORY="acme/ml-gitops",
                                   GITHUB_TOKEN="ghp_test"))
        assert actions.post(DRIFT, mode="structured")[:2] == (200, "dispatched")
        (method, path, _, headers, body), = github.requests
        assert (method, path) == ("POST", "/repos/acme/ml-gitops/dispatches")
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["authorization"] == "Bearer ghp_test" and headers["x-github-api-version"] == "2022-11-28"
        assert body == {"event_type": naming.DISPATCH_ROLLBACK, "client_payload": {
            "spec": "examples/churn/mlops.yaml", "env": "dev", "reason": "drift", "is_drift": 1, "p_val": 0.0004,
            "threshold": 0.025, "source": "io.mlspec/ml-dev/churn/drift-detector"}}
        # GitHub: client_payload maxProperties 10, whole payload < 64 KB (rest-api-description)
        assert len(body["client_payload"]) <= 10 and len(json.dumps(body["client_payload"])) < 65536
        github.code = 401
        code, outcome, text = actions.post(DRIFT)
        assert (code, outcome) == (502, "failed") and "GitHub answered 401" in text
    finally:
        github.stop()


def test_dead_letters_are_logged_and_health_answers(running):
    actions = running(base_env("alert", ALERT_WEBHOOK_URL="http://127.0.0.1:9/never"))
    code, outcome, body = actions.post(DRIFT, path="/dead-letter", event_id="lost-1",
                                       extra_headers={"ce-knativeerrorcode": "502",
                                                      "ce-knativeerrordest": "http://drift-actions.ml-dev/"})
    assert (code, outcome, body) == (200, "dead-lettered", "")
    assert request(actions.url + "/healthz", None, method="GET")[:3] == (200, "ok", "ok")
    # a chunked body (a proxy that does not know the length) is read whole; keep-alive still works
    host, port = actions.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/dead-letter", body=iter([b'{"chunk', b'ed": true}']), encode_chunked=True,
                       headers={"Content-Type": "application/json", "ce-id": "lost-2", "ce-type": EVENT_TYPE})
    assert connection.getresponse().read() == b""
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200
    connection.close()
    assert request(actions.url + "/nope", b"{}")[0] == 404
    deadline = time.monotonic() + 5
    while len([x for x in actions.logs() if "dead_letter" in x]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    line, chunked = [x for x in actions.logs() if "dead_letter" in x]
    assert chunked["data"] == {"chunked": True} and chunked["dead_letter"]["id"] == "lost-2"
    assert line["dead_letter"]["id"] == "lost-1" and line["dead_letter"]["knativeerrorcode"] == "502"
    assert line["data"] == DRIFT
