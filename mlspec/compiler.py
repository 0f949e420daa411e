"""The compiler: resolved specs → artefacts (targets) → bytes (renderer).

Pure apart from reading the specs: nothing here writes.  :mod:`mlspec.writer` turns
the result into files.

Output layout under the output root (``--out``, default ``.``)::

    deploy/<env>/<spec name>/<target>/…   everything Argo CD applies, per environment
    .mlspec/manifest.json                 files mlspec owns: per file its scope, target,
                                          spec, inputs sha256, output sha256, mlspec version

Scopes
    Every file belongs to one *scope*, the unit of ownership and of pruning:
    ``<spec>@<env>/<target>`` for a spec-scope target, ``*@<env>/<target>`` for an
    environment-scope one and ``*@*/<target>`` for a repository-scope one.  A compile
    prunes only files of the scopes it compiles, so compiling one target never touches
    another target's files.

Inputs
    A target declares what it reads of the resolved document (:mod:`mlspec.inputs`); its
    generator sees nothing else.  Each file's ``inputs`` hash covers what the file
    declares (the target's reads, or the artefact's narrower ``reads``) and the spec's
    path; the scope's cache fingerprint adds the target's ``key()`` (its code and tools)
    and mlspec's version.  The no-op cache lives in ``.mlspec/cache.json``, beside the
    manifest but out of git: it is local state, not provenance.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from . import __version__, inputs
from .artefact import Artefact
from .context import Context, Output, ScopeContext
from .errors import SpecError
from .project import Resolved
from .registry import Target, TargetCrash


@dataclass(frozen=True)
class Scope:
    target: str
    env: str | None  # None: repository scope
    spec: str | None  # spec name; None: environment or repository scope
    spec_path: str | None = None  # the spec file, relative to the project root

    @property
    def key(self) -> str:
        return f"{self.spec or '*'}@{self.env or '*'}/{self.target}"


def scope_of(resolved: Resolved, target: Target) -> Scope:
    return Scope(target.name, resolved.env_name, resolved.spec.name, resolved.spec_path)


@dataclass
class Compiled:
    #: path → (bytes, scope key): what the writer writes.
    outputs: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    #: path → manifest details (target, spec, env, inputs sha256).
    files: dict[str, dict] = field(default_factory=dict)
    #: path → the structured content the bytes were rendered from (None for reused files).
    objects: dict[str, Any] = field(default_factory=dict)
    #: every scope this compile covers, by key (a scope may have no files).
    scopes: dict[str, Scope] = field(default_factory=dict)
    #: scope key → {"fingerprint", "outputs"}: the no-op cache.
    cache: dict[str, dict] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    #: scopes left alone because this compile does not cover what they are made from.
    skipped: list[str] = field(default_factory=list)


def outputs_digest(files: dict[str, bytes]) -> str:
    """One hash over a scope's output paths and contents."""
    return inputs.digest(sorted((path, inputs.digest(data.hex())) for path, data in files.items()))


#: ``previous(scope key, fingerprint)``: the files (path → (bytes, manifest details)) a
#: scope's last compile wrote, if it was compiled from the same fingerprint and they are
#: intact; else None.
Previous = Callable[[str, str], "dict[str, tuple[bytes, dict]] | None"]

#: A generated file: (bytes, manifest details, structured content).
Generated = dict[str, tuple[bytes, dict, Any]]


# --------------------------------------------------------------------- spec-scope targets


def context(resolved: Resolved, target: Target, outputs: tuple[Output, ...] = ()) -> Context:
    """What ``target`` sees of one resolved spec: guarded to its declared reads."""
    if resolved.env is None:  # pragma: no cover - callers resolve with environments
        raise ValueError("compiling needs an environment")
    return Context(spec=inputs.guard(resolved.spec, "spec", target.reads, target.name),
                   env=inputs.guard(resolved.env, "env", target.reads, target.name),
                   spec_path=resolved.spec_path, target=target.name, outputs=outputs)


def fingerprint(inputs_sha256: str, target: Target) -> str:
    """The cache key of a scope: its inputs, the target's code and tools, mlspec's version."""
    return inputs.digest(inputs_sha256, target.name, target.key(), __version__)


