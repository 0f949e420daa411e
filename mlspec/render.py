"""The one deterministic serializer: artefacts in, bytes out.

Everything mlspec writes goes through :func:`render`, so that the same spec gives the
same bytes on every machine, in every process, under every ``PYTHONHASHSEED``:

* YAML is emitted by PyYAML (libyaml's emitter when available) with a fixed key order
  (:func:`ordered_keys`), block style, no anchors or aliases, no Python tags, no line
  folding, multi-line strings as ``|`` block literals, and every string quoted when a
  YAML reader could take it for something else (``"on"``, ``"0755"``, ``"1e3"``,
  ``"2024-01-01"``, ``"null"``, ``""``, ...).  ``yaml.safe_load(dump_yaml(x)) == x``
  holds for all plain data except NaN (which is never equal to itself).
* JSON is ``json.dumps`` with sorted keys and two-space indentation.
* Only plain data is accepted: dict, list, tuple, str, int, float, bool and None.
  Subclasses of dict, list and str (``OrderedDict``, ``StrEnum`` members, ...) are
  converted to the plain type; anything else raises :class:`TypeError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from mlspec.artefact import Artefact

__all__ = [
    "dump_json",
    "dump_yaml",
    "dump_yaml_documents",
    "header_lines",
    "ordered_keys",
    "render",
    "sha256_hex",
    "to_plain",
]

#: Leading keys of a mapping that looks like a Kubernetes object (has apiVersion and kind).
KUBERNETES_OBJECT_KEYS = ("apiVersion", "kind", "metadata", "spec")
#: Leading keys of such an object's ``metadata`` mapping.
KUBERNETES_METADATA_KEYS = ("name", "namespace", "labels", "annotations")
#: Leading keys of every other mapping.
DEFAULT_LEADING_KEYS = ("name",)

_STR_TAG = "tag:yaml.org,2002:str"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
#: No line folding: PyYAML and libyaml both need an int here, and neither folds below it.
_WIDTH = 1 << 30
_KEY_TYPES = (str, int, float, bool, type(None))
_TYPE_RANK = {bool: 0, int: 1, float: 2, str: 3, type(None): 4}


# --------------------------------------------------------------------------- plain data


def ordered_keys(mapping: Mapping[Any, Any], *, metadata: bool = False) -> list[Any]:
    """The order in which the keys of ``mapping`` are emitted.

    * ``metadata=True`` (the ``metadata`` of a Kubernetes object): ``name, namespace,
      labels, annotations`` first, in that order;
    * a mapping with both ``apiVersion`` and ``kind`` (a Kubernetes object):
      ``apiVersion, kind, metadata, spec`` first;
    * any other mapping: ``name`` first.

    Leading keys that are absent are skipped.  The remaining keys follow, sorted by
    ``str(key)`` (ties between keys of different types, such as ``1`` and ``"1"``,
    are broken by type so that the order never depends on insertion order).
    """
    if metadata:
        leading: tuple[str, ...] = KUBERNETES_METADATA_KEYS
    elif "apiVersion" in mapping and "kind" in mapping:
        leading = KUBERNETES_OBJECT_KEYS
    else:
        leading = DEFAULT_LEADING_KEYS
    first = [key for key in leading if key in mapping]
    rest = [key for key in mapping if not (isinstance(key, str) and key in leading)]
    rest.sort(key=lambda key: (str(key), _TYPE_RANK.get(type(key), len(_TYPE_RANK))))
    return first + rest


def to_plain(obj: Any) -> Any:
    """A copy of ``obj`` made of plain dicts (in :func:`ordered_keys` order), lists,
    str, int, float, bool and None.

    Tuples become lists; subclasses of dict, list and str become the plain type.
    Raises :class:`TypeError` naming the offending value's location for anything else
    (sets, bytes, numpy scalars, ``IntEnum`` members, objects, ...), for mapping keys
    that are not scalars, and for cyclic structures.
    """
    return _to_plain(obj, "$", metadata=False, active=set())


def _to_plain(obj: Any, where: str, *, metadata: bool, active: set[int]) -> Any:
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return obj
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, (dict, list)) or kind is tuple:
        if id(obj) in active:
            raise TypeError(f"cannot render a cyclic structure: {where} contains itself")
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                return _dict_to_plain(obj, where, metadata=metadata, active=active)
            return [
                _to_plain(item, f"{where}[{index}]", metadata=False, active=active)
                for index, item in enumerate(obj)
            ]
        finally:
            active.discard(id(obj))
    raise TypeError(
        f"cannot render {kind.__module__}.{kind.__qualname__} at {where}: only dict, list, "
        "tuple, str, int, float, bool and None are allowed (convert it first, e.g. with "
        "int(), float(), str() or list())"
    )


def _dict_to_plain(obj: dict[Any, Any], where: str, *, metadata: bool, active: set[int]) -> dict[Any, Any]:
    keys: dict[Any, Any] = {}
    for key in obj:
        if isinstance(key, str):
            keys[str.__str__(key)] = key
        elif type(key) in _KEY_TYPES:
            keys[key] = key
        else:
            raise TypeError(
                f"cannot render a mapping key of type {type(key).__qualname__} at {where}: "
                "keys must be str, int, float, bool or None"
            )
    is_object = "apiVersion" in keys and "kind" in keys
    return {
        key: _to_plain(
            obj[keys[key]],
            f"{where}.{key}",
            metadata=is_object and key == "metadata",
            active=active,
        )
        for key in ordered_keys(keys, metadata=metadata)
    }


# --------------------------------------------------------------------------------- YAML
#
# Two emitters: libyaml's (fast, when PyYAML was built with it) and PyYAML's pure-Python
# one (always there).  They agree byte for byte on everything except a few corner
# cases (see ``_libyaml_agrees``), and those documents always go through the Python
# emitter, so output never depends on whether libyaml is installed.


class _PortableDumper(yaml.SafeDumper):
    """PyYAML's pure-Python safe emitter, without anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_FastDumper: type[yaml.CSafeDumper] | None = None
