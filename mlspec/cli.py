"""The ``mlspec`` command line: option parsing only; the work is in :mod:`mlspec.commands`."""

from __future__ import annotations

import gc

# A short command-line run: the cyclic GC runs far less often while the run imports its
# modules and builds its models (a first generation of 100,000 objects, not 700; the older
# generations as usual, relative to it).  Set before the imports below, which it speeds up.
gc.set_threshold(100_000, 10, 10)

import atexit  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

from . import __version__
from . import reporters


@functools.cache
def _set_up_process() -> None:
    """Once per process, when a command runs: what suits a short command-line run.

    * The cyclic GC does not run over what is left at exit (the interpreter's last
      collections: ~30 ms of a `validate`); see the threshold at the top of this module.
    * pydantic looks for no plugins (mlspec uses none): see :class:`_NoPydanticPlugins`.
      Not by PYDANTIC_DISABLE_PLUGINS, which the processes mlspec starts (kfp, feast) would
      inherit, and which still imports the loader; nor by importing pydantic here, which a
      command that validates nothing (an up-to-date compile) does not need.
    """
    atexit.register(gc.freeze)
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        return
    if _PLUGIN_LOADER in sys.modules:
        _no_plugins(sys.modules[_PLUGIN_LOADER])
    else:
        sys.meta_path.insert(0, _NoPydanticPlugins)


_PLUGIN_LOADER = "pydantic.plugin._loader"


def _no_plugins(loader) -> None:
    if getattr(loader, "_plugins", False) is None:  # not looked for yet (another pydantic: left alone)
        loader._plugins = {}


class _NoPydanticPlugins:
    """pydantic's plugin loader as mlspec runs it: an import hook that answers the loader's
    import with a module whose ``get_plugins()`` -- all pydantic asks of it -- finds none, then
    leaves ``sys.meta_path``.  The real loader imports ``importlib.metadata`` (the ``email``
    package, ``zipfile``, ``csv``: ~11 ms) to scan every installed distribution's entry points
    for plugins.  Asked for anything else, the module loads the real one, which has no
    plugins either."""

    @staticmethod
    def find_spec(name: str, path=None, target=None):
        if name != _PLUGIN_LOADER:
            return None
        sys.meta_path.remove(_NoPydanticPlugins)
        from importlib.machinery import ModuleSpec

        return ModuleSpec(name, _NoPydanticPlugins, origin="mlspec: no pydantic plugins")

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module) -> None:
        def get_plugins() -> tuple:
            return ()

        def __getattr__(attr: str):  # noqa: N807 - a module's attribute hook
            if attr.startswith("__"):  # what the import system probes for (__path__, ...)
                raise AttributeError(attr)
            return getattr(_real_plugin_loader(), attr)

        module.get_plugins = get_plugins
        module.__getattr__ = __getattr__


@functools.cache
def _real_plugin_loader():
    import importlib.machinery
    import importlib.util

    parent = sys.modules[_PLUGIN_LOADER.rpartition(".")[0]]
    spec = importlib.machinery.PathFinder.find_spec(_PLUGIN_LOADER, parent.__path__)
    real = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real)
    _no_plugins(real)
    return real


ENV_HELP = "Environment to resolve (repeatable; default: every environments/<env>.yaml found)."