def _inputs_of(resolved: Resolved, target: Target) -> str:
    return inputs.digest(resolved.spec_path, inputs.slice_of(resolved.document, target.reads))


def _files(target: Target, artefacts: list[Artefact], slices: Callable[[tuple[str, ...]], str],
           source: str, details: dict) -> Generated:
    from .render import render

    out: Generated = {}
    for artefact in artefacts:
        if artefact.path in out:
            raise ValueError(f"two artefacts claim {artefact.path}")
        reads = target.reads
        if artefact.reads is not None:
            undeclared = [p for p in artefact.reads if not inputs.covers(target.reads, p)]
            if undeclared:
                raise ValueError(f"artefact {artefact.path} declares reads outside its target's: {undeclared}")
            reads = inputs.normalise(artefact.reads)
        out[artefact.path] = (render(artefact, source=source),
                              {**details, "target": target.name, "inputs": slices(reads)}, artefact.content)
    return out


def generate_scope(resolved: Resolved, target: Target, outputs: tuple[Output, ...] = (),
                   consumed: str = "") -> Generated:
    """Every file one spec-scope target makes of one resolved spec (``outputs``/``consumed``:
    what a consuming target sees of the others, and their digest).

    Anything the target raises is a bug in the target (``validate`` is where user errors
    belong): it is raised as :class:`TargetCrash`."""
    where = f"generating {resolved.spec.name}@{resolved.env_name}"
    try:
        artefacts = target.generate(context(resolved, target, outputs))
        doc = resolved.document
        return _files(target, artefacts,
                      lambda reads: _and(inputs.digest(resolved.spec_path, inputs.slice_of(doc, reads)), consumed),
                      resolved.spec_path, {"spec": resolved.spec_path, "env": resolved.env_name})
    except TargetCrash:
        raise
    except Exception as exc:
        raise TargetCrash(target.name, target.distribution, where) from exc


# ------------------------------------------------------- environment and repository scopes


def _members(scope: Scope, resolved_list: list[Resolved]) -> list[Resolved]:
    members = [r for r in resolved_list if scope.env is None or r.env_name == scope.env]
    return sorted(members, key=lambda r: (r.env_name or "", r.spec.name))


def _scope_inputs(members: list[Resolved], target: Target, reads: tuple[str, ...]) -> str:
    parts = [(r.env_name, r.spec_path, inputs.slice_of(r.document, reads)) for r in members]
    return inputs.digest(parts)


def generate_wide(scope: Scope, members: list[Resolved], target: Target,
                  outputs: tuple[Output, ...] = (), consumed: str = "") -> Generated:
    """The files of an environment- or repository-scope target (``outputs``: what a
    consuming target sees of the others, ``consumed`` their digest, part of its inputs)."""
    try:
        contexts = tuple(context(r, target) for r in members)
        envs = {r.env_name: r.env for r in members}
        guarded = tuple(inputs.guard(envs[name], "env", target.reads, target.name) for name in sorted(envs))
        artefacts = target.generate(ScopeContext(target.name, contexts, guarded, outputs))
        source = f"the specs of environment '{scope.env}'" if scope.env else "the specs of this repository"
        return _files(target, artefacts, lambda reads: _and(_scope_inputs(members, target, reads), consumed),
                      source, {"spec": None, "env": scope.env})
    except TargetCrash:
        raise
    except Exception as exc:
        raise TargetCrash(target.name, target.distribution, f"generating {scope.key}") from exc


def _and(scope_inputs: str, consumed: str) -> str:
    """A scope's inputs: a consuming target's include the digest of what it consumed."""
    return inputs.digest(scope_inputs, consumed) if consumed else scope_inputs


_OBJECT_START = re.compile(rb"(?m)^apiVersion:")


def _objects_of(path: str, data: bytes, content: Any) -> tuple[dict, ...]:
    """The Kubernetes objects in a generated file, as plain data (parsed from the bytes
    when the file was reused, so both ways give the same)."""
    if not path.endswith((".yaml", ".yml")) or not _OBJECT_START.search(data):
        return ()
    if content is None:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = list(yaml.load_all(data, Loader=loader))
    else:
        from .render import to_plain

        plain = to_plain(content)
        docs = plain if isinstance(plain, list) else [plain]
    return tuple(d for d in docs if isinstance(d, dict) and "apiVersion" in d and "kind" in d)


