"""``mlspec verify``: a server-side dry-run apply of the compiled output against a cluster.

What is sent
    The Kubernetes objects in the files mlspec owns under the output root (the ones
    ``.mlspec/manifest.json`` lists, :func:`mlspec.writer.owned_files`), optionally only those
    compiled from the specs named by ``PATHS`` or for the environments named by ``--env``.  A
    YAML document is a Kubernetes object when it has ``apiVersion`` and ``kind``; other files
    (the KFP IR ``pipeline-ir.yaml``, Feast's ``feature_store.yaml`` and ``*.py``) are skipped,
    and so are kustomize's own files (``kustomize.config.k8s.io``), which no API server serves.

How
    Each object is a server-side apply with dry run, as ``kubectl apply --server-side
    --force-conflicts --dry-run=server`` sends it: ``PATCH`` of the object's REST path with
    ``Content-Type: application/apply-patch+yaml`` (the body is the object as JSON, which is
    YAML), and the query ``dryRun=All&fieldManager=mlspec&force=true&fieldValidation=Strict``.
    ``fieldValidation=Strict`` is kubectl's default (its ``--validate`` flag defaults to
    ``strict``): an unknown or duplicated field is a rejection, not a field the server drops
    silently.  Nothing is persisted: admission webhooks, CRD schema and CEL validation and
    quota run as for a real apply.

    The REST path comes from API discovery, one ``GET`` per group-version used
    (``/api/v1``, ``/apis/<group>/<version>``: the APIResourceList gives each kind's resource
    name and whether it is namespaced), cached for the run.  A group-version the server does
    not serve is a rejection of its objects with the hint to install the CRD first.

    Requests go through ``kubernetes.dynamic.DynamicClient.request`` with a discoverer of our
    own: ``DynamicClient`` is the one request interface that is the same in the client
    releases the ``verify`` extra allows (the generated ``ApiClient.call_api`` changed its
    signature in release 35), while its default discoverer would walk every API group and
    keep a cache file in the temporary folder, shared between runs and clusters, which goes
    stale when a CRD is installed.  The Kubernetes client is imported here only, lazily.

Namespace
    A namespaced object without ``metadata.namespace`` goes to the namespace of the kubeconfig
    context (``default`` when the context names none), as ``kubectl apply`` does.  mlspec's
    own targets set ``metadata.namespace`` on every namespaced object.

Exit codes
    0 every object accepted; 1 some rejected (or a file unreadable); 2 no cluster to ask: no
    kubeconfig, an unknown context, the API server unreachable or refusing the credentials --
    reported as one line naming the context and the server URL tried.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from . import __version__, reporters, writer
from .errors import SpecError
from .loader import display_path

EXIT_OK, EXIT_REJECTED, EXIT_NO_CLUSTER = 0, 1, 2

FIELD_MANAGER = "mlspec"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
#: The query of every apply, in this order.
APPLY_QUERY = (("dryRun", "All"), ("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Strict"))
#: API groups of client-side configuration files, never sent to a server.
CLIENT_SIDE_GROUPS = frozenset({"kustomize.config.k8s.io"})
#: (connect, read) timeouts of each request, in seconds.
TIMEOUT = (10, 60)
YAML_SUFFIXES = (".yaml", ".yml")


# --------------------------------------------------------------------------- the objects


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when PyYAML has it: 10x faster
    """YAML as the API server reads it (sigs.k8s.io/yaml): timestamps stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Obj:
    """One Kubernetes object of an owned file."""

    rel: str  # relative to the output root
    file: str  # as the user sees it
    document: int  # 1-based index of the YAML document in the file
    line: int
    col: int
    body: dict
    node: Any = field(repr=False, compare=False)  # its yaml node, to locate fields

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def group_version(self) -> tuple[str, str]:
        group, _, version = self.api_version.rpartition("/")
        return group, version

    @property
    def metadata(self) -> dict:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str | None:
        name = self.metadata.get("name")
        return name if isinstance(name, str) and name else None

    def label(self, namespace: str | None) -> str:
        ref = f"{namespace}/{self.name}" if namespace and self.name else (self.name or "(no name)")
        return f"{self.kind} {ref} (document {self.document})"

    def locate(self, field_path: str) -> tuple[int, int] | None:
        """The line and column of ``field_path`` (``spec.a[0].b``, ``.spec.a``, ``limits[cpu]``)
        in this document, or of its deepest part found; None if not even the first part is."""
        found, current = None, self.node
        for name, key in _FIELD_TOKEN.findall(field_path.strip().lstrip(".")):
            key = name or key
            nxt, mark = None, None
            if isinstance(current, yaml.MappingNode):
                for key_node, value in current.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                        nxt, mark = value, key_node.start_mark
                        break
            elif isinstance(current, yaml.SequenceNode) and key.isdigit() and int(key) < len(current.value):
                nxt = current.value[int(key)]
                mark = nxt.start_mark
            if nxt is None:
                break
            current, found = nxt, (mark.line + 1, mark.column + 1)
        return found


