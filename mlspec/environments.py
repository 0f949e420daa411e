"""Environments: platform facts per target cluster, and how they are merged into a spec.

An environment file ``environments/<env>.yaml`` says where things go (namespaces,
Argo CD project/repository/destination, Kubeflow namespace, image registry, storage),
which policy caps apply there, and which ``overrides`` every spec gets in that
environment.

Precedence, lowest to highest (a later layer wins):

1. the spec file itself (without its ``overrides`` block);
2. the environment file's ``overrides`` (platform defaults for every spec in that env);
3. the spec's own ``overrides.<env>`` (the team's choice for that env).

Merging is a deep merge of mappings; lists and scalars are replaced whole, and a
``null`` removes a key.  Policies are checked on the result, so no layer can break
them.  Every merged value keeps the position of the file it came from, so errors point
at the overlay that set it.
"""

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, create_model

from .errors import SpecError, did_you_mean
from .loader import Document, Positions, display_path
from .models import K8sLabel, Model
from .paths import ENV_DIR_NAME, find_environments_dir, list_environments  # noqa: F401 - re-exported


class ArgoCDDestination(Model):
    server: str = "https://kubernetes.default.svc"
    namespace: K8sLabel | None = Field(None, description="Default: the environment's namespace.")


class ArgoCD(Model):
    namespace: K8sLabel = Field("argocd", description="Argo CD's namespace, where Applications and the AppProject go.")
    project: K8sLabel | None = Field(None, description="An existing AppProject for every Application of this "
                                     "environment (then mlspec generates none); default: one AppProject per spec, "
                                     "named like its Application and limited to exactly what it deploys.")
    repo_url: str = Field(pattern=r"^(https://|ssh://|git@)\S+$", description="Git repository Argo CD syncs from.")
    revision: str = "HEAD"
    path_prefix: str = Field("", description="Folder in the repository that holds mlspec's output root.")
    destination: ArgoCDDestination = Field(default_factory=ArgoCDDestination)
    sync: Literal["automated", "manual"] | None = Field(
        None, description="Overrides the spec's gitops.sync here: automated (Argo CD syncs every commit) or manual "
        "(a person syncs, e.g. prod).")
    prune: bool | None = Field(None, description="Overrides the spec's gitops.prune: automated sync deletes objects "
                               "removed from git (and a removed spec's).")
    self_heal: bool | None = Field(None, description="Overrides the spec's gitops.self_heal: automated sync reverts "
                                   "changes made in the cluster behind git's back.")
    create_namespace: bool = Field(True, description="Argo CD creates the destination namespace.")
    retry_limit: int = Field(5, ge=-1, description="Sync retries, with backoff 5s ×2 up to 3m (-1: unlimited).")


class Storage(Model):
    artifacts: str = Field(pattern=r"^(gs|s3|minio|file|pvc)://\S+$", description="Pipeline artefact root.")
    models: str | None = Field(None, pattern=r"^(gs|s3|minio|file|pvc)://\S+$", description="Model registry root.")


class Policies(Model):
    max_challenger_traffic: int | None = Field(None, ge=0, le=100, description="Cap on the challenger's traffic share (%).")
    min_replicas: int | None = Field(None, ge=0, description="Floor on serving.replicas.min.")
    require_drift: bool = Field(False, description="A drift policy is mandatory.")
    require_resource_limits: bool = Field(False, description="Serving must set CPU and memory limits.")


class Environment(Model):
    """Platform facts of one environment (``environments/<env>.yaml``).

    This is the core of the file; each target with settings adds its own block, named
    after the target (``kubeflow:``, ...), through :func:`model_for`."""

    name: K8sLabel
    namespace: K8sLabel = Field(description="Namespace for serving, drift and feature-store objects.")
    registry: str = Field(description="Image registry, e.g. ghcr.io/acme.")
    argocd: ArgoCD
    storage: Storage
    policies: Policies = Field(default_factory=Policies)
    overrides: dict[str, Any] = Field(default_factory=dict, description="Deep-merged into every spec in this environment.")


@lru_cache(maxsize=None)
def _model_for(settings: tuple[tuple[str, type], ...]) -> type[Environment]:
    if not settings:
        return Environment
    fields: dict[str, Any] = {}
    for name, model in settings:
        if name in Environment.model_fields:
            raise ValueError(f"target {name!r} cannot add settings: {name!r} is a core environment field")
        fields[name] = (model, Field(default_factory=model, description=f"Settings of the {name} target."))
    return create_model("Environment", __base__=Environment, __module__=__name__, **fields)


def settings_of(env: Any, target: str) -> Any:
    """The settings block of ``target`` in ``env`` (guarded or not), or None when that target is
    not installed -- a target reading another's settings must not assume it is there.  (A field
    the model lacks is an AttributeError; an undeclared read through a guard still raises.)"""
    return getattr(env, target, None)


def model_for(targets: Iterable[Any]) -> type[Environment]:
    """The environment model with a settings block for each target that has one."""
    return _model_for(tuple(sorted((t.name, t.settings) for t in targets if t.settings is not None)))


def environment_path(env_dir: Path | None, name: str, known: list[str]) -> Path:
    if env_dir is None or name not in known:
        where = f"no {name}.yaml in {display_path(env_dir)}" if env_dir else "no environments/ folder found"
        raise SpecError(
            f"unknown environment '{name}' ({where})",
            display_path(env_dir / f"{name}.yaml") if env_dir else f"{ENV_DIR_NAME}/{name}.yaml", 1, 1,
            hint=did_you_mean(name, known) or (f"known: {', '.join(known)}" if known else "create environments/<env>.yaml"),
            code="missing-file",
        )
    return env_dir / f"{name}.yaml"


def merge(base: Document, overlay: Any, overlay_pos: Positions, at: tuple = ()) -> Document:
    """Deep-merge ``overlay`` (with its positions) into a copy of ``base`` at path ``at``."""
    data = copy.deepcopy(base.data)
    positions = Positions(base.positions.file, dict(base.positions.values), dict(base.positions.keys),
                          dict(base.positions.removed))
    target = data
    for part in at:  # merge into the mapping at ``at``, creating it if need be
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    _merge_into(target, overlay, at, overlay_pos, positions)
    return Document(data, positions)


def _drop_below(positions: Positions, path: tuple) -> None:
    n = len(path)
    for table in (positions.values, positions.keys):
        for p in [p for p in table if p[:n] == path and len(p) > n]:
            del table[p]


def _graft(positions: Positions, overlay_pos: Positions, path: tuple) -> None:
    """Copy overlay positions of the overlay subtree rooted at ``()`` to ``path``."""
    for src, dst in ((overlay_pos.values, positions.values), (overlay_pos.keys, positions.keys)):
        for p, loc in src.items():
            dst[path + p] = loc


def _merge_into(target: dict, overlay: Any, at: tuple, overlay_pos: Positions, positions: Positions) -> None:
    for key, value in overlay.items():
        path = at + (key,)
        sub = overlay_pos.subtree((key,))
        positions.removed.pop(path, None)
        if value is None:
            target.pop(key, None)
            _drop_below(positions, path)
            positions.values.pop(path, None)
            positions.keys.pop(path, None)
            positions.removed[path] = overlay_pos.key((key,))
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            positions.keys[path] = overlay_pos.key((key,))
            _merge_into(target[key], value, path, sub, positions)
        else:
            target[key] = copy.deepcopy(value)
            _drop_below(positions, path)
            positions.keys[path] = overlay_pos.key((key,))
            _graft(positions, sub, path)
