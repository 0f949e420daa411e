"""A picture of one ML system: ``mlspec graph`` and the diagram in ``mlspec diff`` reports.

:func:`build` turns one resolved spec (a :class:`mlspec.project.Resolved`: the spec in one
environment, or as written) into a :class:`Graph` of what it declares, left to right::

    sources → data-quality checks → feature views → feature service → training (search, gate)
      → model → champion/challenger split → champion, challenger → drift → action

:func:`mermaid` and :func:`dot` draw it (Mermaid for GitHub markdown, Graphviz DOT);
:func:`changed` names the nodes whose part of the spec differs between two resolved
specs, so that a pull-request report can highlight what an edit touches.

Each node stands for one part of the resolved document (``{"spec": ..., "env": ...}``,
:mod:`mlspec.inputs`), which :func:`changed` compares:

=========== ===================================================================================
node        its part
=========== ===================================================================================
source      its ``data.sources`` entry without ``checks``
checks      that entry's ``checks`` (a node only when there are checks)
view        its ``features.views`` entry and the entities it joins on
service     its ``features.services`` entry, ``features.feature_store`` and ``env.feast``
training    ``training`` (estimator, search grid, metric and gate, split, schedule, ...) and
            ``env.kubeflow``, ``env.registry``, ``env.storage.artifacts``
model       the spec name, ``serving.model_format``, ``env.storage.models``
split       ``serving`` without the two models (traffic, rollout, mirror, runtime, replicas,
            autoscaling, ...), ``env.namespace``, the environment's settings of the serving
            runtime and its serving policies
champion    ``serving.champion`` (uri, version); challenger: ``serving.challenger``
drift       ``drift`` without what the action node has
action      ``drift.action``, ``drift.cooldown``, ``drift.alert_webhook``
=========== ===================================================================================

So a traffic edit changes the split node alone, a grid edit the training node alone.

Ids are ``<kind>`` for the one-of-a-kind nodes and ``<kind>_<name>`` for the others; a
name that is not ``[A-Za-z0-9_]+`` is sanitised and suffixed with a hash of itself (spec
names are identifiers, so this happens only to documents that bypassed validation).

Pure and cheap: no I/O, and nothing heavier than the standard library is imported (the
spec models are already loaded by whoever resolved the spec).  Output is deterministic:
nodes and edges in spec order, ids derived from kind and name only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["Node", "Graph", "build", "changed", "mermaid", "dot", "CHANGED_CLASS", "CHANGED_STYLE"]

#: The Mermaid class (and DOT style) of highlighted nodes.
CHANGED_CLASS = "changed"
CHANGED_STYLE = "fill:#fff3b0,stroke:#d4a000,stroke-width:2px"
_DOT_CHANGED = 'style="filled,bold" fillcolor="#fff3b0" color="#d4a000" penwidth=2'

#: The longest a value quoted from the spec may be in a label (longer ones are clipped).
MAX_TEXT = 60
#: The most list lines (checks, aggregations) one label shows.
MAX_LINES = 6

_ID_OK = re.compile(r"[A-Za-z0-9_]+")
#: The environment policies about serving: part of the split node.
SERVING_POLICIES = ("max_challenger_traffic", "min_replicas", "require_resource_limits")


@dataclass(frozen=True)
class Node:
    id: str  # matches [A-Za-z0-9_]+: safe unquoted in Mermaid and DOT
    kind: str  # source, checks, view, service, training, model, split, champion, challenger, drift, action
    label: str  # plain text; lines separated by "\n" (escaped by mermaid()/dot())


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str, str], ...]  # (source id, destination id, label)


# --------------------------------------------------------------------------- building


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.parts: dict[str, Any] = {}
        self.edges: list[tuple[str, str, str]] = []
        self.by_key: dict[tuple[str, str | None], str] = {}

    def add(self, kind: str, name: str | None, lines: Iterable[str], part: Any) -> str:
        node_id = _unique_id(_node_id(kind, name), self.parts)
        self.nodes.append(Node(node_id, kind, "\n".join(lines)))
        self.parts[node_id] = part
        self.by_key.setdefault((kind, name), node_id)
        return node_id

    def get(self, kind: str, name: str | None) -> str | None:
        return self.by_key.get((kind, name))

    def edge(self, src: str | None, dst: str | None, label: str = "") -> None:
        if src is not None and dst is not None and (src, dst, label) not in self.edges:
            self.edges.append((src, dst, label))


def _node_id(kind: str, name: str | None) -> str:
    """``kind`` or ``kind_name``; a name that is not ``[A-Za-z0-9_]+`` is sanitised and
    suffixed with a hash of itself, so that two names never sanitise to one id."""
    if name is None:
        return kind
    name = str(name)
    if _ID_OK.fullmatch(name):
        return f"{kind}_{name}"
    clean = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{kind}_{clean}_{digest}" if clean else f"{kind}_{digest}"


def _unique_id(candidate: str, taken: dict[str, Any]) -> str:
    node_id, n = candidate, 2
    while node_id in taken:
        node_id, n = f"{candidate}_{n}", n + 1
    return node_id


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    """A value quoted from the spec, on one line and at most ``limit`` characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = format(value, ".15g")  # 0.7, 50000, 10000000 (not 1e+07)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(values: Iterable[Any], limit: int = MAX_TEXT) -> str:
    return _text(", ".join(_text(v) for v in values), limit)


