"""The program of the drift actions Service: a small Knative Service that acts on drift results.

The drift detector (alibi-detect-server, ``--event_type`` = :data:`mlspec.naming.DRIFT_EVENT_TYPE`)
emits one CloudEvent per tested batch, drift or not, with the detector output as data:
``{"data": {"is_drift": 0|1 or one per feature, "p_val", "threshold", "distance"}, "meta": {...}}``.
A Knative Trigger filtered on that type delivers them here.  With Seldon Core 2 the detector is
an MLServer model whose answers Seldon writes to Kafka as a protobuf ``inference.ModelInferResponse``
(the V2 gRPC dataplane); a KafkaSource delivers each record as a CloudEvent of type
``dev.knative.kafka.event`` whose data is those bytes, and :func:`decode_infer_response` reads
the outputs ``is_drift``, ``p_val``, ``threshold`` and ``distance`` from them (a V2 JSON answer,
``{"outputs": [{"name": "is_drift", "data": [1]}, ...]}``, is read too).  This program acts only
when drift is reported, with the one action the environment chose (``MLSPEC_ACTION``):

* ``retrain``: one run of this environment's PipelineVersion, through
  :func:`mlspec.generators.kubeflow_components.trigger_run` (the schedule CronJob's launcher, so the
  launcher code exists once).  The cooldown is KFP's own run history: no run is started while the
  experiment has a run (scheduled or drift) younger than ``KFP_COOLDOWN_SECONDS``.  Actions are
  serialised by a lock, so a flood of events to one replica starts at most one run.
* ``alert``: the result, as JSON, to the webhook in ``ALERT_WEBHOOK_URL`` (from a Secret).
* ``rollback``: a ``repository_dispatch`` (``MLSPEC_DISPATCH_EVENT``) to the GitOps repository,
  whose workflow runs ``mlspec rollback`` and opens a pull request.

``/dead-letter`` logs what Knative could not deliver (one JSON line on stderr); ``GET /healthz``.

Answers: 2xx with an empty body when handled or deliberately skipped (the Broker treats a non-empty
body that is not a CloudEvent as a failed delivery, knative/eventing@knative-v1.22.2
pkg/broker/filter/filter_handler.go ``writeResponse``); the outcome is in the ``X-Mlspec-Outcome``
header.  5xx when an upstream call failed, so Knative retries and finally dead-letters the event
(the body, a short text, becomes the dead letter's ``knativeerrordata``).  4xx for requests that are
not drift results (not retried).

Stdlib only: it runs as ``python3 -c <script()>`` in a plain Python image.  Every function below
is self-contained (imports inside) and the script is their source text, see :func:`script`.
Configuration comes by environment variables only (:data:`ENV`); nothing of mlspec is imported.
"""

from __future__ import annotations

import functools

from .kubeflow_pipeline import launcher_source

#: The environment variables the program reads: name → (required, meaning).  "retrain" etc.: only
#: for that action.  The launcher's own variables (KFP_*) are documented in ``trigger_run``.
ENV = {
    "PORT": ("no (Knative sets it)", "port to listen on, default 8080; 0 picks a free one (tests)"),
    "MLSPEC_LISTEN_HOST": ("no", "address to bind, default 0.0.0.0"),
    "MLSPEC_ACTION": ("yes", "retrain | alert | rollback"),
    "MLSPEC_EVENT_TYPE": ("yes", ("CloudEvent type of drift results (mlspec.naming.DRIFT_EVENT_TYPE, or "
                                  "dev.knative.kafka.event from a KafkaSource); other types are answered 200 and "
                                  "ignored")),
    "MLSPEC_EVENT_SOURCE": ("no", "when set, events of another CloudEvent source are answered 200 and ignored"),
    "MLSPEC_SPEC": ("yes", "the spec's path relative to the repository root (payloads, run description)"),
    "MLSPEC_ENV": ("yes", "the environment's name (payloads, run description)"),
    "KFP_HOST": ("retrain", "KFP API base URL, http://ml-pipeline.<kfp-ns>.svc.cluster.local:8888"),
    "KFP_PIPELINE_NAMESPACE": ("retrain, may be empty", "namespace of the Pipeline object"),
    "KFP_PIPELINE_NAME": ("retrain", "name of the Pipeline"),
    "KFP_PIPELINE_VERSION_FILE": ("retrain: this or KFP_PIPELINE_VERSION",
                                  "file holding the PipelineVersion name (mounted ConfigMap key), read per event"),
    "KFP_PIPELINE_VERSION": ("retrain: this or KFP_PIPELINE_VERSION_FILE", "PipelineVersion name (fallback)"),
    "KFP_RUN_NAMESPACE": ("retrain, may be empty", "namespace of the experiment and runs (multi-user)"),
    "KFP_EXPERIMENT": ("retrain, default the pipeline name", "experiment whose run history is the cooldown"),
    "KFP_SERVICE_ACCOUNT": ("no", "service_account of the run"),
    "KFP_RUN_PARAMETERS": ("no, default {}", "JSON object of run parameters"),
    "KFP_COOLDOWN_SECONDS": ("retrain (0 or absent: no cooldown)", "no run while the experiment has a younger one"),
    "KF_PIPELINES_SA_TOKEN_PATH": ("no", "projected SA token (audience pipelines.kubeflow.org); sent as Bearer"),
    "ALERT_WEBHOOK_URL": ("alert", "webhook URL (from a Secret)"),
    "GITHUB_REPOSITORY": ("rollback", "owner/name of the GitOps repository"),
    "GITHUB_TOKEN": ("rollback", "token allowed to send repository_dispatch (from a Secret)"),
    "GITHUB_API_URL": ("no, default https://api.github.com", "GitHub API base URL (GitHub Enterprise)"),
    "MLSPEC_DISPATCH_EVENT": ("no, default mlspec-rollback", "repository_dispatch event_type"),
    "MLSPEC_HTTP_TIMEOUT": ("no, default 10", "seconds for the webhook and GitHub calls"),
}