class _Consumable:
    """The files a compile has made so far, indexed for consuming targets."""

    def __init__(self, result: "Compiled", consumers: set[str]) -> None:
        self.result = result
        self.by_key: dict[tuple[str | None, str | None], list[str]] = {}
        for path in sorted(result.outputs):
            info = result.files[path]
            if info.get("target") not in consumers:
                self.by_key.setdefault((info.get("spec"), info.get("env")), []).append(path)

    def outputs(self, scope: Scope) -> tuple[tuple[Output, ...], str]:
        """What a consuming target of ``scope`` sees (that spec's files in that environment,
        the environment's, or all) and their digest."""
        if scope.spec_path is not None:
            paths = self.by_key.get((scope.spec_path, scope.env), [])
        else:
            paths = sorted(p for (_, env), ps in self.by_key.items() if scope.env is None or env == scope.env
                           for p in ps)
        found = []
        for path in paths:
            info, data = self.result.files[path], self.result.outputs[path][0]
            objects = _objects_of(path, data, self.result.objects.get(path))
            if objects:
                found.append((Output(path, info["target"], info.get("spec"), info.get("env"), objects),
                              (path, inputs.digest(data.hex()))))
        return tuple(o for o, _ in found), inputs.digest([d for _, d in found])


# ------------------------------------------------------------------------------ workers

#: Below this many scopes to generate, worker processes cost more than they save.
PARALLEL_MIN_SCOPES = 6
_WORK: list[tuple[Resolved, Target]] | None = None  # what forked workers read


def _work(index: int):
    assert _WORK is not None
    try:
        return ("ok", generate_scope(*_WORK[index]))
    except TargetCrash as crash:
        cause = crash.__cause__
        detail = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__)) if cause else ""
        return ("crash", (crash.target, crash.distribution, crash.doing, detail))


