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
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Callable

from . import __version__
from .artefact import Artefact
from .context import Context
from dataclasses import replace

from .errors import SpecError
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


def _check_path(artefact: Artefact, target: str, ctx: Context) -> str:
    path = PurePosixPath(artefact.path)
    if path.is_absolute() or ".." in path.parts or "\\" in artefact.path or not artefact.path:
        raise ValueError(f"target {target} produced an unsafe path {artefact.path!r}")
    return path.as_posix()


def generate(resolved: Resolved, targets: list[Target]) -> list[tuple[str, Artefact]]:
    """Run every target on one resolved spec; (target name, artefact) pairs in a stable order."""
    ctx = context(resolved)
    out: list[tuple[str, Artefact]] = []
    for target in targets:
        generate_fn = target.load()
        for artefact in generate_fn(ctx):
            _check_path(artefact, target.name, ctx)
            out.append((target.name, artefact))
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


def compile_resolved(resolved_list: list[Resolved], targets: list[Target],
                     previous: Previous | None = None) -> Compiled:
    """Compile every resolved spec.

    A scope that ``previous`` vouches for keeps its files instead of being regenerated,
    so a recompile where nothing changed imports no generator (and so not kfp).
    """
    from .render import render

    result = Compiled()
    names: dict[tuple[str, str], str] = {}
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
            files = kept
        else:
            try:
                artefacts = generate(resolved, targets)
            except SpecError as exc:  # a target's user-facing refusal: locate it in the spec
                if exc.file == "<unknown>":
                    loc = resolved.doc.positions.value(exc.path)
                    exc = replace(exc, file=loc.file, line=loc.line, col=loc.col)
                result.errors.append(exc)
                continue
            files = {}
            for target_name, artefact in artefacts:
                if artefact.path in files or artefact.path in result.outputs:
                    raise ValueError(f"two artefacts claim {artefact.path} (target {target_name})")
                files[artefact.path] = render(artefact, version=__version__, spec_path=resolved.spec_path,
                                              spec_sha256=resolved.sha256)
        result.outputs.update({path: (data, scope) for path, data in files.items()})
        result.inputs[scope] = {"spec": resolved.spec_path, "fingerprint": fp, "outputs": outputs_digest(files)}
    return result