def _envs(values: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mlspec")
def main() -> None:
    """mlspec: one mlops.yaml in, validated GitOps artefacts out.

    Exit codes: 0 ok; 1 invalid spec or failed check; 2 usage error; 3 internal error
    (a bug: the traceback goes to ~/.cache/mlspec/mlspec.log).
    """
    _set_up_process()


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--env", "-e", "env", multiple=True, help=ENV_HELP)
@click.option("--environments", "env_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of environment files (default: nearest environments/ above the spec).")
@click.option("--format", "-f", "fmt", type=click.Choice(reporters.FORMATS), default=None,
              help="Output format (default: github when GITHUB_ACTIONS=true, else text).")
def validate(paths: tuple[Path, ...], env: tuple[str, ...], env_dir: Path | None, fmt: str | None) -> None:
    """Validate spec files (or folders holding mlops.yaml) for each environment."""
    from . import commands

    fmt = fmt or reporters.default_format()
    sys.exit(commands.guarded(fmt, lambda: commands.validate(list(paths), _envs(env), env_dir, fmt)))


def _targets(value: str | None) -> list[str] | None:
    return [t.strip() for t in value.split(",") if t.strip()] if value else None


def _jobs_option(func):
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Processes to generate with (default: the number of CPUs).")(func)


def _jobs(value: int | None) -> int:
    return value or os.cpu_count() or 1


def _spec_options(func):
    func = click.option("--environments", "env_dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Folder of environment files (default: nearest environments/ above the spec).")(func)
    func = click.option("--env", "-e", "env", multiple=True, help=ENV_HELP)(func)
    return click.argument("paths", nargs=-1, type=click.Path(path_type=Path))(func)


@main.command("compile")
@_spec_options
@click.option("--out", "-o", "out_root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Output root; files go under deploy/<env>/<spec>/.")
@click.option("--targets", "-t", help="Comma-separated targets to run (default: all registered).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing stale, missing and extra files (the CI gate).")
@click.option("--dry-run", is_flag=True, help="Write nothing; list what would be created, updated and pruned.")
@click.option("--force", is_flag=True, help="Overwrite or prune generated files that were edited by hand.")
@click.option("--format", "-f", "fmt", type=click.Choice(reporters.FORMATS), default=None,
              help="Format of problems (default: github when GITHUB_ACTIONS=true, else text).")
@_jobs_option
def compile_(paths, env, env_dir, out_root, targets, check, dry_run, force, fmt, jobs) -> None:
    """Compile specs into per-environment GitOps artefacts under --out."""
    from . import commands

    fmt = fmt or reporters.default_format()
    sys.exit(commands.guarded(fmt, lambda: commands.compile(
        list(paths), _envs(env), env_dir, out_root, _targets(targets), check=check, dry_run=dry_run, force=force,
        fmt=fmt, jobs=_jobs(jobs))))


@main.command()
@_spec_options
@click.option("--base", "base", metavar="GIT_REF",
              help="Compare with the specs as they are at this git revision (read from git objects; the work tree "
                   "and index are not touched).")
@click.option("--against", type=click.Path(file_okay=False, path_type=Path),
              help="Compare with the files of this committed output root.")
@click.option("--out", "-o", "out_root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Output root (without --base/--against: the one compared with).")
@click.option("--targets", "-t", help="Comma-separated targets to run (default: all registered).")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="text for a terminal, markdown for a pull request, json for machines.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are changes (as git diff --exit-code).")
@_jobs_option
def diff(paths, env, env_dir, base, against, out_root, targets, fmt, exit_code, jobs) -> None:
    """Show what a spec change does to the rendered resources: ML changes first (traffic, models,
    gates, drift, replicas, search, schedule, features), then resources added, removed and
    changed field by field, then unified diffs of the other files; secrets masked.

    The base is --base GIT_REF, --against DIR, or else the output root --out as it is (what
    `mlspec compile` would change).

    \b
    Exit codes:
      0  no changes, or changes without --exit-code
      1  changes with --exit-code
      2  error (invalid spec, unknown revision, bad option)
      3  internal error
    """
    from . import commands

    if base is not None and against is not None:
        raise click.UsageError("give --base or --against, not both")
    sys.exit(commands.guarded(fmt if fmt == "json" else "text", lambda: commands.diff(
        list(paths), _envs(env), env_dir, out_root, _targets(targets), fmt, jobs=_jobs(jobs), base=base,
        against=against, exit_code=exit_code)))


@main.command("verify")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--env", "-e", "env", multiple=True,
              help="Only the output compiled for this environment (repeatable; default: every one in the manifest).")
@click.option("--out", "-o", "out_root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Output root holding the compiled files and .mlspec/manifest.json.")
@click.option("--context", default=None, help="kubeconfig context to verify against (default: the current context).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).")
@click.option("--format", "-f", "fmt", type=click.Choice(reporters.FORMATS), default=None,
              help="Output format (default: github when GITHUB_ACTIONS=true, else text).")
def verify_(paths, env, out_root, context, kubeconfig, fmt) -> None:
    """Server-side dry-run apply of the compiled output against a cluster.

    PATHS (specs or folders) limit it to those specs' output. Exit 0: every object accepted;
    1: some rejected; 2: no cluster reachable (or no kubeconfig)."""
    from . import commands
    from .verify import verify as run_verify

    fmt = fmt or reporters.default_format()
    sys.exit(commands.guarded(fmt, lambda: run_verify(list(paths), _envs(env), out_root, context=context,
                                                      kubeconfig=kubeconfig, fmt=fmt)))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--local", is_flag=True, required=True, help="Run on this machine with kfp.local (required for now).")
