"""Command implementations: each takes parsed options and returns an exit code.

The click layer in :mod:`mlspec.cli` only parses options and calls these.
Exit codes: 0 ok, 1 invalid input / check failed, 2 usage error.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import IO

from . import reporters
from .errors import SpecError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def validate(paths: list[Path], env_names: list[str] | None, env_dir: Path | None, fmt: str,
             out: IO[str] | None = None) -> int:
    from .project import resolve_paths

    result = resolve_paths(paths or [Path.cwd()], env_names, env_dir)
    specs = len({r.spec_path for r in result.resolved})
    envs = sorted({r.env_name for r in result.resolved if r.env_name})
    where = f" ({', '.join(envs)})" if envs else ""
    reporters.report(
        result.errors, fmt,
        ok_message=f"ok: {result.checked} spec/environment combination(s) valid{where}",
        fail_message=f"{len(result.errors)} problem(s) found",
        summary={"checked": result.checked, "specs": specs, "environments": envs},
        out=out,
    )
    return EXIT_INVALID if result.errors else EXIT_OK


def schema(which: str, out: IO[str] | None = None) -> int:
    from .schema import dumps, environment_schema, spec_schema

    if which == "markdown":
        from .reference import markdown

        text = markdown(spec_schema(), environment_schema())
    else:
        text = dumps(spec_schema() if which == "spec" else environment_schema())
    (out or sys.stdout).write(text)
    return EXIT_OK


STARTER_FILES = {
    "mlops.yaml": "starter.mlops.yaml",
    "data/customers.csv": "starter.customers.csv",
}


def init(directory: Path, force: bool, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    targets = {directory / rel: name for rel, name in STARTER_FILES.items()}
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        reporters.report(
            [SpecError(f"{p} already exists", str(p), 1, 1, hint="use --force to overwrite", code="exists") for p in existing],
            "text", ok_message="", fail_message="nothing written", out=out,
        )
        return EXIT_INVALID
    templates = resources.files("mlspec") / "templates"
    for path, name in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
        out.write(f"wrote {path}\n")
    out.write(f"next: mlspec validate {directory / 'mlops.yaml'}\n")
    return EXIT_OK


def _resolve_for_compile(paths: list[Path], env_names: list[str] | None, env_dir: Path | None,
                         fmt: str, out: IO[str] | None):
    """Resolve specs for compiling; (resolved list, exit code or None)."""
    from .project import resolve_paths

    result = resolve_paths(paths or [Path.cwd()], env_names, env_dir)
    if result.errors:
        reporters.report(result.errors, fmt, ok_message="", fail_message=f"{len(result.errors)} problem(s) found; nothing written",
                         summary={"checked": result.checked}, out=out)
        return [], EXIT_INVALID
    resolved = [r for r in result.resolved if r.env is not None]
    if not resolved:
        err = SpecError("no environment to compile for", "environments/", 1, 1,
                        hint="create environments/<env>.yaml (see README: Environments), or pass --environments DIR",
                        code="no-environment")
        reporters.report([err], fmt, ok_message="", fail_message="nothing written", out=out)
        return [], EXIT_INVALID
    return resolved, None


def _select_targets(names: list[str] | None, out: IO[str]):
    from . import registry

    try:
        return registry.select(names)
    except SpecError as exc:
        out.write(f"mlspec: error: {exc.message}" + (f" ({exc.hint})" if exc.hint else "") + "\n")
        return None


def _previous(out_root: Path):
    """What the last compile into ``out_root`` left, for skipping unchanged scopes."""
    from . import writer
    from .compiler import outputs_digest

    info = writer.read_scope_info(out_root)
    owned = writer.owned_files(out_root)

    def previous(scope: str, fingerprint: str) -> dict[str, bytes] | None:
        record = info.get(scope)
        if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
            return None
        files = {rel: writer.read_owned(out_root, rel, o.sha256) for rel, o in owned.items() if o.scope == scope}
        if not files or any(data is None for data in files.values()):
            return None  # missing or hand-edited: regenerate and let the plan say so
        if outputs_digest(files) != record.get("outputs"):
            return None  # the manifest does not list exactly what that compile wrote
        return files

    return previous


def _plan(paths, env_names, env_dir, out_root: Path, target_names, force: bool, fmt: str, out: IO[str],
          *, reuse: bool = False, jobs: int = 1):
    """Resolve, compile and plan; (plan, exit code or None).

    With ``reuse``, scopes whose inputs are unchanged keep their files (a fast no-op);
    ``--check`` and ``diff`` never reuse: they regenerate everything to prove it current.
    """
    from . import writer
    from .compiler import compile_resolved, scope_of

    resolved, code = _resolve_for_compile(paths, env_names, env_dir, fmt, out)
    if code is not None:
        return None, code
    targets = _select_targets(target_names, out)
    if targets is None:
        return None, EXIT_USAGE
    compiled = compile_resolved(resolved, targets, _previous(out_root) if reuse else None, jobs=jobs)
    if compiled.errors:
        reporters.report(compiled.errors, fmt, ok_message="", fail_message="nothing written", out=out)
        return None, EXIT_INVALID
    scopes = {scope_of(r) for r in resolved}
    return writer.plan(out_root, compiled.outputs, scopes, force=force, scope_info=compiled.inputs), None


def compile(paths: list[Path], env_names: list[str] | None, env_dir: Path | None, out_root: Path,
            target_names: list[str] | None, *, check: bool, dry_run: bool, force: bool, fmt: str,
            jobs: int = 1, out: IO[str] | None = None) -> int:
    from . import writer

    out = out or sys.stdout
    plan, code = _plan(paths, env_names, env_dir, out_root, target_names, force, fmt, out,
                       reuse=not (check or force), jobs=jobs)
    if plan is None:
        return code
    if check:
        problems = writer.check(plan)
        errors = [p.to_error() for p in problems] + list(plan.conflicts)
        reporters.report(errors, fmt, ok_message=f"ok: {len(plan.outputs)} generated file(s) are current",
                         fail_message=f"{len(errors)} generated file(s) differ from the spec; run `mlspec compile` and commit",
                         summary={"files": len(plan.outputs)}, out=out)
        if fmt == "text":
            for problem in problems:
                if problem.diff:
                    out.write(problem.diff if problem.diff.endswith("\n") else problem.diff + "\n")
        return EXIT_INVALID if errors else EXIT_OK
    if plan.conflicts:
        reporters.report(list(plan.conflicts), fmt, ok_message="", fail_message="nothing written", out=out)
        return EXIT_INVALID
    verb = "would " if dry_run else ""
    if not dry_run:
        writer.apply(plan)
    for label, paths_ in (("create", plan.create), ("update", plan.update), ("prune", plan.prune)):
        for rel in paths_:
            out.write(f"{verb}{label} {writer.display(plan.root, rel)}\n")
    out.write(f"{'dry run: ' if dry_run else ''}{len(plan.create)} created, {len(plan.update)} updated, "
              f"{len(plan.prune)} pruned, {len(plan.unchanged)} unchanged under {plan.root}\n")
    return EXIT_OK


def diff(paths: list[Path], env_names: list[str] | None, env_dir: Path | None, out_root: Path,
         target_names: list[str] | None, fmt: str, jobs: int = 1, out: IO[str] | None = None) -> int:
    """Print what `mlspec compile` would change as a unified diff; exit 1 when it would change anything."""
    from . import writer

    out = out or sys.stdout
    plan, code = _plan(paths, env_names, env_dir, out_root, target_names, True, fmt, out, jobs=jobs)
    if plan is None:
        return code
    text = writer.diff(plan)
    out.write(text)
    return EXIT_INVALID if text else EXIT_OK


def run_local(spec_path: Path, env_name: str | None, env_dir: Path | None, out_dir: Path,
              out: IO[str] | None = None) -> int:
    """`mlspec run SPEC --local`: run the training pipeline with kfp.local."""
    from .compiler import context

    out = out or sys.stdout
    resolved, code = _resolve_for_compile([spec_path], [env_name] if env_name else None, env_dir, "text", out)
    if code is not None:
        return code
    chosen = resolved[0]  # the named environment, or the first one found (sorted by name)
    from .run_local import run_local as run

    return run(context(chosen), chosen.base_dir, out_dir, out)
