"""From spec files on disk to validated, environment-resolved specs.

``load`` → ``check_model`` → ``cross_check`` → per environment: ``merge`` overrides →
``check_model`` again → ``cross_check`` → ``policy_check`` → the targets' rules (and the
core rule on names, :mod:`mlspec.rules`).  Everything user-facing that goes wrong is
collected as located :class:`SpecError`; nothing here writes.

Paths written into output are relative to the *project root* (:func:`project_root`),
found once per spec and never from the working directory, so that compiling from any
folder gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
from functools import lru_cache
from pathlib import Path

from . import environments as envs
from .errors import SpecError, SpecErrors
from .loader import Document, display_path, load_file
from .models import Spec
from .registry import TargetCrash
from .rules import RuleContext, names_rule
from .validate import check_model, check_overrides, cross_check, policy_check

from .paths import SPEC_FILENAMES, find_specs  # noqa: F401 - SPEC_FILENAMES re-exported


def discover(paths: list[Path]) -> list[Path]:
    """Spec files named by ``paths``: files as given, folders searched for mlops.yaml."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            hits = find_specs(path)
            if not hits:
                raise SpecErrors([SpecError(f"no mlops.yaml found under {display_path(path)}", display_path(path), 1, 1,
                                            hint="pass a spec file, or run `mlspec init`", code="missing-file")])
            found.extend(hits)
        else:
            found.append(path)
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p, None)
    return list(unique)


def project_root(spec_path: Path, env_dir: Path | None) -> Path:
    """The folder output paths are relative to: the one holding ``environments/`` when the
    spec is below it, else the Git top level above the spec, else the spec's folder."""
    spec_dir = spec_path.resolve().parent
    if env_dir is not None:
        holder = env_dir.resolve().parent
        if spec_dir.is_relative_to(holder):
            return holder
    for folder in (spec_dir, *spec_dir.parents):
        if (folder / ".git").exists():
            return folder
    return spec_dir


@dataclass(frozen=True)
class Resolved:
    """One spec resolved for one environment (``env`` None: the spec as written)."""

    spec: Spec
    doc: Document
    spec_path: str  # relative to ``root``, POSIX: what output names the spec by
    base_dir: Path
    env: envs.Environment | None = None
    env_path: str | None = None  # the environment file as the user sees it
    root: Path | None = None  # the project root (absolute)
    display: str = ""  # the spec file as the user sees it (relative to the cwd)
    env_file: Path | None = None  # the environment file (absolute)

    @property
    def spec_file(self) -> Path:
        """The spec file (absolute)."""
        return (self.root / self.spec_path) if self.root is not None else self.base_dir / Path(self.spec_path).name

    def data_files(self) -> list[Path]:
        """The local data files validation read for this spec (absolute)."""
        return [self.base_dir / s.path for s in self.spec.data.sources
                if s.type == "file" and "://" not in s.path and (self.base_dir / s.path).is_file()]

    @property
    def env_name(self) -> str | None:
        return self.env.name if self.env else None

    @functools.cached_property
    def document(self) -> dict:
        """The resolved document as plain data (see :mod:`mlspec.inputs`), dumped once."""
        from .inputs import document

        return document(self.spec, self.env)


@dataclass
class Result:
    resolved: list[Resolved] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    checked: int = 0  # spec/environment combinations validated


@lru_cache(maxsize=256)
def _cached_columns(path: Path, fmt: str | None, mtime_ns: int) -> dict[str, str]:
    from .datafiles import read_columns

    return read_columns(path, fmt)


def read_columns_cached(path: Path, fmt: str | None) -> dict[str, str]:
    """Columns of a local data file, read once per file version."""
    return dict(_cached_columns(path.resolve(), fmt, path.stat().st_mtime_ns))


@lru_cache(maxsize=256)
def _cached_span(path: Path, fmt: str | None, column: str, mtime_ns: int) -> tuple[float, float] | None:
    from .datafiles import time_span

    return time_span(path, fmt, column)


def time_span_cached(path: Path, fmt: str | None, column: str) -> tuple[float, float] | None:
    """A column's earliest and latest time in a local data file, read once per file version
    (not once per spec/environment combination)."""
    return _cached_span(path.resolve(), fmt, column, path.stat().st_mtime_ns)


def _load_env(env_dir: Path, name: str, known: list[str], cache: dict,
              model: type[envs.Environment]) -> tuple[envs.Environment, Document, str, Path]:
    key = (env_dir.resolve() if env_dir is not None else None, name)
    if key not in cache:
        path = envs.environment_path(env_dir, name, known)
        display = display_path(path)
        doc = load_file(path, display)
        env = check_model(doc, model, "environment")
        if env.name != name:
            loc = doc.positions.value(("name",))
            raise SpecErrors([SpecError(f"environment file {path.name} names itself '{env.name}'", loc.file, loc.line, loc.col,
                                        hint=f"name it '{name}', or rename the file", code="env-name")])
        cache[key] = (env, doc, display, path.resolve())
    return cache[key]