#: The functions that make the program, in the order the script defines them.
PROGRAM = ("check_config", "parse_cloudevent", "decode_infer_response", "v2_result", "drift_summary", "retrain",
           "post_json", "alert", "rollback", "handle_request", "serve")


def check_config(env) -> list:
    """What is missing or wrong in the configuration ``env`` (a mapping), as messages."""
    action = env.get("MLSPEC_ACTION", "")
    problems = []
    if action not in ("retrain", "alert", "rollback"):
        problems.append(f"MLSPEC_ACTION must be retrain, alert or rollback, not {action!r}")
    needed = ["MLSPEC_EVENT_TYPE", "MLSPEC_SPEC", "MLSPEC_ENV"]
    needed += {"retrain": ["KFP_HOST", "KFP_PIPELINE_NAME"], "alert": ["ALERT_WEBHOOK_URL"],
               "rollback": ["GITHUB_REPOSITORY", "GITHUB_TOKEN"]}.get(action, [])
    problems += [f"{name} is not set" for name in needed if not env.get(name)]
    if action == "retrain" and not (env.get("KFP_PIPELINE_VERSION") or env.get("KFP_PIPELINE_VERSION_FILE")):
        problems.append("KFP_PIPELINE_VERSION or KFP_PIPELINE_VERSION_FILE must be set")
    for name in ("KFP_COOLDOWN_SECONDS", "MLSPEC_HTTP_TIMEOUT", "PORT"):
        if not (env.get(name) or "0").isdigit():
            problems.append(f"{name} must be a whole number of seconds, not {env.get(name)!r}")
    return problems


def parse_cloudevent(headers, body: bytes):
    """``(attributes, data)`` of a CloudEvent received over HTTP, binary or structured mode.

    ``data`` is the parsed JSON, or the bytes when the data is not JSON (a protobuf message).
    ``headers`` has lower-case names.  Raises ``ValueError`` for what is not a single event."""
    import base64
    import json
    import urllib.parse

    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/cloudevents-batch+json":
        raise ValueError("batched CloudEvents are not supported")
    if content_type.startswith("application/cloudevents"):
        document = json.loads(body.decode("utf-8"))
        if not isinstance(document, dict):
            raise ValueError("a structured CloudEvent is a JSON object")
        attributes = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
        if "data_base64" in document:
            data = base64.b64decode(document["data_base64"])
            if "json" in str(document.get("datacontenttype", "")) or not document.get("datacontenttype"):
                try:
                    data = json.loads(data.decode("utf-8"))
                except ValueError:
                    pass  # not JSON: bytes (e.g. a protobuf ModelInferResponse from Kafka)
        else:
            data = document.get("data")
            if isinstance(data, str) and "json" in str(document.get("datacontenttype", "application/json")):
                data = json.loads(data)
    else:
        if "ce-type" not in headers:
            raise ValueError("not a CloudEvent: no ce-type header and no application/cloudevents+json body")
        # binary mode: ce-* headers are the attributes (percent-encoded, CloudEvents HTTP binding 3.1.3.2)
        attributes = {k[3:]: urllib.parse.unquote(v) for k, v in headers.items() if k.startswith("ce-")}
        if "json" in content_type:
            text = body.decode("utf-8").strip()
            data = json.loads(text) if text else None
        elif not body.strip():
            data = None
        else:  # no or another content type (a KafkaSource sends a record's bytes as they are): JSON if it is
            try:
                data = json.loads(body.decode("utf-8"))
            except ValueError:
                data = body
    if not isinstance(attributes.get("type"), str) or not attributes["type"]:
        raise ValueError("the CloudEvent has no type")
    return attributes, data