_FIELD_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


@dataclass
class Collected:
    objects: list[Obj] = field(default_factory=list)
    problems: list[SpecError] = field(default_factory=list)  # unreadable files
    skipped: list[str] = field(default_factory=list)  # files with no Kubernetes object
    files: int = 0  # files with at least one object


def _display(out_root: Path, rel: str) -> str:
    return display_path(out_root / rel)


def _spec_filter(paths: list[Path]) -> set[str] | None:
    """The specs named by ``paths`` as the manifest names them (relative to their project root)."""
    if not paths:
        return None
    from .paths import find_environments_dir
    from .project import discover, project_root

    names: set[str] = set()
    for spec in discover(paths):
        if not spec.is_file():
            raise SpecError(f"no such spec file: {display_path(spec)}", display_path(spec),
                            hint="pass spec files or folders holding mlops.yaml", code="missing-file")
        root = project_root(spec, find_environments_dir(spec))
        names.add(spec.resolve().relative_to(root).as_posix())
    return names


def collect(out_root: Path, paths: list[Path] | None = None, env_names: list[str] | None = None) -> Collected:
    """The Kubernetes objects of the owned files selected by ``paths`` (specs) and ``env_names``."""
    owned = writer.owned_files(out_root)
    manifest = display_path(out_root / writer.MANIFEST_PATH)
    if not owned:
        raise SpecError(f"no compiled output to verify: {manifest} not found", manifest,
                        hint="run `mlspec compile --out DIR` first, and pass the same --out", code="no-output")
    specs = _spec_filter(paths or [])
    selected = sorted(rel for rel, entry in owned.items()
                      if (specs is None or entry.info.get("spec") in specs)
                      and (env_names is None or entry.info.get("env") in env_names))
    if not selected:
        what = " and ".join(part for part in (
            f"spec(s) {', '.join(sorted(specs))}" if specs is not None else "",
            f"environment(s) {', '.join(env_names)}" if env_names else "") if part)
        known = sorted({str(e.info["env"]) for e in owned.values() if e.info.get("env")})
        raise SpecError(f"{manifest} lists no file compiled for {what}", manifest,
                        hint=f"it has environment(s) {', '.join(known) or '(none)'}; compile first, or check --out",
                        code="no-output")
    found = Collected()
    root = out_root.resolve()
    for rel in selected:
        shown = _display(out_root, rel)
        if not rel.endswith(YAML_SUFFIXES):
            found.skipped.append(shown)
            continue
        path = out_root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not path.resolve().is_relative_to(root):
            found.problems.append(SpecError(f"the manifest lists a path outside the output root: {rel!r}", manifest,
                                            code="verify-unreadable"))
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = "it is missing" if isinstance(exc, FileNotFoundError) else f"cannot read it: {exc}"
            found.problems.append(SpecError(f"the manifest lists this file but {reason}", shown,
                                            hint="run `mlspec compile` to regenerate it", code="verify-unreadable"))
            continue
        try:
            objects = list(_documents(text, rel, shown))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            found.problems.append(SpecError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", shown,
                                            (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1,
                                            hint="run `mlspec compile --force` to regenerate it", code="verify-unreadable"))
            continue
        objects = [o for o in objects if o.group_version[0] not in CLIENT_SIDE_GROUPS]
        if objects:
            found.files += 1
            found.objects.extend(objects)
        else:
            found.skipped.append(shown)
    return found


