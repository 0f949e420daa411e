"""Where specs and environment files are, found without importing anything heavy.

Shared by :mod:`mlspec.project` (which validates what it finds) and
:mod:`mlspec.uptodate` (which must answer "did anything change?" faster than a validation).
"""

from __future__ import annotations

from pathlib import Path

SPEC_FILENAMES = ("mlops.yaml", "mlops.yml")
ENV_DIR_NAME = "environments"


def find_specs(path: Path) -> list[Path]:
    """The spec files below folder ``path``, sorted, skipping hidden folders."""
    return sorted(p for name in SPEC_FILENAMES for p in path.rglob(name)
                  if not any(part.startswith(".") for part in p.relative_to(path).parts))


def find_environments_dir(spec_path: Path, stop: Path | None = None) -> Path | None:
    """The nearest ``environments/`` folder at or above the spec's folder.

    The search ends at ``stop``, else at the root of the Git repository the spec is
    in, else at the working directory -- so ``mlspec validate`` run in a project's
    sub-folder still finds the project's ``environments/``.
    """
    here = spec_path.resolve().parent
    chain = (here, *here.parents)
    if stop is None:
        stop = next((folder for folder in chain if (folder / ".git").exists()), None) or Path.cwd()
    stop = stop.resolve()
    for folder in chain:
        candidate = folder / ENV_DIR_NAME
        if candidate.is_dir():
            return candidate
        if folder == stop or (folder / ".git").exists():
            break
    return None


def list_environments(env_dir: Path | None) -> list[str]:
    if env_dir is None or not env_dir.is_dir():
        return []
    return sorted(p.stem for p in env_dir.glob("*.yaml") if not p.name.startswith("."))


