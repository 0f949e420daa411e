"""Edit ``mlops.yaml`` in place, keeping every other byte.

The editing commands (``mlspec traffic / promote / rollback / challenger``) change a
few values of a spec -- the traffic split, the champion and challenger models -- either
in the spec as written or, for one environment, in its ``overrides.<env>`` block.  A
spec is a file people write and review: its comments, key order, quoting, blank lines,
indentation and flow-vs-block style are theirs, and a commit that moves a canary from
10% to 25% should change the one line that says so.

So an edit is a *text splice*, not a load-and-dump: the spec is parsed with the same
parser the loader uses (libyaml, through PyYAML's event API), which gives the exact
character span of every key and value; an edit replaces one value's span, inserts one
``key: value`` line (or ``, key: value`` inside a flow mapping), or removes one entry's
lines (with the comment lines directly above it, which are about it).  A YAML
round-trip library (ruamel.yaml) was measured against the heavily commented test specs
and rejected: it re-indents sequences and nested mappings, and normalises the spacing
after colons and inside flow mappings, i.e. it rewrites lines nobody asked to change.  Every splice is checked: the edited text is parsed again and
must hold exactly the data the edit meant, or the edit is an internal error (never a
silently wrong spec).

Everything here is pure (text in, text out), except :func:`apply`, the atomic write,
and :func:`check_candidate`, which validates a candidate text as ``mlspec validate``
would.  The semantics of each command -- which layer is written so that the
*effective* value for an environment is the one asked for -- are in the functions
:func:`traffic`, :func:`promote`, :func:`rollback` and :func:`challenger`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
import re
import secrets
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SpecError
from .loader import Document, load_text, resolve_plain

#: Test hook for the kill tests: with ``MLSPEC_EDIT_CRASH_AT=N`` in the environment, an
#: atomic write SIGKILLs its own process right after its N-th step (1: temporary file
#: created, 2: half the bytes written, 3: all written, 4: mode set and fsynced,
#: 5: renamed over the spec, 6: directory fsynced).  Unset, it costs one lookup per write.
CRASH_AT_ENV = "MLSPEC_EDIT_CRASH_AT"
#: Temporary files (the staged write, the candidate being validated) end with this.
TEMP_SUFFIX = ".mlspec-edit"


class _Remove:
    """The value that means "no such key" (written as a deletion, or as ``null`` in an
    override when a lower layer sets the key)."""

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Any = _Remove()
MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "MISSING"})()


class EditBug(RuntimeError):
    """A splice did not produce the data it meant to: a bug in mlspec, never written."""


# =============================================================================== index
# Where every node of the document is, as character offsets into the text.


@dataclass
class Node:
    kind: str  # "scalar", "map", "seq" or "alias"
    start: int
    end: int  # a block collection's end is where its last child ends (not the parser's mark)
    flow: bool = False  # a flow collection ({...} / [...])
    in_flow: bool = False  # inside a flow collection (so new text must be flow text)
    style: str = ""  # a scalar's style: "", "'", '"', "|", ">"
    value: str | None = None  # a scalar's text as parsed
    entries: list[Entry] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)

    def entry(self, key: Any) -> Entry | None:
        return next((e for e in self.entries if e.key == key), None)


@dataclass
class Entry:
    key: Any
    key_node: Node
    value: Node


def _parse(text: str) -> Node:
    import yaml
    from yaml import events as ev

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    events = iter(yaml.parse(text, Loader=loader))

    def node(event, in_flow: bool) -> Node:
        start = event.start_mark.index
        if isinstance(event, ev.AliasEvent):
            return Node("alias", start, event.end_mark.index, in_flow=in_flow)
        if isinstance(event, ev.ScalarEvent):
            return Node("scalar", start, event.end_mark.index, in_flow=in_flow, style=event.style or "",
                        value=event.value)
        flow = bool(event.flow_style)
        if isinstance(event, ev.SequenceStartEvent):
            out = Node("seq", start, start, flow=flow, in_flow=in_flow)
            for item in events:
                if isinstance(item, ev.SequenceEndEvent):
                    out.end = item.end_mark.index if flow else (out.items[-1].end if out.items else start)
                    return out
                out.items.append(node(item, in_flow or flow))
        out = Node("map", start, start, flow=flow, in_flow=in_flow)
        for item in events:
            if isinstance(item, ev.MappingEndEvent):
                out.end = item.end_mark.index if flow else (out.entries[-1].value.end if out.entries else start)
                return out
            key_node = node(item, in_flow or flow)
            if key_node.kind == "scalar":
                key = resolve_plain(key_node.value) if not key_node.style else key_node.value
                if not isinstance(key, (str, int, bool)) or key is None:
                    key = key_node.value
            else:
                key = object()  # a complex key: never matches a path
            out.entries.append(Entry(key, key_node, node(next(events), in_flow or flow)))
        raise EditBug("unterminated mapping")  # pragma: no cover - the parser checks this

    for event in events:
        if isinstance(event, ev.DocumentStartEvent):
            return node(next(events), False)
    raise EditBug("no document")  # pragma: no cover - load_text refuses empty files first


# =============================================================================== rendering

_PLAIN_OK = re.compile(r"^[A-Za-z0-9_./~+=$^()][^\x00-\x1f\x7f]*$")


_YAML11 = re.compile(r"^(?:y|n|yes|no|on|off|true|false|null|\.inf|\.nan)$", re.IGNORECASE)


def _is_plain_safe(value: str, flow: bool) -> bool:
    if not value or not _PLAIN_OK.match(value) or value != value.strip():
        return False
    if ": " in value or " #" in value or value.endswith(":") or "\t" in value:
        return False
    if flow and any(c in value for c in ",[]{}"):
        return False
    if value[0].isdigit() or _YAML11.match(value):
        return False  # YAML 1.1 tools would read 2026-01-02, 1:30, 0755 or yes as something else
    return resolve_plain(value) == value and isinstance(resolve_plain(value), str)


def _reads_back(value: str, flow: bool) -> bool:
    try:
        data = load_text(f"k: {{a: {value}}}" if flow else f"k: {value}").data["k"]
    except SpecError:
        return False
    return (data.get("a") if flow and isinstance(data, dict) else data) == value


def render_scalar(value: Any, *, flow: bool = False, style: str = "") -> str:
    """``value`` as a YAML 1.2 scalar that reads back as exactly ``value``, in ``style``
    (the style of the scalar it replaces) where that can say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str):
        raise EditBug(f"cannot write {type(value).__name__} values")
    if style == "'" and all(map(_printable, value)):
        return "'" + value.replace("'", "''") + "'"
    if style != '"' and _is_plain_safe(value, flow) and _reads_back(value, flow):
        return value
    # a JSON string is a YAML double-quoted scalar; YAML also wants DEL, C1 controls and
    # the Unicode line separators escaped
    return "".join(c if _printable(c) or c in "\t" else f"\\u{ord(c):04x}"
                   for c in json.dumps(value, ensure_ascii=False))