def _clip_lines(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return lines[: MAX_LINES - 1] + [f"+{len(lines) - MAX_LINES + 1} more"]


def _num(value: Any) -> str:
    return _text(value) if value is not None else "?"


def _source_lines(src: dict) -> list[str]:
    kind = src.get("type")
    where = ""
    if kind == "file":
        where = f"file: {_text(src.get('path'))}"
    elif kind == "kafka":
        where = f"kafka topic: {_text(src.get('topic'))}"
    elif kind == "push":
        where = "push"
    else:
        table = src.get("table")
        what = _text(table) if table is not None else "query"
        where = f"{kind}: {what}"
    return [_text(src.get("name")), where]


def _check_line(check: dict) -> str:
    kind = check.get("type")
    if kind == "row_count":
        lo, hi = check.get("min"), check.get("max")
        if lo is not None and hi is not None:
            return f"{lo} <= rows <= {hi}"
        return f"rows >= {lo}" if lo is not None else f"rows <= {hi}"
    if kind == "not_null":
        return f"not null: {_join(check.get('columns') or [])}"
    if kind == "range":
        lo, hi, col = check.get("min"), check.get("max"), _text(check.get("column"))
        if lo is not None and hi is not None:
            return f"{_num(lo)} <= {col} <= {_num(hi)}"
        return f"{col} >= {_num(lo)}" if lo is not None else f"{col} <= {_num(hi)}"
    if kind == "allowed_values":
        return f"{_text(check.get('column'))}: one of {_join(check.get('values') or [])}"
    if kind == "unique":
        return f"unique: {_join(check.get('columns') or [])}"
    return _text(kind)


def _aggregation_name(agg: dict) -> str:
    return agg.get("name") or f"{agg.get('column')}_{agg.get('function')}_{agg.get('window')}"


def _view_lines(view: dict, entities: dict[str, dict]) -> list[str]:
    keys = []
    for name in view.get("entities") or []:
        join_key = (entities.get(name) or {}).get("join_key")
        keys.append(f"{name} ({join_key})" if join_key and join_key != name else name)
    lines = [_text(view.get("name")), f"entities: {_join(keys)}"]
    extra = []
    if view.get("ttl") not in (None, "0s"):
        extra.append(f"ttl {_text(view['ttl'])}")
    if view.get("online") is False:
        extra.append("offline only")
    if extra:
        lines.append(", ".join(extra))
    fields = [f.get("name") for f in view.get("fields") or []]
    body = [f"fields: {_join(fields)}"] if fields else []
    body += [f"{_text(_aggregation_name(a))} = {_text(a.get('function'))}({_text(a.get('column'))}, "
             f"{_text(a.get('window'))})" for a in view.get("aggregations") or []]
    return lines + _clip_lines(body)


def _grid_size(search: dict) -> int:
    return math.prod(len(v) if isinstance(v, list) else 1 for v in (search.get("parameters") or {}).values())


def _training_lines(training: dict) -> list[str]:
    lines = ["training"]
    if training.get("estimator"):
        lines.append(_text(str(training["estimator"]).rsplit(".", 1)[-1]))
    elif training.get("container"):
        lines.append(f"container: {_text((training['container'] or {}).get('image'))}")
    search = training.get("search") or {}
    parallel = training.get("parallelism") or 1
    if search.get("strategy") == "random":
        what = f"random search: {search.get('trials')} trials"
    else:
        size = _grid_size(search)
        what = f"grid: {size} candidate{'s' if size != 1 else ''}"
    lines.append(what + (f", {parallel} in parallel" if parallel > 1 else ""))
    metric = training.get("metric") or {}
    op = "<=" if metric.get("goal") == "minimize" else ">="
    lines.append(f"gate: {_text(metric.get('name'))} {op} {_num(metric.get('threshold'))}")
    split = training.get("split") or {}
    if split.get("strategy") == "time":
        held = f"from {_text(split['cutoff'])}" if split.get("cutoff") else f"latest {_num(split.get('test_size'))}"
        lines.append(f"split: time, test {held}")
    else:
        lines.append(f"split: random, test {_num(split.get('test_size'))}")
    schedule = training.get("schedule")
    lines.append(f"schedule: {_text(schedule)} ({_text(training.get('timezone'))})" if schedule else "schedule: manual")
    return lines


def _store_line(store: bool, env: dict | None) -> str:
    if not store:
        return "computed in the pipeline"
    online = (((env or {}).get("feast") or {}).get("online_store") or {}).get("type")
    return f"served by Feast ({_text(online)})" if online else "served by Feast"


def _platform(runtime: str, env: dict | None) -> str:
    if runtime == "kserve" and env and isinstance(env.get("kserve"), dict) and env["kserve"].get("deployment_mode"):
        return f"kserve ({env['kserve']['deployment_mode']})"
    return runtime


def _drift_lines(drift: dict) -> list[str]:
    test = f"{drift.get('method')} p < {_num(drift.get('p_value') if drift.get('p_value') is not None else 0.05)}"
    ref = drift.get("reference") or {}
    where = ref.get("source") or ref.get("path") or "the training frame"
    return ["drift", test, f"features: {_join(drift.get('features') or [])}",
            f"batches of {drift.get('batch_size')} served rows",
            f"reference: {_text(where)} ({ref.get('sample_size')} rows)"]


def _pick(mapping: dict | None, *keys: str) -> dict:
    mapping = mapping or {}
    return {k: mapping.get(k) for k in keys}


def _build(resolved) -> tuple[Graph, dict[str, Any]]:
    doc = resolved.document
    spec, env = doc["spec"], doc.get("env")
    b = _Builder()

    # sources and their checks; out[source] is what downstream edges leave from
    sources = (spec.get("data") or {}).get("sources") or []
    out: dict[str, str] = {}
    for src in sources:
        name = src.get("name")
        sid = b.add("source", name, _source_lines(src), {k: v for k, v in src.items() if k != "checks"})
        out[name] = sid
        checks = src.get("checks") or []
        if checks:
            cid = b.add("checks", name, [f"checks: {_text(name)}", *_clip_lines([_check_line(c) for c in checks])],
                        checks)
            b.edge(sid, cid)
            out[name] = cid
    for src in sources:  # a stream and its batch side: backfill from it (kafka), logged to it (push)
        batch = src.get("batch_source")
        if src.get("type") == "kafka" and batch:
            b.edge(out.get(batch), b.get("source", src.get("name")), "backfill")
        elif src.get("type") == "push" and batch:
            b.edge(b.get("source", src.get("name")), b.get("source", batch), "logged to")

    # features
    features = spec.get("features") or {}
    entities = {e.get("name"): e for e in features.get("entities") or []}
    for view in features.get("views") or []:
        part = {"view": view, "entities": [entities.get(e) for e in view.get("entities") or []]}
        vid = b.add("view", view.get("name"), _view_lines(view, entities), part)
        b.edge(out.get(view.get("source")), vid)
    for service in features.get("services") or []:
        refs = service.get("features") or []
        store = features.get("feature_store", True)
        wid = b.add("service", service.get("name"),
                    [f"feature service: {_text(service.get('name'))}",
                     f"{len(refs)} reference{'s' if len(refs) != 1 else ''}",
                     _store_line(store, env)],
                    {"service": service, "feature_store": store, "feast": (env or {}).get("feast") if store else None})
        picked: dict[str, list[str]] = {}
        for ref in refs:
            view_name, _, feature = str(ref).partition(":")
            picked.setdefault(view_name, []).append(feature)
        for view_name, chosen in picked.items():
            b.edge(b.get("view", view_name), wid, "" if "" in chosen else _join(chosen))

    # training → model
    training = spec.get("training") or {}
    tid = b.add("training", None, _training_lines(training),
                {"training": training, "kubeflow": (env or {}).get("kubeflow"), "registry": (env or {}).get("registry"),
                 "artifacts": ((env or {}).get("storage") or {}).get("artifacts")})
    b.edge(b.get("service", training.get("feature_service")), tid, "features")
    label = training.get("label") or {}
    b.edge(out.get(label.get("source")), tid, f"label: {_text(label.get('column'))}")
    serving = spec.get("serving") or {}
    models = ((env or {}).get("storage") or {}).get("models")
    model_lines = ["model", f"format: {_text(serving.get('model_format'))}"]
    if models:
        model_lines.append(f"registry: {_text(models.rstrip('/') + '/' + str(spec.get('name')))}")
    mid = b.add("model", None, model_lines,
                {"name": spec.get("name"), "model_format": serving.get("model_format"), "models": models})
    b.edge(tid, mid, "passes gate")

    # serving: the split, champion, challenger
    traffic = serving.get("traffic") or {}
    rollout = serving.get("rollout")
    challenger = serving.get("challenger")
    split_lines = ["champion/challenger", f"{_platform(str(serving.get('runtime')), env)}, {_text(rollout)}"]
    if challenger is None:
        split_lines.append("champion 100%")
    elif rollout == "shadow":
        split_lines.append(f"mirror {serving.get('mirror')}%")
    else:
        split_lines.append(f"{traffic.get('champion')}% / {traffic.get('challenger')}%")
    replicas = serving.get("replicas") or {}
    split_lines.append(f"replicas {replicas.get('min')}-{replicas.get('max')}")
    if env:
        split_lines.append(f"namespace: {_text(env.get('namespace'))}")
        cap = (env.get("policies") or {}).get("max_challenger_traffic")
        if cap is not None:
            split_lines.append(f"policy: challenger <= {cap}%")
    runtime = str(serving.get("runtime"))
    split_part = {"serving": {k: v for k, v in serving.items() if k not in ("champion", "challenger", "model_format")},
                  "env": None if env is None else {
                      "namespace": env.get("namespace"), "runtime": env.get(runtime),
                      "policies": _pick(env.get("policies"), *SERVING_POLICIES)}}
    pid = b.add("split", None, split_lines, split_part)
    b.edge(mid, pid, "serves")
    champion = serving.get("champion") or {}
    cid = b.add("champion", None, ["champion", _text(champion.get("uri")),
                                   *([f"version {_text(champion['version'])}"] if champion.get("version") else [])],
                champion)
    # the champion answers every request unless requests are split (shadow: mirrored, not split)
    b.edge(pid, cid, "100%" if challenger is None or rollout == "shadow" else f"{traffic.get('champion')}%")
    if challenger is not None:
        hid = b.add("challenger", None, ["challenger", _text(challenger.get("uri")),
                                         *([f"version {_text(challenger['version'])}"] if challenger.get("version") else [])],
                    challenger)
        b.edge(pid, hid, f"mirror {serving.get('mirror')}%" if rollout == "shadow" else f"{traffic.get('challenger')}%")

    # drift → action
    drift = spec.get("drift")
    if drift:
        did = b.add("drift", None, _drift_lines(drift),
                    {k: v for k, v in drift.items() if k not in ("action", "cooldown", "alert_webhook")})
        b.edge(pid, did, "served features")
        ref = drift.get("reference") or {}
        if ref.get("source"):
            b.edge(out.get(ref["source"]), did, "reference")
        elif not ref.get("path"):  # the detector is fitted on the model's training frame
            b.edge(tid, did, "reference")
        action = drift.get("action")
        lines = [_text(action), f"cooldown {_text(drift.get('cooldown'))}"]
        hook = drift.get("alert_webhook")
        if hook:
            lines.append(f"webhook: secret {_text(hook.get('secret'))}")
        aid = b.add("action", action, lines, _pick(drift, "action", "cooldown", "alert_webhook"))
        b.edge(did, aid, "on drift")
        if action == "retrain":
            b.edge(aid, tid, "retrain")
        elif action == "rollback":
            b.edge(aid, pid, "100% champion")
    return Graph(tuple(b.nodes), tuple(b.edges)), b.parts


def build(resolved) -> Graph:
    """The graph of one resolved spec (:class:`mlspec.project.Resolved`)."""
    return _build(resolved)[0]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def changed(old, new) -> set[str]:
    """Ids of the nodes of ``new``'s graph whose part of the spec differs from ``old``'s
    (nodes ``old`` has not got included); ``old`` None: every node; ``new`` None: none."""
    if new is None:
        return set()
    graph, parts = _build(new)
    if old is None:
        return {n.id for n in graph.nodes}
    old_graph, old_parts = _build(old)
    old_labels = {n.id: (n.kind, n.label) for n in old_graph.nodes}
    return {n.id for n in graph.nodes
            if n.id not in old_parts or _canonical(parts[n.id]) != _canonical(old_parts[n.id])
            or old_labels[n.id] != (n.kind, n.label)}


# --------------------------------------------------------------------------- drawing

# Mermaid: labels are quoted strings ("..."), in which Mermaid decodes #name; and #123;
# entities (mermaid utils encodeEntities/decodeEntities).  Written as entities: what could
# end the string (") or be read as HTML (& < >); # (an entity's start); { } (Mermaid
# takes %%{...}%% anywhere in the text for a directive, even inside a label); ` (a
# markdown string) and $ (KaTeX $$...$$); \ (the renderer breaks lines at a literal \n:
# createText's markdownToLines); | (the edge-label delimiter); control and non-ASCII
# characters; and a ':' not followed by a space: before parsing, Mermaid drops the last ';'
# of any line matching /style.*:\S*#.*;/ or /classDef.*:\S*#.*;/ ("style" may be in a node
# id, from a name), which would cut an entity in half.  Our own line breaks are <br/>.
_MERMAID_NAMED = {'"': "#quot;", "&": "#amp;", "<": "#lt;", ">": "#gt;"}
_MERMAID_NUMERIC = frozenset("#{}`$|\\")
_MERMAID_COLON = re.compile(r":(?! )")

_SHAPES = {  # Mermaid node shapes by kind (opening, closing); all take a quoted label
    "source": ("[(", ")]"),  # cylinder
    "checks": ("[/", "/]"),  # parallelogram
    "view": ("[", "]"),
    "service": ("[[", "]]"),  # subroutine
    "training": ("[", "]"),
    "model": ("([", "])"),  # stadium
    "split": ("{{", "}}"),  # hexagon
    "champion": ("[", "]"),
    "challenger": ("[", "]"),
    "drift": ("[", "]"),
    "action": ("([", "])"),
}


def _mermaid_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in _MERMAID_NAMED:
            out.append(_MERMAID_NAMED[ch])
        elif ch in _MERMAID_NUMERIC or not 32 <= ord(ch) <= 126:
            out.append(f"#{ord(ch)};")
        else:
            out.append(ch)
    return "".join(out)


def _mermaid_label(label: str) -> str:
    text = "<br/>".join(_mermaid_escape(line) for line in label.split("\n"))
    return '"' + _MERMAID_COLON.sub("#58;", text) + '"'


def _check_ids(graph: Graph) -> None:
    """Ids are written unquoted: refuse a hand-made graph whose ids are not safe."""
    for node_id in [n.id for n in graph.nodes] + [end for s, d, _ in graph.edges for end in (s, d)]:
        if not _ID_OK.fullmatch(node_id):
            raise ValueError(f"graph node id {node_id!r} is not [A-Za-z0-9_]+")


def mermaid(graph: Graph, highlight: Iterable[str] = ()) -> str:
    """The graph as a Mermaid flowchart (``flowchart LR`` …, no markdown fence);
    nodes in ``highlight`` get the class :data:`CHANGED_CLASS`."""
    _check_ids(graph)
    lines = ["flowchart LR"]
    for node in graph.nodes:
        opening, closing = _SHAPES.get(node.kind, ("[", "]"))
        lines.append(f"  {node.id}{opening}{_mermaid_label(node.label)}{closing}")
    for src, dst, label in graph.edges:
        arrow = f' -->|{_mermaid_label(label)}| ' if label else " --> "
        lines.append(f"  {src}{arrow}{dst}")
    wanted = set(highlight)
    marked = [n.id for n in graph.nodes if n.id in wanted]
    if marked:
        lines.append(f"  classDef {CHANGED_CLASS} {CHANGED_STYLE}")
        lines.append(f"  class {','.join(marked)} {CHANGED_CLASS}")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {
    "source": "cylinder", "checks": "note", "view": "box", "service": "component", "training": "box3d",
    "model": "ellipse", "split": "hexagon", "champion": "box", "challenger": "box", "drift": "box",
    "action": "octagon",
}


def _dot_string(text: str) -> str:
    """A DOT double-quoted string that Graphviz shows as ``text``: backslashes doubled (a
    label's \\N, \\G, \\l... are Graphviz escapes), quotes escaped, ``&`` as ``&amp;``
    (Graphviz decodes entities in every label), lines joined by ``\\n``, other control
    characters as spaces; non-ASCII kept (DOT's charset is UTF-8)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "&":
            out.append("&amp;")
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(" ")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def dot(graph: Graph, highlight: Iterable[str] = ()) -> str:
    """The graph in Graphviz DOT; nodes in ``highlight`` are filled and bold."""
    _check_ids(graph)
    marked = set(highlight)
    lines = ["digraph mlspec {", "  rankdir=LR;", '  node [fontname="Helvetica" fontsize=10 shape=box];',
             '  edge [fontname="Helvetica" fontsize=9];']
    for node in graph.nodes:
        attrs = f"label={_dot_string(node.label)} shape={_DOT_SHAPES.get(node.kind, 'box')}"
        if node.id in marked:
            attrs += f" class={CHANGED_CLASS} {_DOT_CHANGED}"
        lines.append(f"  {node.id} [{attrs}];")
    for src, dst, label in graph.edges:
        lines.append(f"  {src} -> {dst}" + (f" [label={_dot_string(label)}]" if label else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"
