"""The one error type for user-facing problems.

Every problem mlspec reports to a user -- a YAML syntax error, an unknown key, a
dangling reference, a stale output file -- is a :class:`SpecError` carrying the file,
line and column it is about plus an optional hint.  Lines and columns are 1-based,
as editors and GitHub annotations count them.  Several problems travel together as
:class:`SpecErrors` so that a user sees all of them in one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True, order=True)
class Location:
    file: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:  # file:line:col, as compilers print it
        return f"{self.file}:{self.line}:{self.col}"


#: The file of an error not yet tied to a place (a generator's refusal, before the
#: compiler locates it in the spec).
UNLOCATED = "<unknown>"


@dataclass(eq=False)  # not frozen: Python sets __traceback__ & co. on raised exceptions
class SpecError(Exception):
    """A user-facing problem, located at ``file:line:col``."""

    message: str
    file: str = UNLOCATED
    line: int = 1
    col: int = 1
    hint: str | None = None
    code: str = "invalid"
    severity: str = "error"
    path: tuple = field(default=(), compare=False)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)


    @property
    def location(self) -> Location:
        return Location(self.file, self.line, self.col)

    def __str__(self) -> str:
        text = self.message if self.file == UNLOCATED else f"{self.location}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "code": self.code,
            "severity": self.severity,
            "path": ".".join(str(p) for p in self.path),
            "message": self.message,
            "hint": self.hint,
        }


class SpecErrors(Exception):
    """Several :class:`SpecError` at once, sorted by location."""

    def __init__(self, errors: Iterable[SpecError]):
        unique: dict[tuple, SpecError] = {}
        for err in errors:
            unique.setdefault((err.file, err.line, err.col, err.message), err)
        self.errors: list[SpecError] = sorted(
            unique.values(), key=lambda e: (e.file, e.line, e.col, e.message)
        )
        super().__init__("\n".join(str(e) for e in self.errors))

    def __iter__(self):
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """A "did you mean ..." hint for a misspelt key or name, or None."""
    import difflib  # here: only a misspelling needs it

    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    if matches:
        return f"did you mean '{matches[0]}'?"
    return None
