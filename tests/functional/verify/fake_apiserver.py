"""A small stand-in for a Kubernetes API server, for the tests of ``mlspec verify``.

There is no cluster on these machines (the project's e2e workflow runs ``mlspec verify``
against a real kind cluster on GitHub's runners).  This server speaks the part of the API that
a server-side dry-run apply uses, with the shapes the real one answers with:

* discovery: ``/api`` (APIVersions), ``/api/v1`` and ``/apis/<group>/<version>``
  (APIResourceList, with the ``<resource>/status`` subresources real servers list),
  ``/apis`` (APIGroupList) and ``/apis/<group>`` (APIGroup);
* ``PATCH`` of an object's path: 200 with the object echoed (plus what the server adds:
  uid, creationTimestamp, managedFields of the field manager), or the Status a test chose
  (e.g. 422 Invalid with ``details.causes``), or 404 NotFound when the group-version is not
  installed or the namespace does not exist (the real server's Status bodies);
* a bearer token is required (401 Unauthorized Status otherwise).

Every request is recorded (method, path, query, headers, body) for the tests to assert on.
It refuses (500) any PATCH that is not a dry run, so a missing ``dryRun=All`` cannot pass.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

#: (group, version, kind, resource, namespaced): the kinds mlspec's targets emit, and a few more.
KINDS = (
    ("", "v1", "ConfigMap", "configmaps", True),
    ("", "v1", "Secret", "secrets", True),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("", "v1", "Service", "services", True),
    ("", "v1", "Namespace", "namespaces", False),
    ("apps", "v1", "Deployment", "deployments", True),
    ("batch", "v1", "CronJob", "cronjobs", True),
    ("batch", "v1", "Job", "jobs", True),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", True),
    ("serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices", True),
    ("serving.kserve.io", "v1alpha1", "InferenceGraph", "inferencegraphs", True),
    ("serving.kserve.io", "v1alpha1", "ServingRuntime", "servingruntimes", True),
    ("serving.kserve.io", "v1alpha1", "ClusterServingRuntime", "clusterservingruntimes", False),
    ("machinelearning.seldon.io", "v1", "SeldonDeployment", "seldondeployments", True),
    ("mlops.seldon.io", "v1alpha1", "Model", "models", True),
    ("mlops.seldon.io", "v1alpha1", "Experiment", "experiments", True),
    ("mlops.seldon.io", "v1alpha1", "Pipeline", "pipelines", True),
    ("mlops.seldon.io", "v1alpha1", "Server", "servers", True),
    ("feast.dev", "v1", "FeatureStore", "featurestores", True),
    ("feast.dev", "v1alpha1", "FeatureStore", "featurestores", True),
    ("pipelines.kubeflow.org", "v2beta1", "Pipeline", "pipelines", True),
    ("pipelines.kubeflow.org", "v2beta1", "PipelineVersion", "pipelineversions", True),
    ("argoproj.io", "v1alpha1", "Application", "applications", True),
    ("argoproj.io", "v1alpha1", "ApplicationSet", "applicationsets", True),
    ("argoproj.io", "v1alpha1", "AppProject", "appprojects", True),
    ("eventing.knative.dev", "v1", "Broker", "brokers", True),
    ("eventing.knative.dev", "v1", "Trigger", "triggers", True),
    ("sources.knative.dev", "v1", "PingSource", "pingsources", True),
    ("serving.knative.dev", "v1", "Service", "services", True),
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", True),
    ("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules", True),
)

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A ``meta/v1`` Status as the API server sends it."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return body


NOT_FOUND = status(404, "NotFound", "the server could not find the requested resource", {})


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: object = None


@dataclass
class FakeAPIServer:
    token: str = "fake-token"
    kinds: tuple = KINDS
    #: Groups ("serving.kserve.io") or group-versions ("feast.dev/v1") that are not installed.
    uninstalled: set[str] = field(default_factory=set)
    #: Namespaces that exist (None: every namespace exists).
    namespaces: set[str] | None = None
    #: (kind, namespace, name) → (code, Status) to answer that object's PATCH with.
    rejections: dict[tuple, tuple[int, dict]] = field(default_factory=dict)
    #: Group-versions whose discovery fails: "group/version" → (code, Status) (an aggregated API down).
    broken: dict[str, tuple[int, dict]] = field(default_factory=dict)
    #: (kind, name) → texts of Warning headers to send with that object's answer.
    warnings: dict[tuple, list[str]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle

    def start(self) -> FakeAPIServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- the API

    def installed(self, group: str, version: str) -> bool:
        return group not in self.uninstalled and f"{group}/{version}" not in self.uninstalled

    def group_versions(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for group, version, *_ in self.kinds:
            if group and self.installed(group, version) and version not in found.setdefault(group, []):
                found[group].append(version)
        return {g: v for g, v in found.items() if v}

    def resource_list(self, group: str, version: str) -> dict | None:
        if group and not self.installed(group, version):
            return None
        rows = [k for k in self.kinds if k[0] == group and k[1] == version]
        if not rows:
            return None
        resources = []
        for _, _, kind, plural, namespaced in rows:
            resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                              "verbs": VERBS, "storageVersionHash": "AAAAAAAAAAA="})
            resources.append({"name": f"{plural}/status", "singularName": "", "namespaced": namespaced, "kind": kind,
                              "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}

    def handle(self, request: Request) -> tuple[int, dict, list[str]]:
        """(code, JSON body, Warning header texts)."""
        with self._lock:
            self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, status(401, "Unauthorized", "Unauthorized"), []
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET":
            return self._get(parts)
        if request.method == "PATCH":
            return self._patch(parts, request)
        return 405, status(405, "MethodNotAllowed", f"the server does not allow this method ({request.method})"), []

    def _get(self, parts: list[str]) -> tuple[int, dict, list[str]]:
        versions = self.group_versions()
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}, []
        if parts == ["api", "v1"]:
            return 200, self.resource_list("", "v1"), []
        if parts == ["apis"]:
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [_group(g, v) for g, v in sorted(versions.items())]}, []
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in versions:
            return 200, _group(parts[1], versions[parts[1]]), []
        if len(parts) == 3 and parts[0] == "apis" and f"{parts[1]}/{parts[2]}" in self.broken:
            return *self.broken[f"{parts[1]}/{parts[2]}"], []
        if len(parts) == 3 and parts[0] == "apis":
            listing = self.resource_list(parts[1], parts[2])
            if listing is not None:
                return 200, listing, []
        return 404, NOT_FOUND, []

    def _patch(self, parts: list[str], request: Request) -> tuple[int, dict, list[str]]:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return 404, NOT_FOUND, []
        namespace = None
        if len(rest) == 4 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        listing = self.resource_list(group, version) if len(rest) == 2 else None
        row = next((k for k in self.kinds if k[:2] == (group, version) and k[3] == rest[0]), None) if listing else None
        if row is None or row[4] != (namespace is not None):
            return 404, NOT_FOUND, []
        query = dict(request.query)
        if query.get("dryRun") != "All":
            return 500, status(500, "InternalError", "this fake API server only answers dry runs"), []
        if request.headers.get("content-type") != "application/apply-patch+yaml":
            return 415, status(415, "UnsupportedMediaType", "the body of the request was in an unknown format"), []
        body = request.body if isinstance(request.body, dict) else {}
        kind, name = row[2], rest[1]
        if (body.get("metadata") or {}).get("name") != name:
            return 400, status(400, "BadRequest", "the name of the object does not match the name on the URL"), []
        warnings = self.warnings.get((kind, name), [])
        if (kind, namespace, name) in self.rejections:
            code, answer = self.rejections[(kind, namespace, name)]
            return code, answer, warnings
        if namespace is not None and self.namespaces is not None and namespace not in self.namespaces:
            return 404, status(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"}), warnings
        echoed = json.loads(json.dumps(body))
        meta = echoed.setdefault("metadata", {})
        if namespace is not None:
            meta.setdefault("namespace", namespace)
        meta.update({"uid": "00000000-0000-4000-8000-000000000000", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "generation": 1,
                     "managedFields": [{"manager": query.get("fieldManager"), "operation": "Apply",
                                        "apiVersion": body.get("apiVersion"), "time": "2026-01-01T00:00:00Z",
                                        "fieldsType": "FieldsV1", "fieldsV1": {}}]})
        return 200, echoed, warnings


def _group(name: str, versions: list[str]) -> dict:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": entries, "preferredVersion": entries[0]}


def _handler(api: FakeAPIServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave in one go: no delayed-ACK stalls
        wbufsize = -1

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()
                       if k.lower() in ("content-type", "accept", "authorization", "user-agent")}
            code, answer, warnings = api.handle(Request(self.command, url.path, parse_qsl(url.query,
                                                        keep_blank_values=True), headers, body))
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for text in warnings:
                self.send_header("Warning", '299 - "' + text.replace('"', '\\"') + '"')
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args) -> None:  # quiet
            pass

    return Handler


def kubeconfig(contexts: list[dict], current: str | None) -> dict:
    """A kubeconfig document: ``contexts`` items have name, server, token and optionally namespace."""
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        **({"current-context": current} if current else {}),
        "clusters": [{"name": f"{c['name']}-cluster", "cluster": {"server": c["server"]}} for c in contexts],
        "users": [{"name": f"{c['name']}-user", "user": {"token": c["token"]}} for c in contexts],
        "contexts": [{"name": c["name"], "context": {"cluster": f"{c['name']}-cluster", "user": f"{c['name']}-user",
                                                     **({"namespace": c["namespace"]} if c.get("namespace") else {})}}
                     for c in contexts],
    }
