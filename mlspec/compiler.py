"""The compiler: resolved specs → artefacts (generators) → bytes (renderer).

Pure apart from reading the specs: nothing here writes.  :mod:`mlspec.writer` turns
the result into files.

Output layout under the output root (``--out``, default ``.``)::

    deploy/<env>/<spec name>/<target files>   everything Argo CD applies, per environment
    .mlspec/manifest.json                     files mlspec owns, with their hashes, and
                                              the fingerprint each scope was compiled from

Every file belongs to a *scope* ``<spec name>@<env>``; a compile prunes only files of
the scopes it compiles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Callable

from . import __version__
from .artefact import Artefact
from .context import Context
from .errors import UNLOCATED, SpecError
from .project import Resolved
from .registry import Target


def scope_of(resolved: Resolved) -> str:
    return f"{resolved.spec.name}@{resolved.env_name}"


def fingerprint(resolved: Resolved, targets: list[Target]) -> str:
    """Everything generation depends on: mlspec, the targets (and their code), the resolved spec + env."""
    payload = {
        "mlspec": __version__,
        "spec": resolved.sha256,
        "spec_path": resolved.spec_path,
        "targets": [[t.name, t.value, t.distribution, t.version_key()] for t in targets],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def context(resolved: Resolved) -> Context:
    if resolved.env is None:  # pragma: no cover - callers resolve with environments
        raise ValueError("compiling needs an environment")
    return Context(spec=resolved.spec, env=resolved.env, spec_path=resolved.spec_path,
                   spec_sha256=resolved.sha256)


@dataclass
class Compiled:
    outputs: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (bytes, scope)
    inputs: dict[str, dict] = field(default_factory=dict)  # scope -> {"spec": path, "fingerprint": …}
    errors: list[SpecError] = field(default_factory=list)


def generate(resolved: Resolved, targets: list[Target]) -> list[tuple[str, Artefact]]:
    """Run every target on one resolved spec; (target name, artefact) pairs in a stable order.

    Output paths are vetted by :mod:`mlspec.writer`, which refuses any that could leave
    the output root."""
    ctx = context(resolved)
    out: list[tuple[str, Artefact]] = []
    for target in targets:
        out.extend((target.name, artefact) for artefact in target.load()(ctx))
    return sorted(out, key=lambda pair: pair[1].path)


def outputs_digest(files: dict[str, bytes]) -> str:
    """One hash over a scope's output paths and contents."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\n".encode())
    return digest.hexdigest()


#: ``previous(scope, fingerprint)``: the files a scope's last compile wrote, if it was
#: compiled from the same fingerprint and they are intact; else None.
Previous = Callable[[str, str], "dict[str, bytes] | None"]


def _located(exc: SpecError, resolved: Resolved) -> SpecError:
    """A target's user-facing refusal, located in the spec (at ``exc.path`` when given)."""
    if exc.file != UNLOCATED:
        return exc
    loc = resolved.doc.positions.value(exc.path)
    return replace(exc, file=loc.file, line=loc.line, col=loc.col)


def render_scope(resolved: Resolved, targets: list[Target]) -> dict[str, bytes] | SpecError:
    """Every file of one (spec, environment): path -> bytes; or the error that stopped it."""
    from .render import render

    try:
        artefacts = generate(resolved, targets)
    except SpecError as exc:
        return _located(exc, resolved)
    files: dict[str, bytes] = {}
    for target_name, artefact in artefacts:
        if artefact.path in files:
            raise ValueError(f"two artefacts claim {artefact.path} (target {target_name})")
        files[artefact.path] = render(artefact, version=__version__, spec_path=resolved.spec_path,
                                      spec_sha256=resolved.sha256)
    return files


#: Below this many scopes to generate, worker processes cost more than they save.
PARALLEL_MIN_SCOPES = 6
_WORK: tuple[list[Resolved], list[Target]] | None = None  # what forked workers read


def _work(index: int):
    assert _WORK is not None
    outcome = render_scope(_WORK[0][index], _WORK[1])
    if isinstance(outcome, SpecError):  # exceptions lose their fields when pickled
        return ("error", outcome.to_dict())
    return ("ok", outcome)


def _render_all(pending: list[Resolved], targets: list[Target], jobs: int) -> list[dict[str, bytes] | SpecError]:
    """``render_scope`` for each pending scope, in order; forked workers share the work
    when there is enough of it (output is identical whichever process made it)."""
    import multiprocessing

    global _WORK
    if jobs <= 1 or len(pending) < PARALLEL_MIN_SCOPES or "fork" not in multiprocessing.get_all_start_methods():
        return [render_scope(r, targets) for r in pending]
    first = render_scope(pending[0], targets)  # imports the targets' tools once, before forking
    _WORK = (pending, targets)
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(pending) - 1)) as pool:
            rest = pool.map(_work, range(1, len(pending)), chunksize=max(1, (len(pending) - 1) // (jobs * 4)))
    finally:
        _WORK = None
    outcomes: list[dict[str, bytes] | SpecError] = [first]
    for kind, value in rest:
        if kind == "ok":
            outcomes.append(value)
        else:
            outcomes.append(SpecError(value["message"], value["file"], value["line"], value["col"],
                                      hint=value["hint"], code=value["code"]))
    return outcomes


def compile_resolved(resolved_list: list[Resolved], targets: list[Target],
                     previous: Previous | None = None, jobs: int = 1) -> Compiled:
    """Compile every resolved spec, on up to ``jobs`` processes.

    A scope that ``previous`` vouches for keeps its files instead of being regenerated,
    so a recompile where nothing changed imports no generator (and so not kfp).
    """
    result = Compiled()
    names: dict[tuple[str, str], str] = {}
    pending: list[tuple[Resolved, str, str]] = []
    for resolved in resolved_list:
        scope = scope_of(resolved)
        key = (resolved.spec.name, resolved.env_name or "")
        if key in names and names[key] != resolved.spec_path:
            loc = resolved.doc.positions.value(("name",))
            result.errors.append(SpecError(
                f"spec name '{resolved.spec.name}' is also used by {names[key]}", loc.file, loc.line, loc.col,
                hint="spec names become output folders and Kubernetes names; they must be unique", code="duplicate-spec",
            ))
            continue
        names[key] = resolved.spec_path
        fp = fingerprint(resolved, targets)
        kept = previous(scope, fp) if previous is not None else None
        if kept:
            _record(result, scope, resolved, fp, kept)
        else:
            pending.append((resolved, scope, fp))
    outcomes = _render_all([r for r, _, _ in pending], targets, jobs)
    for (resolved, scope, fp), outcome in zip(pending, outcomes):
        if isinstance(outcome, SpecError):
            result.errors.append(outcome)
        else:
            _record(result, scope, resolved, fp, outcome)
    return result


def _record(result: Compiled, scope: str, resolved: Resolved, fp: str, files: dict[str, bytes]) -> None:
    for path in files:
        if path in result.outputs:
            raise ValueError(f"two scopes claim {path}: {result.outputs[path][1]} and {scope}")
    result.outputs.update({path: (data, scope) for path, data in files.items()})
    result.inputs[scope] = {"spec": resolved.spec_path, "fingerprint": fp, "outputs": outputs_digest(files)}
