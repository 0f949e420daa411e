"""What a generator receives: one spec resolved for one environment, limited to what it declared.

Generators are pure functions ``generate(ctx) -> list[Artefact]``: they read nothing from
disk and write nothing; everything they may know is on the context.  ``ctx.spec`` and
``ctx.env`` are views built by :func:`mlspec.inputs.guard`: a field outside the target's
declared reads raises :class:`mlspec.inputs.UndeclaredRead` when used.

Targets of environment or repository scope receive a :class:`ScopeContext` instead: the
environment(s) and one :class:`Context` per spec there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .naming import Names
from .validate import RESERVED_LABEL_PREFIXES  # noqa: F401 - spec labels may not use these


@dataclass(frozen=True)
class Context:
    spec: Any  # the resolved Spec, guarded
    env: Any  # the Environment, guarded
    spec_path: str  # POSIX path of the spec file relative to the project root (cwd-independent)
    target: str = ""
    names: Names = field(default=None)  # type: ignore[assignment]
    #: for a consuming target: the other targets' files with Kubernetes objects made of this
    #: spec in this environment, sorted by path (see :mod:`mlspec.registry`); else empty.
    outputs: tuple["Output", ...] = ()

    def __post_init__(self) -> None:
        if self.names is None:
            object.__setattr__(self, "names", Names(self.spec.name, self.env.name, self.env.namespace))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.env.namespace

    @property
    def settings(self) -> Any:
        """This target's settings block of the environment file (``environments/<env>.yaml``)."""
        return getattr(self.env, self.target)

    def deploy_path(self, *parts: str) -> str:
        """Path of a deployable file: ``deploy/<env>/<spec name>/<parts…>``."""
        return "/".join(("deploy", self.env.name, self.spec.name, *parts))

    def labels(self, component: str) -> dict[str, str]:
        """Standard Kubernetes labels for every object mlspec generates (reads ``spec.labels``).

        The spec's own labels come first and mlspec's win; validation rejects spec label
        keys under :data:`RESERVED_LABEL_PREFIXES` anyway."""
        return {
            **{k: v for k, v in sorted(self.spec.labels.items())},
            "app.kubernetes.io/name": self.spec.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": self.spec.name,
            "app.kubernetes.io/managed-by": "mlspec",
            "mlspec.io/environment": self.env.name,
        }

    def annotations(self) -> dict[str, str]:
        """Where the object came from: the spec, relative to the project root."""
        return {"mlspec.io/spec": self.spec_path}


@dataclass(frozen=True)
class Output:
    """A file another target generated, as a consuming target sees it (see :mod:`mlspec.registry`)."""

    path: str  # relative to the output root, e.g. "deploy/dev/churn/kserve/inferenceservice.yaml"
    target: str
    spec_path: str | None  # the spec it was made from; None for environment/repository scope
    env: str | None
    objects: tuple[dict, ...]  # its Kubernetes objects (documents with apiVersion and kind), plain data


@dataclass(frozen=True)
class ScopeContext:
    """An environment-scope (``env`` set) or repository-scope (``env`` None) target's input."""

    target: str
    contexts: tuple[Context, ...]  # one per spec (and environment), sorted by (env, spec)
    envs: tuple[Any, ...]  # the environments covered, guarded, sorted by name
    #: for a consuming target: the files with Kubernetes objects the other targets made for
    #: this scope, sorted by path; empty otherwise.
    outputs: tuple[Output, ...] = ()

    @property
    def env(self) -> Any:
        return self.envs[0] if len(self.envs) == 1 else None
