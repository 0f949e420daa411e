"""Command implementations: each takes parsed options and returns an exit code.

The click layer in :mod:`mlspec.cli` only parses options and calls these, through
:func:`guarded`, the one error handler at the boundary.
Exit codes: 0 ok, 1 invalid input / check failed, 2 usage error, 3 internal error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Callable

from . import __version__, reporters
from .errors import SpecError, SpecErrors

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: Where the traceback of an internal error goes (default: ~/.cache/mlspec/mlspec.log).
LOG_ENV = "MLSPEC_LOG"


def log_path() -> Path:
    if os.environ.get(LOG_ENV):
        return Path(os.environ[LOG_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mlspec" / "mlspec.log"


def _write_log(text: str) -> str:
    """Append ``text`` to the log file; its path, or why it could not be written."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
        return str(path)
    except OSError as exc:
        return f"(could not write {path}: {exc.strerror or exc})"


def guarded(fmt: str, command: Callable[[], int], out: IO[str] | None = None) -> int:
    """Run ``command``; the one place that turns what escapes it into a report and an exit code.

    User errors (:class:`SpecError`, :class:`SpecErrors`) are reported in ``fmt`` and exit 1.
    Anything else is a bug: it exits 3 with "internal error in target X (dist==version)"
    (or in mlspec itself), and the traceback goes to a log file whose path is printed --
    never a traceback on the terminal."""
    out = out or sys.stdout
    try:
        return command()
    except SpecError as exc:
        reporters.report([exc], fmt, ok_message="", fail_message="1 problem(s) found", out=out)
        return EXIT_INVALID
    except SpecErrors as exc:
        reporters.report(exc.errors, fmt, ok_message="", fail_message=f"{len(exc.errors)} problem(s) found", out=out)
        return EXIT_INVALID
    except KeyboardInterrupt:
        out.write("mlspec: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - this is the boundary
        import traceback

        from .registry import TargetCrash

        detail = getattr(exc, "detail", "") if isinstance(exc, TargetCrash) else ""
        text = detail or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        where = _write_log(f"--- mlspec {__version__}: {' '.join(sys.argv)}\n{text}\n")
        if isinstance(exc, TargetCrash):
            cause = exc.__cause__
            reason = f"{type(cause).__name__}: {cause}" if cause is not None else (detail.strip().splitlines() or [""])[-1]
            message = f"{exc}: {reason}"
            hint = f"this is a bug in target {exc.target}; the traceback is in {where} -- please report it to its authors"
        else:
            message = f"internal error in mlspec (mlspec=={__version__}): {type(exc).__name__}: {exc}"
            hint = f"this is a bug in mlspec; the traceback is in {where} -- please report it"
        error = SpecError(message, hint=hint, code="internal-error")
        reporters.report([error], fmt, ok_message="", fail_message="internal error", out=out)
        return EXIT_INTERNAL


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
    "environments/dev.yaml": "starter.env.dev.yaml",
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
    from importlib import resources

    templates = resources.files("mlspec") / "templates"
    for path, name in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
        out.write(f"wrote {path}\n")
    out.write(f"next: cd {directory} && mlspec validate && mlspec compile && mlspec run mlops.yaml --local\n")
    return EXIT_OK


class Refusal(Exception):
    """Why there is nothing to compile: the problems, how to report them, the exit code.
    ``usage``: a bad option (e.g. an unknown target), reported as one line."""

    def __init__(self, errors: list[SpecError], code: int = EXIT_INVALID, fail_message: str = "nothing written",
                 summary: dict | None = None, usage: bool = False) -> None:
        super().__init__(fail_message)
        self.errors, self.code, self.fail_message, self.summary, self.usage = errors, code, fail_message, summary, usage

    def report(self, fmt: str, out: IO[str]) -> int:
        if self.usage:
            for exc in self.errors:
                out.write(f"mlspec: error: {exc.message}" + (f" ({exc.hint})" if exc.hint else "") + "\n")
        else:
            reporters.report(self.errors, fmt, ok_message="", fail_message=self.fail_message, summary=self.summary,
                             out=out)
        return self.code


def resolve_for_compile(paths: list[Path], env_names: list[str] | None, env_dir: Path | None) -> list:
    """Resolve specs for compiling, each with an environment; raises :class:`Refusal`."""
    from .project import resolve_paths

    result = resolve_paths(paths or [Path.cwd()], env_names, env_dir)
    if result.errors:
        raise Refusal(result.errors, fail_message=f"{len(result.errors)} problem(s) found; nothing written",
                      summary={"checked": result.checked})
    resolved = [r for r in result.resolved if r.env is not None]
    if not resolved:
        raise Refusal([SpecError("no environment to compile for", "environments/", 1, 1,
                                 hint="create environments/<env>.yaml (see README: Environments), or pass --environments DIR",
                                 code="no-environment")])
    return resolved


def _previous(out_root: Path):
    """What the last compile into ``out_root`` left, for skipping unchanged scopes."""
    from . import writer
    from .compiler import outputs_digest

    cache = writer.read_cache(out_root)
    owned = writer.owned_files(out_root)

    def previous(scope: str, fingerprint: str):
        record = cache.get(scope)
        if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
            return None
        mine = {rel: o for rel, o in owned.items() if o.scope == scope}
        files = {rel: writer.read_owned(out_root, rel, o.sha256) for rel, o in mine.items()}
        if any(data is None for data in files.values()):
            return None  # missing or hand-edited: regenerate and let the plan say so
        if outputs_digest(files) != record.get("outputs"):
            return None  # the manifest does not list exactly what that compile wrote
        info = {rel: {k: v for k, v in o.info.items() if k != "mlspec"} for rel, o in mine.items()}
        return {rel: (files[rel], info[rel]) for rel in files}

    return previous


def _coverage(paths: list[Path], resolved) -> tuple[list[str], bool]:
    """The folders this compile covers, relative to the project root, and whether it
    covers the whole project (so that repository- and environment-scope targets, made of
    every spec, can be compiled)."""
    roots = {r.root for r in resolved}
    if len(roots) != 1:
        return [], False
    root = roots.pop()
    folders = []
    for path in paths or [Path.cwd()]:
        resolved_path = path.resolve()
        if path.is_dir():
            if root.is_relative_to(resolved_path):
                folders.append("")
            elif resolved_path.is_relative_to(root):
                folders.append(resolved_path.relative_to(root).as_posix())
    return folders, "" in folders


def _orphans(out_root: Path, compiled, folders: list[str], root: Path | None, env_names, target_names,
             compiled_specs: set[str]) -> dict[str, str]:
    """Scopes recorded in the manifest that this compile should prune: their spec file
    was deleted (below a folder the compile covers) or no longer produces them (its
    ``name`` changed).  Returns scope key → why."""
    from . import writer

    if root is None:
        return {}
    found: dict[str, str] = {}
    for rel, owned in writer.owned_files(out_root).items():
        spec, env, target = owned.info.get("spec"), owned.info.get("env"), owned.info.get("target")
        if owned.scope in compiled.scopes or not isinstance(spec, str) or owned.scope in found:
            continue
        if (env_names and env not in env_names) or target not in target_names:
            continue  # another environment, or a target this compile does not run
        if spec in compiled_specs:
            found[owned.scope] = f"{spec} no longer produces it"
        elif any(f == "" or spec.startswith(f + "/") for f in folders) and not (root / spec).exists():
            found[owned.scope] = f"{spec} was deleted"
    return found


def _plan(paths, env_names, env_dir, out_root: Path, target_names, force: bool, fmt: str, out: IO[str],
          *, reuse: bool = False, jobs: int = 1):
    """:func:`build_plan`, its refusal reported; (plan, resolved, notes, exit code or None)."""
    try:
        plan, resolved, notes = build_plan(paths, env_names, env_dir, out_root, target_names, force, reuse=reuse,
                                           jobs=jobs)
    except Refusal as refusal:
        return None, None, [], refusal.report(fmt, out)
    return plan, resolved, notes, None


def build_plan(paths, env_names, env_dir, out_root: Path, target_names, force: bool, *, reuse: bool = False,
               jobs: int = 1):
    """Resolve, compile and plan; (plan, resolved, notes), or raises :class:`Refusal`.

    With ``reuse``, scopes whose inputs are unchanged keep their files (a fast no-op);
    ``--check`` and ``diff`` never reuse: they regenerate everything to prove it current.
    """
    from . import registry, writer
    from .compiler import compile_resolved

    try:
        targets = registry.select(target_names)
    except SpecError as exc:
        raise Refusal([exc], EXIT_USAGE, usage=True) from None
    resolved = resolve_for_compile(paths, env_names, env_dir)
    folders, whole = _coverage(paths, resolved)
    envs = {r.env_name for r in resolved}
    # a consuming target (e.g. argocd) is made of the others' output: compiling it alone
    # still generates them, to read, not to write
    feeders = registry.select(None) if target_names and any(t.consumes for t in targets) else []
    compiled = compile_resolved(resolved, targets, _previous(out_root) if reuse else None, jobs=jobs,
                                wide_envs=envs if whole else set(), whole_repository=whole and not env_names,
                                feeders=feeders)
    if compiled.errors:
        raise Refusal(compiled.errors)
    notes = [f"left {key} alone: it is made from every spec, and this compile does not cover the whole project "
             "(compile the project root to update it)" for key in compiled.skipped]
    orphans = _orphans(out_root, compiled, folders, resolved[0].root, env_names, [t.name for t in targets],
                       {r.spec_path for r in resolved})
    notes += [f"pruning {key}: {why}" for key, why in sorted(orphans.items())]
    scopes = set(compiled.scopes) | set(orphans)
    plan = writer.plan(out_root, compiled.outputs, scopes, force=force, file_info=compiled.files,
                       cache=compiled.cache)
    return plan, resolved, notes


def compile(paths: list[Path], env_names: list[str] | None, env_dir: Path | None, out_root: Path,
            target_names: list[str] | None, *, check: bool, dry_run: bool, force: bool, fmt: str,
            jobs: int = 1, out: IO[str] | None = None) -> int:
    from . import writer

    from . import uptodate

    out = out or sys.stdout
    fast = not (check or force or dry_run)
    request = uptodate.request_key(paths or [Path.cwd()], env_names, env_dir, target_names, out_root)
    if fast and out_root.is_dir() and not writer.interrupted(out_root):
        saved = writer.read_runs(out_root).get(request)
        owned = {rel: o.sha256 for rel, o in writer.owned_files(out_root).items()}
        if uptodate.is_current(saved, request, paths or [Path.cwd()], out_root, owned):
            out.write(f"0 created, 0 updated, 0 pruned, {saved.get('files', 0)} unchanged under {out_root} "
                      "(nothing it reads has changed)\n")
            return EXIT_OK
    plan, resolved, notes, code = _plan(paths, env_names, env_dir, out_root, target_names, force, fmt, out,
                                        reuse=not (check or force), jobs=jobs)
    if plan is None:
        return code
    if fmt == "text":
        for note in notes:
            out.write(f"note: {note}\n")
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
        manifest = out_root / writer.MANIFEST_PATH
        record = uptodate.record(request, resolved, paths or [Path.cwd()],
                                 writer.sha256_hex(manifest.read_bytes()) if manifest.is_file() else None)
        writer.remember(out_root, request, {**record, "files": len(plan.outputs)})
    for label, paths_ in (("create", plan.create), ("update", plan.update), ("prune", plan.prune)):
        for rel in paths_:
            out.write(f"{verb}{label} {writer.display(plan.root, rel)}\n")
    out.write(f"{'dry run: ' if dry_run else ''}{len(plan.create)} created, {len(plan.update)} updated, "
              f"{len(plan.prune)} pruned, {len(plan.unchanged)} unchanged under {plan.root}\n")
    return EXIT_OK


def diff(paths: list[Path], env_names: list[str] | None, env_dir: Path | None, out_root: Path,
         target_names: list[str] | None, fmt: str = "text", jobs: int = 1, out: IO[str] | None = None, *,
         base: str | None = None, against: Path | None = None, exit_code: bool = False) -> int:
    """`mlspec diff`: the semantic, ML-aware difference between a base (``base``: a git
    revision; ``against``: a committed output root; neither: ``out_root`` as it is) and the
    specs compiled now.  Exit 0 (changes or not), 1 changes with ``exit_code``, 2 an error;
    see :mod:`mlspec.semdiff`."""
    from . import semdiff

    return semdiff.run(paths, env_names, env_dir, base=base, against=against, out_root=out_root,
                       target_names=target_names, fmt=fmt, exit_code=exit_code, jobs=jobs, out=out)


def run_local(spec_path: Path, env_name: str | None, env_dir: Path | None, out_dir: Path,
              out: IO[str] | None = None, feast_python: str | None = None) -> int:
    """`mlspec run SPEC --local`: run the training pipeline with kfp.local (``feast_python``:
    ``--feast-python``, the Python with Feast of a Feast feature step)."""
    from . import registry
    from .compiler import context

    from .paths import find_environments_dir, list_environments

    out = out or sys.stdout
    if env_name is None:  # the first environment by name; only that one is validated and run
        known = list_environments(env_dir if env_dir is not None else find_environments_dir(spec_path))
        if known:
            env_name = known[0]
            if len(known) > 1:
                out.write(f"environment: {env_name} (the first of {', '.join(known)}; choose one with --env)\n")
    try:
        resolved = resolve_for_compile([spec_path], [env_name] if env_name else None, env_dir)
    except Refusal as refusal:
        return refusal.report("text", out)
    chosen = resolved[0]
    from .run_local import run_local as run

    extra = {"feast_python": feast_python} if feast_python else {}
    return run(context(chosen, registry.select(["kubeflow"])[0]), chosen.base_dir, out_dir, out, **extra)


def graph(spec_path: Path, env_name: str | None, env_dir: Path | None, fmt: str = "mermaid",
          out: IO[str] | None = None) -> int:
    """`mlspec graph SPEC`: print a picture of one ML system, as Mermaid (``fmt`` "mermaid") or
    Graphviz DOT ("dot").  Without ``env_name``: the spec as written, without any
    environment's overrides (only the spec is validated); with it, the spec resolved and
    validated for that environment.  An invalid spec raises, for :func:`guarded` to report."""
    from . import graph as graphs
    from .loader import display_path
    from .project import discover, resolve

    out = out or sys.stdout
    specs = discover([spec_path])
    if len(specs) != 1:
        raise SpecError(f"{len(specs)} specs under {display_path(spec_path)}; mlspec graph draws one",
                        display_path(spec_path), 1, 1, hint="pass one mlops.yaml", code="usage")
    result = resolve(specs[0], [env_name] if env_name else [], env_dir)
    if result.errors:
        raise SpecErrors(result.errors)
    drawing = graphs.build(result.resolved[0])
    out.write(graphs.dot(drawing) if fmt == "dot" else graphs.mermaid(drawing))
    return EXIT_OK


# --------------------------------------------------------------------------- editing commands
# `mlspec traffic / promote / rollback / challenger`: edit the spec in place (or its
# overrides.<env> block), keeping every other byte; see mlspec.edit.


def _edit_spec_path(spec: Path) -> Path:
    if spec.is_dir():
        from .paths import SPEC_FILENAMES

        found = [spec / name for name in SPEC_FILENAMES if (spec / name).is_file()]
        if found:
            return found[0]
    return spec


def _edit_layers(spec_path: Path, env_dir: Path | None, env: str | None) -> tuple[dict, Path | None]:
    """The environments the spec is resolved in, with their files' overrides."""
    from . import edit
    from . import environments as envs
    from .loader import display_path, load_file

    env_dir = env_dir if env_dir is not None else envs.find_environments_dir(spec_path)
    known = envs.list_environments(env_dir)
    if env is not None:
        envs.environment_path(env_dir, env, known)  # an unknown environment: a located error
    layers = {}
    for name in known:
        path = env_dir / f"{name}.yaml"
        data = load_file(path, display_path(path)).data
        overrides = data.get("overrides") if isinstance(data, dict) else None
        layers[name] = edit.Layer(name, overrides if isinstance(overrides, dict) else {}, display_path(path))
    return layers, env_dir


def _edit(spec: Path, env: str | None, env_dir: Path | None, make: Callable, *, force: bool, dry_run: bool,
          compile_: bool, out_root: Path, fmt: str, out: IO[str] | None) -> int:
    """Compute an edit with ``make(text, layers, display)``, validate it, show it, write it."""
    import dataclasses

    from . import edit
    from .loader import display_path, load_text, read_file

    out = out or sys.stdout
    spec_path = _edit_spec_path(spec)
    display = display_path(spec_path)
    text = read_file(spec_path, display)
    raw = text.encode("utf-8")  # exactly the bytes read: UTF-8 without a BOM round-trips
    load_text(text, display)  # a spec that does not parse is reported as validate reports it
    layers, env_dir = _edit_layers(spec_path, env_dir, env)
    edit.clean_stale(spec_path.resolve().parent)
    result = make(text, layers, display)
    if not result.changed:
        message = f"nothing to change in {display}: {result.summary} already"
        if fmt == "json":
            reporters.report([], fmt, ok_message="", fail_message="",
                             summary={"spec": display, "changed": False, "written": False, "summary": result.summary,
                                      "notes": result.notes, "diff": ""}, out=out)
        else:
            for note in result.notes:
                out.write(f"note: {note}\n")
            out.write(message + "\n")
        return EXIT_OK
    diff_text = edit.unified_diff(result.old, result.new, display)
    errors = edit.check_candidate(spec_path, result.old, result.new, [env] if env else None, env_dir)
    policy = [e for e in errors if e.code == "policy"]
    others = [e for e in errors if e.code != "policy"]
    refused = others or (policy and not force)
    summary = {"spec": display, "changed": True, "summary": result.summary, "notes": result.notes, "diff": diff_text}
    if refused:
        if not others:
            policy = [dataclasses.replace(e, hint=(e.hint + "; " if e.hint else "") + "or pass --force to write it anyway")
                      for e in policy]
        reporters.report(others + policy, fmt, ok_message="",
                         fail_message=f"refused: the edit ({result.summary}) would leave {len(errors)} problem(s); "
                                      f"{display} is unchanged",
                         summary={**summary, "written": False}, out=out)
        if fmt == "text":
            out.write("the refused edit:\n" + diff_text)
        return EXIT_INVALID
    warnings = [dataclasses.replace(e, severity="warning", message=e.message + " (written anyway: --force)")
                for e in policy]
    if not dry_run:
        edit.apply(spec_path, raw, result.new)
    if fmt == "json":
        reporters.report([], fmt, ok_message="", fail_message="",
                         summary={**summary, "written": not dry_run,
                                  "warnings": [w.to_dict() for w in warnings]}, out=out)
    else:
        out.write(diff_text)
        if warnings:
            reporters.report(warnings, fmt, ok_message="", fail_message=f"{len(warnings)} policy warning(s)", out=out)
        if fmt == "text":
            for note in result.notes:
                out.write(f"note: {note}\n")
        out.write(f"{'dry run: would write' if dry_run else 'wrote'} {display}: {result.summary}\n")
        if compile_ and dry_run:
            out.write("note: --compile skipped: nothing was written\n")
    if compile_ and not dry_run:
        return compile([spec_path], [env] if env else None, env_dir, out_root, None, check=False, dry_run=False,
                       force=False, fmt=fmt, jobs=1, out=out)
    return EXIT_OK


def traffic(spec: Path, share: int, env: str | None, env_dir: Path | None, *, force: bool = False,
            dry_run: bool = False, compile_: bool = False, out_root: Path = Path("."), fmt: str = "text",
            out: IO[str] | None = None) -> int:
    """`mlspec traffic SPEC --challenger N`: the challenger gets N%, the champion 100-N."""
    from . import edit

    return _edit(spec, env, env_dir, lambda text, layers, file: edit.traffic(text, share, env, layers, file),
                 force=force, dry_run=dry_run, compile_=compile_, out_root=out_root, fmt=fmt, out=out)


def promote(spec: Path, env: str | None, env_dir: Path | None, *, force: bool = False, dry_run: bool = False,
            compile_: bool = False, out_root: Path = Path("."), fmt: str = "text", out: IO[str] | None = None) -> int:
    """`mlspec promote SPEC`: the challenger becomes the champion at 100%."""
    from . import edit

    return _edit(spec, env, env_dir, lambda text, layers, file: edit.promote(text, env, layers, file),
                 force=force, dry_run=dry_run, compile_=compile_, out_root=out_root, fmt=fmt, out=out)


def rollback(spec: Path, env: str | None, env_dir: Path | None, *, drop_challenger: bool = False,
             force: bool = False, dry_run: bool = False, compile_: bool = False, out_root: Path = Path("."),
             fmt: str = "text", out: IO[str] | None = None) -> int:
    """`mlspec rollback SPEC`: 100% of traffic to the champion."""
    from . import edit

    return _edit(spec, env, env_dir,
                 lambda text, layers, file: edit.rollback(text, env, drop_challenger, layers, file),
                 force=force, dry_run=dry_run, compile_=compile_, out_root=out_root, fmt=fmt, out=out)


def challenger(spec: Path, uri: str, version: str | None, share: int | None, env: str | None,
               env_dir: Path | None, *, force: bool = False, dry_run: bool = False, compile_: bool = False,
               out_root: Path = Path("."), fmt: str = "text", out: IO[str] | None = None) -> int:
    """`mlspec challenger SPEC --uri URI`: put a newly registered model in as the challenger."""
    from . import edit

    return _edit(spec, env, env_dir,
                 lambda text, layers, file: edit.challenger(text, uri, version, share, env, layers, file),
                 force=force, dry_run=dry_run, compile_=compile_, out_root=out_root, fmt=fmt, out=out)