def _generate_all(pending: list[tuple[Resolved, Target]], jobs: int) -> list[Generated]:
    """``generate_scope`` for each pending pair, in order; forked workers share the work
    when there is enough of it (output is identical whichever process made it)."""
    import multiprocessing

    global _WORK
    if jobs <= 1 or len(pending) < PARALLEL_MIN_SCOPES or "fork" not in multiprocessing.get_all_start_methods():
        return [generate_scope(r, t) for r, t in pending]
    first = generate_scope(*pending[0])  # imports the targets' tools once, before forking
    _WORK = pending
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(pending) - 1)) as pool:
            rest = pool.map(_work, range(1, len(pending)), chunksize=max(1, (len(pending) - 1) // (jobs * 4)))
    finally:
        _WORK = None
    outcomes = [first]
    for kind, value in rest:
        if kind == "crash":
            raise TargetCrash(*value)
        outcomes.append(value)
    return outcomes


# ----------------------------------------------------------------------------- compile


def compile_resolved(resolved_list: list[Resolved], targets: list[Target],
                     previous: Previous | None = None, jobs: int = 1, *,
                     wide_envs: set[str] | None = None, whole_repository: bool = False,
                     feeders: list[Target] = ()) -> Compiled:
    """Compile every resolved spec with every target, on up to ``jobs`` processes.

    A scope that ``previous`` vouches for keeps its files instead of being regenerated,
    so a recompile where nothing changed imports no generator (and so not kfp).
    Environment-scope targets are compiled for the environments in ``wide_envs`` (those
    whose specs this compile covers completely), repository-scope ones only with
    ``whole_repository``; the others are listed in ``skipped`` and left alone.
    Consuming targets run last, over the others' output; ``feeders`` are targets that are
    generated only for them to consume: their files are not part of the result.
    """
    result = Compiled()
    names: dict[tuple[str, str], str] = {}
    unique: list[Resolved] = []
    for resolved in resolved_list:
        key = (resolved.spec.name, resolved.env_name or "")
        if key in names and names[key] != resolved.spec_path:
            loc = resolved.doc.positions.value(("name",))
            result.errors.append(SpecError(
                f"spec name '{resolved.spec.name}' is also used by {names[key]}", loc.file, loc.line, loc.col,
                hint="spec names become output folders and Kubernetes names; they must be unique", code="duplicate-spec",
            ))
            continue
        if key not in names:
            names[key] = resolved.spec_path
            unique.append(resolved)
    if result.errors:
        return result

    chosen = {t.name for t in targets}
    fed = [f for f in feeders if f.name not in chosen and not f.consumes]
    producers = [t for t in targets if not t.consumes] + fed
    pending: list[tuple[Resolved, Target, Scope, str]] = []
    for resolved in unique:
        for target in (t for t in producers if t.scope == "spec"):
            scope = scope_of(resolved, target)
            fp = fingerprint(_inputs_of(resolved, target), target)
            kept = previous(scope.key, fp) if previous is not None else None
            result.scopes[scope.key] = scope
            if kept:
                _record(result, scope, fp, {p: (data, info, None) for p, (data, info) in kept.items()})
            else:
                pending.append((resolved, target, scope, fp))
    outcomes = _generate_all([(r, t) for r, t, _, _ in pending], jobs)
    for (_, _, scope, fp), files in zip(pending, outcomes):
        _record(result, scope, fp, files)

    consumers = {t.name for t in targets if t.consumes}
    consumable = _Consumable(result, consumers) if consumers else None
    for resolved in unique:  # spec-scope consumers: after the producers, over their files
        for target in (t for t in targets if t.consumes and t.scope == "spec"):
            scope = scope_of(resolved, target)
            outputs, consumed = consumable.outputs(scope)
            fp = fingerprint(_and(_inputs_of(resolved, target), consumed), target)
            result.scopes[scope.key] = scope
            _record(result, scope, fp, _kept_or(previous, scope, fp,
                                                lambda: generate_scope(resolved, target, outputs, consumed)))

    envs = sorted({r.env_name for r in unique if r.env_name})
    wide = [t for t in producers if t.scope != "spec"] + [t for t in targets if t.consumes and t.scope != "spec"]
    wide_consumable = None  # built once the wide producers are done (they come first)
    for target in wide:
        wanted = [Scope(target.name, env, None) for env in envs] if target.scope == "environment" \
            else [Scope(target.name, None, None)]
        for scope in wanted:
            allowed = whole_repository if scope.env is None else scope.env in (wide_envs or set())
            if not allowed:
                if target.name in chosen:
                    result.skipped.append(scope.key)
                continue
            members = _members(scope, unique)
            outputs, consumed = (), ""
            if target.consumes:
                wide_consumable = wide_consumable or _Consumable(result, consumers)
                outputs, consumed = wide_consumable.outputs(scope)
            fp = fingerprint(_and(_scope_inputs(members, target, target.reads), consumed), target)
            result.scopes[scope.key] = scope
            _record(result, scope, fp, _kept_or(previous, scope, fp,
                                                lambda: generate_wide(scope, members, target, outputs, consumed)))
    if fed:
        _drop(result, {f.name for f in fed})
    return result


def _kept_or(previous: Previous | None, scope: Scope, fp: str, make: Callable[[], Generated]) -> Generated:
    """The files the last compile made of ``scope`` from the same fingerprint, else ``make()``."""
    kept = previous(scope.key, fp) if previous is not None else None
    return {p: (data, info, None) for p, (data, info) in kept.items()} if kept else make()


def _drop(result: Compiled, names: set[str]) -> None:
    """Forget what the feeder targets made: this compile does not write them."""
    for key in [k for k, scope in result.scopes.items() if scope.target in names]:
        del result.scopes[key]
        result.cache.pop(key, None)
    for path in [p for p, info in result.files.items() if info["target"] in names]:
        del result.outputs[path], result.files[path], result.objects[path]


def _record(result: Compiled, scope: Scope, fp: str, files: Generated) -> None:
    for path in files:
        if path in result.outputs:
            raise TargetCrash(scope.target, "", f"generating {scope.key}",
                              f"two scopes claim {path}: {result.outputs[path][1]} and {scope.key}")
    for path, (data, info, content) in files.items():
        result.outputs[path] = (data, scope.key)
        result.files[path] = info
        result.objects[path] = content
    result.cache[scope.key] = {"fingerprint": fp, "outputs": outputs_digest({p: f[0] for p, f in files.items()})}
