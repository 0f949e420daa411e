"""Declared inputs: what a target reads of the resolved document, sliced, hashed and enforced.

The *resolved document* of one spec in one environment is
``{"spec": <the resolved spec>, "env": <the environment>}`` as plain data (pydantic's
JSON dump: defaults filled in, the ``overrides`` blocks left out).  A target declares the
paths it reads, e.g. ``("spec.training", "spec.labels", "env.kubeflow")``, and may narrow
them per artefact.  Then:

* :func:`slice_of` takes exactly those parts of the document, and :func:`digest` hashes
  them: an artefact's ``inputs`` hash changes if and only if something it declared
  changed -- a comment, a key reorder or an edit elsewhere in the spec leaves it as it is;
* :func:`guard` gives the generator a view of the spec and environment models in which
  every undeclared field is an :class:`Undeclared` placeholder: reading one raises
  :class:`UndeclaredRead`, so a generator cannot depend on what it did not declare.

Every target implicitly reads :data:`IMPLICIT` -- the identity of its scope (spec name,
environment name, namespace), from which :mod:`mlspec.naming` derives every name.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pydantic is imported where models are used, not to list targets
    from pydantic import BaseModel

ROOTS = ("spec", "env")
#: Read by every target: what names and places are derived from.
IMPLICIT = ("spec.name", "env.name", "env.namespace")

Path_ = tuple[str, ...]


class UndeclaredRead(RuntimeError):
    """A generator read a part of the resolved document its target did not declare.

    A RuntimeError, not an AttributeError, so that ``getattr(x, name, default)`` and
    ``hasattr`` cannot swallow it."""


def parse(path: str) -> Path_:
    """``"spec.serving.traffic"`` → ``("spec", "serving", "traffic")``; the root must be spec or env."""
    parts = tuple(path.split("."))
    if not parts or parts[0] not in ROOTS or any(not p for p in parts):
        raise ValueError(f"declared input {path!r} must be 'spec', 'env' or a dotted path below them")
    return parts


def normalise(paths: Iterable[str]) -> tuple[str, ...]:
    """The declared paths plus :data:`IMPLICIT`, checked, without paths already covered
    by a shorter one, sorted."""
    parsed = {parse(p) for p in (*paths, *IMPLICIT)}
    kept = {p for p in parsed if not any(q != p and p[: len(q)] == q for q in parsed)}
    return tuple(sorted(".".join(p) for p in kept))


def covers(declared: Iterable[str], path: str) -> bool:
    """Whether ``path`` is inside one of the ``declared`` paths."""
    want = parse(path)
    return any(want[: len(d)] == d for d in (parse(p) for p in declared))


def document(spec: BaseModel, env: BaseModel | None) -> dict[str, Any]:
    """The resolved document as plain JSON data."""
    return {
        "spec": spec.model_dump(mode="json", exclude={"overrides"}),
        "env": env.model_dump(mode="json", exclude={"overrides"}) if env is not None else None,
    }


_ABSENT = {"$absent": True}


def _lookup(doc: Any, path: Path_) -> Any:
    node = doc
    for part in path:
        if node is None:
            return None  # below an unset optional section (e.g. spec.drift.features without drift)
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def slice_of(doc: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """``{path: value}`` for each declared path (a marker where the path does not exist)."""
    return {p: _lookup(doc, parse(p)) for p in sorted(paths)}


def digest(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the guard


class Undeclared:
    """Stands in for a field the target did not declare; any use of it raises."""

    __slots__ = ("_path", "_target")

    def __init__(self, path: str, target: str) -> None:
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_target", target)

    def _fail(self, *_args: Any, **_kwargs: Any):
        raise UndeclaredRead(
            f"target '{self._target}' read {self._path}, which it does not declare in its inputs "
            f"(add '{self._path}' to the target's reads)")

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # copy/pickle protocol probes
        self._fail()

    __bool__ = __iter__ = __len__ = __getitem__ = __contains__ = __eq__ = __lt__ = __gt__ = _fail
    __str__ = __format__ = __int__ = __float__ = __add__ = __radd__ = _fail
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<undeclared {self._path}>"


def guard(model: BaseModel | None, root: str, declared: Iterable[str], target: str) -> Any:
    """A copy of ``model`` (the ``root`` of the document, "spec" or "env") in which every
    field outside the ``declared`` paths is :class:`Undeclared`."""
    paths = [parse(p) for p in declared]
    if model is None:
        return None
    return _guard(model, (root,), paths, target)


def _guard(obj: Any, prefix: Path_, declared: list[Path_], target: str) -> Any:
    from pydantic import BaseModel

    if any(prefix[: len(d)] == d for d in declared):
        return obj  # the whole subtree is declared
    if not isinstance(obj, BaseModel):
        return obj  # a declared path below a plain value (dict, list): the value is readable
    updates: dict[str, Any] = {}
    for name in type(obj).model_fields:
        child = prefix + (name,)
        if any(d[: len(child)] == child for d in declared):
            value = getattr(obj, name)
            if isinstance(value, BaseModel):
                updates[name] = _guard(value, child, declared, target)
        else:
            updates[name] = Undeclared(".".join(child), target)
    return obj.model_copy(update=updates)