def _targets(targets: list | None) -> list:
    if targets is not None:
        return targets
    from . import registry

    return registry.select(None)


def target_rules(resolved_spec: Spec, merged: Document, env: envs.Environment, env_doc: Document,
                 env_display: str, targets: list) -> list[SpecError]:
    """The core rule on names, then every target's rules, on one resolved spec."""
    rc = RuleContext(resolved_spec, env, merged, env_doc, env_display)
    names_rule(rc, [t.name for t in targets])
    for target in targets:
        if target.rules is None:
            continue
        rc.target = target.name
        try:
            for err in target.rules(rc) or ():
                rc.errors.append(err)
        except SpecError as exc:
            rc.errors.append(exc)
        except Exception as exc:
            raise TargetCrash(target.name, target.distribution, "checking the spec") from exc
    return rc.errors


def resolve(spec_path: Path, env_names: list[str] | None = None, env_dir: Path | None = None,
            *, check_files: bool = True, env_cache: dict | None = None, targets: list | None = None) -> Result:
    """Validate one spec and resolve it for each environment.

    ``env_names`` None means every environment found; an empty list means the spec as
    written, without environments.  ``targets`` (default: every registered one) add their
    environment settings and their rules.
    """
    targets = _targets(targets)
    env_model = envs.model_for(targets)
    result = Result()
    display = display_path(spec_path)
    env_cache = {} if env_cache is None else env_cache
    try:
        doc = load_file(spec_path, display)
        spec = check_model(doc, Spec)
    except SpecError as exc:
        result.errors.append(exc)
        return result
    except SpecErrors as exc:
        result.errors.extend(exc.errors)
        return result
    base_dir = spec_path.resolve().parent
    env_dir = env_dir if env_dir is not None else envs.find_environments_dir(spec_path)
    root = project_root(spec_path, env_dir)
    rel = spec_path.resolve().relative_to(root).as_posix()
    known = envs.list_environments(env_dir)
    names = known if env_names is None else list(dict.fromkeys(env_names))  # each environment once
    reader = read_columns_cached if check_files else None
    span_reader = time_span_cached if check_files else None
    base_errors = cross_check(spec, doc, base_dir, reader, span_reader)
    if env_dir is not None:
        base_errors += check_overrides(spec, doc, known)
    result.errors.extend(base_errors)
    result.checked += 1
    if not names:
        if not base_errors:
            result.resolved.append(Resolved(spec, doc, rel, base_dir, root=root, display=display))
        return result
    plain = {k: v for k, v in doc.data.items() if k != "overrides"}
    base_doc = Document(plain, doc.positions)
    for name in names:
        result.checked += 1
        try:
            env, env_doc, env_display, env_file = _load_env(env_dir, name, known, env_cache, env_model)
        except SpecError as exc:
            result.errors.append(exc)
            continue
        except SpecErrors as exc:
            result.errors.extend(exc.errors)
            continue
        merged = base_doc
        if env.overrides:
            merged = envs.merge(merged, env_doc.data["overrides"], env_doc.positions.subtree(("overrides",)))
        if name in spec.overrides and isinstance(doc.data.get("overrides"), dict):
            merged = envs.merge(merged, doc.data["overrides"][name], doc.positions.subtree(("overrides", name)))
        if merged is base_doc:
            resolved_spec, errors = spec, []
        else:
            try:
                resolved_spec = check_model(merged, Spec)
            except SpecErrors as exc:
                result.errors.extend(exc.errors)
                continue
            errors = cross_check(resolved_spec, merged, base_dir, reader, span_reader)
        errors += policy_check(resolved_spec, merged, env, env_display)
        if not errors and not base_errors:
            errors += target_rules(resolved_spec, merged, env, env_doc, env_display, targets)
        result.errors.extend(errors)
        if not errors and not base_errors:
            result.resolved.append(Resolved(resolved_spec, merged, rel, base_dir, env, env_display, root, display,
                                            env_file))
    return result


def resolve_paths(paths: list[Path], env_names: list[str] | None = None, env_dir: Path | None = None,
                  *, check_files: bool = True, targets: list | None = None) -> Result:
    """Resolve every spec named by ``paths`` (files or folders)."""
    targets = _targets(targets)
    total = Result()
    try:
        specs = discover(paths)
    except SpecErrors as exc:
        total.errors.extend(exc.errors)
        return total
    env_cache: dict = {}
    for spec_path in specs:
        one = resolve(spec_path, env_names, env_dir, check_files=check_files, env_cache=env_cache, targets=targets)
        total.resolved.extend(one.resolved)
        total.errors.extend(one.errors)
        total.checked += one.checked
    total.errors = SpecErrors(total.errors).errors
    return total