@click.option("--env", "-e", "env", default=None,
              help="Environment to run in (default: the first environments/<env>.yaml by name; only the environment "
                   "run is validated).")
@click.option("--environments", "env_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of environment files (default: nearest environments/ above the spec).")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".mlspec-run"),
              show_default=True, help="Where the model, metrics and pipeline artefacts go.")
@click.option("--feast-python", default=None,
              help="Python with Feast installed, for the Feast feature step of a spec whose features Feast "
                   "serves (default: $MLSPEC_FEAST_PYTHON).")
def run(spec: Path, local: bool, env: str | None, env_dir: Path | None, out_dir: Path,
        feast_python: str | None) -> None:
    """Run SPEC's training pipeline locally (kfp.local): ingest, checks, features, grid, gate, register."""
    from . import commands

    sys.exit(commands.guarded("text", lambda: commands.run_local(spec, env, env_dir, out_dir,
                                                                 feast_python=feast_python)))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--local", is_flag=True, required=True, help="Apply and materialize on this machine (required for now).")
@click.option("--env", "-e", "env", default=None, help="Environment to resolve (default: the first found).")
@click.option("--entity", "entities", multiple=True, metavar="KEY=VALUE",
              help="Entity to read (repeatable; default: every entity of the label source).")
@click.option("--environments", "env_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of environment files (default: nearest environments/ above the spec).")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the Feast work folder here (default: a temporary one).")
@click.option("--feast-python", default=None,
              help="Python with Feast installed (default: $MLSPEC_FEAST_PYTHON, else this interpreter).")
def features(spec: Path, local: bool, env: str | None, entities: tuple[str, ...], env_dir: Path | None,
             out_dir: Path | None, feast_python: str | None) -> None:
    """Apply SPEC's generated Feast repository locally, materialize the sample data and print the
    online feature values the model would get."""
    from . import commands
    from .generators.feast_local import features_local

    sys.exit(commands.guarded("text", lambda: features_local(spec, env, entities, env_dir=env_dir, out_dir=out_dir,
                                                             feast_python_path=feast_python)))


@main.command()
@click.option("--environment", "which", flag_value="environment", help="Print the environment-file schema instead.")
@click.option("--markdown", "which", flag_value="markdown", help="Print the Markdown field reference (docs/spec.md).")
@click.option("--spec", "which", flag_value="spec", default=True, hidden=True)
def schema(which: str) -> None:
    """Print the JSON Schema of mlops.yaml."""
    from . import commands

    sys.exit(commands.guarded("text", lambda: commands.schema(which)))


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--env", "-e", "env", default=None,
              help="Draw the spec resolved for this environment (default: the spec as written, without any "
                   "environment's overrides).")
@click.option("--environments", "env_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of environment files (default: nearest environments/ above the spec).")
@click.option("--format", "-f", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="Mermaid (GitHub renders it in markdown) or Graphviz DOT.")
def graph(spec: Path, env: str | None, env_dir: Path | None, fmt: str) -> None:
    """Print a picture of SPEC's ML system: sources → checks → feature views → feature service →
    training → model → champion/challenger split → drift → action."""
    from . import commands

    sys.exit(commands.guarded(reporters.default_format(), lambda: commands.graph(spec, env, env_dir, fmt)))


@main.command()
@click.argument("spec", type=click.Path(exists=True, path_type=Path))
@click.option("--reference", required=True, type=click.Path(exists=True, path_type=Path),
              help="Reference rows: a CSV or Parquet file, or a drift detector directory the pipeline wrote "
                   "(its x_ref.npy, the served detector's reference).")
@click.option("--current", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rows to test, one batch: a CSV or Parquet file with the monitored features as columns.")
@click.option("--env", "-e", "env", default=None,
              help="Use the drift policy resolved for this environment (default: the first environments/<env>.yaml "
                   "by name, as mlspec run does; the spec as written when there is no environment).")
@click.option("--environments", "env_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of environment files (default: nearest environments/ above the spec).")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="A per-feature table, or JSON.")
def drift(spec: Path, reference: Path, current: Path, env: str | None, env_dir: Path | None, fmt: str) -> None:
    """Run SPEC's drift policy offline on two data files, with the deployed detector's tests,
    correction and threshold (Alibi Detect 0.11.4's statistics; needs mlspec[drift]).

    Exit codes: 0 no drift; 1 drift, or invalid input (a located error); 2 usage error."""
    from . import commands
    from .drift import run

    sys.exit(commands.guarded(fmt, lambda: run(spec, env, env_dir, reference, current, fmt)))


