"""Safe Python code generation for the Feast definitions module.

Feast imports every ``*.py`` file of a feature repository (``feast apply``, the
operator's init container, every server), so the definitions module is code that runs
on the cluster.  Everything a spec or an environment says reaches it through exactly
one function, :func:`literal`, which turns plain data into a Python literal that
evaluates back to the same value and can contain nothing else:

* ``str`` is written with :func:`repr` -- quotes, triple quotes, backslashes, newlines,
  ``{{ }}``, ``__import__('os')`` and non-ASCII text all stay inside the string literal;
  characters that are not printable (line and paragraph separators, bidi controls,
  surrogates, ...) are escaped, so the source text shows what the value is;
* ``bool``, ``None``, ``int`` and finite ``float`` are written with :func:`repr`;
* ``list``, ``tuple`` and ``dict`` (str keys) are written element by element with
  :func:`literal`, dict keys sorted;
* anything else raises :class:`TypeError` -- there is no way to pass code through.

Names that become Python identifiers (the module's variable names) are never taken
from free text: :func:`identifier` builds them from a fixed prefix and a spec name that
validation already restricted to ``[A-Za-z_][A-Za-z0-9_]*``, and checks the result.
Constructor calls are assembled by :func:`call` from a callee chosen by the generator
(never by the spec) and keyword arguments whose values are literals or other calls.

No template engine is used: the module is small, and building it from these three
functions keeps every interpolation visibly typed.  :func:`module` returns the text;
``ast.parse`` of the result is checked before it is returned.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from dataclasses import dataclass
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Calls and lists up to this many characters stay on one line.
INLINE_WIDTH = 88


@dataclass(frozen=True)
class Code:
    """A piece of generated Python code: an expression the generator wrote itself."""

    text: str


def literal(value: Any) -> str:
    """``value`` as a Python literal (see the module docstring); raises TypeError otherwise."""
    if isinstance(value, Code):
        raise TypeError("literal() takes data, not code")
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"cannot write the non-finite float {value!r} as a literal")
        return repr(float(value))
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, (list, tuple)):
        items = ", ".join(literal(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"dict keys must be str, not {type(key).__qualname__}")
        return "{" + ", ".join(f"{literal(k)}: {literal(value[k])}" for k in sorted(value)) + "}"
    raise TypeError(f"cannot write {type(value).__qualname__} as a Python literal")


def identifier(prefix: str, name: str) -> str:
    """A module-level variable name ``<prefix>_<name>`` for a validated spec name."""
    text = f"{prefix}_{name}"
    if not _IDENTIFIER.match(text) or keyword.iskeyword(text) or not text.isidentifier():
        raise ValueError(f"{text!r} is not a safe Python identifier")
    return text


def _arg(value: Any) -> str:
    return value.text if isinstance(value, Code) else literal(value)


def call(callee: str, *args: Any, **kwargs: Any) -> Code:
    """``callee(arg, ..., key=value, ...)``; values are :class:`Code` or data (written with
    :func:`literal`).  ``callee`` must be a dotted name the generator chose."""
    if not all(_IDENTIFIER.match(part) for part in callee.split(".")):
        raise ValueError(f"{callee!r} is not a dotted name")
    parts = [_arg(a) for a in args] + [f"{key}={_arg(value)}" for key, value in kwargs.items()]
    inline = f"{callee}({', '.join(parts)})"
    if len(inline) <= INLINE_WIDTH and "\n" not in inline:
        return Code(inline)
    return Code(f"{callee}(\n" + "".join(f"    {_indent(p)},\n" for p in parts) + ")")


def code_list(items: list[Any]) -> Code:
    """A list whose elements are code or data."""
    texts = [_arg(i) for i in items]
    inline = f"[{', '.join(texts)}]"
    if len(inline) <= INLINE_WIDTH and "\n" not in inline:
        return Code(inline)
    return Code("[\n" + "".join(f"    {_indent(_arg(i))},\n" for i in items) + "]")


def projection(variable: str, features: list[str]) -> Code:
    """``view[["a", "b"]]``: a feature view projection (Feast's FeatureService syntax)."""
    if not _IDENTIFIER.match(variable):
        raise ValueError(f"{variable!r} is not an identifier")
    return Code(f"{variable}[{literal(list(features))}]")


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")


def module(docstring: str, imports: list[str], assignments: list[tuple[str, Code]]) -> str:
    """The module text: a docstring (a literal), the imports, then ``name = <code>`` lines."""
    for line in imports:
        if not re.match(r"^(from [A-Za-z_][A-Za-z0-9_.]* )?import [A-Za-z_][A-Za-z0-9_, ]*$", line):
            raise ValueError(f"not an import line: {line!r}")
    body = [literal(docstring), "", *imports, ""]
    for name, code in assignments:
        if not _IDENTIFIER.match(name) or keyword.iskeyword(name):
            raise ValueError(f"{name!r} is not an identifier")
        body += ["", f"{name} = {code.text}"]
    text = "\n".join(body) + "\n"
    ast.parse(text)  # a generator bug, never user input, could make this fail
    return text
