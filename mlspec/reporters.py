"""How problems reach the user: ``text`` (rich, honours NO_COLOR), ``json``, ``github``.

``github`` prints workflow commands (``::error file=…,line=…,col=…::message``) that
GitHub Actions turns into annotations on the pull request, as ``yamllint -f github``
does; it is the default when ``GITHUB_ACTIONS=true``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO

from .errors import UNLOCATED, SpecError

FORMATS = ("text", "json", "github")


def default_format() -> str:
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(errors: list[SpecError], out: IO[str]) -> None:
    for err in errors:
        message = err.message + (f" (hint: {err.hint})" if err.hint else "")
        where = "" if err.file == UNLOCATED else f"file={_escape_property(err.file)},line={err.line},col={err.col},"
        out.write(f"::{err.severity} {where}title={_escape_property('mlspec ' + err.code)}::{_escape_data(message)}\n")


def json_report(errors: list[SpecError], out: IO[str], summary: dict) -> None:
    json.dump({"ok": not errors, **summary, "errors": [e.to_dict() for e in errors]}, out, indent=2, sort_keys=True)
    out.write("\n")


def _colour(out: IO[str]) -> bool:
    """Colour only on a terminal, never with NO_COLOR, always with FORCE_COLOR (as rich does)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def _plain(errors: list[SpecError], out: IO[str], ok_message: str, fail_message: str) -> None:
    for err in errors:
        out.write(f"{_where(err)}: {err.severity}: {err.message}\n")
        if err.hint:
            out.write(f"  hint: {err.hint}\n")
    out.write((fail_message if errors else ok_message) + "\n")


def _where(err: SpecError) -> str:
    return "mlspec" if err.file == UNLOCATED else str(err.location)


def text(errors: list[SpecError], out: IO[str], ok_message: str, fail_message: str) -> None:
    if not _colour(out):  # the same text rich would print, without importing it
        _plain(errors, out, ok_message, fail_message)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=out, highlight=False, soft_wrap=True,
                      no_color=bool(os.environ.get("NO_COLOR")) or None)
    for err in errors:
        console.print(
            f"[bold]{escape(_where(err))}[/bold]: [red]{err.severity}[/red]: {escape(err.message)}"
            + (f"\n  [dim]hint:[/dim] {escape(err.hint)}" if err.hint else "")
        )
    if errors:
        console.print(f"[red]{escape(fail_message)}[/red]")
    else:
        console.print(f"[green]{escape(ok_message)}[/green]")


def report(errors: list[SpecError], fmt: str, *, ok_message: str, fail_message: str,
           summary: dict | None = None, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    if fmt == "github":
        github(errors, out)
    elif fmt == "json":
        json_report(errors, out, summary or {})
    else:
        text(errors, out, ok_message, fail_message)