def _printable(c: str) -> bool:
    """A character YAML allows unescaped in a one-line scalar."""
    n = ord(c)
    return (0x20 <= n <= 0x7E or 0xA0 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or n >= 0x10000) \
        and c not in "\u2028\u2029"


def render_flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render_scalar(k, flow=True)}: {render_flow(v)}" for k, v in value.items()) + "}"
    return render_scalar(value, flow=True)


def _all_scalar(value: dict) -> bool:
    return all(not isinstance(v, (dict, list)) for v in value.values())


def _sections() -> set[str]:
    """The spec's top-level keys: written as block mappings even when they hold one scalar."""
    from . import models as m

    return {f.alias or n for n, f in m.Spec.model_fields.items()}


def render_block(key: Any, value: Any, col: int, step: int, nl: str) -> str:
    """``key: value`` as block lines at column ``col``, each ending in ``nl``; a mapping
    of scalars is written in flow style on one line, as the examples write them."""
    head = " " * col + render_scalar(key) + ":"
    if isinstance(value, dict) and value and (not _all_scalar(value) or key in _sections()):
        return head + nl + "".join(render_block(k, v, col + step, step, nl) for k, v in value.items())
    return head + " " + render_flow(value) + nl


# =============================================================================== splices


class Text:
    """A spec's text and the splices that change it, each checked by parsing again."""

    def __init__(self, text: str, file: str = "mlops.yaml"):
        self.text = text
        self.file = file
        self.nl = "\r\n" if "\r\n" in text else "\n"
        self._reload()

    def _reload(self) -> None:
        self.doc: Document = load_text(self.text, self.file)
        self.root = _parse(self.text)

    @property
    def data(self) -> Any:
        return self.doc.data

    # -- positions -------------------------------------------------------------------
    def _line_start(self, index: int) -> int:
        return self.text.rfind("\n", 0, index) + 1

    def _line_end(self, index: int) -> int:
        """The index just past the end of the line holding ``index - 1`` (its newline included)."""
        if index > 0 and self.text[index - 1] == "\n":
            return index
        found = self.text.find("\n", index)
        return len(self.text) if found < 0 else found + 1

    def _col(self, node: Node) -> int:
        return node.start - self._line_start(node.start)

    def _colon_end(self, entry: Entry) -> int:
        i = entry.key_node.end
        while i < len(self.text) and self.text[i] in " \t":
            i += 1
        if i >= len(self.text) or self.text[i] != ":":
            raise EditBug(f"no ':' after key {entry.key!r}")
        return i + 1

    def _step(self, mapping: Node) -> int:
        """The indentation step to use below ``mapping``: what its own block children
        use, else the most common step in the document, else 2."""
        def steps(node: Node) -> list[int]:
            found = []
            for e in node.entries:
                if e.value.kind == "map" and not e.value.flow and e.value.entries:
                    found.append(self._col(e.value.entries[0].key_node) - self._col(e.key_node))
            return [s for s in found if s > 0]

        own = steps(mapping)
        if own:
            return Counter(own).most_common(1)[0][0]
        every: list[int] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.kind == "map":
                if not node.flow:
                    every += steps(node)
                stack += [e.value for e in node.entries]
            elif node.kind == "seq":
                stack += node.items
        return Counter(every).most_common(1)[0][0] if every else 2

    def find(self, path: tuple) -> Node | None:
        node = self.root
        for part in path:
            if node.kind != "map":
                return None
            entry = node.entry(part)
            if entry is None:
                return None
            node = entry.value
        return node

    # -- checked replacement ---------------------------------------------------------
    def _splice(self, start: int, end: int, new: str, expect: Any) -> None:
        text = self.text[:start] + new + self.text[end:]
        try:
            data = load_text(text, self.file).data
        except SpecError as exc:
            raise EditBug(f"the edit made invalid YAML: {exc}") from None
        if not _same(data, expect):
            raise EditBug("the edited text does not hold the data the edit meant")
        self.text = text
        self._reload()

    def _guard(self, node: Node, path: tuple) -> None:
        if node.kind == "alias":
            raise SpecError(f"{'.'.join(map(str, path))} is an alias; mlspec edits only values written out",
                            *self._where(path), hint="write the value out instead of the alias", code="edit")

    def _where(self, path: tuple) -> tuple[str, int, int]:
        loc = self.doc.positions.key(path)
        return loc.file, loc.line, loc.col

    # -- the three splices -------------------------------------------------------------
    def set(self, path: tuple, value: Any) -> None:
        """Make the value at ``path`` ``value``, creating the mappings on the way."""
        expect = copy.deepcopy(self.data)
        _data_set(expect, path, value)
        node = self.root
        for depth, part in enumerate(path):
            self._guard(node, path[:depth])
            if node.kind != "map":
                # a scalar (``challenger: null``) where a mapping must go: replace it
                self._replace(path[:depth], _nest(path[depth:], value), expect)
                return
            entry = node.entry(part)
            if entry is None:
                self._insert(node, path[:depth], part, _nest(path[depth + 1:], value), expect)
                return
            node = entry.value
        self._guard(node, path)
        if isinstance(value, dict) and node.kind == "map":
            for key, sub in value.items():
                self.set(path + (key,), sub)
            return
        self._replace(path, value, expect)

    def delete(self, path: tuple) -> None:
        """Remove the entry at ``path``; a mapping it leaves empty goes too."""
        if not path or self.find(path) is None:
            return
        while len(path) > 1:
            parent = self.find(path[:-1])
            if parent is None or parent.kind != "map" or len(parent.entries) != 1:
                break
            path = path[:-1]
        parent = self.find(path[:-1])
        if parent is None or parent.kind != "map" or parent.entry(path[-1]) is None:
            return
        expect = copy.deepcopy(self.data)
        _data_delete(expect, path)
        entries = parent.entries
        index = next(i for i, e in enumerate(entries) if e.key == path[-1])
        entry = entries[index]
        self._guard(entry.value, path)
        if parent.flow:
            if index + 1 < len(entries):
                start, end = entry.key_node.start, entries[index + 1].key_node.start
            elif index > 0:
                start, end = entries[index - 1].value.end, entry.value.end
            else:
                start, end = entry.key_node.start, entry.value.end
        else:
            start = self._line_start(entry.key_node.start)
            if self.text[start:entry.key_node.start].strip():
                raise SpecError(f"cannot remove {'.'.join(map(str, path))}: it shares its line with other content",
                                *self._where(path), hint="put the key on a line of its own", code="edit")
            start = self._attached_comments(start, entry.key_node.start - start)
            end = self._line_end(entry.value.end)
        self._splice(start, end, "", expect)

    def _replace(self, path: tuple, value: Any, expect: Any) -> None:
        node = self.find(path)
        assert node is not None
        if node.in_flow or not path:
            new = render_flow(value) if isinstance(value, dict) else render_scalar(
                value, flow=node.in_flow, style=node.style if node.kind == "scalar" else "")
            self._splice(node.start, node.end, new, expect)
            return
        parent = self.find(path[:-1])
        entry = parent.entry(path[-1])
        colon = self._colon_end(entry)
        nested = isinstance(value, dict) and value and (not _all_scalar(value) or path[-1] in _sections())
        if nested:
            col = self._col(entry.key_node)
            step = self._step(parent)
            body = "".join(render_block(k, v, col + step, step, self.nl) for k, v in value.items())
            line_end = self._line_end(node.end)
            rest = self.text[node.end:line_end]
            if rest.strip().startswith("#") and "\n" in rest:  # ``key: null  # why``: the comment stays put
                self._splice(colon, line_end, rest + body, expect)
            else:
                self._splice(colon, node.end, self.nl + body.removesuffix(self.nl), expect)
        elif node.kind in ("map", "seq") and not node.flow or node.start == node.end:
            self._splice(colon, node.end, " " + render_flow(value), expect)
        else:
            new = render_flow(value) if isinstance(value, dict) else render_scalar(
                value, style=node.style if node.kind == "scalar" and node.style in ("'", '"', "") else "")
            end, new = self._keep_comment_column(node, new)
            self._splice(node.start, end, new, expect)

    def _keep_comment_column(self, node: Node, new: str) -> tuple[int, str]:
        """A replacement of another length keeps an aligned comment after it where it
        was, as long as one space stays between them: (end of the span, new text)."""
        gap = re.match(r"( +)#", self.text[node.end:self._line_end(node.end)])
        if not gap or "\n" in self.text[node.start:node.end]:
            return node.end, new
        spaces = len(gap.group(1))
        keep = max(1, spaces - (len(new) - (node.end - node.start)))
        return node.end + spaces, new + " " * keep

    def _insert(self, mapping: Node, path: tuple, key: Any, value: Any, expect: Any) -> None:
        order = _key_order(path)
        after = before = None
        if key in order:  # after the last key the model puts before it, else before the first it puts after
            rank = order.index(key)
            earlier = [e for e in mapping.entries if e.key in order and order.index(e.key) < rank]
            later = [e for e in mapping.entries if e.key in order and order.index(e.key) > rank]
            after = earlier[-1] if earlier else None
            before = later[0] if later and after is None else None
        if after is None and before is None and mapping.entries:
            after = mapping.entries[-1]
        if before is not None:
            if mapping.flow:
                self._splice(before.key_node.start, before.key_node.start,
                             f"{render_scalar(key, flow=True)}: {render_flow(value)}, ", expect)
                return
            line = self._line_start(before.key_node.start)
            if self.text[line:before.key_node.start].strip():  # ``- key:`` opens a sequence item
                after = mapping.entries[-1]
            else:
                at = self._attached_comments(line, before.key_node.start - line)
                col = before.key_node.start - line
                self._splice(at, at, render_block(key, value, col, self._step(mapping), self.nl), expect)
                return
        if mapping.flow:
            if after is None:  # {} -> {key: value}
                self._splice(mapping.end - 1, mapping.end - 1, f"{render_scalar(key, flow=True)}: {render_flow(value)}",
                             expect)
            else:
                self._splice(after.value.end, after.value.end,
                             f", {render_scalar(key, flow=True)}: {render_flow(value)}", expect)
            return
        col = self._col(mapping.entries[0].key_node)
        at = self._line_end(after.value.end)
        lead = "" if at == 0 or self.text[at - 1] == "\n" else self.nl
        if not path and after is mapping.entries[-1] and self._blank_separated():
            lead += self.nl  # top-level sections are separated by blank lines
        self._splice(at, at, lead + render_block(key, value, col, self._step(mapping), self.nl), expect)

    def _attached_comments(self, start: int, col: int) -> int:
        """Where the comment lines directly above a key's line (no blank line between,
        same indentation) begin: they are about the key, and go with it."""
        while start > 0:
            above = self._line_start(start - 1)
            line = self.text[above:start].rstrip("\r\n")
            if not line.lstrip().startswith("#") or len(line) - len(line.lstrip(" ")) != col:
                break
            start = above
        return start

    def _blank_separated(self) -> bool:
        entries = self.root.entries
        if len(entries) < 2:
            return False
        start = self._line_start(entries[-1].key_node.start)
        return self.text[:start].endswith(("\n\n", "\r\n\r\n"))


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def _nest(path: tuple, value: Any) -> Any:
    for part in reversed(path):
        value = {part: value}
    return value