def decode_infer_response(message: bytes) -> list:
    """The outputs of a protobuf ``inference.ModelInferResponse`` (the V2 gRPC dataplane, as in
    SeldonIO/seldon-core@v2.6.0 apis/mlops/v2_dataplane/v2_dataplane.proto) as
    ``[{"name", "datatype", "shape", "data"}]``, ``data`` a flat list of numbers.

    Reads exactly: ``outputs`` (5) with ``name`` (1), ``datatype`` (2), ``shape`` (3) and
    ``contents`` (5: ``bool`` 1, ``int`` 2, ``int64`` 3, ``uint`` 4, ``uint64`` 5, ``fp32`` 6,
    ``fp64`` 7; packed or not), and ``raw_output_contents`` (6, one little-endian buffer per
    output in order; when present it holds every output's data, as MLServer's and Triton's
    converters read it).  Other fields are skipped.
    Raises ``ValueError`` for bytes that are not such a message."""
    import struct

    def varint(buf, i):
        value = shift = 0
        while True:
            if i >= len(buf) or shift > 63:
                raise ValueError("truncated or overlong varint")
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, i
            shift += 7

    def fields(buf):  # (field number, wire type, value): int for varint/fixed, bytes for LEN
        i = 0
        while i < len(buf):
            key, i = varint(buf, i)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise ValueError("field number 0")
            if wire == 0:
                value, i = varint(buf, i)
            elif wire == 1:
                if i + 8 > len(buf):
                    raise ValueError("truncated 64-bit field")
                value, i = buf[i:i + 8], i + 8
            elif wire == 2:
                size, i = varint(buf, i)
                if i + size > len(buf):
                    raise ValueError("truncated length-delimited field")
                value, i = buf[i:i + size], i + size
            elif wire == 5:
                if i + 4 > len(buf):
                    raise ValueError("truncated 32-bit field")
                value, i = buf[i:i + 4], i + 4
            else:
                raise ValueError(f"unsupported wire type {wire}")
            yield number, wire, value

    def signed(value, bits):
        return value - (1 << bits) if value >= 1 << (bits - 1) else value

    # contents field → (wire type of one element, decoder of one varint or fixed-size element)
    scalars = {1: (0, lambda v: int(bool(v))), 2: (0, lambda v: signed(v & 0xFFFFFFFF, 32)),
               3: (0, lambda v: signed(v, 64)), 4: (0, lambda v: v & 0xFFFFFFFF), 5: (0, lambda v: v),
               6: (5, lambda b: struct.unpack("<f", b)[0]), 7: (1, lambda b: struct.unpack("<d", b)[0])}

    def contents(buf):
        values = []
        for number, wire, value in fields(buf):
            if number not in scalars:
                continue  # bytes_contents: not a number
            element_wire, decode = scalars[number]
            if wire == element_wire:
                values.append(decode(value))
            elif wire == 2 and element_wire == 0:  # packed varints
                j = 0
                while j < len(value):
                    item, j = varint(value, j)
                    values.append(decode(item))
            elif wire == 2:  # packed fixed-size
                size = 4 if element_wire == 5 else 8
                if len(value) % size:
                    raise ValueError("packed contents of a wrong length")
                values += [decode(value[j:j + size]) for j in range(0, len(value), size)]
            else:
                raise ValueError(f"contents field {number} with wire type {wire}")
        return values

    raw_formats = {"BOOL": "?", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q", "UINT8": "B",
                   "UINT16": "H", "UINT32": "I", "UINT64": "Q", "FP16": "e", "FP32": "f", "FP64": "d"}
    outputs, raw = [], []
    for number, wire, value in fields(bytes(message)):
        if number == 6 and wire == 2:
            raw.append(value)
        elif number == 5 and wire == 2:
            output = {"name": "", "datatype": "", "shape": [], "data": None}
            for n, w, v in fields(value):
                if n == 1 and w == 2:
                    output["name"] = v.decode("utf-8")
                elif n == 2 and w == 2:
                    output["datatype"] = v.decode("utf-8")
                elif n == 3 and w == 0:
                    output["shape"].append(signed(v, 64))
                elif n == 3 and w == 2:
                    j = 0
                    while j < len(v):
                        item, j = varint(v, j)
                        output["shape"].append(signed(item, 64))
                elif n == 5 and w == 2:
                    output["data"] = contents(v)
            outputs.append(output)
        elif wire == 2 and number in (5, 6):
            raise ValueError(f"field {number} is not length-delimited")
    for index, output in enumerate(outputs):
        if raw and index < len(raw):  # raw contents are all outputs' (an empty ``contents`` may be there too)
            fmt = raw_formats.get(output["datatype"])
            if fmt is None:
                raise ValueError(f"raw output {output['name']!r} of datatype {output['datatype']!r} is not numeric")
            size = struct.calcsize("<" + fmt)
            if len(raw[index]) % size:
                raise ValueError(f"raw output {output['name']!r} is not a whole number of {output['datatype']}")
            items = struct.unpack(f"<{len(raw[index]) // size}{fmt}", raw[index])
            output["data"] = [int(x) if fmt == "?" else x for x in items]
        elif output["data"] is None:
            output["data"] = []
    return outputs


