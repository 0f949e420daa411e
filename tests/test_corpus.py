"""The example corpus: specs that must validate, and specs that must fail exactly so.

Every file in ``tests/corpus/invalid/`` states what mlspec must report about it in its
leading comment lines::

    # expect: 14:9: unknown key 'sorce' in features.views[0]
    # hint: did you mean 'source'?
    # expect: environments/qa.yaml:11:14: 'canery' is not one of
    # env: qa

* ``# expect: [FILE:]LINE:COL: TEXT`` -- an error at LINE:COL whose message contains
  TEXT.  FILE (relative to ``tests/corpus/``) defaults to the corpus file itself.
* ``# hint: TEXT`` -- the error of the ``expect`` line just above has a hint
  containing TEXT.
* ``# env: NAME`` -- resolve the spec for environment NAME from
  ``tests/corpus/environments/`` (default: the spec as written, no environment).

The reported errors must match the expectations one to one: no error is missing and
none is extra.  Files in ``tests/corpus/valid/`` must validate with no error (for the
``# env:`` they name, if any).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlspec.cli import main
from mlspec.errors import SpecError
from mlspec.project import resolve, resolve_paths

CORPUS = Path(__file__).resolve().parent / "corpus"
ENV_DIR = CORPUS / "environments"
VALID = sorted((CORPUS / "valid").glob("*.yaml"))
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))

_EXPECT = re.compile(r"^#\s*expect:\s*(?:(?P<file>[^:\s]+\.ya?ml):)?(?P<line>\d+):(?P<col>\d+):\s*(?P<text>.*?)\s*$")
_HINT = re.compile(r"^#\s*hint:\s*(?P<text>.*?)\s*$")
_ENV = re.compile(r"^#\s*env:\s*(?P<name>\S+)\s*$")


@dataclass
class Expectation:
    file: Path
    line: int
    col: int
    text: str
    hint: str | None = None

    def matches(self, err: SpecError) -> bool:
        return (
            _same_file(err.file, self.file)
            and (err.line, err.col) == (self.line, self.col)
            and self.text in err.message
            and (self.hint is None or (err.hint is not None and self.hint in err.hint))
        )

    def __str__(self) -> str:
        hint = f" [hint: {self.hint}]" if self.hint else ""
        return f"{self.file.relative_to(CORPUS)}:{self.line}:{self.col}: {self.text}{hint}"


@dataclass
class Case:
    path: Path
    env: str | None
    expect: list[Expectation]


def _same_file(reported: str, expected: Path) -> bool:
    return Path(reported).resolve() == expected.resolve()


def parse_case(path: Path) -> Case:
    """Read the leading comment block of a corpus file."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    env: str | None = None
    expect: list[Expectation] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            break  # the header ends at the first line that is not a comment
        if m := _EXPECT.match(line):
            file = CORPUS / m["file"] if m["file"] else path
            expect.append(Expectation(file, int(m["line"]), int(m["col"]), m["text"]))
        elif m := _HINT.match(line):
            assert expect, f"{path.name}: '# hint:' must follow an '# expect:' line"
            expect[-1].hint = m["text"]
        elif m := _ENV.match(line):
            env = m["name"]
    return Case(path, env, expect)


def run_case(case: Case) -> list[SpecError]:
    result = resolve(case.path, [case.env] if case.env else [], ENV_DIR)
    return result.errors


def _describe(errors: list[SpecError]) -> str:
    return "\n".join(f"  {e}" for e in errors) or "  (none)"