def _documents(text: str, rel: str, shown: str):
    loader = _Loader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            data = loader.construct_document(node)
            if isinstance(data, dict) and "apiVersion" in data and "kind" in data:
                yield Obj(rel, shown, index, node.start_mark.line + 1, node.start_mark.column + 1, data, node)
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- the cluster


class Fatal(Exception):
    """No cluster to ask: reported as one line, exit 2."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class Resource:
    name: str  # the plural resource name of the REST path
    namespaced: bool


@dataclass(frozen=True)
class Unserved:
    """Why discovery found no resource for a kind."""

    status: dict | None  # the server's answer to the discovery request; None: it serves the
    #                      group-version, without that kind
    served: list[str] | None = None  # the versions of the group it does serve, when asked


@dataclass
class Outcome:
    obj: Obj
    namespace: str | None = None
    path: str | None = None
    accepted: bool = False
    status: dict | None = None  # the API server's Status (or what stands for it)
    error: SpecError | None = None
    warnings: list[str] = field(default_factory=list)


class _NoDiscovery:
    """``DynamicClient``'s discoverer slot, left empty: :class:`Cluster` discovers what it needs."""

    def __init__(self, client, cache_file):  # the DynamicClient interface
        pass


def _kubeconfig_paths(kubeconfig: Path | None) -> tuple[str, str]:
    """(what to load, how to name it in messages)."""
    if kubeconfig is not None:
        return str(kubeconfig), str(kubeconfig)
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"], f"KUBECONFIG={os.environ['KUBECONFIG']}"
    default = str(Path.home() / ".kube" / "config")
    return default, default


def _contexts(files: list[Path]) -> tuple[list[dict], str | None]:
    """The contexts of the kubeconfig files (merged as kubectl merges them: the first definition
    of a name, and the first ``current-context``, win) and the current context's name."""
    contexts: list[dict] = []
    current = None
    for path in files:
        if not path.is_file():
            continue
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(document, dict):
            raise ValueError(f"{path} is not a kubeconfig (not a mapping)")
        current = current or document.get("current-context") or None
        known = {c.get("name") for c in contexts}
        contexts += [c for c in document.get("contexts") or [] if isinstance(c, dict) and c.get("name") not in known]
    return contexts, current


