"""Helpers of the Feast functional tests: a project copy, resolving, one runner call."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from mlspec.generators import feast as ft

ROOT = Path(__file__).resolve().parents[3]
#: The environment keys these tests resolve with: the core, kubeflow and feast (other targets'
#: blocks are not known to the targets passed to resolve_paths).
KEEP = {"name", "namespace", "registry", "argocd", "storage", "policies", "overrides", "kubeflow", "feast"}


def project_copy(tmp: Path) -> Path:
    """examples/ and environments/ in a fresh folder that is its own git top level."""
    work = tmp / "project"
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (work / "environments").mkdir()
    for env_file in sorted((ROOT / "environments").glob("*.yaml")):  # only the blocks of the targets used here
        data = yaml.safe_load(env_file.read_text(encoding="utf-8"))
        keep = {k: v for k, v in data.items() if k in KEEP}
        (work / "environments" / env_file.name).write_text(yaml.safe_dump(keep, sort_keys=False), encoding="utf-8")
    (work / ".git").mkdir()
    return work


def resolve(paths: list[Path], envs: list[str] | None = None):
    from mlspec.generators import kubeflow
    from mlspec.project import resolve_paths

    result = resolve_paths(paths, envs, targets=[kubeflow.target, ft.target])
    assert not result.errors, "\n".join(str(e) for e in result.errors)
    return result.resolved


def run_spec(python: Path, resolved, workdir: Path, *, entity_rows: list[dict] | None = None,
             entity_parquet: Path | None = None, registry: bool = False) -> dict:
    """Localize, apply, prepare, materialize; read online/historical; the runner's result."""
    from mlspec.compiler import context
    from mlspec.generators import feast_local

    ctx = context(resolved, ft.target)
    workdir.mkdir(parents=True, exist_ok=True)
    request = feast_local.local_request(ctx, resolved.base_dir, workdir)
    service = ctx.spec.training.feature_service
    if entity_rows is not None:
        request["online"] = [{"service": service, "entities": entity_rows}]
    if entity_parquet is not None:
        request["historical"] = {"service": service, "entity_parquet": str(entity_parquet),
                                 "out": str(workdir / "historical.parquet")}
    request["registry"] = registry
    result = feast_local.run_feast(str(python), request, workdir)
    assert result.get("error") is None, result.get("error")
    result["workdir"] = str(workdir)
    return result
