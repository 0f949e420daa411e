"""Targets are plugins: objects registered in the ``mlspec.generators`` entry-point group.

A target is a :class:`Target`: a pure ``generate`` function plus what the core needs to
know about it::

    target = Target(
        name="mytarget",
        generate=generate,                    # (Context) -> list[Artefact]; pure, no I/O
        reads=("spec.serving", "env.mytarget"),  # what generate may read (see mlspec.inputs)
        scope="spec",                         # or "environment" / "repository"
        rules=rules,                          # (RuleContext) -> list[SpecError], run by `validate`
        settings=MySettings,                  # pydantic model of `mytarget:` in environments/<env>.yaml
        version_key=version_key,              # cheap: what the output depends on besides its inputs
        consumes=False,                       # True: also see the other targets' Kubernetes objects
    )

and a package registers it in its own packaging metadata::

    [project.entry-points."mlspec.generators"]
    mytarget = "my_package.my_module:target"

The built-in targets are registered the same way (see pyproject.toml) and use exactly
this interface.  An entry point may also name a bare ``generate(ctx)`` function: it is
then a spec-scope target that declares it reads everything, with its module's
``version_key()`` if it has one.

A target may set ``consumes=True``: like a kustomize transformer it then also receives, as
``ctx.outputs``, the Kubernetes objects every other (non-consuming) target generated for its
scope (the same spec and environment, the environment, or everything), and runs after them.  Its output is a
function of theirs: their bytes are part of its inputs.  Compiling only such a target
still generates the others (reusing what the last compile left) without writing them.

Nothing heavy is imported to list targets: loading one imports its module, which must
import its tools (kfp, ...) lazily, inside ``generate``.  ``mlspec validate`` loads every
target for its settings and rules, so the built-in targets with a large generator keep it
in a module of its own (``kubeflow`` → ``kubeflow_pipeline``, ``feast`` → ``feast_repo``,
``github`` → ``github_workflows``) that their ``generate`` imports when a compile runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable

from . import entrypoints
from .errors import SpecError, did_you_mean
from .inputs import normalise

GROUP = "mlspec.generators"
SCOPES = ("spec", "environment", "repository")


@dataclass(frozen=True)
class Target:
    name: str
    generate: Callable[..., list]
    reads: tuple[str, ...] = ("spec", "env")
    scope: str = "spec"
    rules: Callable[..., Iterable[SpecError]] | None = None
    settings: type | None = None
    version_key: Callable[[], str] | None = None
    consumes: bool = False
    description: str = ""
    distribution: str = field(default="", compare=False)  # "name==version", filled in by the registry

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"target {self.name!r}: scope must be one of {SCOPES}, not {self.scope!r}")
        reads = list(self.reads)
        if self.settings is not None:
            reads.append(f"env.{self.name}")  # a target always reads its own settings
        object.__setattr__(self, "reads", normalise(reads))

    def key(self) -> str:
        """What the output depends on besides the declared inputs: the providing
        distribution and the target's ``version_key()`` (its code, pinned tool versions)."""
        return f"{self.distribution}|{_version_key(self)}"


@lru_cache(maxsize=None)
def _version_key(target: Target) -> str:
    return str(target.version_key()) if target.version_key is not None else ""


@dataclass(frozen=True)
class Plugin:
    """A registered entry point, not yet imported."""

    name: str
    value: str  # "module:attribute"
    distribution: str  # "name==version" of the package that provides it

    def load(self) -> Target:
        import importlib

        module_name, _, attr = self.value.partition(":")
        module = importlib.import_module(module_name)
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, Target):
            if obj.name != self.name:
                raise ValueError(f"entry point {self.name!r} ({self.value}) names a target called {obj.name!r}")
            return Target(**{**obj.__dict__, "distribution": self.distribution})
        if callable(obj):  # a bare generate(ctx): reads everything
            key = getattr(module, "version_key", None)
            return Target(self.name, obj, version_key=key if callable(key) else None,
                          distribution=self.distribution)
        raise TypeError(f"entry point {self.name!r} ({self.value}) is neither a Target nor a function")


def available() -> dict[str, Plugin]:
    """Registered targets by name, in name order (of two with one name, the first found)."""
    found: dict[str, Plugin] = {}
    providers: dict[object, str] = {}  # by distribution: its entry points share one
    for ep in entrypoints.entry_points(GROUP):
        if ep.name not in found:
            if ep.dist not in providers:
                providers[ep.dist] = entrypoints.provider(ep)
            found[ep.name] = Plugin(ep.name, ep.value, providers[ep.dist])
    return dict(sorted(found.items()))


_LOADED: dict[Plugin, Target] = {}


def load(plugin: Plugin) -> Target:
    """The plugin's target, imported once per process.  A failure to import is the
    plugin's fault: it is raised as :class:`TargetCrash`."""
    if plugin not in _LOADED:
        try:
            _LOADED[plugin] = plugin.load()
        except Exception as exc:
            raise TargetCrash(plugin.name, plugin.distribution, "loading it") from exc
    return _LOADED[plugin]


def select(names: list[str] | None) -> list[Target]:
    """The targets to run: all registered ones, or those named (``--targets a,b``)."""
    plugins = available()
    if not names:
        return [load(p) for p in plugins.values()]
    chosen = []
    for name in names:
        if name not in plugins:
            raise SpecError(
                f"unknown target '{name}'", "--targets", 1, 1,
                hint=did_you_mean(name, list(plugins)) or f"registered targets: {', '.join(plugins) or 'none'}",
                code="unknown-target",
            )
        chosen.append(load(plugins[name]))
    return chosen


def source_key(*files: str, extra: str = "") -> str:
    """A ``version_key`` made of code: the sha256 of the given source files' bytes (a target's
    own module and the modules it renders from), then ``extra`` (e.g. pinned tool versions)."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).resolve().read_bytes())
    digest.update(extra.encode())
    return digest.hexdigest()


class TargetCrash(Exception):
    """A target raised something other than a user-facing error: a bug in the target.

    The CLI's error handler reports it as "internal error in target X (dist==version)",
    writes the traceback to a log file and exits 3."""

    def __init__(self, target: str, distribution: str, doing: str, detail: str = "") -> None:
        self.target, self.distribution, self.doing, self.detail = target, distribution, doing, detail
        super().__init__(f"internal error in target {target} ({distribution}) while {doing}")

    def __reduce__(self):  # survives pickling from worker processes
        return (TargetCrash, (self.target, self.distribution, self.doing, self.detail))