def v2_result(outputs) -> dict:
    """An alibi-detect result (``{"data": {...}}``) from V2 inference outputs named after its keys,
    as MLServer's alibi-detect runtime answers: one output per key of the detector's ``data``
    (``is_drift``, ``p_val``, ``threshold``, ``distance``, ...).  A single value is a scalar.
    ``outputs``: decoded protobuf outputs or a V2 JSON answer's ``outputs``."""
    result = {}
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise ValueError("a V2 output has no name")
        values = output.get("data")
        if not isinstance(values, list):
            values = [values]
        while len(values) == 1 and isinstance(values[0], list):
            values = values[0]
        result[output["name"]] = values[0] if len(values) == 1 else values
    return {"data": result}


def drift_summary(data) -> dict:
    """The gist of an alibi-detect result (``{"data": {...}, "meta": {...}}`` or its ``data`` alone).

    ``drift`` is true when ``is_drift`` is, or any of its per-feature values is; ``p_val`` and
    ``threshold`` are the smallest values given.  ``data`` may also be a V2 inference answer: the
    bytes of a protobuf ``ModelInferResponse`` or the JSON ``{"outputs": [...]}``.  Raises
    ``ValueError`` when there is no ``is_drift``."""
    if isinstance(data, (bytes, bytearray)):
        data = v2_result(decode_infer_response(data))
    elif isinstance(data, dict) and isinstance(data.get("outputs"), list) and "data" not in data:
        data = v2_result(data["outputs"])
    result = data.get("data") if isinstance(data, dict) and isinstance(data.get("data"), dict) else data
    if not isinstance(result, dict) or "is_drift" not in result:
        raise ValueError("the event data is not a drift result: no is_drift")
    meta = data.get("meta") if isinstance(data, dict) and isinstance(data.get("meta"), dict) else {}

    def numbers(value) -> list:
        if isinstance(value, (list, tuple)):
            return [x for item in value for x in numbers(item)]
        if isinstance(value, bool):
            return [int(value)]
        if isinstance(value, (int, float)):
            return [value]
        if value is None:
            return []
        raise ValueError(f"not a number: {value!r}")

    flags = numbers(result["is_drift"])
    p_vals = numbers(result.get("p_val"))
    thresholds = numbers(result.get("threshold"))
    summary = {
        "drift": any(flag for flag in flags),
        "is_drift": result["is_drift"],
        "p_val": min(p_vals) if p_vals else None,
        "threshold": min(thresholds) if thresholds else None,
        "detector": meta.get("name") or "",
    }
    if isinstance(result["is_drift"], (list, tuple)):
        summary["features"], summary["drifted_features"] = len(flags), sum(1 for flag in flags if flag)
    elif len(p_vals) > 1 and len(thresholds) == 1:
        summary["features"] = len(p_vals)
        summary["drifted_features"] = sum(1 for p in p_vals if p < thresholds[0])
    words = f"drift detected by {summary['detector'] or 'the detector'}"
    if "features" in summary:
        words += f" on {summary['drifted_features']} of {summary['features']} features"
    if summary["p_val"] is not None:
        words += f": min p-value {summary['p_val']:.3g}"
        if summary["threshold"] is not None:
            words += f" (threshold {summary['threshold']:.3g})"
    summary["text"] = words
    return summary


