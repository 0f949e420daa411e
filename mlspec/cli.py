"""The ``mlspec`` command line: option parsing only; the work is in :mod:`mlspec.commands`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from . import reporters

# The CLI needs no pydantic plugins; skipping their discovery saves start-up time.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

ENV_HELP = "Environment to resolve (repeatable; default: every environments/<env>.yaml found)."


def _envs(values: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mlspec")
def main() -> None:
    """mlspec: one mlops.yaml in, validated GitOps artefacts out.

    Exit codes: 0 ok; 1 invalid spec or failed check; 2 usage error.
    """


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

    sys.exit(commands.validate(list(paths), _envs(env), env_dir, fmt or reporters.default_format()))


@main.command()
@click.option("--environment", "which", flag_value="environment", help="Print the environment-file schema instead.")
@click.option("--spec", "which", flag_value="spec", default=True, hidden=True)
def schema(which: str) -> None:
    """Print the JSON Schema of mlops.yaml."""
    from . import commands

    sys.exit(commands.schema(which))


@main.command()
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(directory: Path, force: bool) -> None:
    """Scaffold a commented starter spec (and a small sample data file) in DIRECTORY."""
    from . import commands

    sys.exit(commands.init(directory, force))


if __name__ == "__main__":  # pragma: no cover
    main()
