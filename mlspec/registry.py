"""Targets are plugins: modules registered in the ``mlspec.generators`` entry-point group.

Each entry point names a callable ``generate(ctx: Context) -> list[Artefact]``.  The
built-in targets are registered the same way (see pyproject.toml), so a third-party
package adds a target by declaring, in its own packaging metadata::

    [project.entry-points."mlspec.generators"]
    mytarget = "my_package.my_module:generate"

Nothing is imported until a target is used.  A target's module may define
``version_key() -> str`` (cheap: no heavy imports) naming what its output depends on
besides the spec -- its own code, pinned tool versions; the compiler's no-op check
includes it, so a changed target is never skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Callable

from .errors import SpecError, did_you_mean

GROUP = "mlspec.generators"


@dataclass(frozen=True)
class Target:
    name: str
    value: str  # "module:function"
    distribution: str  # "name==version" of the package that provides it

    def module(self):
        import importlib

        return importlib.import_module(self.value.partition(":")[0])

    def load(self) -> Callable:
        obj = self.module()
        for part in self.value.partition(":")[2].split("."):
            obj = getattr(obj, part)
        return obj

    @lru_cache(maxsize=None)  # noqa: B019 - targets are few and live for the process
    def version_key(self) -> str:
        """The module's ``version_key()``, or "" when it has none (then its distribution's
        version stands for its code)."""
        key = getattr(self.module(), "version_key", None)
        return str(key()) if callable(key) else ""


def available() -> dict[str, Target]:
    """Registered targets by name, in name order."""
    found: dict[str, Target] = {}
    for ep in metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        provider = f"{dist.name}=={dist.version}" if dist is not None else "unknown"
        found.setdefault(ep.name, Target(ep.name, ep.value, provider))
    return dict(sorted(found.items()))


def select(names: list[str] | None) -> list[Target]:
    """The targets to run: all registered ones, or those named (``--targets a,b``)."""
    targets = available()
    if not names:
        return list(targets.values())
    chosen = []
    for name in names:
        if name not in targets:
            raise SpecError(
                f"unknown target '{name}'", "--targets", 1, 1,
                hint=did_you_mean(name, list(targets)) or f"registered targets: {', '.join(targets) or 'none'}",
                code="unknown-target",
            )
        chosen.append(targets[name])
    return chosen
