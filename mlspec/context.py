"""What a generator receives: one spec resolved for one environment.

Generators are pure functions ``generate(ctx: Context) -> list[Artefact]``: they read
nothing from disk and write nothing; everything they may know is on the context.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import __version__
from .environments import Environment
from .models import Spec


@dataclass(frozen=True)
class Context:
    spec: Spec
    env: Environment
    spec_path: str  # POSIX path of the spec file as the user named it (relative to the cwd)
    spec_sha256: str  # hash of the resolved spec + environment
    version: str = __version__

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.env.namespace

    @property
    def short_hash(self) -> str:
        return self.spec_sha256[:10]

    def deploy_path(self, *parts: str) -> str:
        """Path of a deployable file: ``deploy/<env>/<spec name>/<parts…>``."""
        return "/".join(("deploy", self.env.name, self.spec.name, *parts))

    def labels(self, component: str) -> dict[str, str]:
        """Standard Kubernetes labels for every object mlspec generates."""
        return {
            "app.kubernetes.io/name": self.spec.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": self.spec.name,
            "app.kubernetes.io/managed-by": "mlspec",
            "mlspec.io/environment": self.env.name,
            **{k: v for k, v in sorted(self.spec.labels.items())},
        }

    def annotations(self) -> dict[str, str]:
        return {
            "mlspec.io/spec": self.spec_path,
            "mlspec.io/spec-sha256": self.spec_sha256,
            "mlspec.io/version": self.version,
        }