class Cluster:
    """The API server behind one kubeconfig context."""

    def __init__(self, kubeconfig: Path | None, context: str | None):
        try:
            from kubernetes.client import ApiClient, Configuration
            from kubernetes.config import ConfigException, load_kube_config
            from kubernetes.dynamic import DynamicClient
        except ImportError as exc:
            raise Fatal(f"mlspec verify needs the Kubernetes Python client ({exc}): pip install 'mlspec[verify]'",
                        "missing-dependency") from None
        source, shown = _kubeconfig_paths(kubeconfig)
        files = [Path(p).expanduser() for p in source.split(os.pathsep) if p]
        if not any(f.is_file() for f in files):
            raise Fatal(f"no kubeconfig: {shown} does not exist (pass --kubeconfig FILE or set KUBECONFIG, "
                        "e.g. after `kind create cluster`)", "no-kubeconfig")
        try:
            contexts, current = _contexts(files)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise Fatal(f"cannot read kubeconfig {shown}: {' '.join(str(exc).split())}", "no-kubeconfig") from None
        names = ", ".join(str(c.get("name")) for c in contexts) or "none"
        if context is None and current is None:
            raise Fatal(f"kubeconfig {shown} has no current context (pick one with --context; its contexts: {names})",
                        "no-kubeconfig")
        wanted = context or current
        chosen = next((c for c in contexts if c.get("name") == wanted), None)
        if chosen is None:
            what = f"context '{wanted}'" + ("" if context else " (its current context)")
            raise Fatal(f"{what} is not in kubeconfig {shown} (its contexts: {names})", "no-kubeconfig")
        self.context = str(chosen.get("name"))
        self.namespace = (chosen.get("context") or {}).get("namespace") or "default"
        config = Configuration()
        try:
            load_kube_config(config_file=source, context=self.context, client_configuration=config,
                             persist_config=False)
        except (ConfigException, OSError, ValueError) as exc:
            raise Fatal(f"cannot use context '{self.context}' of kubeconfig {shown}: {exc}", "no-kubeconfig") from None
        config.retries = 1
        self.server = config.host
        self._api = ApiClient(configuration=config)
        self._api.user_agent = f"mlspec/{__version__}"
        self._dynamic = DynamicClient(self._api, discoverer=_NoDiscovery)
        self._discovered: dict[str, dict[str, Resource] | Unserved] = {}

    def close(self) -> None:
        self._api.close()

    # -- transport

    def _request(self, method: str, path: str, **params):
        """(status, headers, body bytes); HTTP errors too.  Fatal when the server cannot be reached."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = self._dynamic.request(method, path, serialize=False, _request_timeout=TIMEOUT, **params)
        except ApiException as exc:
            if not exc.status:  # the client's wrapping of a TLS failure
                raise self._unreachable(str(exc.reason or exc).replace("\n", ": ")) from None
            body = exc.body.encode() if isinstance(exc.body, str) else (exc.body or b"")
            status, headers = exc.status, exc.headers
        except (HTTPError, OSError) as exc:
            raise self._unreachable(_connection_reason(exc)) from None
        else:
            status, headers, body = response.status, response.headers, response.data
            response.release_conn()
        if status == 401:
            message = _status(body, status).get("message") or "Unauthorized"
            raise Fatal(f"the Kubernetes API server of context '{self.context}' at {self.server} refused its "
                        f"credentials (401 Unauthorized: {message})", "cluster-unauthorized")
        return status, headers, body

    def _unreachable(self, reason: str) -> Fatal:
        return Fatal(f"cannot reach the Kubernetes API server of context '{self.context}' at {self.server}: {reason} "
                     "(is the cluster running? pick another with --context)", "cluster-unreachable")

    # -- discovery

    def resources(self, group: str, version: str) -> dict[str, Resource] | Unserved:
        """The kinds the server serves in ``group``/``version`` → their resource (cached for the run)."""
        key = f"{group}/{version}" if group else version
        if key not in self._discovered:
            status, _, body = self._request("GET", f"/apis/{key}" if group else f"/api/{version}")
            if status == 200:
                listing = json.loads(body or b"{}")
                self._discovered[key] = {
                    str(r["kind"]): Resource(str(r["name"]), bool(r.get("namespaced")))
                    for r in listing.get("resources") or [] if "/" not in str(r.get("name", "/"))}
            else:
                served = None
                if status == 404 and group:
                    group_status, _, group_body = self._request("GET", f"/apis/{group}")
                    if group_status == 200:
                        served = [str(v.get("version")) for v in json.loads(group_body or b"{}").get("versions") or []]
                self._discovered[key] = Unserved(_status(body, status), served)
        return self._discovered[key]

    # -- apply

    def apply(self, obj: Obj) -> Outcome:
        group, version = obj.group_version
        meta_namespace = obj.metadata.get("namespace")
        outcome = Outcome(obj, namespace=meta_namespace if isinstance(meta_namespace, str) else None)
        found = self.resources(group, version)
        resource = None if isinstance(found, Unserved) else found.get(obj.kind)
        if resource is None:
            return _unknown(outcome, found if isinstance(found, Unserved) else Unserved(None))
        if obj.name is None:
            outcome.error = _error(obj, f"{obj.label(outcome.namespace)} has no metadata.name, which a server-side "
                                        "apply needs", None, "verify-rejected")
            return outcome
        outcome.namespace = (outcome.namespace or self.namespace) if resource.namespaced else None
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        scope = f"/namespaces/{_quote(outcome.namespace)}" if resource.namespaced else ""
        outcome.path = f"{prefix}{scope}/{resource.name}/{_quote(obj.name)}"
        status, headers, body = self._request("PATCH", outcome.path, body=obj.body, content_type=APPLY_CONTENT_TYPE,
                                              query_params=list(APPLY_QUERY))
        outcome.warnings = _warnings(headers)
        if 200 <= status <= 299:
            outcome.accepted = True
            return outcome
        outcome.status = _status(body, status)
        outcome.error = _rejection(outcome, resource)
        return outcome


def _quote(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")


def _connection_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip().rstrip(".").lower()
    if "timed out" in text.lower():
        return f"timed out (connect timeout {TIMEOUT[0]} s)"
    return f"{type(reason).__name__}: {text}"


def _status(body: bytes | str | None, code: int) -> dict:
    """The API server's Status from an error response (a stand-in when it sent something else)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("kind") == "Status":
        return data
    return {"kind": "Status", "status": "Failure", "code": code,
            "message": " ".join(text.split())[:1000] or f"HTTP {code}"}


