"""Validation rules that need an environment and the targets: run by ``mlspec validate``.

After the spec is checked on its own and resolved for an environment, every target's
``rules(rc)`` runs on it (:class:`RuleContext`), and so does the core rule on names
(:func:`names_rule`).  A target that needs something of the spec says so here, with a
location, so that its generator can assume valid input and raise no user errors:
``validate`` ok means ``compile`` ok.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import naming
from .errors import SpecError
from .loader import Document
from .validate import locate


@dataclass
class RuleContext:
    """One resolved spec in one environment, for a target's rules."""

    spec: Any  # the resolved Spec (unguarded: rules may look at anything)
    env: Any  # the Environment, with every target's settings
    doc: Document  # the merged spec document: positions of spec values
    env_doc: Document | None  # the environment file: positions of its values
    env_file: str
    target: str = ""
    errors: list[SpecError] = field(default_factory=list)

    @property
    def names(self) -> naming.Names:
        return naming.Names(self.spec.name, self.env.name, self.env.namespace)

    @property
    def settings(self) -> Any:
        return getattr(self.env, self.target)

    def error(self, path: tuple, message: str, hint: str | None = None, code: str = "target") -> None:
        """A problem with the spec value at ``path`` (e.g. ``("training", "schedule")``)."""
        loc = locate(self.doc, path)
        self.errors.append(SpecError(message, loc.file, loc.line, loc.col, hint=hint, code=code, path=path))

    def env_error(self, path: tuple, message: str, hint: str | None = None, code: str = "target") -> None:
        """A problem with the environment file's value at ``path`` (e.g. ``("kubeflow", "pipeline_root")``)."""
        if self.env_doc is None:
            return self.error((), message, hint, code)
        loc = locate(self.env_doc, path)
        self.errors.append(SpecError(f"{message} (environment '{self.env.name}')", loc.file, loc.line, loc.col,
                                     hint=hint, code=code, path=path))


def names_rule(rc: RuleContext, target_names: list[str]) -> None:
    """Every name the installed targets derive must fit its limit (see :mod:`mlspec.naming`)."""
    for problem in naming.check(rc.names, target_names, rc.spec):
        rc.error(("name",), f"{problem} (environment '{rc.env.name}')", code="name-length")