def _data_set(data: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    if isinstance(value, dict) and isinstance(data.get(path[-1]), dict):
        for key, sub in value.items():
            _data_set(data[path[-1]], (key,), sub)
    else:
        data[path[-1]] = copy.deepcopy(value)


def _data_delete(data: Any, path: tuple) -> None:
    for part in path[:-1]:
        data = data[part]
    data.pop(path[-1], None)


def _key_order(path: tuple) -> list:
    """The model's field order for the mapping at ``path`` (where a new key is put)."""
    from . import models as m

    def names(model) -> list[str]:
        return [f.alias or n for n, f in model.model_fields.items()]

    tail = path[2:] if path[:1] == ("overrides",) and len(path) >= 2 else path
    if path[:1] == ("overrides",) and len(path) < 2:
        return []
    if tail == ():
        return names(m.Spec)
    if tail == ("serving",):
        return names(m.Serving)
    if tail == ("serving", "traffic"):
        return names(m.Traffic)
    if tail in (("serving", "champion"), ("serving", "challenger")):
        return names(m.ModelRef)
    return []


# =============================================================================== layers


@dataclass(frozen=True)
class Layer:
    """An environment as the editing commands see it: its file's ``overrides``."""

    name: str
    overrides: dict
    file: str  # the environment file, as the user sees it


def merge(base: Any, overlay: Any) -> Any:
    """The environments' merge on plain data: mappings key by key, ``null`` removes,
    anything else replaces (see :func:`mlspec.environments.merge`)."""
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def get(data: Any, path: tuple) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


def _traffic_of(serving: Any) -> tuple[int, int]:
    traffic = get(serving, ("traffic",))
    traffic = traffic if isinstance(traffic, dict) else {}
    return traffic.get("champion", 100), traffic.get("challenger", 0)


@dataclass
class Result:
    """What an edit did: the new text, a one-line summary, and notes for the user."""

    old: str
    new: str
    summary: str
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.old != self.new


class _Edit:
    """One command's edit of one spec text, in terms of effective values."""

    def __init__(self, text: str, file: str, env: str | None, layers: dict[str, Layer]):
        self.t = Text(text, file)
        self.old = text
        self.file = file
        self.env = env
        self.layers = layers
        self.notes: list[str] = []
        if not isinstance(self.t.data, dict):
            raise SpecError("the spec is not a mapping", file, 1, 1, code="edit")

    # -- the layers ----------------------------------------------------------------------
    def base(self) -> dict:
        return {k: v for k, v in self.t.data.items() if k != "overrides"}

    def lower(self, env: str) -> dict:
        layer = self.layers.get(env)
        return merge(self.base(), layer.overrides if layer else {})

    def spec_override(self, env: str) -> Any:
        return get(self.t.data, ("overrides", env))

    def resolved(self, env: str | None) -> dict:
        if env is None:
            return self.base()
        override = self.spec_override(env)
        return merge(self.lower(env), override if isinstance(override, dict) else {})

    def serving(self, env: str | None) -> dict:
        found = get(self.resolved(env), ("serving",))
        return found if isinstance(found, dict) else {}

    def where_set(self, env: str, path: tuple) -> str:
        """Which layer gives ``env`` its value at ``path``, for a note."""
        override = self.spec_override(env)
        for n in range(len(path), 0, -1):
            if get(override, path[:n]) is not MISSING:
                loc = self.t.doc.positions.key(("overrides", env) + path[:n])
                return f"overrides.{env}.{'.'.join(path[:n])} at {loc}"
        layer = self.layers.get(env)
        return f"the overrides of {layer.file}" if layer else "an environment override"

    # -- effective writes ------------------------------------------------------------------
    def set(self, path: tuple, value: Any, env: str | None = None) -> None:
        """Make the effective value at ``path`` (below the spec's root) ``value`` for
        ``env``, or in the spec as written when ``env`` is None; REMOVE removes it."""
        if env is None:
            current = get(self.base(), path)
            if value is REMOVE:
                if current is not MISSING:
                    self.t.delete(path)
                    if get(self.base(), path) is not MISSING:  # it came from a merge key (<<: *anchor)
                        raise self.located(f"cannot remove {'.'.join(path)}: it is not written out here", path,
                                           "write the mapping out instead of merging it with '<<'")
            elif not _same(current, value):
                self.t.set(path, value)
            return
        full = ("overrides", env) + path
        if value is REMOVE:
            if get(self.resolved(env), path) is MISSING:
                return
            if get(self.t.data, full) is not MISSING and get(self.lower(env), path) is MISSING:
                self.t.delete(full)  # only the override set it: take it out
            else:
                self.t.set(full, None)  # a lower layer sets it: null removes it here
        elif not _same(get(self.resolved(env), path), value):
            self.t.set(full, value)
        got = get(self.resolved(env), path)
        if (got is not MISSING) if value is REMOVE else not _same(got, value):
            raise EditBug(f"{'.'.join(path)} did not come out as meant for {env}")

    def set_traffic(self, champion: int, challenger: int, env: str | None = None) -> bool:
        """Set the split; in an override both shares are written, so the resolved split
        is exactly this one whatever the lower layers say.  True if anything changed."""
        if _traffic_of(self.serving(env)) == (champion, challenger):
            return False
        prefix = () if env is None else ("overrides", env)
        for key, share in (("champion", champion), ("challenger", challenger)):
            if not _same(get(self.t.data, prefix + ("serving", "traffic", key)), share):
                self.t.set(prefix + ("serving", "traffic", key), share)
        if _traffic_of(self.serving(env)) != (champion, challenger):
            raise EditBug("the traffic split did not come out as meant")
        return True

    def rollout(self, env: str | None) -> str:
        return self.serving(env).get("rollout", "canary")

    def located(self, message: str, path: tuple, hint: str | None = None) -> SpecError:
        loc = self.t.doc.positions.key(path) if get(self.t.data, path) is not MISSING else \
            self.t.doc.positions.key(path[:1])
        return SpecError(message, loc.file, loc.line, loc.col, hint=hint, code="edit")

    def serving_path(self, env: str | None, *rest: str) -> tuple:
        """Where an error about ``serving.<rest>`` for ``env`` is best located."""
        if env is not None:
            for n in range(len(rest), -1, -1):
                path = ("overrides", env, "serving") + rest[:n]
                if get(self.t.data, path) is not MISSING:
                    return path
        for n in range(len(rest), -1, -1):
            path = ("serving",) + rest[:n]
            if get(self.t.data, path) is not MISSING:
                return path
        return ("serving",)

    def envs_other_than(self, env: str | None) -> list[str]:
        return [name for name in sorted(self.layers) if name != env]

    def result(self, summary: str) -> Result:
        return Result(self.old, self.t.text, summary, self.notes)

    def note_shadowed(self, paths: list[tuple]) -> None:
        """After an edit of the spec as written: say which environments do not see it."""
        base = self.base()
        for env in sorted(self.layers):
            resolved = self.resolved(env)
            for path in paths:
                mine, theirs = get(base, path), get(resolved, path)
                if not _same(mine, theirs):
                    shown = "removed" if theirs is MISSING else render_flow(theirs)
                    self.notes.append(f"{env} keeps {'.'.join(path)} {shown} (set by {self.where_set(env, path)}; "
                                      f"use --env {env} to change it there)")
                    break


def _where(env: str | None) -> str:
    return f" in {env}" if env else ""


def _has_mirror() -> bool:
    from . import models as m

    return "mirror" in m.Serving.model_fields


def _share(e: _Edit, share: int, env: str | None) -> str:
    """Send ``share`` percent to the challenger; a shadow rollout mirrors that share
    instead (its challenger answers nobody).  Returns a summary."""
    if e.rollout(env) == "shadow":
        path = e.serving_path(env, "rollout")
        if not _has_mirror():
            raise e.located("a shadow rollout sends every request to the champion and mirrors them to the "
                            "challenger; it has no share to set", path, "use rollout: canary or ab for a split", )
        if share < 1:
            raise e.located("a shadow rollout mirrors 1-100% of requests to its challenger; it cannot mirror 0%",
                            path, "change rollout to stop mirroring")
        e.set(("serving", "mirror"), share, env)
        return f"mirror {share}% of requests to the challenger{_where(env)}"
    if share > 0 and not isinstance(e.serving(env).get("challenger"), dict):
        raise _no_challenger(e, env, f"send {share}% to")
    e.set_traffic(100 - share, share, env)
    return f"champion {100 - share}%, challenger {share}%{_where(env)}"


# =============================================================================== commands


def traffic(text: str, share: int, env: str | None, layers: dict[str, Layer], file: str = "mlops.yaml") -> Result:
    """``mlspec traffic --challenger N``: the champion gets 100-N.

    With ``env``, both shares are written in ``overrides.<env>.serving.traffic``; without,
    in the spec as written, and environments whose overrides set their own split keep
    it (each is named in a note)."""
    e = _Edit(text, file, env, layers)
    summary = _share(e, share, env)
    if env is None:
        e.note_shadowed([("serving", "mirror")] if e.rollout(None) == "shadow" else [("serving", "traffic")])
    return e.result(summary)


def _no_challenger(e: _Edit, env: str | None, verb: str) -> SpecError:
    hint = None
    if env is None:
        having = [n for n in sorted(e.layers) if isinstance(e.serving(n).get("challenger"), dict)]
        if having:
            hint = f"{', '.join(having)} {'has' if len(having) == 1 else 'have'} one: use --env {having[0]}"
    return e.located(f"there is no challenger to {verb}{_where(env)}", e.serving_path(env, "challenger"),
                     hint or "put one in with `mlspec challenger SPEC --uri URI`")


def promote(text: str, env: str | None, layers: dict[str, Layer], file: str = "mlops.yaml") -> Result:
    """``mlspec promote``: the challenger becomes the champion (uri and version) at 100%,
    and the challenger is removed.

    With ``env``, only that environment changes: its override gets the champion, the
    split and ``challenger: null`` (when the challenger comes from a lower layer) --
    so promoting a challenger defined in the spec as written, for prod, serves it in
    prod and leaves the canary running everywhere else.  Without ``env``, the spec as
    written changes, and an environment left sending traffic to a challenger that no
    longer exists is set to 100% champion in its override."""
    e = _Edit(text, file, env, layers)
    challenger = e.serving(env).get("challenger")
    if not isinstance(challenger, dict) or "uri" not in challenger:
        raise _no_challenger(e, env, "promote")
    if e.rollout(env) == "shadow":
        raise e.located(f"promoting would leave the shadow rollout{_where(env)} without a challenger to mirror to",
                        e.serving_path(env, "rollout"),
                        "change rollout (canary or ab) first, or replace the challenger with `mlspec challenger`")
    e.set(("serving", "champion", "uri"), challenger["uri"], env)
    e.set(("serving", "champion", "version"), challenger.get("version", REMOVE), env)
    e.set_traffic(100, 0, env)
    e.set(("serving", "challenger"), REMOVE, env)
    name = challenger["uri"] + (f" (version {challenger['version']})" if challenger.get("version") is not None else "")
    if env is None:
        _fix_orphaned_traffic(e)
        for other in sorted(layers):
            if not _same(e.serving(other).get("champion"), e.serving(None).get("champion")):
                e.notes.append(f"{other} keeps its own champion, set by {e.where_set(other, ('serving', 'champion'))} "
                               f"(use --env {other} to promote there)")
    else:
        still = [n for n in e.envs_other_than(env) if _same(e.serving(n).get("challenger"), challenger)]
        if still:
            e.notes.append(f"{', '.join(still)} still run{'s' if len(still) == 1 else ''} {challenger['uri']} as the "
                           "challenger (promote without --env to promote it everywhere)")
    return e.result(f"champion is now {name}{_where(env)}, at 100%")


def _fix_orphaned_traffic(e: _Edit) -> None:
    """After the spec as written lost its challenger: an environment still sending a
    share to a challenger it no longer has gets 100% champion in its override."""
    for env in sorted(e.layers):
        serving = e.serving(env)
        if not isinstance(serving.get("challenger"), dict) and _traffic_of(serving)[1] > 0:
            before = _traffic_of(serving)
            e.set_traffic(100, 0, env)
            e.notes.append(f"also set {env} to 100% champion: it sent {before[1]}% to the challenger")


def rollback(text: str, env: str | None, drop_challenger: bool, layers: dict[str, Layer],
             file: str = "mlops.yaml") -> Result:
    """``mlspec rollback``: 100% of traffic to the champion.

    With ``env``, in that environment's override; without, in the spec as written *and*
    in every environment that sends a share to the challenger through an override (a
    rollback that left one environment on the bad model would not be one).  With
    ``drop_challenger`` the challenger is removed as well."""
    e = _Edit(text, file, env, layers)
    envs = [env] if env is not None else [None, *sorted(layers)]
    if drop_challenger:
        shadows = [n for n in envs if e.rollout(n) == "shadow" and isinstance(e.serving(n).get("challenger"), dict)]
        if shadows:
            raise e.located(f"a shadow rollout{_where(shadows[0])} mirrors to its challenger; it cannot be dropped",
                            e.serving_path(shadows[0], "rollout"), "change rollout (canary or ab) first")
    for name in envs:
        before = _traffic_of(e.serving(name))
        if e.set_traffic(100, 0, name) and env is None and name is not None:
            e.notes.append(f"also set {name} to 100% champion: its override sent {before[1]}% to the challenger")
        if drop_challenger:
            had = isinstance(e.serving(name).get("challenger"), dict)
            e.set(("serving", "challenger"), REMOVE, name)
            if had and env is None and name is not None:
                e.notes.append(f"also removed {name}'s own challenger")
    return e.result(f"100% to the champion{_where(env)}" + ("; challenger removed" if drop_challenger else ""))


def challenger(text: str, uri: str, version: str | None, share: int | None, env: str | None,
               layers: dict[str, Layer], file: str = "mlops.yaml") -> Result:
    """``mlspec challenger --uri URI [--version V] [--traffic N]``: a newly registered
    model becomes the challenger (an old challenger's version does not stay behind)."""
    e = _Edit(text, file, env, layers)
    e.set(("serving", "challenger", "uri"), uri, env)
    e.set(("serving", "challenger", "version"), REMOVE if version is None else version, env)
    summary = f"challenger is now {uri}" + (f" (version {version})" if version is not None else "") + _where(env)
    if share is not None:
        summary += "; " + _share(e, share, env).removesuffix(_where(env))
    if env is None:
        paths = [("serving", "challenger")]
        if share is not None:
            paths.append(("serving", "mirror") if e.rollout(None) == "shadow" else ("serving", "traffic"))
        e.note_shadowed(paths)
    return e.result(summary)


# =============================================================================== output


def unified_diff(old: str, new: str, name: str) -> str:
    """The change as a unified diff (``git diff`` style headers)."""
    def lines(text: str) -> list[str]:
        out = text.splitlines(keepends=True)
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n\\ No newline at end of file\n"
        return out

    return "".join(difflib.unified_diff(lines(old), lines(new), f"a/{name}", f"b/{name}"))


def line_map(new: str, old: str) -> Callable[[int, int], tuple[int, int]]:
    """Line numbers of ``new`` (an edit that was not written) to the nearest line of
    ``old``, the file on disk, so that a refusal points at lines the user can see."""
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    opcodes = matcher.get_opcodes()

    def to_old(line: int, col: int) -> tuple[int, int]:
        j = line - 1
        for tag, i1, i2, j1, j2 in opcodes:
            if j1 <= j < j2:
                if tag == "equal":
                    return i1 + (j - j1) + 1, col
                if tag == "replace":
                    return i1 + min(j - j1, i2 - i1 - 1) + 1, col
                return max(i1, 1), 1  # an inserted line: the line it would follow
        return max(1, len(old.splitlines())), 1

    return to_old


# =============================================================================== I/O


def _crash_hook() -> Callable[[], None]:
    from .writer import crash_hook

    return crash_hook(CRASH_AT_ENV)


def _temp_name(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}{TEMP_SUFFIX}")


def clean_stale(folder: Path) -> None:
    """Remove temporary files that an edit killed before it could left behind (their
    name carries the pid of a process that no longer runs)."""
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        parts = temp.name.split(".")
        pid = int(parts[-4]) if len(parts) >= 5 and parts[-4].isdigit() else None
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            temp.unlink(missing_ok=True)
        except OSError:
            pass


def _io_error(path: Path, exc: OSError) -> SpecError:
    from .loader import display_path

    shown = display_path(path)
    return SpecError(f"cannot write beside {shown}: {exc.strerror or exc}", shown, 1, 1,
                     hint="an edit writes a temporary file in the spec's folder; check its permissions", code="io")


def apply(path: Path, expected: bytes, new_text: str) -> None:
    """Replace the spec at ``path`` by ``new_text``, atomically: the bytes go to a
    temporary file in the same folder, which is fsynced, given the spec's mode, and
    renamed over it (a crash leaves the old file or the new one, never a mix).  The
    spec must still hold ``expected`` (what the edit was computed from)."""
    path = path.resolve()  # a symlinked spec: replace the file it points to
    step = _crash_hook()
    mode = stat.S_IMODE(os.stat(path).st_mode)
    data = new_text.encode("utf-8")
    temp = _temp_name(path, "write")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _io_error(path, exc) from None
    try:
        step()
        try:
            half = len(data) // 2
            for chunk in (data[:half], data[half:]):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                step()
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        step()
        if path.read_bytes() != expected:
            raise SpecError(f"{path.name} changed while it was being edited; nothing written", str(path), 1, 1,
                            hint="run the command again", code="edit-race")
        os.replace(temp, path)
        step()
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    step()


def check_candidate(spec_path: Path, old_text: str, new_text: str, env_names: list[str] | None,
                    env_dir: Path | None) -> list[SpecError]:
    """Validate ``new_text`` as ``mlspec validate`` would validate it in place of the
    spec at ``spec_path``, for ``env_names`` (None: every environment).

    It is written to a temporary file beside the spec (so that data files, the
    environments and the project root resolve as for the spec itself), resolved, and
    deleted.  Errors in it are reported against the spec, at the lines of the file on
    disk nearest to where the edit would have put them."""
    from .loader import display_path
    from .project import resolve

    temp = _temp_name(spec_path, "check")
    try:
        temp.write_text(new_text, encoding="utf-8")
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _io_error(spec_path, exc) from None
    try:
        result = resolve(temp, env_names, env_dir)
    finally:
        temp.unlink(missing_ok=True)
    shown, real = display_path(temp), display_path(spec_path)
    to_old = line_map(new_text, old_text)
    errors = []
    for err in result.errors:
        if err.file == shown:
            line, col = to_old(err.line, err.col)
            err = dataclasses.replace(err, file=real, line=line, col=col)
        errors.append(dataclasses.replace(err, message=err.message.replace(shown, real).replace(temp.name, spec_path.name),
                                          hint=err.hint.replace(shown, real).replace(temp.name, spec_path.name)
                                          if err.hint else err.hint))
    return errors
