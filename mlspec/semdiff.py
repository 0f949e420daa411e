"""``mlspec diff``: what a change to the specs does to the rendered resources, ML-aware.

::

    mlspec diff [PATHS…] [--base GIT_REF | --against DIR] [--env E] [--targets a,b]
                [--format text|markdown|json] [--exit-code]

Two sides are rendered and compared.  The *head* is always the specs and environment files
in the work tree, compiled in memory (nothing is written).  The *base* is

* ``--base REF``: the specs, environment files and the data files they read as they are
  at git revision ``REF``, read from git's objects (:mod:`mlspec.gitbase`: ``git ls-tree`` and
  ``git cat-file --batch`` into a temporary folder outside the work tree; no checkout, the
  work tree and the index are left exactly as they are), compiled the same way;
* ``--against DIR``: the files under ``DIR``, a committed output root;
* neither: the output root ``--out`` (default ``.``) as it is on disk -- what
  ``mlspec compile`` would change.

With ``--base``, a (spec, environment) pair whose inputs -- the spec file, the environment
file and every data file the spec names -- have the same git blob on both sides renders
the same on both sides, so it is rendered on neither.  Targets made from every spec of an
environment or of the repository (environment and repository scope) are rendered only
when one of the changed pairs changes what they read (or, for a target that consumes the
others' output, what they consume); then the unchanged pairs are rendered once and shared.
As ``mlspec compile`` does, those targets are only rendered when the PATHS cover the
whole project.

Pairing
    Resources are paired by (environment, apiVersion, kind, namespace, name) across every
    YAML document of every file, so an object that moves between files is a change, not
    a removal and an addition.  A ``PipelineVersion`` whose content-addressed name
    (``<spec>-<10 hex>``) changed is paired with its predecessor of the same pipeline.
    Fields are compared recursively; list items are paired by ``name`` where every item
    has a distinct one (``spec.nodes.root.steps[name=challenger].weight``), other lists by
    position, with inserted and removed items found by a sequence match.  Files that are
    not Kubernetes objects (the KFP IR ``pipeline-ir.yaml``, Feast's ``feature_store.yaml``
    and ``features.py``, ...) are shown as unified diffs.

ML notes
    Ranked first and computed from the resolved specs of both sides (``--base`` only: a
    committed output root has no specs): environments and specs added or removed, traffic
    split moves (champion/challenger %, shadow mirror, rollout), model URI and version
    changes, quality-gate threshold changes, drift detection and threshold changes,
    replicas, the size of the hyper-parameter search (candidates, trials), the training
    schedule, feature views and served features.  The same change in several
    environments is one note listing them.

Secrets
    Values that look like secrets are masked as ``***`` in every format: string values of
    keys whose words include password, token, secret, credential, api/private/access key,
    webhook... (not keys that only *name* one, such as ``secretKeyName`` or ``tokenPath``),
    the ``value`` of an environment variable whose ``name`` looks like that, everything in
    a Secret's ``data`` and ``stringData``, and the userinfo of every URL
    (``https://***@host``).  Lines of unified diffs are masked the same way.

Formats
    ``text``: ML notes, a ``git diff --stat``-like list of files, each changed resource with
    its field changes (``path: old → new``), then the unified diffs.  ``markdown`` (for a
    pull request's job summary or sticky comment, kept under :data:`MARKDOWN_LIMIT`
    characters, GitHub's comment limit being 65536): a heading, the ML notes as a list, a
    table of the resources added/changed/removed per environment and spec, the field
    changes in ``<details>``, unified diffs in ```` ```diff ```` fences, and a Mermaid
    picture of each changed system (:mod:`mlspec.graph`) with the changed nodes
    highlighted.  ``json``: the schema below.

JSON schema (``"schema": "mlspec.diff/v1"``; keys are only ever added)::

    {"schema": "mlspec.diff/v1",
     "base": {"kind": "git", "ref": str, "commit": str} | {"kind": "directory" | "output", "path": str},
     "head": {"kind": "worktree"},
     "changed": bool,
     "summary": {"files": int, "notes": int, "resources": {"added": int, "changed": int, "removed": int}},
     "notes": [{"kind": "environment" | "spec" | "traffic" | "model" | "quality-gate" | "drift" | "replicas"
                        | "search" | "schedule" | "features",
                "spec": str | null, "envs": [str], "message": str, "old": any, "new": any}],
     "resources": [{"change": "added" | "removed" | "changed", "env": str | null, "spec": str | null,
                    "apiVersion": str, "kind": str, "namespace": str | null, "name": str | null,
                    "old_name": str | null, "file": str | null, "old_file": str | null,
                    "fields": [{"path": str, "change": "added" | "removed" | "changed", "old": any, "new": any}]}],
     "files": [{"path": str, "change": "added" | "removed" | "modified", "env": str | null, "spec": str | null,
                "kubernetes": bool, "insertions": int, "deletions": int, "diff": str}],
     "warnings": [str]}

``old``/``new`` of a field that is absent on one side are null (see ``change``); ``diff`` is
the unified diff of a file that is not a Kubernetes one ("" otherwise).  Paths are relative
to the output root; lists are sorted (resources by environment, spec, kind, namespace,
name), so the same change always gives the same bytes.

Exit codes, as ``git diff --exit-code``: **0** no changes -- or changes, without
``--exit-code`` (so a pull-request job can publish the report and go on); **1** changes,
with ``--exit-code``; **2** an error: an invalid spec or environment in the work tree, an
unknown revision, not a git repository, a bad option; **3** an internal error (via
:func:`mlspec.commands.guarded`).  A base spec that does not validate is not an error (a
change may be fixing it): its output is shown as added, with a warning.
"""

from __future__ import annotations

import difflib
import functools
import io
import json
import math
import os
import posixpath
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import SpecError, SpecErrors

EXIT_SAME, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2
FORMATS = ("text", "markdown", "json")
SCHEMA = "mlspec.diff/v1"
MASK = "***"
#: The markdown report is cut to stay below this many characters (a GitHub comment may
#: hold 65536; the job summary 1 MiB).
MARKDOWN_LIMIT = 60_000
#: The first line of the markdown report, for a job that keeps one sticky comment.
MARKER = "<!-- mlspec-diff -->"
#: At most this many Mermaid pictures in a markdown report.
MAX_GRAPHS = 6
#: Longest value shown inline in text and markdown (JSON has every value in full).
MAX_VALUE = 160


# ------------------------------------------------------------------------------ data


@dataclass
class OutFile:
    """One output file of one side."""

    data: bytes
    content: Any = None  # the structured content the compiler rendered it from (None: parse data)
    env: str | None = None
    spec: str | None = None  # the spec's name; None for environment- and repository-scope files


@dataclass
class Side:
    files: dict[str, OutFile] = field(default_factory=dict)
    #: (spec name, environment) → Resolved, for the pairs that were rendered.
    resolved: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: The environments of this side (None: not known, e.g. a committed output root).
    envs: set[str] | None = None


@dataclass(frozen=True)
class FieldChange:
    path: str
    change: str  # "changed", "added", "removed"
    old: Any = None
    new: Any = None


@dataclass
class ResourceChange:
    change: str  # "added", "removed", "changed"
    env: str | None
    spec: str | None
    api_version: str
    kind: str
    namespace: str | None
    name: str | None
    old_name: str | None = None
    file: str | None = None
    old_file: str | None = None
    fields: list[FieldChange] = field(default_factory=list)


@dataclass
class FileChange:
    path: str
    change: str  # "added", "removed", "modified"
    env: str | None
    spec: str | None
    kubernetes: bool
    insertions: int
    deletions: int
    diff: str = ""  # the (masked) unified diff of a file that is not a Kubernetes one


@dataclass
class Note:
    kind: str
    spec: str | None
    envs: list[str]
    message: str
    old: Any = None
    new: Any = None


@dataclass
class Report:
    base: dict
    head: dict
    notes: list[Note] = field(default_factory=list)
    resources: list[ResourceChange] = field(default_factory=list)
    files: list[FileChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: (spec, env, Mermaid flowchart) of each changed system, for the markdown report.
    graphs: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.files or self.notes)


# --------------------------------------------------------------------------- masking

_SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "pwd", "token", "tokens", "secret", "secrets", "credential",
    "credentials", "apikey", "apikeys", "privatekey", "accesskey", "secretkey", "webhook", "dsn",
    "authorization", "bearer", "cookie",
})
_SECRET_PAIRS = frozenset({
    ("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("signing", "key"),
    ("encryption", "key"), ("client", "key"), ("ssh", "key"), ("account", "key"), ("master", "key"),
    ("connection", "string"),
})
#: A key ending in one of these names or describes a secret rather than holding it.
_SAFE_LAST = frozenset({
    "ref", "refs", "name", "names", "path", "paths", "file", "files", "dir", "directory", "mount", "type",
    "kind", "id", "ids", "audience", "seconds", "ttl", "field", "fields", "prefix", "env", "mode", "policy",
    "length", "count", "enabled", "required", "optional", "selector", "class",
})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/\s@?#'\"]+)@")
_PLACEHOLDER = re.compile(r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$\([A-Za-z_][A-Za-z0-9_]*\)|\*\*\*)$")
_LINE = re.compile(r"""^(?P<pre>\s*(?:-\s+)?["']?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P<mid>["']?\s*[:=]\s*)"""
                   r"""(?P<val>\S.*?)(?P<end>\s*)$""")


def secret_key(key: Any) -> bool:
    """Whether a mapping key (or an environment variable's name) looks like it holds a secret."""
    return _secret_key(key) if isinstance(key, str) else False


@functools.lru_cache(maxsize=8192)
def _secret_key(key: str) -> bool:
    words = [w.lower() for w in _WORD.findall(key)]
    if not words or words[-1] in _SAFE_LAST:
        return False
    if words == ["key"]:
        return True
    return any(w in _SECRET_WORDS for w in words) or any(p in _SECRET_PAIRS for p in zip(words, words[1:]))


def mask_text(text: str) -> str:
    """``text`` with the userinfo of every URL masked."""
    return _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text) if "@" in text else text


def mask_line(line: str) -> str:
    """One line of a text file, masked: URL userinfo, and the value of ``key: value`` /
    ``key = value`` when the key looks secret (a ``${VAR}`` placeholder is kept)."""
    body = line.rstrip("\n")
    newline = line[len(body):]
    body = mask_text(body)
    m = _LINE.match(body)
    if m and secret_key(m["key"]):
        value = m["val"]
        if value[0] not in "{[|>" and not _PLACEHOLDER.match(value.strip(",;\"' ")):
            body = m["pre"] + m["key"] + m["mid"] + MASK + m["end"]
    return body + newline


def _envvar_secret(mapping: Mapping) -> bool:
    """An environment variable (``{name, value}``) whose name looks secret."""
    return "value" in mapping and secret_key(mapping.get("name"))


def _child_level(level: int, key: Any, parent: Mapping) -> int:
    """Masking level of ``parent[key]``: 2 everything below, 1 this value's strings, 0 none."""
    if level == 2:
        return 2
    return 1 if secret_key(key) or (key == "value" and _envvar_secret(parent)) else 0


def _mask(value: Any, level: int) -> Any:
    """A plain copy of ``value`` with secret-like values masked."""
    if isinstance(value, str):
        return MASK if level else mask_text(value)
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, (str, int, float, bool)) and k is not None else k:
                _mask(v, _child_level(level, k, value)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v, level) for v in value]
    return value


def _object_level(doc: Mapping, key: Any) -> int:
    """The masking level of a top-level field of a Kubernetes object."""
    if doc.get("kind") == "Secret" and key in ("data", "stringData"):
        return 2
    return _child_level(0, key, doc)


# --------------------------------------------------------------------------- compare

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
_VERSION_NAME = re.compile(r"^(?P<prefix>.+)-[0-9a-f]{10}$")


