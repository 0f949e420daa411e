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

    (out or sys.stdout).write(dumps(spec_schema() if which == "spec" else environment_schema()))
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