def retrain(env, summary: dict, attributes: dict):
    """Start one run of the environment's PipelineVersion, unless one is younger than the cooldown.

    ``(http code, outcome, detail)``."""
    reason = (f"started by mlspec drift actions for {env.get('MLSPEC_SPEC')} ({env.get('MLSPEC_ENV')}): "
              f"{summary['text']}; event {attributes.get('id')} from {attributes.get('source')}")
    launch = dict(env, KFP_RUN_TRIGGER="drift", KFP_RUN_REASON=reason)
    outcome = {}
    code = trigger_run(launch, None, outcome)
    status = outcome.get("status") or ("started" if code == 0 else "failed")
    return (200 if code == 0 else 502), status, outcome.get("detail", "")


def post_json(env, url: str, body: dict, headers: dict, who: str, done: str):
    """POST ``body`` as JSON; ``(http code, outcome, detail)``: 200 and ``done`` when ``who``
    accepted it, 502 when it refused or could not be reached (Knative then retries)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={**headers, "Content-Type": "application/json", "User-Agent": "mlspec-drift-actions"})
    try:
        with urllib.request.urlopen(request, timeout=int(env.get("MLSPEC_HTTP_TIMEOUT") or 10)) as response:
            code = response.status
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        return 502, "failed", f"{who} answered {exc.code}" + (f": {detail}" if detail else "")
    except OSError as exc:
        return 502, "failed", f"{who} is unreachable: {exc!r}"
    return 200, done, f"{who} answered {code}"


def alert(env, summary: dict, attributes: dict, result):
    """POST the result to the webhook.  ``(http code, outcome, detail)``."""
    import datetime

    body = {
        "spec": env.get("MLSPEC_SPEC"),
        "env": env.get("MLSPEC_ENV"),
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "text": f"{env.get('MLSPEC_SPEC')} ({env.get('MLSPEC_ENV')}): {summary['text']}",
        "event": {k: attributes.get(k) for k in ("id", "source", "type")},
        "result": result,
    }
    return post_json(env, env["ALERT_WEBHOOK_URL"], body, {}, "the webhook", "sent")


def rollback(env, summary: dict, attributes: dict):
    """Send the ``repository_dispatch`` that starts the rollback workflow.  ``(http code, outcome, detail)``."""
    api = (env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    # GitHub's limit: client_payload has at most 10 top-level properties (7 here)
    payload = {
        "spec": env.get("MLSPEC_SPEC"),
        "env": env.get("MLSPEC_ENV"),
        "reason": "drift",
        "is_drift": 1 if summary["drift"] else 0,  # the workflow takes 0 or 1, not per-feature lists
        "p_val": summary["p_val"],
        "threshold": summary["threshold"],
        "source": attributes.get("source"),
    }
    body = {"event_type": env.get("MLSPEC_DISPATCH_EVENT") or "mlspec-rollback", "client_payload": payload}
    headers = {"Accept": "application/vnd.github+json", "Authorization": "Bearer " + env["GITHUB_TOKEN"],
               "X-GitHub-Api-Version": "2022-11-28"}
    return post_json(env, f"{api}/repos/{env['GITHUB_REPOSITORY']}/dispatches", body, headers, "GitHub",
                     "dispatched")


def handle_request(method: str, path: str, headers, body: bytes, env, lock):
    """One HTTP request: ``(http code, outcome, detail)``; logs one JSON line on stderr.

    ``headers`` has lower-case names; ``lock`` serialises the actions."""
    import datetime
    import json
    import sys

    path = path.split("?", 1)[0]
    record = {"time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "method": method, "path": path}
    if method == "GET" and path in ("/healthz", "/readyz"):
        return 200, "ok", ""
    if method != "POST" or path not in ("/", "/dead-letter"):
        return (405 if path in ("/", "/dead-letter") else 404), "refused", f"no {method} {path}"
    if path == "/dead-letter":
        record["dead_letter"] = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        text = body.decode("utf-8", errors="replace")
        try:
            record["data"] = json.loads(text) if text.strip() else None
        except ValueError:
            record["data"] = text
        print(json.dumps(record, sort_keys=True), file=sys.stderr, flush=True)
        return 200, "dead-lettered", ""
    try:
        attributes, data = parse_cloudevent(headers, body)
    except (ValueError, UnicodeDecodeError) as exc:
        code, outcome, detail = 400, "rejected", str(exc)
    else:
        record["event"] = {k: attributes.get(k) for k in ("id", "source", "type")}
        if attributes["type"] != env["MLSPEC_EVENT_TYPE"]:
            code, outcome, detail = 200, "ignored", f"not a drift result: type {attributes['type']!r}"
        elif env.get("MLSPEC_EVENT_SOURCE") and attributes.get("source") != env["MLSPEC_EVENT_SOURCE"]:
            code, outcome, detail = 200, "ignored", f"not from the detector: source {attributes.get('source')!r}"
        else:
            try:
                if isinstance(data, (bytes, bytearray)):  # protobuf from Kafka: the alert posts it as JSON
                    data = v2_result(decode_infer_response(data))
                summary = drift_summary(data)
            except ValueError as exc:
                code, outcome, detail = 400, "rejected", str(exc)
            else:
                record["drift"] = {k: summary[k] for k in ("drift", "p_val", "threshold")}
                if not summary["drift"]:
                    code, outcome, detail = 200, "no-drift", ""
                else:
                    action = env["MLSPEC_ACTION"]
                    with lock:
                        try:
                            if action == "retrain":
                                code, outcome, detail = retrain(env, summary, attributes)
                            elif action == "alert":
                                code, outcome, detail = alert(env, summary, attributes, data)
                            else:
                                code, outcome, detail = rollback(env, summary, attributes)
                        except Exception as exc:  # noqa: BLE001 (a surprise: Knative retries, the log tells)
                            code, outcome, detail = 500, "failed", f"{type(exc).__name__}: {exc}"
    record.update(code=code, outcome=outcome)
    if detail:
        record["detail"] = detail
    print(json.dumps(record, sort_keys=True), file=sys.stderr, flush=True)
    return code, outcome, detail


def serve(env=None) -> int:
    """Run the HTTP server until killed.  Returns 2 when the configuration is wrong."""
    import http.server
    import json
    import os
    import sys
    import threading

    env = dict(os.environ if env is None else env)
    problems = check_config(env)
    if problems:
        for problem in problems:
            print(f"drift actions: {problem}", file=sys.stderr)
        return 2
    sys.stdout.reconfigure(line_buffering=True)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def answer(self, method: str) -> None:
            body = self.read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, outcome, detail = handle_request(method, self.path, headers, body, env, lock)
            text = (detail if code >= 400 else ("ok" if method == "GET" and code == 200 else "")).encode()
            self.send_response(code)
            self.send_header("X-Mlspec-Outcome", outcome)
            self.send_header("Content-Length", str(len(text)))
            if text:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(text)

        def do_POST(self) -> None:
            self.answer("POST")

        def do_GET(self) -> None:
            self.answer("GET")

        def log_message(self, format, *args) -> None:  # handle_request logs, as JSON
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server((env.get("MLSPEC_LISTEN_HOST") or "0.0.0.0", int(env.get("PORT") or 8080)), Handler)
    host, port = server.server_address[:2]
    print(json.dumps({"listening": f"{host}:{port}", "action": env["MLSPEC_ACTION"]}), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def trigger_run(env=None, urlopen=None, outcome=None) -> int:
    """In this module only: the launcher, imported late (it lives in ``kubeflow_components``, which
    imports kfp).  The script defines the real one instead, from its source (:func:`script`)."""
    from mlspec.generators.kubeflow_components import trigger_run as launcher

    return launcher(env, urlopen, outcome)


@functools.lru_cache(maxsize=1)
def script() -> str:
    """The exact source the Service runs (``python3 -c``): the :data:`PROGRAM` functions and the
    launcher, then ``serve()``.  Deterministic: it depends only on the two source files."""
    import inspect

    here = globals()
    parts = ['"""mlspec drift actions Service (generated from mlspec.generators.drift_actions; stdlib only)."""\n']
    parts += [inspect.getsource(here[name]) for name in PROGRAM]
    parts.append(launcher_source())  # the schedule CronJob's launcher, read without importing kfp
    return "\n\n".join(parts) + '\n\nif __name__ == "__main__":\n    raise SystemExit(serve())\n'