def _join(path: str, key: Any) -> str:
    text = str(key)
    if _PLAIN_KEY.match(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _names(items: Any) -> list[str] | None:
    """The ``name`` of every item when each is a mapping with a distinct string name."""
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return None
    return names


def diff_values(old: Any, new: Any, path: str = "", level: int = 0, out: list | None = None,
                object_doc: Mapping | None = None) -> list[FieldChange]:
    """The field changes from ``old`` to ``new`` (plain data), masked; ``object_doc``: the
    values are whole Kubernetes objects (for the Secret rule)."""
    out = [] if out is None else out
    if old == new:
        return out
    seq = (list, tuple)
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=lambda k: (str(k), type(k).__name__)):
            sub = _join(path, key)
            if object_doc is not None:
                sub_level = max(_object_level(old, key), _object_level(new, key))
            else:
                sub_level = max(_child_level(level, key, old), _child_level(level, key, new))
            if key not in old:
                out.append(FieldChange(sub, "added", None, _mask(new[key], sub_level)))
            elif key not in new:
                out.append(FieldChange(sub, "removed", _mask(old[key], sub_level), None))
            else:
                diff_values(old[key], new[key], sub, sub_level, out)
        return out
    if isinstance(old, seq) and isinstance(new, seq):
        old_names, new_names = _names(old), _names(new)
        if old_names is not None and new_names is not None:
            before = dict(zip(old_names, old))
            after = dict(zip(new_names, new))
            for name in list(dict.fromkeys(old_names + new_names)):
                sub = f"{path}[name={name}]"
                if name not in before:
                    out.append(FieldChange(sub, "added", None, _mask(after[name], level)))
                elif name not in after:
                    out.append(FieldChange(sub, "removed", _mask(before[name], level), None))
                else:
                    diff_values(before[name], after[name], sub, level, out)
            common = [n for n in old_names if n in after]
            if common != [n for n in new_names if n in before]:
                out.append(FieldChange(f"{path}[*].name", "changed", common, [n for n in new_names if n in before]))
            return out
        if len(old) == len(new):
            for index, (a, b) in enumerate(zip(old, new)):
                diff_values(a, b, f"{path}[{index}]", level, out)
            return out
        matcher = difflib.SequenceMatcher(None, [_canonical(v) for v in old], [_canonical(v) for v in new],
                                          autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for k in range(paired):
                diff_values(old[i1 + k], new[j1 + k], f"{path}[{j1 + k}]", level, out)
            for i in range(i1 + paired, i2):
                out.append(FieldChange(f"{path}[{i}]", "removed", _mask(old[i], level), None))
            for j in range(j1 + paired, j2):
                out.append(FieldChange(f"{path}[{j}]", "added", None, _mask(new[j], level)))
        return out
    if isinstance(old, str) and isinstance(new, str) and old[:1] in "[{" and new[:1] in "[{":
        parsed = _json_pair(old, new)  # JSON in a string (KFP constants): compared as data
        if parsed is not None:
            return diff_values(parsed[0], parsed[1], f"{path}(json)", level, out)
    out.append(FieldChange(path, "changed", _mask(old, level), _mask(new, level)))
    return out


def _json_pair(old: str, new: str) -> tuple[Any, Any] | None:
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return None
    return (a, b) if isinstance(a, (dict, list)) and isinstance(b, (dict, list)) else None


def _k8s_documents(path: str, f: OutFile) -> list | None:
    """The file's documents when every one is a Kubernetes object; None otherwise."""
    if not path.endswith((".yaml", ".yml")):
        return None
    content = f.content
    if content is not None and not isinstance(content, str):
        if isinstance(content, (list, tuple)) and content and all(isinstance(d, Mapping) for d in content):
            docs = list(content)
        else:
            docs = [content]
    else:
        import yaml

        try:
            docs = list(yaml.load_all(f.data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        except yaml.YAMLError:
            return None
    docs = [d for d in docs if d is not None]
    if docs and all(isinstance(d, Mapping) and isinstance(d.get("apiVersion"), str) and isinstance(d.get("kind"), str)
                    for d in docs):
        return docs
    return None


def _lines(data: bytes, mask: bool) -> list[str] | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return [mask_line(line) for line in lines] if mask else lines


def text_diff(path: str, old: bytes | None, new: bytes | None, *, mask: bool = True) -> tuple[int, int, str]:
    """(insertions, deletions, unified diff) of one file, as git shows it (None: absent)."""
    before = _lines(old, mask) if old is not None else []
    after = _lines(new, mask) if new is not None else []
    a = "/dev/null" if old is None else f"a/{path}"
    b = "/dev/null" if new is None else f"b/{path}"
    if before is None or after is None:
        return 0, 0, f"Binary files {a} and {b} differ\n"
    lines = list(difflib.unified_diff(before, after, a, b))
    insertions = sum(1 for line in lines[2:] if line.startswith("+"))
    deletions = sum(1 for line in lines[2:] if line.startswith("-"))
    return insertions, deletions, "".join(lines)


def _object_key(env: str | None, doc: Mapping) -> tuple:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    return (env or "", doc["apiVersion"], doc["kind"], namespace if isinstance(namespace, str) else "",
            name if isinstance(name, str) else "")


def _pipeline_of(doc: Mapping) -> str | None:
    """The pipeline a PipelineVersion belongs to (``spec.pipelineName``, else its name's prefix)."""
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    if isinstance(spec.get("pipelineName"), str):
        return spec["pipelineName"]
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    match = _VERSION_NAME.match(str(meta.get("name") or ""))
    return match["prefix"] if match else None


def compare(base: Side, head: Side) -> tuple[list[ResourceChange], list[FileChange]]:
    """The resource and file changes from ``base`` to ``head``."""
    files: list[FileChange] = []
    before: dict[tuple, tuple[Mapping, str, OutFile]] = {}
    after: dict[tuple, tuple[Mapping, str, OutFile]] = {}
    for path in sorted(set(base.files) | set(head.files)):
        old, new = base.files.get(path), head.files.get(path)
        if old is not None and new is not None and old.data == new.data:
            continue
        old_docs = _k8s_documents(path, old) if old is not None else None
        new_docs = _k8s_documents(path, new) if new is not None else None
        k8s = (old is None or old_docs is not None) and (new is None or new_docs is not None)
        insertions, deletions, text = text_diff(path, old.data if old else None, new.data if new else None,
                                                mask=not k8s)
        owner = new if new is not None else old
        change = "added" if old is None else "removed" if new is None else "modified"
        files.append(FileChange(path, change, owner.env, owner.spec, k8s, insertions, deletions, "" if k8s else text))
        if not k8s:
            continue
        for docs, side, f in ((old_docs, before, old), (new_docs, after, new)):
            for index, doc in enumerate(docs or ()):
                key = _object_key(f.env, doc)
                if key[4] == "" or key in side:  # unnamed, or a duplicate: keyed by where it is
                    key = key + (path, index)
                side[key] = (doc, path, f)
    resources: list[ResourceChange] = []

    def resource(change: str, key: tuple, doc: Mapping, path: str, f: OutFile, **extra) -> ResourceChange:
        return ResourceChange(change, f.env, f.spec, doc["apiVersion"], doc["kind"], key[3] or None, key[4] or None,
                              **extra)

    for key in sorted(before.keys() & after.keys()):
        (old_doc, old_path, _), (new_doc, new_path, f) = before[key], after[key]
        fields = diff_values(old_doc, new_doc, object_doc=new_doc)
        if fields or old_path != new_path:
            resources.append(resource("changed", key, new_doc, new_path, f, file=new_path,
                                      old_file=old_path if old_path != new_path else None, fields=fields))
    removed = {k: before[k] for k in before.keys() - after.keys()}
    added = {k: after[k] for k in after.keys() - before.keys()}
    # a renamed PipelineVersion (its name is the hash of its pipeline) pairs with its predecessor
    versions: dict[tuple, list[tuple]] = {}
    for key, (doc, _, _) in removed.items():
        if doc["kind"] == "PipelineVersion" and _pipeline_of(doc):
            versions.setdefault((key[0], key[1], key[3], _pipeline_of(doc)), []).append(key)
    for key in sorted(added):
        doc = added[key][0]
        group = (key[0], key[1], key[3], _pipeline_of(doc)) if doc["kind"] == "PipelineVersion" else None
        if group is None or not versions.get(group):
            continue
        old_key = sorted(versions[group]).pop(0)
        versions[group].remove(old_key)
        (old_doc, old_path, _), (new_doc, new_path, f) = removed.pop(old_key), added.pop(key)
        resources.append(resource("changed", key, new_doc, new_path, f, old_name=old_key[4] or None, file=new_path,
                                  old_file=old_path if old_path != new_path else None,
                                  fields=diff_values(old_doc, new_doc, object_doc=new_doc)))
    for key, (doc, path, f) in removed.items():
        resources.append(resource("removed", key, doc, path, f, old_file=path))
    for key, (doc, path, f) in added.items():
        resources.append(resource("added", key, doc, path, f, file=path))
    resources.sort(key=lambda r: (r.env or "", r.spec or "", r.kind, r.namespace or "", r.name or "", r.change,
                                  r.file or r.old_file or ""))
    return resources, files


# ------------------------------------------------------------------------------ notes

RANKS = {"environment": 0, "spec": 1, "traffic": 2, "model": 3, "quality-gate": 4, "drift": 5, "replicas": 6,
         "search": 7, "schedule": 8, "features": 9}


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _split(serving: Mapping) -> dict:
    """The effective split of a serving section."""
    if serving.get("rollout") == "shadow" and serving.get("challenger") is not None:
        return {"mirror": serving.get("mirror")}
    if serving.get("challenger") is None:
        return {"champion": 100, "challenger": 0}
    traffic = serving.get("traffic") or {}
    return {"champion": traffic.get("champion"), "challenger": traffic.get("challenger")}


def _split_text(split: Mapping) -> str:
    if "mirror" in split:
        return f"shadow, {_num(split['mirror'])}% mirrored to the challenger"
    return f"champion {_num(split['champion'])}% / challenger {_num(split['challenger'])}%"


def _gate(metric: Mapping) -> str:
    op = "≤" if metric.get("goal") == "minimize" else "≥"
    return f"{metric.get('name')} {op} {_num(metric.get('threshold'))}"


def _sensitivity(drift: Mapping) -> str:
    value = drift.get("p_value") if drift.get("p_value") is not None else 0.05
    return f"{drift.get('method')} p < {_num(value)}"


def _search(search: Mapping) -> tuple[str, int]:
    if search.get("strategy") == "random":
        return "random", int(search.get("trials") or 0)
    return "grid", math.prod(len(v) if isinstance(v, list) else 1 for v in (search.get("parameters") or {}).values())


def _schedule(training: Mapping) -> str:
    if not training.get("schedule"):
        return "none (manual runs only)"
    return f"{training['schedule']} ({training.get('timezone')})"


def _model(ref: Mapping) -> str:
    text = mask_text(str(ref.get("uri")))
    return text + (f" (version {ref['version']})" if ref.get("version") else "")


def _served(resolved) -> list[str]:
    spec = resolved.spec
    return [feature for _, feature in spec.served_features(spec.training.feature_service)]


def spec_notes(old, new) -> list[tuple[str, str, Any, Any]]:
    """(kind, message, old, new) for what changed between two resolved specs."""
    o, n = old.document["spec"], new.document["spec"]
    notes: list[tuple[str, str, Any, Any]] = []
    so, sn = o.get("serving") or {}, n.get("serving") or {}
    if so.get("rollout") != sn.get("rollout"):
        notes.append(("traffic", f"rollout {so.get('rollout')} → {sn.get('rollout')}", so.get("rollout"),
                      sn.get("rollout")))
    split_o, split_n = _split(so), _split(sn)
    if split_o != split_n:
        if split_o.keys() == split_n.keys():
            parts = [f"{k} {_num(split_o[k])}% → {_num(split_n[k])}%" for k in split_o if split_o[k] != split_n[k]]
            text = f"{'shadow' if 'mirror' in split_o else 'traffic'} {', '.join(parts)}"
        else:
            text = f"traffic {_split_text(split_o)} → {_split_text(split_n)}"
        notes.append(("traffic", text, split_o, split_n))
    for role in ("champion", "challenger"):
        mo, mn = so.get(role), sn.get(role)
        if mo == mn:
            continue
        if mo is None:
            notes.append(("model", f"{role} model added: {_model(mn)}", None, _mask(mn, 0)))
        elif mn is None:
            notes.append(("model", f"{role} model removed (was {_model(mo)})", _mask(mo, 0), None))
        else:
            notes.append(("model", f"{role} model {_model(mo)} → {_model(mn)}", _mask(mo, 0), _mask(mn, 0)))
    mo, mn = (o.get("training") or {}).get("metric") or {}, (n.get("training") or {}).get("metric") or {}
    if mo != mn:
        notes.append(("quality-gate", f"quality gate {_gate(mo)} → {_gate(mn)}", mo, mn))
    do, dn = o.get("drift"), n.get("drift")
    if do is None and dn is not None:
        notes.append(("drift", f"drift detection added: {_sensitivity(dn)}, then {dn.get('action')}", None,
                      _sensitivity(dn)))
    elif do is not None and dn is None:
        notes.append(("drift", f"drift detection removed (was {_sensitivity(do)})", _sensitivity(do), None))
    elif do is not None and dn is not None:
        if _sensitivity(do) != _sensitivity(dn):
            notes.append(("drift", f"drift threshold {_sensitivity(do)} → {_sensitivity(dn)}", _sensitivity(do),
                          _sensitivity(dn)))
        if do.get("action") != dn.get("action"):
            notes.append(("drift", f"drift action {do.get('action')} → {dn.get('action')}", do.get("action"),
                          dn.get("action")))
        fo, fn = list(do.get("features") or []), list(dn.get("features") or [])
        if fo != fn:
            moved = [f"−{f}" for f in fo if f not in fn] + [f"+{f}" for f in fn if f not in fo]
            notes.append(("drift", f"drift features {', '.join(moved) or 'reordered'}", fo, fn))
    ro, rn = so.get("replicas") or {}, sn.get("replicas") or {}
    if ro != rn:
        notes.append(("replicas", f"replicas {ro.get('min')}-{ro.get('max')} → {rn.get('min')}-{rn.get('max')}", ro, rn))
    to, tn = o.get("training") or {}, n.get("training") or {}
    search_o, search_n = to.get("search") or {}, tn.get("search") or {}
    if search_o != search_n:
        (kind_o, size_o), (kind_n, size_n) = _search(search_o), _search(search_n)
        unit = {"grid": "candidates", "random": "trials"}
        if kind_o != kind_n:
            text = f"search {kind_o} ({size_o} {unit[kind_o]}) → {kind_n} ({size_n} {unit[kind_n]})"
        elif size_o != size_n:
            text = f"search {kind_o} {size_o} → {size_n} {unit[kind_n]}"
        else:
            text = f"search {kind_o} parameters changed ({size_n} {unit[kind_n]})"
        notes.append(("search", text, {"strategy": kind_o, "size": size_o}, {"strategy": kind_n, "size": size_n}))
    if (to.get("schedule"), to.get("timezone")) != (tn.get("schedule"), tn.get("timezone")):
        notes.append(("schedule", f"training schedule {_schedule(to)} → {_schedule(tn)}", to.get("schedule"),
                      tn.get("schedule")))
    views_o = {v["name"]: v for v in (o.get("features") or {}).get("views") or []}
    views_n = {v["name"]: v for v in (n.get("features") or {}).get("views") or []}
    for name in sorted(views_o.keys() - views_n.keys()):
        notes.append(("features", f"feature view {name} removed", name, None))
    for name in sorted(views_n.keys() - views_o.keys()):
        notes.append(("features", f"feature view {name} added", None, name))
    for name in sorted(views_o.keys() & views_n.keys()):
        if views_o[name] != views_n[name]:
            notes.append(("features", f"feature view {name} changed", name, name))
    served_o, served_n = _served(old), _served(new)
    if served_o != served_n:
        moved = [f"−{f}" for f in served_o if f not in served_n] + [f"+{f}" for f in served_n if f not in served_o]
        notes.append(("features", f"served features {len(served_o)} → {len(served_n)} ({', '.join(moved) or 'reordered'})",
                      served_o, served_n))
    return notes


def ml_notes(base: Side, head: Side) -> list[Note]:
    """The ML-aware notes, from the resolved specs of both sides, ranked."""
    raw: list[tuple[str, str | None, str, str, Any, Any]] = []  # kind, spec, env, message, old, new
    added_envs = (head.envs - base.envs) if head.envs is not None and base.envs is not None else set()
    removed_envs = (base.envs - head.envs) if head.envs is not None and base.envs is not None else set()
    for env in sorted(added_envs):
        specs = sorted({name for name, e in head.resolved if e == env})
        raw.append(("environment", None, env, f"environment {env} added" + (f": {', '.join(specs)}" if specs else ""),
                    None, env))
    for env in sorted(removed_envs):
        specs = sorted({name for name, e in base.resolved if e == env})
        raw.append(("environment", None, env, f"environment {env} removed" + (f": {', '.join(specs)}" if specs else ""),
                    env, None))
    for key in sorted(set(base.resolved) | set(head.resolved)):
        name, env = key
        old, new = base.resolved.get(key), head.resolved.get(key)
        if old is None:
            if env not in added_envs:
                raw.append(("spec", name, env, "new spec", None, name))
        elif new is None:
            if env not in removed_envs:
                raw.append(("spec", name, env, "spec removed", name, None))
        else:
            raw.extend((kind, name, env, message, o, n) for kind, message, o, n in spec_notes(old, new))
    grouped: dict[tuple, Note] = {}
    for kind, spec, env, message, old, new in raw:
        key = (kind, spec, message, _canonical(old), _canonical(new))
        if key in grouped:
            grouped[key].envs.append(env)
        else:
            grouped[key] = Note(kind, spec, [env], message, old, new)
    notes = list(grouped.values())
    for note in notes:
        note.envs = sorted(set(note.envs))
    notes.sort(key=lambda n: (RANKS.get(n.kind, 99), n.spec or "", n.envs, n.message))
    return notes


# ------------------------------------------------------------------------------ graphs


def graphs(base: Side, head: Side, report: Report) -> list[tuple[str, str, str]]:
    """A Mermaid picture of each changed system, changed nodes highlighted: for each spec
    with changes, in the first environment (by name) where it changed."""
    try:
        from . import graph
    except ImportError:  # pragma: no cover - the picture is optional
        return []
    changed_pairs = {(r.spec, r.env) for r in report.resources} | {(f.spec, f.env) for f in report.files}
    changed_pairs |= {(n.spec, e) for n in report.notes if n.spec for e in n.envs}
    out = []
    for spec, env in sorted((s, e) for s, e in changed_pairs if s and e):
        if any(s == spec for s, _, _ in out):
            continue
        old, new = base.resolved.get((spec, env)), head.resolved.get((spec, env))
        if old is None and new is None:
            continue
        if new is not None:
            picture = graph.mermaid(_masked_graph(graph.build(new)), graph.changed(old, new))
        else:  # removed: the old system, all of it
            picture = graph.mermaid(_masked_graph(graph.build(old)), graph.changed(None, old))
        out.append((spec, env, picture))
    return out


def _masked_graph(picture):
    """The graph with URL userinfo masked in its labels (a model URI may carry credentials)."""
    import dataclasses

    nodes = tuple(dataclasses.replace(n, label=mask_text(n.label)) for n in picture.nodes)
    edges = tuple((src, dst, mask_text(label)) for src, dst, label in picture.edges)
    return dataclasses.replace(picture, nodes=nodes, edges=edges)


# ---------------------------------------------------------------------------- formats


def _show(value: Any, limit: int = MAX_VALUE) -> str:
    """A value as shown inline: JSON (a string quoted), a masked one as ``***``, cut to ``limit``."""
    if value == MASK:
        return MASK
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _multiline(change: FieldChange) -> bool:
    return any(isinstance(v, str) and "\n" in v.rstrip("\n") for v in (change.old, change.new))


def _string_diff(change: FieldChange) -> list[str]:
    old = change.old if isinstance(change.old, str) else ""
    new = change.new if isinstance(change.new, str) else ""
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2))[2:]
    return lines


def _shown(change: FieldChange) -> tuple[str, str]:
    """The old and new value as shown inline; two long strings are shown around where they differ."""
    old, new = change.old, change.new
    if change.change == "changed" and isinstance(old, str) and isinstance(new, str) and MASK not in (old, new):
        a, b = json.dumps(old, ensure_ascii=False), json.dumps(new, ensure_ascii=False)
        if len(a) > MAX_VALUE or len(b) > MAX_VALUE:
            start = 0
            while start < min(len(a), len(b)) and a[start] == b[start]:
                start += 1
            end = 0
            while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
                end += 1
            context = 24
            lo = max(0, start - context)

            def window(text: str) -> str:
                hi = min(len(text), len(text) - end + context)
                middle = text[lo:hi]
                if len(middle) > MAX_VALUE:
                    middle = middle[:MAX_VALUE - 1] + "…"
                return ("…" if lo else "") + middle + ("…" if hi < len(text) else "")

            return window(a), window(b)
    return ("(none)" if change.change == "added" else _show(old),
            "(none)" if change.change == "removed" else _show(new))


def _field_text(change: FieldChange) -> str:
    old, new = _shown(change)
    return f"{change.path}: {old} → {new}"


def _where(r: ResourceChange) -> str:
    return f"{r.env or '*'}/{r.spec or '*'}"


def _resource_title(r: ResourceChange) -> str:
    name = f"{r.namespace}/{r.name}" if r.namespace else (r.name or "(unnamed)")
    if r.old_name:
        name = f"{r.namespace + '/' if r.namespace else ''}{r.old_name} → {r.name}"
    return f"{r.kind} {name}"


_MARK = {"added": "+", "removed": "-", "changed": "~"}
_MD_MARK = {"added": "\\+", "removed": "\\-", "changed": "~"}  # escaped: "- +" would start a nested list


def _counts(report: Report) -> dict[str, int]:
    counts = {"added": 0, "changed": 0, "removed": 0}
    for r in report.resources:
        counts[r.change] += 1
    return counts


def _base_label(report: Report) -> str:
    base = report.base
    if base.get("kind") == "git":
        return f"{base['ref']} ({base['commit'][:10]})"
    if base.get("kind") == "directory":
        return str(base.get("path"))
    return f"the output in {base.get('path')}"


def _head_label(report: Report) -> str:
    return "work tree" if report.base.get("kind") == "git" else "the specs compiled now"


def _summary_line(report: Report) -> str:
    c = _counts(report)
    return (f"{len(report.files)} file(s) changed; resources: {c['changed']} changed, {c['added']} added, "
            f"{c['removed']} removed")


def _note_text(note: Note) -> str:
    if note.spec:
        return f"{note.spec} [{', '.join(note.envs)}]: {note.message}"
    return note.message


def render_text(report: Report) -> str:
    out = io.StringIO()
    w = out.write
    for warning in report.warnings:
        w(f"note: {warning}\n")
    w(f"mlspec diff: {_base_label(report)} → {_head_label(report)}")
    if not report.changed:
        w(": no changes\n")
        return out.getvalue()
    w(f": {_summary_line(report)}\n")
    if report.notes:
        w("\nML changes:\n")
        for note in report.notes:
            w(f"  * {_note_text(note)}\n")
    if report.files:
        w("\n")
        width = max(len(f.path) for f in report.files)
        biggest = max((f.insertions + f.deletions for f in report.files), default=0)
        scale = 40 / biggest if biggest > 40 else 1
        for f in report.files:
            total = f.insertions + f.deletions
            bar = "+" * math.ceil(f.insertions * scale) + "-" * math.ceil(f.deletions * scale)
            w(f" {f.path.ljust(width)} | {total} {bar}".rstrip() + "\n")
        insertions = sum(f.insertions for f in report.files)
        deletions = sum(f.deletions for f in report.files)
        w(f" {len(report.files)} file(s) changed, {insertions} insertion(s)(+), {deletions} deletion(s)(-)\n")
    if report.resources:
        w("\n")
        for r in report.resources:
            moved = f" (moved from {r.old_file})" if r.old_file and r.file and r.old_file != r.file else ""
            w(f"{_MARK[r.change]} {_where(r)}: {_resource_title(r)}{moved}\n")
            for change in r.fields:
                if _multiline(change):
                    w(f"    {change.path}: text changed\n")
                    for line in _string_diff(change):
                        w(f"      {line}\n")
                else:
                    w(f"    {_field_text(change)}\n")
    texts = [f for f in report.files if not f.kubernetes and f.diff]
    if texts:
        w("\n")
        for f in texts:
            w(f.diff if f.diff.endswith("\n") else f.diff + "\n")
    return out.getvalue()


def _md_escape(text: str) -> str:
    """Plain text for markdown (and for HTML inside <details>)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|~#!])", r"\\\1", text)


def _code(text: str) -> str:
    """``text`` as an inline code span (GFM: a fence longer than any backtick run in it)."""
    text = text.replace("\n", " ")
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fence(text: str, lang: str) -> str:
    run = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (run + 1)
    return f"{fence}{lang}\n{text if text.endswith(chr(10)) else text + chr(10)}{fence}\n"


def _md_field(change: FieldChange) -> list[str]:
    path = _code(change.path)
    if _multiline(change):
        return [f"  - {path}: text changed", "", _indent(_fence("\n".join(_string_diff(change)), "diff"), "    ")]
    old, new = _shown(change)
    old = old if change.change == "added" else _code(old)
    new = new if change.change == "removed" else _code(new)
    return [f"  - {path}: {old} → {new}"]


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(keepends=True))


def render_markdown(report: Report, limit: int = MARKDOWN_LIMIT) -> str:
    """The markdown report; the least important parts are cut to stay under ``limit``."""
    for level in range(5):
        text = _markdown(report, level)
        if len(text) <= limit:
            return text
    cut = text[: limit - 200]
    cut = cut[: cut.rfind("\n") + 1]
    return cut + "\n\n*(report cut: it is too long for a comment; run `mlspec diff` locally for all of it)*\n"


def _markdown(report: Report, level: int) -> str:
    """``level`` 0: everything; 1: unified diffs cut to 80 lines; 2: no unified diffs;
    3: field changes cut to 10 per resource; 4: no field changes and no pictures."""
    lines = [MARKER, f"## mlspec diff: {_code(_base_label(report))} → {_md_escape(_head_label(report))}", ""]
    for warning in report.warnings:
        lines.append(f"> **Note:** {_md_escape(warning)}")
        lines.append("")
    if not report.changed:
        lines.append("No changes.")
        return "\n".join(lines) + "\n"
    c = _counts(report)
    lines.append(f"**{c['changed']}** resource(s) changed, **{c['added']}** added, **{c['removed']}** removed, "
                 f"in **{len(report.files)}** file(s).")
    lines.append("")
    if report.notes:
        lines += ["### ML changes", ""]
        for note in report.notes:
            where = f"**{_md_escape(note.spec)}** ({_md_escape(', '.join(note.envs))}): " if note.spec else ""
            lines.append(f"- {where}{_md_escape(note.message)}")
        lines.append("")
    groups: dict[tuple[str, str], list] = {}
    for f in report.files:
        groups.setdefault((f.env or "*", f.spec or "*"), [])
    for r in report.resources:
        groups.setdefault((r.env or "*", r.spec or "*"), []).append(r)
    if groups:
        lines += ["### Resources", "", "| environment | spec | added | changed | removed | files |",
                  "|---|---|---:|---:|---:|---:|"]
        for (env, spec), resources in sorted(groups.items()):
            counts = {k: sum(1 for r in resources if r.change == k) for k in ("added", "changed", "removed")}
            nfiles = sum(1 for f in report.files if (f.env or "*", f.spec or "*") == (env, spec))
            lines.append(f"| {_md_escape(env)} | {_md_escape(spec)} | {counts['added']} | {counts['changed']} | "
                         f"{counts['removed']} | {nfiles} |")
        lines.append("")
        for (env, spec), resources in sorted(groups.items()):
            if not resources:
                continue
            total = sum(len(r.fields) for r in resources)
            lines.append(f"<details><summary>{_html(env)}/{_html(spec)}: {len(resources)} resource(s), "
                         f"{total} field change(s)</summary>")
            lines.append("")
            for r in resources:
                moved = f" (moved from {_code(r.old_file)})" if r.old_file and r.file and r.old_file != r.file else ""
                lines.append(f"- {_MD_MARK[r.change]} {_code(_resource_title(r))} in {_code(r.file or r.old_file or '')}"
                             f"{moved}")
                if level >= 4:
                    continue
                fields = r.fields if level < 3 else r.fields[:10]
                for change in fields:
                    lines += _md_field(change)
                if len(fields) < len(r.fields):
                    lines.append(f"  - … and {len(r.fields) - len(fields)} more field change(s)")
            lines += ["", "</details>", ""]
    texts = [f for f in report.files if not f.kubernetes]
    if texts:
        lines += ["### Other files", ""]
        for f in texts:
            summary = f"<code>{_html(f.path)}</code> ({f.change}, +{f.insertions} −{f.deletions})"
            if level >= 2 or not f.diff:
                lines.append(f"- {summary}")
                continue
            body = f.diff
            if level >= 1:
                body_lines = body.splitlines(keepends=True)
                if len(body_lines) > 80:
                    body = "".join(body_lines[:80]) + f"... ({len(body_lines) - 80} more lines)\n"
            lines += [f"<details><summary>{summary}</summary>", "", _fence(body, "diff"), "</details>", ""]
        lines.append("")
    if report.graphs and level < 4:
        lines += ["### System", ""]
        for spec, env, picture in report.graphs[:MAX_GRAPHS]:
            lines += [f"**{_md_escape(spec)}** in {_md_escape(env)} (changed parts highlighted):", "",
                      _fence(picture, "mermaid")]
        if len(report.graphs) > MAX_GRAPHS:
            lines.append(f"*… and {len(report.graphs) - MAX_GRAPHS} more system(s).*")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def as_json(report: Report) -> dict:
    c = _counts(report)
    return {
        "schema": SCHEMA,
        "base": report.base,
        "head": report.head,
        "changed": report.changed,
        "summary": {"files": len(report.files), "notes": len(report.notes), "resources": c},
        "notes": [{"kind": n.kind, "spec": n.spec, "envs": n.envs, "message": n.message, "old": n.old, "new": n.new}
                  for n in report.notes],
        "resources": [{"change": r.change, "env": r.env, "spec": r.spec, "apiVersion": r.api_version, "kind": r.kind,
                       "namespace": r.namespace, "name": r.name, "old_name": r.old_name, "file": r.file,
                       "old_file": r.old_file,
                       "fields": [{"path": f.path, "change": f.change, "old": f.old, "new": f.new} for f in r.fields]}
                      for r in report.resources],
        "files": [{"path": f.path, "change": f.change, "env": f.env, "spec": f.spec, "kubernetes": f.kubernetes,
                   "insertions": f.insertions, "deletions": f.deletions, "diff": f.diff} for f in report.files],
        "warnings": report.warnings,
    }


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_json(report), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    if fmt == "markdown":
        return render_markdown(report)
    return render_text(report)


# ------------------------------------------------------------------- building the sides


def _owner(path: str, info: Mapping | None, names: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(environment, spec name) of an output file, from its manifest details (``names``:
    spec file → spec name) and else from its path (``deploy/<env>/<spec>/<target>/…``)."""
    info = info or {}
    parts = path.split("/")
    deployed = parts[0] == "deploy" and len(parts) >= 3
    env = info.get("env") if isinstance(info.get("env"), str) else (parts[1] if deployed else None)
    if "spec" in info:
        spec_path = info.get("spec")
        if not spec_path:
            return env, None
        if names and spec_path in names:
            return env, names[spec_path]
        return env, parts[2] if deployed and len(parts) >= 4 else posixpath.basename(posixpath.dirname(spec_path))
    return env, parts[2] if deployed and len(parts) >= 5 else None


def _files_of(compiled, names: Mapping[str, str], only_targets: set[str] | None = None) -> dict[str, OutFile]:
    files = {}
    for path, (data, _scope) in compiled.outputs.items():
        info = compiled.files.get(path, {})
        if only_targets is not None and info.get("target") not in only_targets:
            continue
        files[path] = OutFile(data, compiled.objects.get(path), *_owner(path, info, names))
    return files


def _from_output(paths: list[Path], env_names, env_dir, root: Path, target_names, jobs: int, kind: str) -> Report:
    """Head: the specs compiled now; base: the output root ``root`` as it is on disk."""
    from . import commands, writer

    if kind == "directory" and not root.is_dir():
        raise SpecError(f"{root} is not a directory", str(root), hint="--against takes a committed output root",
                        code="usage")
    try:
        plan, resolved, notes = commands.build_plan(paths, env_names, env_dir, root, target_names, True, jobs=jobs)
    except commands.Refusal as refusal:
        if refusal.usage:  # one line, as compile prints it
            raise SpecErrors([SpecError(f"{e.message}" + (f" ({e.hint})" if e.hint else ""), code="usage")
                              for e in refusal.errors]) from None
        raise SpecErrors(refusal.errors) from None
    names = {r.spec_path: r.spec.name for r in resolved or ()}
    base, head = Side(), Side()
    manifest = plan.manifest
    for rel, (data, _scope) in plan.outputs.items():
        info = (plan.file_info or {}).get(rel, {})
        head.files[rel] = OutFile(data, None, *_owner(rel, info, names))
        disk = writer._read_regular(root / rel) if not writer._path_error(rel) else None
        if disk is not None:
            base.files[rel] = OutFile(disk, None, *_owner(rel, manifest[rel].info if rel in manifest else info, names))
    for rel, owned in manifest.items():
        if owned.scope in plan.scopes and rel not in plan.outputs and not writer._path_error(rel):
            disk = writer._read_regular(root / rel)
            if disk is not None:
                base.files[rel] = OutFile(disk, None, *_owner(rel, owned.info, names))
    report = Report({"kind": kind, "path": root.as_posix()}, {"kind": "worktree"})
    report.warnings = list(notes)
    report.resources, report.files = compare(base, head)
    return report


# --- --base: both sides compiled --------------------------------------------------------

_PATH_VALUE = re.compile(r"""(?m)(?:^|[\s{,])["']?path["']?[ \t]*:[ \t]*(?P<value>[^\n]*)""")


def data_paths(text: str) -> list[str] | None:
    """Every ``path:`` value in a spec or environment file (the data files it may read);
    None when one is written in a way this cannot read (a block scalar, an alias...)."""
    found = []
    for match in _PATH_VALUE.finditer(text):
        value = match["value"].strip()
        if not value:
            return None
        if value[0] in "\"'":
            end = value.find(value[0], 1)
            if end < 0:
                return None
            found.append(value[1:end])
            continue
        if value[0] in "|>&*!{[":
            return None
        found.append(re.split(r"\s+#|[,}\]]", value, maxsplit=1)[0].strip())
    return found


def _rel(path: Path, top: Path) -> str:
    rel = path.relative_to(top).as_posix()
    return "" if rel == "." else rel


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/")[:-1])


@dataclass
class _Pairs:
    """What each side has: spec files, their environment folders and environments."""

    specs: dict[str, bool] = field(default_factory=dict)  # repo-relative path → present
    env_dir: dict[str, str | None] = field(default_factory=dict)  # spec → its environments/ folder (repo-relative)
    envs: dict[str, list[str]] = field(default_factory=dict)  # spec → environments


def _from_git(paths: list[Path], env_names, env_dir, ref: str, out_root: Path, target_names, jobs: int) -> Report:
    from . import gitbase, registry
    from .compiler import compile_resolved
    from .paths import SPEC_FILENAMES, find_environments_dir, find_specs, list_environments
    from .project import project_root, resolve

    paths = list(paths) or [Path.cwd()]
    absolute = [p.resolve() for p in paths]
    top = gitbase.toplevel(absolute[0])
    for given, path in zip(paths, absolute):
        if not path.is_relative_to(top):
            raise SpecError(f"{given} is outside the git repository at {top}", str(given), code="usage",
                            hint="diff specs of one repository at a time")
    tree = gitbase.open_tree(top, ref)
    targets = registry.select(target_names)
    every_target = registry.select(None)  # validation runs every target's rules, as compile's does
    object_format = tree.object_format
    explicit = env_dir.resolve() if env_dir is not None else None
    if explicit is not None and not explicit.is_relative_to(top):
        raise SpecError(f"{env_dir} is outside the git repository at {top}", str(env_dir), code="usage",
                        hint="--base reads the environments from git: they must be in the repository")

    # --- the spec files on each side
    head, base = _Pairs(), _Pairs()
    for given, path in zip(paths, absolute):
        rel = _rel(path, top)
        found = False
        if path.is_dir():
            for spec in find_specs(path):
                spec = spec.resolve()
                if spec.is_relative_to(top):
                    head.specs[_rel(spec, top)] = found = True
        elif path.is_file():
            head.specs[rel] = found = True
        if tree.is_dir(rel):
            start = len(rel) + 1 if rel else 0
            for file in tree.under(rel):
                if file.rsplit("/", 1)[-1] in SPEC_FILENAMES and not _hidden(file[start:]):
                    base.specs[file] = found = True
        elif rel in tree.files:
            base.specs[rel] = found = True
        if not found:
            raise SpecError(f"no mlops.yaml found under {given} (in the work tree or at {ref})", str(given), 1, 1,
                            hint="pass a spec file or a folder that holds one", code="missing-file")

    # --- their environments
    def base_env_dir(rel: str) -> str | None:
        if explicit is not None:
            wanted = _rel(explicit, top)
            return wanted if tree.is_dir(wanted) else None
        folder = posixpath.dirname(rel)
        while True:
            candidate = posixpath.join(folder, "environments") if folder else "environments"
            if tree.is_dir(candidate):
                return candidate
            if not folder:
                return None
            folder = posixpath.dirname(folder)

    for rel in head.specs:
        folder = explicit if explicit is not None else find_environments_dir(top / rel)
        head.env_dir[rel] = _rel(folder.resolve(), top) if folder is not None and folder.is_dir() \
            and folder.resolve().is_relative_to(top) else None
        head.envs[rel] = list_environments(folder) if folder is not None else []
    for rel in base.specs:
        folder = base_env_dir(rel)
        base.env_dir[rel] = folder
        base.envs[rel] = sorted(n[:-5] for n in tree.listdir(folder) if n.endswith(".yaml") and not n.startswith(".")) \
            if folder is not None else []
    if env_names:
        known = {e for side in (head, base) for names in side.envs.values() for e in names}
        for name in env_names:
            if name not in known:
                from .errors import did_you_mean

                raise SpecError(f"unknown environment '{name}' (in the work tree and at {ref})", "--env", 1, 1,
                                hint=did_you_mean(name, sorted(known)) or f"known: {', '.join(sorted(known)) or 'none'}",
                                code="missing-file")
        for side in (head, base):
            side.envs = {rel: [e for e in names if e in env_names] for rel, names in side.envs.items()}

    # --- which (spec, environment) pairs differ
    head_bytes: dict[str, bytes | None] = {}

    def work(rel: str) -> bytes | None:
        if rel not in head_bytes:
            path = top / rel
            try:
                head_bytes[rel] = path.read_bytes() if path.is_file() else None
            except OSError:
                head_bytes[rel] = None
        return head_bytes[rel]

    blob_cache: dict[str, str | None] = {}

    def work_blob(rel: str) -> str | None:
        if rel not in blob_cache:
            data = work(rel)
            blob_cache[rel] = gitbase.blob_id(data, object_format) if data is not None else None
        return blob_cache[rel]

    def same_data(rel: str, env_file: str) -> bool:
        texts = [work(rel), work(env_file)]
        found: list[str] = []
        for data in texts:
            listed = data_paths((data or b"").decode("utf-8", "replace"))
            if listed is None:
                return False
            found += listed
        folder = posixpath.dirname(rel)
        for value in found:
            if "://" in value or value.startswith("/"):
                continue
            path = posixpath.normpath(posixpath.join(folder, value))
            if path.startswith("../") or path == "..":
                return False  # outside the repository: cannot be compared
            if work_blob(path) != tree.blob(path):
                return False
        return True

    changed: set[tuple[str, str]] = set()
    pairs: set[tuple[str, str]] = set()
    for rel in sorted(set(head.specs) | set(base.specs)):
        h_envs, b_envs = set(head.envs.get(rel, [])), set(base.envs.get(rel, []))
        for env in sorted(h_envs | b_envs):
            pairs.add((rel, env))
            if env not in h_envs or env not in b_envs:
                changed.add((rel, env))
                continue
            h_env_file = f"{head.env_dir[rel]}/{env}.yaml" if head.env_dir[rel] else f"{env}.yaml"
            b_env_file = f"{base.env_dir[rel]}/{env}.yaml" if base.env_dir[rel] else f"{env}.yaml"
            same = (h_env_file == b_env_file and work_blob(rel) == tree.blob(rel)
                    and work_blob(h_env_file) == tree.blob(b_env_file) and same_data(rel, h_env_file))
            if not same:
                changed.add((rel, env))
    if not pairs:
        raise SpecError("no environment to compare in", "environments/", 1, 1,
                        hint="create environments/<env>.yaml (see README: Environments), or pass --environments DIR",
                        code="no-environment")

    report = Report({"kind": "git", "ref": ref, "commit": tree.commit}, {"kind": "worktree"})
    head_side = Side(envs={e for names in head.envs.values() for e in names})
    base_side = Side(envs={e for names in base.envs.values() for e in names})

    # --- resolve and compile the changed pairs on both sides
    head_map: dict[tuple[str, str], Any] = {}
    errors: list[SpecError] = []
    env_cache: dict = {}

    def head_dir(rel: str) -> Path | None:
        return explicit if explicit is not None else (top / head.env_dir[rel] if head.env_dir.get(rel) else None)

    def resolve_head(wanted: set[tuple[str, str]]) -> list:
        found = []
        for rel in sorted({r for r, _ in wanted}):
            names = sorted(e for r, e in wanted if r == rel)
            result = resolve(top / rel, names, head_dir(rel), env_cache=env_cache, targets=every_target)
            errors.extend(result.errors)
            for resolved in result.resolved:
                if resolved.env is not None:
                    head_map[(rel, resolved.env_name)] = resolved
                    found.append(resolved)
        return found

    head_resolved = resolve_head({(r, e) for r, e in changed if e in head.envs.get(r, [])})
    if errors:
        raise SpecErrors(errors)

    spec_targets = [t for t in targets if t.scope == "spec"]
    wide_targets = [t for t in targets if t.scope != "spec"]
    # a consuming target (argocd) is made of the others' output: compiled alone, it still needs them
    feeders = {"feeders": registry.select(None)} \
        if target_names and any(getattr(t, "consumes", False) for t in spec_targets) else {}
    with tempfile.TemporaryDirectory(prefix="mlspec-base-") as tmp:
        tmp_root = Path(tmp).resolve()
        base_map, base_resolved = _resolve_base(tree, base, changed, tmp_root, report, every_target)
        memo = _Memo()
        head_c = compile_resolved(head_resolved, spec_targets, None, jobs=jobs, **feeders)
        if head_c.errors:
            raise SpecErrors(head_c.errors)
        memo.remember(head_c)
        # a target whose inputs are the same on both sides of a changed pair (kubeflow, on a
        # traffic edit) made the same files: they are taken from the head, not made again
        base_c = compile_resolved(base_resolved, spec_targets, memo.previous, jobs=jobs, **feeders)
        if base_c.errors:
            report.warnings += [f"at {ref}: {_base_error(e, tmp_root, ref)}" for e in base_c.errors]
            base_c.outputs.clear()
        names = {r.spec_path: r.spec.name for r in (*head_resolved, *base_resolved)}
        head_side.files.update(_files_of(head_c, names))
        base_side.files.update(_files_of(base_c, names))

        # --- environment- and repository-scope targets
        any_spec = next(iter(sorted(head.specs)), None)
        root = project_root(top / any_spec, head_dir(any_spec)) if any_spec else top
        whole = any(path.is_dir() and root.is_relative_to(path) for path in absolute)
        if wide_targets and whole:
            wide = _wide(wide_targets, targets, target_names, changed, head, head_map, base_map, head_c, base_c,
                         head_side.envs | base_side.envs, head_side.envs ^ base_side.envs, resolve_head, out_root,
                         jobs, memo, names)
            if errors:
                raise SpecErrors(errors)
            if wide is not None:
                base_files, head_files = wide
                base_side.files.update(base_files)
                head_side.files.update(head_files)

        for resolved in head_resolved:
            head_side.resolved[(resolved.spec.name, resolved.env_name)] = resolved
        for resolved in base_resolved:
            base_side.resolved[(resolved.spec.name, resolved.env_name)] = resolved
        report.resources, report.files = compare(base_side, head_side)
        report.notes = ml_notes(base_side, head_side)
        report.graphs = graphs(base_side, head_side, report)
    return report


def _base_error(error: SpecError, tmp_root: Path, ref: str) -> str:
    text = str(error)
    for prefix in (f"{tmp_root}/", f"{os.path.relpath(tmp_root)}/"):
        text = text.replace(prefix, "")
    return text


def _resolve_base(tree, base: _Pairs, changed: set[tuple[str, str]], tmp_root: Path, report: Report,
                  every_target: list):
    """Resolve the changed pairs of the base: their files written from git into ``tmp_root``."""
    from .project import resolve

    wanted = {(r, e) for r, e in changed if e in base.envs.get(r, [])}
    specs = sorted({r for r, _ in wanted})
    if not specs:
        return {}, []
    (tmp_root / ".git").mkdir(exist_ok=True)  # the project root, as the repository's top level is
    env_files = sorted({f"{base.env_dir[r]}/{name}" for r in specs if base.env_dir.get(r)
                        for name in tree.listdir(base.env_dir[r]) if name.endswith(".yaml")})
    texts = tree.read(specs + env_files)
    data: set[str] = set()
    for rel in specs:
        folder = posixpath.dirname(rel)
        own_envs = [f for f in env_files if base.env_dir.get(rel) and f.startswith(base.env_dir[rel] + "/")]
        listed: list[str] | None = []
        for source in [rel, *own_envs]:
            found = data_paths(texts.get(source, b"").decode("utf-8", "replace"))
            listed = None if found is None or listed is None else listed + found
        if listed is None:  # unreadable path values: take every file beside the spec
            data.update(tree.under(folder))
            continue
        for value in listed:
            if "://" not in value and not value.startswith("/"):
                path = posixpath.normpath(posixpath.join(folder, value))
                if path in tree.files:
                    data.add(path)
    for rel, content in texts.items():
        path = tmp_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    tree.materialize(sorted(data - set(texts)), tmp_root)
    found: dict[tuple[str, str], Any] = {}
    resolved_list = []
    env_cache: dict = {}
    for rel in specs:
        names = sorted(e for r, e in wanted if r == rel)
        env_dir = tmp_root / base.env_dir[rel] if base.env_dir.get(rel) else None
        result = resolve(tmp_root / rel, names, env_dir, env_cache=env_cache, targets=every_target)
        if result.errors:
            first = _base_error(result.errors[0], tmp_root, tree.ref)
            report.warnings.append(f"{rel} does not validate at {tree.ref} ({len(result.errors)} problem(s), the first: "
                                   f"{first}); what it makes now is shown as added")
            continue
        for resolved in result.resolved:
            if resolved.env is not None:
                found[(rel, resolved.env_name)] = resolved
                resolved_list.append(resolved)
    return found, resolved_list


class _Kept(dict):
    """A scope's files to keep; true even when there are none (a target with nothing to make)."""

    def __bool__(self) -> bool:
        return True


class _Memo:
    """What a compile made, by scope and fingerprint: a ``previous`` for the next compile
    (after the output root's own cache of the last ``mlspec compile``, when given)."""

    def __init__(self, cached=None) -> None:
        self.files: dict[tuple[str, str], dict] = {}
        self.cached = cached

    def remember(self, compiled) -> None:
        by_scope: dict[str, dict] = {key: _Kept() for key in compiled.cache}
        for path, (data, key) in compiled.outputs.items():
            by_scope.setdefault(key, {})[path] = (data, compiled.files[path])
        for key, record in compiled.cache.items():
            self.files[(key, record["fingerprint"])] = by_scope[key]

    def previous(self, key: str, fingerprint: str):
        found = self.files.get((key, fingerprint))
        if found is None and self.cached is not None:
            found = self.cached(key, fingerprint)
        return found


def _wide(wide_targets, targets, target_names, changed, head: _Pairs, head_map, base_map, head_c, base_c,
          all_envs: set[str], moved_envs: set[str], resolve_head, out_root: Path, jobs: int, memo: "_Memo",
          names: Mapping[str, str]):
    """The files of the environment- and repository-scope targets that a changed pair
    affects, on both sides (None: none is affected)."""
    from . import commands, inputs, registry
    from .compiler import compile_resolved

    def outputs_of(compiled, spec_path: str, env: str) -> dict[str, bytes]:
        return {p: d for p, (d, _) in compiled.outputs.items()
                if compiled.files[p].get("spec") == spec_path and compiled.files[p].get("env") == env}

    chosen, envs, repository = [], set(), False
    for target in wide_targets:
        hit: set[str] = set()
        for rel, env in changed:
            new, old = head_map.get((rel, env)), base_map.get((rel, env))
            if new is None or old is None:
                hit.add(env)
            elif inputs.slice_of(new.document, target.reads) != inputs.slice_of(old.document, target.reads):
                hit.add(env)
            elif getattr(target, "consumes", False) and \
                    outputs_of(head_c, new.spec_path, env) != outputs_of(base_c, old.spec_path, env):
                hit.add(env)
        if target.scope == "environment":
            hit |= moved_envs
        if hit:
            chosen.append(target)
            envs |= hit
            repository |= target.scope == "repository"
    if not chosen:
        return None
    needed = set(all_envs) if repository else envs
    unchanged = {(rel, env) for rel, names in head.envs.items() for env in names
                 if env in needed and (rel, env) not in changed}
    shared = resolve_head(unchanged)
    head_members = [r for (rel, env), r in head_map.items() if env in needed] + shared
    base_members = [r for (rel, env), r in base_map.items() if env in needed] + shared
    memo.remember(base_c)
    memo.cached = commands._previous(out_root) if out_root.is_dir() else None

    consumers = any(getattr(t, "consumes", False) for t in chosen)
    run = ([t for t in targets if t.scope == "spec"] if consumers else []) + chosen
    extra = {"feeders": registry.select(None)} if consumers and target_names else {}
    sides = []
    for members in (base_members, head_members):
        compiled = compile_resolved(members, run, memo.previous, jobs=jobs, wide_envs=needed,
                                    whole_repository=repository, **extra)
        if compiled.errors:
            raise SpecErrors(compiled.errors)
        memo.remember(compiled)
        sides.append(_files_of(compiled, names, {t.name for t in chosen}))
    return sides[0], sides[1]


# --------------------------------------------------------------------------- the command


def report_errors(errors: Iterable[SpecError], fmt: str, out: IO[str]) -> None:
    errors = list(errors)
    if fmt == "markdown":
        out.write(f"{MARKER}\n## mlspec diff: failed\n\n")
        for err in errors:
            where = "" if err.file == "<unknown>" else f"{_code(str(err.location))}: "
            out.write(f"- {where}{_md_escape(err.message)}" + (f" (hint: {_md_escape(err.hint)})" if err.hint else "")
                      + "\n")
        return
    from . import reporters

    reporters.report(errors, "json" if fmt == "json" else reporters.default_format(), ok_message="",
                     fail_message=f"{len(errors)} problem(s) found; nothing compared",
                     summary={"schema": SCHEMA}, out=out)


def build_report(paths: list[Path], env_names: list[str] | None, env_dir: Path | None, *, base: str | None = None,
                 against: Path | None = None, out_root: Path = Path("."), target_names: list[str] | None = None,
                 jobs: int = 1) -> Report:
    """The report of one ``mlspec diff`` (raises :class:`SpecError`/:class:`SpecErrors`)."""
    if base is not None and against is not None:
        raise SpecError("--base and --against are two different bases: give one", "--base", code="usage")
    if base is not None:
        return _from_git(paths, env_names, env_dir, base, out_root, target_names, jobs)
    if against is not None:
        return _from_output(paths, env_names, env_dir, against, target_names, jobs, "directory")
    return _from_output(paths, env_names, env_dir, out_root, target_names, jobs, "output")


def run(paths: list[Path], env_names: list[str] | None, env_dir: Path | None, *, base: str | None = None,
        against: Path | None = None, out_root: Path = Path("."), target_names: list[str] | None = None,
        fmt: str = "text", exit_code: bool = False, jobs: int = 1, out: IO[str] | None = None) -> int:
    """``mlspec diff``; returns the exit code (see the module docstring)."""
    out = out or sys.stdout
    try:
        report = build_report(paths, env_names, env_dir, base=base, against=against, out_root=out_root,
                              target_names=target_names, jobs=jobs)
    except SpecError as exc:
        report_errors([exc], fmt, out)
        return EXIT_ERROR
    except SpecErrors as exc:
        report_errors(exc.errors, fmt, out)
        return EXIT_ERROR
    out.write(render(report, fmt))
    return EXIT_CHANGED if exit_code and report.changed else EXIT_SAME


__all__ = [
    "EXIT_CHANGED", "EXIT_ERROR", "EXIT_SAME", "FORMATS", "FieldChange", "FileChange", "Note", "OutFile",
    "Report", "ResourceChange", "SCHEMA", "Side", "as_json", "build_report", "compare", "data_paths",
    "diff_values", "mask_line", "mask_text", "ml_notes", "render", "run", "secret_key", "spec_notes", "text_diff"
]
