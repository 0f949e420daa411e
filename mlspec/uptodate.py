"""The fast no-op: ``mlspec compile`` when nothing it read last time has changed.

A compile records, for its request (the paths, environments, targets and output root it
was given), every file it read -- spec files, environment files, the local data files
validation looked into -- with its sha256, the list of spec files the paths named and of
environment files found, and a *code key* (mlspec's version and code, every installed
distribution, each target's module folder).  The next identical request first checks that
record: when every file hashes the same, no spec or environment file appeared or went
away, the code key is the same and every owned output still holds what the manifest says,
nothing can have changed, and it is answered without importing pydantic or any target --
like ``make`` with a dependency file.  Anything else falls through to the full compile
(which has its own per-scope cache).  ``--check``, ``--force``, ``--dry-run`` and ``diff``
never take this path.

Only this module and :mod:`mlspec.writer` read for it; the record lives in the writer's
``.mlspec/cache.json`` (local state, not committed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import util
from pathlib import Path
from typing import Any, Iterable

from . import __version__, entrypoints
from .paths import ENV_DIR_NAME, SPEC_FILENAMES, find_specs

GROUP = "mlspec.generators"


def request_key(paths: list[Path], env_names: list[str] | None, env_dir: Path | None,
                target_names: list[str] | None, out_root: Path) -> str:
    request = {
        "paths": sorted(str(p.resolve()) for p in paths),
        "envs": sorted(env_names) if env_names else None,
        "env_dir": str(env_dir.resolve()) if env_dir else None,
        "targets": sorted(target_names) if target_names else None,
        "out": str(out_root.resolve()),
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _spec_files(paths: list[Path]) -> list[str]:
    found: list[str] = []
    for path in paths:
        if path.is_dir():
            found.extend(str(p.resolve()) for p in find_specs(path))
        else:
            found.append(str(path.resolve()))
    return sorted(set(found))


def _env_listing(env_dirs: Iterable[str]) -> dict[str, list[str]]:
    return {d: sorted(p.name for p in Path(d).glob("*.yaml") if not p.name.startswith(".")) for d in sorted(env_dirs)}


def _folder_digest(folder: Path, digest) -> None:
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())


def code_key() -> str:
    """mlspec's version and code, the distributions installed in site-packages (their
    ``*.dist-info`` names carry the versions), and the code of every registered target's
    module folder; reads files, imports no target.  Independent of the working directory."""
    digest = hashlib.sha256(__version__.encode())
    _folder_digest(Path(__file__).resolve().parent, digest)
    for entry in (p for p in sys.path if p.endswith(("site-packages", "dist-packages"))):
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info", ".egg-link")))
        except OSError:
            continue
        digest.update(f"{entry}:{','.join(names)}\n".encode())
    for ep in sorted(entrypoints.entry_points(GROUP), key=lambda e: (e.name, e.value)):
        digest.update(f"{ep.name}={ep.value}\n".encode())
        try:
            spec = util.find_spec(ep.value.partition(":")[0])
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            _folder_digest(Path(spec.origin).resolve().parent, digest)
    return digest.hexdigest()


def _no_nearer_env_dir(spec_file: str, env_dir: str) -> bool:
    """No ``environments/`` folder closer to the spec than the one used last time."""
    holder = Path(env_dir).parent
    for folder in (Path(spec_file).parent, *Path(spec_file).parents):
        if folder == holder:
            return True
        if (folder / ENV_DIR_NAME).is_dir():
            return False
    return True


def record(request: str, resolved: list[Any], paths: list[Path], manifest_sha256: str | None) -> dict[str, Any]:
    """What to remember about a compile that just succeeded (see :func:`is_current`)."""
    inputs: dict[str, str | None] = {}
    specs: dict[str, str] = {}
    for r in resolved:
        specs[str(r.spec_file)] = str(r.env_file.parent) if r.env_file else ""
        for path in (r.spec_file, r.env_file, *r.data_files()):
            if path is not None:
                inputs[str(path)] = _sha(path)
    return {
        "request": request,
        "code": code_key(),
        "inputs": dict(sorted(inputs.items())),
        "specs": dict(sorted(specs.items())),
        "spec_files": _spec_files(paths),
        "environments": _env_listing(v for v in specs.values() if v),
        "manifest": manifest_sha256,
    }


def is_current(saved: dict[str, Any] | None, request: str, paths: list[Path], root: Path,
               owned: dict[str, str]) -> bool:
    """Whether the compile that produced ``saved`` would be repeated exactly by this request.

    ``owned`` is the manifest's path → sha256; every owned file must still hold it."""
    if not isinstance(saved, dict) or saved.get("request") != request:
        return False
    if saved.get("manifest") != _sha(root / ".mlspec" / "manifest.json"):
        return False
    if _spec_files(paths) != saved.get("spec_files"):
        return False
    specs = saved.get("specs") or {}
    if not all(_no_nearer_env_dir(spec, env_dir) for spec, env_dir in specs.items() if env_dir):
        return False
    if _env_listing(v for v in specs.values() if v) != saved.get("environments"):
        return False
    if any(_sha(Path(path)) != digest for path, digest in (saved.get("inputs") or {}).items()):
        return False
    if any(_sha(root / rel) != digest for rel, digest in owned.items()):
        return False
    return saved.get("code") == code_key()


__all__ = ["SPEC_FILENAMES", "code_key", "is_current", "record", "request_key"]