if hasattr(yaml, "CSafeDumper"):

    class _FastDumper(yaml.CSafeDumper):  # type: ignore[no-redef]
        """libyaml's safe emitter, without anchors or aliases."""

        def ignore_aliases(self, data: Any) -> bool:
            return True


# Strings that YAML 1.1 (PyYAML, go-yaml v2) reads as something else are already
# quoted by PyYAML's resolver.  This pattern adds what YAML 1.2 readers and Go's
# strconv-based resolver take for numbers, e.g. "1e3", "1.5e3", "0o17", "0x_1F".
# Dumping consults the resolver only to decide whether a str needs quotes, so this
# never changes how real numbers are written.
_NUMBER_LIKE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9_]+)?
        |[-+]?0[xXoObB][0-9a-fA-F_]+(?:\.[0-9a-fA-F_]*)?(?:[pP][-+]?[0-9_]+)?)$""",
    re.X,
)


def _literal_ok(text: str) -> bool:
    """Whether a multi-line str survives a ``|``/``|-`` block literal exactly.

    Not for: trailing spaces on a line (block scalars cannot keep them), control
    characters or tabs, line breaks other than ``\\n`` (``\\r``, U+0085, U+2028,
    U+2029), a BOM, or several trailing newlines (a ``|+`` literal would end the file
    with blank lines that editors and pre-commit hooks strip).  Such strings are
    written double-quoted instead.
    """
    if text == "\n" or text.endswith("\n\n") or text.endswith(" ") or " \n" in text:
        return False
    return all(
        ch == "\n"
        or " " <= ch <= "~"
        or ("\xa0" <= ch <= "\ud7ff" and ch not in "\u2028\u2029")
        or ("\ue000" <= ch <= "\ufffd" and ch != "\ufeff")
        or "\U00010000" <= ch < "\U0010ffff"
        for ch in text
    )


#: YAML line breaks.  Outside block literals, only double quotes keep them intact
#: (PyYAML's single-quoted style turns U+0085 into a folded line break).
_LINE_BREAKS = re.compile("[\n\r\x85\u2028\u2029]")


def _represent_str(dumper: yaml.BaseDumper, data: str) -> yaml.ScalarNode:
    style = None
    if _LINE_BREAKS.search(data):
        style = "|" if "\n" in data and _literal_ok(data) else '"'
    return dumper.represent_scalar(_STR_TAG, data, style=style)


def _represent_float(dumper: yaml.BaseDumper, data: float) -> yaml.ScalarNode:
    """``repr`` of the float, made a valid YAML 1.1 float (``1e+20`` -> ``1.0e+20``)."""
    if data != data:
        value = ".nan"
    elif data in (float("inf"), float("-inf")):
        value = ".inf" if data > 0 else "-.inf"
    else:
        value = repr(data).lower()
        if "." not in value and "e" in value:
            value = value.replace("e", ".0e", 1)
    return dumper.represent_scalar(_FLOAT_TAG, value)


def _represent_dict(dumper: yaml.BaseDumper, data: dict[Any, Any]) -> yaml.MappingNode:
    # ``to_plain`` already put the keys in order; keep it.
    return dumper.represent_mapping(_MAP_TAG, list(data.items()), flow_style=False)


def _represent_list(dumper: yaml.BaseDumper, data: list[Any]) -> yaml.SequenceNode:
    return dumper.represent_sequence(_SEQ_TAG, data, flow_style=False)


_REPRESENTERS: dict[type, Callable[..., yaml.Node]] = {
    str: _represent_str,
    float: _represent_float,
    dict: _represent_dict,
    list: _represent_list,
}
_DUMPERS: list[type[yaml.SafeDumper] | type[yaml.CSafeDumper]] = [_PortableDumper]
if _FastDumper is not None:
    _DUMPERS.append(_FastDumper)
for _dumper in _DUMPERS:
    _dumper.add_implicit_resolver(_FLOAT_TAG, _NUMBER_LIKE, list("-+.0123456789"))
    for _type, _representer in _REPRESENTERS.items():
        _dumper.add_representer(_type, _representer)

#: Keys up to this many UTF-8 bytes are simple (``key: value``) for both emitters.
_SHORT_KEY_BYTES = 120
#: Characters libyaml escapes but PyYAML's emitter writes as they are: U+0085 and
#: everything outside the Basic Multilingual Plane (emoji, ...), plus lone surrogates,
#: which libyaml cannot even encode.
_LIBYAML_DIFFERS = re.compile("[\x85\ud800-\udfff\U00010000-\U0010ffff]")


def _libyaml_agrees(plain: Any) -> bool:
    """Whether libyaml emits ``plain`` exactly as PyYAML's Python emitter does.

    They differ on top-level scalars (document end markers), on when a key is written
    in the explicit ``? key`` form (empty keys, keys with line breaks such as ``\\r``,
    and long keys: PyYAML counts characters plus tag, libyaml UTF-8 bytes), and on
    strings with the characters in ``_LIBYAML_DIFFERS``.
    """
    if not isinstance(plain, (dict, list)):
        return False
    stack: list[Any] = [plain]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                text = key if isinstance(key, str) else str(key)
                if (
                    text == ""
                    or _LINE_BREAKS.search(text)
                    or _LIBYAML_DIFFERS.search(text)
                    or len(text.encode("utf-8")) > _SHORT_KEY_BYTES
                ):
                    return False
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and _LIBYAML_DIFFERS.search(node):
            return False
    return True


def dump_yaml(obj: Any) -> str:
    """One YAML document for ``obj`` (see the module docstring for the guarantees)."""
    plain = to_plain(obj)
    use_fast = _FastDumper is not None and _libyaml_agrees(plain)
    return yaml.dump(
        plain,
        Dumper=_FastDumper if use_fast else _PortableDumper,
        default_flow_style=False,
        allow_unicode=True,
        width=_WIDTH,
        sort_keys=False,
        line_break="\n",
    )


def dump_yaml_documents(objs: list[Any]) -> str:
    """Several YAML documents, in the order given, separated by ``---`` lines."""
    if not isinstance(objs, (list, tuple)):
        raise TypeError(f"expected a list of YAML documents, got {type(objs).__qualname__}")
    return "---\n".join(dump_yaml(obj) for obj in objs)


# --------------------------------------------------------------------------------- JSON


def dump_json(obj: Any) -> str:
    """``obj`` as JSON: sorted keys, two-space indent, UTF-8 text, trailing newline.

    The same plain-data rules as for YAML apply; NaN and infinities are rejected
    because JSON cannot represent them.
    """
    return json.dumps(to_plain(obj), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------ render


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def header_lines(source: str) -> list[str]:
    """The "generated by" header, without comment markers.

    Static on purpose: no hash and no mlspec version, so that a file changes only when
    its content does (provenance is in ``.mlspec/manifest.json``)."""
    if "\n" in source or "\r" in source:
        raise ValueError(f"source must be a single line, got {source!r}")
    return [
        f"Generated by mlspec from {source}. DO NOT EDIT: change the spec and run `mlspec compile`.",
    ]


def render(artefact: Artefact, *, source: str) -> bytes:
    """The exact bytes of ``artefact``'s file: UTF-8, ``\\n`` line endings, one final newline.

    ``source`` names what the file was generated from (the spec's path relative to the
    project root), for the header.

    * ``yaml``: the header as ``#`` comment lines (YAML has no other comment syntax),
      then the document, or the documents separated by ``---`` when
      ``multi_document`` is set (``content`` is then a list);
    * ``text``: ``content`` (a str; ``\\r\\n`` and ``\\r`` become ``\\n``, trailing newlines
      collapse to one) with the header commented with ``comment_prefix``; a ``#!``
      line stays first so that scripts remain executable;
    * ``json``: no header, because JSON has no comments.
    """
    if artefact.kind == "json":
        return dump_json(artefact.content).encode("utf-8")
    shebang = ""
    if artefact.kind == "yaml":
        prefix = "#"
        body = dump_yaml_documents(artefact.content) if artefact.multi_document else dump_yaml(artefact.content)
    else:
        if not isinstance(artefact.content, str):
            raise TypeError(
                f"text artefact {artefact.path} needs str content, got {type(artefact.content).__qualname__}"
            )
        prefix = artefact.comment_prefix
        text = artefact.content.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
        if text.startswith("#!"):
            shebang, _, text = text.partition("\n")
            shebang += "\n"
        body = text + "\n" if text else ""
    header = "".join(f"{prefix} {line}\n" for line in header_lines(source))
    return (shebang + header + body).encode("utf-8")