def test_corpus_is_big_enough() -> None:
    assert len(INVALID) >= 40
    assert len(VALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid(path: Path) -> None:
    case = parse_case(path)
    assert not case.expect, "valid corpus files expect no errors"
    result = resolve(path, [case.env] if case.env else [], ENV_DIR)
    assert result.errors == [], f"{path.name} should be valid:\n{_describe(result.errors)}"
    assert len(result.resolved) == 1


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid(path: Path) -> None:
    case = parse_case(path)
    assert case.expect, f"{path.name} states no '# expect:' line"
    errors = run_case(case)
    got = _describe(errors)
    want = "\n".join(f"  {e}" for e in case.expect)
    for exp in case.expect:
        assert any(exp.matches(err) for err in errors), f"missing: {exp}\nreported:\n{got}\nexpected:\n{want}"
    for err in errors:
        assert any(exp.matches(err) for exp in case.expect), f"unexpected: {err}\nexpected:\n{want}"
    # the set of reported locations is exactly the expected one
    assert {(Path(e.file).resolve(), e.line, e.col) for e in errors} == {
        (x.file.resolve(), x.line, x.col) for x in case.expect
    }
    # errors are about this file unless the case names another one
    expected_files = {x.file.resolve() for x in case.expect}
    assert {Path(e.file).resolve() for e in errors} <= expected_files
    for err in errors:
        assert err.message and err.line >= 1 and err.col >= 1


def _cli(path: Path, env: str | None, empty_env_dir: Path) -> tuple[int, dict]:
    """Run ``mlspec validate --format json`` in-process.

    The CLI resolves every environment of its environments folder unless told
    ``--env``; a case without ``# env:`` is run against an empty folder instead.
    """
    env_dir = ENV_DIR if env else empty_env_dir
    args = ["validate", str(path), "--environments", str(env_dir), "--format", "json"]
    if env:
        args += ["--env", env]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def _api_locations(path: Path, env: str | None, empty_env_dir: Path) -> set[tuple]:
    result = resolve_paths([path], [env] if env else None, ENV_DIR if env else empty_env_dir)
    return {(Path(e.file).resolve(), e.line, e.col, e.message) for e in result.errors}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_via_cli(path: Path, tmp_path: Path) -> None:
    """The CLI exits 1 and reports exactly what the API reports."""
    case = parse_case(path)
    code, report = _cli(path, case.env, tmp_path)
    assert code == 1
    assert report["ok"] is False
    got = {(Path(e["file"]).resolve(), e["line"], e["col"], e["message"]) for e in report["errors"]}
    assert got == _api_locations(path, case.env, tmp_path)
    if case.env:
        assert {g[:3] for g in got} == {(x.file.resolve(), x.line, x.col) for x in case.expect}


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_via_cli(path: Path, tmp_path: Path) -> None:
    case = parse_case(path)
    if not case.env and "\noverrides:" in path.read_text(encoding="utf-8"):
        pytest.skip("overrides name corpus environments; covered by test_valid")
    code, report = _cli(path, case.env, tmp_path)
    assert (code, report["ok"], report["errors"]) == (0, True, [])


def _items_named(path: Path) -> set[int]:
    """The numbered findings of issue 7 a corpus file's first comment line names: "(item 9)", "(items 4-7)"."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    found: set[int] = set()
    for lo, hi in re.findall(r"\bitems? (\d+)(?:-(\d+))?\b", first):
        found.update(range(int(lo), int(hi or lo) + 1))
    return found


def test_every_validation_finding_of_issue_7_has_a_corpus_case() -> None:
    """Items 4-17 of issue 7 ("what fails at run time is caught by validate") each have a corpus
    case that names it; items 1-3 (init, run) are functional tests (tests/functional/run_local/
    test_init_run.py), item 16's pipeline side is tests/generators/test_kubeflow.py."""
    covered: dict[int, list[str]] = {}
    for path in VALID + INVALID:
        for item in _items_named(path):
            covered.setdefault(item, []).append(path.name)
    assert set(range(4, 18)) <= set(covered), f"items without a corpus case: {sorted(set(range(4, 18)) - set(covered))}"
    # the run-time failures the issue lists are refused, not just described: an invalid case each
    refused = {item for path in INVALID for item in _items_named(path)}
    assert {4, 5, 6, 7, 8, 9, 10, 14, 15} <= refused