_WARNING = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')


def _warnings(headers) -> list[str]:
    """The texts of the API server's ``Warning`` headers (``299 - "text"``)."""
    if not headers:
        return []
    values = headers.getlist("Warning") if hasattr(headers, "getlist") else [headers.get("Warning") or ""]
    return [re.sub(r"\\(.)", r"\1", m.group(1)) for value in values for m in _WARNING.finditer(value or "")]


def _error(obj: Obj, message: str, hint: str | None, code: str, where: tuple[int, int] | None = None) -> SpecError:
    line, col = where or (obj.line, obj.col)
    return SpecError(message, obj.file, line, col, hint=hint, code=code)


def _unknown(outcome: Outcome, found: Unserved) -> Outcome:
    obj = outcome.obj
    group = obj.group_version[0]
    status = found.status
    if status is not None and status.get("code") != 404:
        outcome.status = status
        answer = " ".join(str(part) for part in (status.get("code"), status.get("reason")) if part)
        outcome.error = _error(obj, f"{obj.label(outcome.namespace)}: discovery of {obj.api_version} failed ({answer}): "
                                    f"{status.get('message')}", None, "verify-rejected")
        return outcome
    outcome.status = status or {"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
                                "message": f"no kind {obj.kind} in {obj.api_version}"}
    if not group:
        what = f"the cluster serves no kind {obj.kind} in {obj.api_version}"
        hint = "check apiVersion and kind"
    elif status is None:
        what = f"the cluster serves {obj.api_version} but no kind {obj.kind} in it"
        hint = f"install (or upgrade) the CRD that defines {obj.kind}.{group} first"
    else:
        served = found.served
        what = f"the cluster does not serve {obj.api_version}" + (
            f" (it serves {group} in version(s) {', '.join(served)})" if served else f" (no {group} API at all)")
        hint = f"install the CRD for {obj.kind}.{group} ({obj.api_version}) first, e.g. with its operator's manifests"
    outcome.error = _error(obj, f"{obj.label(outcome.namespace)}: unknown kind: {what}", hint, "verify-unknown-kind")
    return outcome


def _causes(status: dict) -> list[dict]:
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    causes = [c for c in details.get("causes") or [] if isinstance(c, dict)]
    unique, seen = [], set()
    for cause in causes:
        key = (cause.get("field"), cause.get("message"))
        if key not in seen:
            seen.add(key)
            unique.append(cause)
    return unique


_MESSAGE_FIELD = (re.compile(r'unknown field "([^"]+)"'), re.compile(r"(\.?[A-Za-z][\w.\[\]/-]*): field not declared in schema"))


def _rejection(outcome: Outcome, resource: Resource) -> SpecError:
    obj, status = outcome.obj, outcome.status or {}
    code, reason = status.get("code"), status.get("reason") or ""
    message = str(status.get("message") or "").strip()
    causes = _causes(status)
    lines = [f"{obj.label(outcome.namespace)} rejected by the API server ({code}{' ' + reason if reason else ''}): "
             f"{message}"]
    for cause in causes:  # those the message does not already say (it often lists them all)
        text = f"{cause.get('field') or '(object)'}: {cause.get('message') or cause.get('reason') or ''}"
        if text not in message:
            lines.append(f"  * {text}")
    where = None
    for text in [c.get("field") or "" for c in causes] + [str(c.get("message") or "") for c in causes] + [message]:
        candidates = [text] if text and not text.startswith(("<", " ")) and " " not in text else []
        candidates += [m.group(1) for pattern in _MESSAGE_FIELD for m in pattern.finditer(text)]
        where = next((w for w in map(obj.locate, candidates) if w), None)
        if where:
            break
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    hint = None
    if code == 404 and details.get("kind") == "namespaces":
        hint = (f"create namespace {details.get('name') or outcome.namespace} first "
                "(Argo CD: syncOptions CreateNamespace=true)")
    elif code == 403:
        hint = (f"the context's user may not patch {resource.name}"
                f"{' in ' + outcome.namespace if outcome.namespace else ''}: a server-side dry run needs the same "
                "RBAC as the apply")
    elif "failed calling webhook" in message:
        hint = "an admission webhook could not be called: is its operator running?"
    return _error(obj, "\n".join(lines), hint, "verify-rejected", where)