@main.command()
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(directory: Path, force: bool) -> None:
    """Scaffold a commented starter spec (and a small sample data file) in DIRECTORY."""
    from . import commands

    sys.exit(commands.guarded("text", lambda: commands.init(directory, force)))


def _edit_options(func):
    """The options every editing command takes."""
    for option in reversed((
        click.option("--env", "-e", "env", default=None,
                     help="Edit the spec's overrides.<ENV> block (created if need be) instead of the spec as written."),
        click.option("--environments", "env_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Folder of environment files (default: nearest environments/ above the spec)."),
        click.option("--force", is_flag=True, help="Write even if an environment's policy forbids the result."),
        click.option("--dry-run", is_flag=True, help="Show the diff; write nothing."),
        click.option("--compile", "compile_", is_flag=True, help="Recompile the spec after writing it."),
        click.option("--out", "-o", "out_root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                     show_default=True, help="Output root for --compile."),
        click.option("--format", "-f", "fmt", type=click.Choice(reporters.FORMATS), default=None,
                     help="Format of problems (default: github when GITHUB_ACTIONS=true, else text)."),
    )):
        func = option(func)
    return click.argument("spec", type=click.Path(path_type=Path))(func)


@main.command()
@_edit_options
@click.option("--challenger", "share", type=click.IntRange(0, 100), required=True,
              help="The challenger's share in percent; the champion gets the rest (shadow: the mirrored share).")
def traffic(spec, env, env_dir, force, dry_run, compile_, out_root, fmt, share) -> None:
    """Set the champion/challenger split of SPEC (in place, keeping comments and layout)."""
    from . import commands

    fmt = fmt or reporters.default_format()
    sys.exit(commands.guarded(fmt, lambda: commands.traffic(
        spec, share, env, env_dir, force=force, dry_run=dry_run, compile_=compile_, out_root=out_root, fmt=fmt)))


@main.command()
@_edit_options
def promote(spec, env, env_dir, force, dry_run, compile_, out_root, fmt) -> None:
    """Make the challenger of SPEC the champion, at 100%, and remove the challenger."""
    from . import commands

    fmt = fmt or reporters.default_format()
    sys.exit(commands.guarded(fmt, lambda: commands.promote(
        spec, env, env_dir, force=force, dry_run=dry_run, compile_=compile_, out_root=out_root, fmt=fmt)))


@main.command()
@_edit_options
@click.option("--drop-challenger", is_flag=True, help="Remove the challenger model as well.")
def rollback(spec, env, env_dir, force, dry_run, compile_, out_root, fmt, drop_challenger) -> None:
    """Send 100% of SPEC's traffic to the champion (without --env: in every environment)."""
    from . import commands

    fmt = fmt or reporters.default_format()
    sys.exit(commands.guarded(fmt, lambda: commands.rollback(
        spec, env, env_dir, drop_challenger=drop_challenger, force=force, dry_run=dry_run, compile_=compile_,
        out_root=out_root, fmt=fmt)))


@main.command()
@_edit_options
@click.option("--uri", required=True, help="Where the new model artefact lives (gs://, s3://, ...).")
@click.option("--version", "version", default=None, help="The model's version (written as a string).")
@click.option("--traffic", "share", type=click.IntRange(0, 100), default=None,
              help="Also give it this share in percent (default: keep the current split).")
def challenger(spec, env, env_dir, force, dry_run, compile_, out_root, fmt, uri, version, share) -> None:
    """Put a newly registered model into SPEC as the challenger."""
    from . import commands

    fmt = fmt or reporters.default_format()
    sys.exit(commands.guarded(fmt, lambda: commands.challenger(
        spec, uri, version, share, env, env_dir, force=force, dry_run=dry_run, compile_=compile_,
        out_root=out_root, fmt=fmt)))


if __name__ == "__main__":  # pragma: no cover
    main()