# --------------------------------------------------------------------------- the command


def verify(paths: list[Path], env_names: list[str] | None, out_root: Path, *, context: str | None = None,
           kubeconfig: Path | None = None, fmt: str = "text", out: IO[str] | None = None) -> int:
    """`mlspec verify`: the exit code (0 all accepted, 1 some rejected, 2 no cluster)."""
    out = out or sys.stdout
    found = collect(out_root, paths, env_names)
    skipped = f"{len(found.skipped)} non-Kubernetes file(s) skipped"
    if not found.objects:
        text = f"nothing to verify: no Kubernetes objects in the selected output; {skipped}"
        _report(found.problems, [], fmt, out, f"ok: {text}" if not found.problems else
                f"{len(found.problems)} problem(s); {text}", {"objects": [], "skipped": found.skipped})
        return EXIT_REJECTED if found.problems else EXIT_OK
    cluster = None
    try:
        cluster = Cluster(kubeconfig, context)
        outcomes = [cluster.apply(obj) for obj in found.objects]
    except Fatal as exc:
        summary = {"context": getattr(cluster, "context", context), "server": getattr(cluster, "server", None)}
        if fmt == "text":
            out.write(f"mlspec: error: {exc.message}\n")
        else:
            reporters.report([SpecError(exc.message, code=exc.code)], fmt, ok_message="", fail_message="",
                             summary=summary, out=out)
        return EXIT_NO_CLUSTER
    finally:
        if cluster is not None:
            cluster.close()
    rejected = [o for o in outcomes if o.error is not None]
    where = f"the API server of context '{cluster.context}' ({cluster.server}) in a server-side dry run"
    if rejected or found.problems:
        line = (f"{len(rejected)} of {len(outcomes)} object(s) rejected by {where}"
                + (f"; {len(found.problems)} file(s) unreadable" if found.problems else "") + f"; {skipped}")
    else:
        line = f"ok: {len(outcomes)} object(s) in {found.files} file(s) accepted by {where}; {skipped}"
    warnings = [SpecError(f"{o.obj.label(o.namespace)}: {text}", o.obj.file, o.obj.line, o.obj.col,
                          code="verify-warning", severity="warning") for o in outcomes for text in o.warnings]
    problems = found.problems + [o.error for o in rejected]
    summary = {"context": cluster.context, "server": cluster.server, "field_manager": FIELD_MANAGER,
               "accepted": len(outcomes) - len(rejected), "rejected": len(rejected),
               "objects": [_outcome_dict(o) for o in outcomes], "skipped": found.skipped}
    _report(problems, warnings, fmt, out, line, summary)
    return EXIT_REJECTED if problems else EXIT_OK


def _outcome_dict(outcome: Outcome) -> dict:
    obj = outcome.obj
    return {"file": obj.file, "document": obj.document, "line": obj.line, "apiVersion": obj.api_version,
            "kind": obj.kind, "name": obj.name, "namespace": outcome.namespace, "path": outcome.path,
            "accepted": outcome.accepted, "status": outcome.status, "warnings": outcome.warnings}


def _report(problems: list[SpecError], warnings: list[SpecError], fmt: str, out: IO[str], line: str,
            summary: dict) -> None:
    if fmt == "json":
        reporters.report(problems, fmt, ok_message="", fail_message="",
                         summary={**summary, "warnings": [w.to_dict() for w in warnings]}, out=out)
        return
    both = sorted(problems + warnings, key=lambda e: (e.file, e.line, e.col, e.severity))
    reporters.report(both, fmt, ok_message=line, fail_message=line, out=out)
    if fmt == "github":
        out.write(line + "\n")


__all__ = ["APPLY_CONTENT_TYPE", "APPLY_QUERY", "CLIENT_SIDE_GROUPS", "FIELD_MANAGER", "Cluster", "Collected",
           "Fatal", "Obj", "Unserved", "collect", "verify"]
