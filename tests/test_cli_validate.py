"""``mlspec validate``: exit codes, the three output formats, and what it does not import."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlspec import reporters
from mlspec.cli import main
from mlspec.errors import SpecError
from mlspec.project import display_path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus"
ENVS = CORPUS / "environments"
VALID = CORPUS / "valid" / "minimal.yaml"
INVALID = CORPUS / "invalid" / "ref_unknown_view_source.yaml"  # one error, with a hint
ANSI = "\x1b["


def run(*args: str, env: dict[str, str] | None = None):
    base = {"NO_COLOR": None, "FORCE_COLOR": None, "GITHUB_ACTIONS": None}
    return CliRunner().invoke(main, list(args), env={**base, **(env or {})})


def rel(path: Path) -> str:
    """A path as mlspec displays it: relative to the working directory when below it."""
    return display_path(path)


# --- exit codes ------------------------------------------------------------------------------------


def test_exit_0_when_valid() -> None:
    result = run("validate", str(VALID), "--environments", str(ENVS), "--env", "dev")
    assert result.exit_code == 0, result.output
    assert result.output == "ok: 2 spec/environment combination(s) valid (dev)\n"


def test_exit_1_when_invalid() -> None:
    result = run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev")
    assert result.exit_code == 1
    assert result.output == (
        f"{rel(INVALID)}:25:15: error: unknown source 'custmers'\n"
        "  hint: did you mean 'customers'?\n"
        "1 problem(s) found\n"
    )


def test_exit_1_when_any_of_several_specs_is_invalid() -> None:
    result = run("validate", str(VALID), str(INVALID), "--environments", str(ENVS), "--env", "dev", "-f", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["checked"] == 4 and report["specs"] == 1 and len(report["errors"]) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["validate", "--bogus"], "No such option"),
        (["validate", "--format", "xml"], "'xml' is not one of 'text', 'json', 'github'"),
        (["validate", "-f"], "Option '-f' requires an argument"),
        (["validate", "--env"], "Option '--env' requires an argument"),
        (["valiate"], "No such command 'valiate'"),
        (["validate", "--environments", str(VALID)], "is a file"),
    ],
)
def test_exit_2_on_usage_errors(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_exit_2_in_a_real_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "mlspec.cli", "validate", "--format", "xml"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Invalid value for '--format'" in proc.stderr and "Traceback" not in proc.stderr


def test_help_and_version() -> None:
    assert run("validate", "--help").exit_code == 0
    version = run("--version")
    assert version.exit_code == 0 and version.output.startswith("mlspec, version ")


def test_env_option_takes_commas_and_repeats() -> None:
    result = run("validate", str(VALID), "--environments", str(ENVS), "-e", "dev, staging", "-e", "dev", "-f", "json")
    # staging's overlay sends 60% to a challenger the minimal spec does not have
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert {Path(e["file"]).name for e in report["errors"]} == {"staging.yaml"}
    assert report["checked"] == 3  # as written, dev, staging (dev once)


def test_validates_the_working_directory_by_default(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "proj"
    (project / "data").mkdir(parents=True)
    (project / "mlops.yaml").write_text(VALID.read_text().replace("../data/", "data/"))
    (project / "data" / "customers.csv").write_bytes((CORPUS / "data" / "customers.csv").read_bytes())
    (project / ".git").mkdir()
    monkeypatch.chdir(project)
    result = run("validate")
    assert result.exit_code == 0, result.output
    assert result.output == "ok: 1 spec/environment combination(s) valid\n"


def test_the_examples_validate() -> None:
    if not any((REPO / "examples" / "churn" / "data").glob("*")):
        pytest.skip("example data not generated yet")
    result = run("validate", str(REPO / "examples"), "-f", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["specs"] == 2 and report["environments"] == ["dev", "prod", "staging"]


# --- formats --------------------------------------------------------------------------------------


def test_json_shape() -> None:
    result = run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev", "--format", "json")
    report = json.loads(result.output)
    assert set(report) == {"ok", "checked", "specs", "environments", "errors"}
    assert report["ok"] is False and report["checked"] == 2 and report["specs"] == 0
    [err] = report["errors"]
    assert err == {
        "file": rel(INVALID), "line": 25, "col": 15, "code": "reference", "severity": "error",
        "path": "features.views.0.source", "message": "unknown source 'custmers'",
        "hint": "did you mean 'customers'?",
    }


def test_json_when_valid() -> None:
    result = run("validate", str(VALID), "--environments", str(ENVS), "--env", "dev", "-f", "json")
    assert json.loads(result.output) == {"ok": True, "checked": 2, "specs": 1, "environments": ["dev"], "errors": []}


def test_github_format() -> None:
    result = run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev", "--format", "github")
    assert result.exit_code == 1
    assert result.output == (
        f"::error file={rel(INVALID)},line=25,col=15,title=mlspec reference::"
        "unknown source 'custmers' (hint: did you mean 'customers'?)\n"
    )


def test_github_is_the_default_on_github_actions() -> None:
    result = run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev", env={"GITHUB_ACTIONS": "true"})
    assert result.output.startswith("::error file=")
    assert run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev",
               env={"GITHUB_ACTIONS": "false"}).output.startswith(rel(INVALID))
    # an explicit --format wins
    explicit = run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev", "-f", "text",
                   env={"GITHUB_ACTIONS": "true"})
    assert explicit.output.startswith(rel(INVALID))


def test_github_escaping() -> None:
    out = io.StringIO()
    err = SpecError("100% sure:\nline two\r", "dir,x/a:b.yaml", 3, 4, hint="50%, or: more", code="a:b,c")
    reporters.github([err], out)
    assert out.getvalue() == (
        "::error file=dir%2Cx/a%3Ab.yaml,line=3,col=4,title=mlspec a%3Ab%2Cc::"
        "100%25 sure:%0Aline two%0D (hint: 50%25, or: more)\n"
    )
    warn = io.StringIO()
    reporters.github([SpecError("m", "f", severity="warning")], warn)
    assert warn.getvalue().startswith("::warning file=f,line=1,col=1,")


def test_text_honours_no_color() -> None:
    forced = run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev", env={"FORCE_COLOR": "1"})
    assert ANSI in forced.output  # colour is on when forced ...
    plain = run("validate", str(INVALID), "--environments", str(ENVS), "--env", "dev",
                env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert ANSI not in plain.output  # ... and NO_COLOR beats it
    assert plain.output.startswith(f"{rel(INVALID)}:25:15: error: unknown source 'custmers'\n")
    # the plain text and the coloured text say the same thing
    assert _strip_ansi(forced.output) == plain.output


def test_text_in_a_real_process_with_no_color() -> None:
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mlspec.cli", "validate", str(INVALID), "--environments", str(ENVS), "--env", "dev"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert proc.returncode == 1
    assert ANSI not in proc.stdout and ANSI not in proc.stderr
    assert proc.stdout.startswith("tests/corpus/invalid/ref_unknown_view_source.yaml:25:15: error: ")


def test_text_markup_in_messages_is_not_interpreted() -> None:
    out = io.StringIO()
    os.environ.pop("NO_COLOR", None)
    try:
        os.environ["FORCE_COLOR"] = "1"
        reporters.text([SpecError("key '[bold]x[/bold]'", "f.yaml", 1, 2, hint="[red]h")], out, "ok", "bad")
    finally:
        os.environ.pop("FORCE_COLOR", None)
    assert "[bold]x[/bold]" in _strip_ansi(out.getvalue()) and "[red]h" in _strip_ansi(out.getvalue())


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# --- lazy imports -----------------------------------------------------------------------------------

HEAVY = ("kfp", "kubernetes", "feast", "pyarrow", "pandas", "numpy", "sklearn", "jinja2", "ruamel")
#: What only generating needs: the targets' generators (validate loads their declarations), the
#: offline drift check, importlib.metadata (entry points are read without it).
GENERATORS = ("mlspec.generators.kubeflow_pipeline", "mlspec.generators.feast_repo",
              "mlspec.generators.github_workflows", "mlspec.generators.feast_code", "mlspec.context",
              "mlspec.drift", "importlib.metadata")

PROBE = """
import sys
from mlspec.cli import main
try:
    main(["validate", *sys.argv[1:]])
except SystemExit as exc:
    code = exc.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(%r))
generators = sorted(set(sys.modules) & set(%r))
print(code, ",".join(heavy) or "-", "rich" if "rich" in sys.modules else "-", ",".join(generators) or "-")
""" % (HEAVY, GENERATORS)


@pytest.mark.parametrize(
    "args, code",
    [
        ([str(VALID), "--environments", str(ENVS), "--env", "prod,dev"], 1),  # prod's policies fail the minimal spec
        ([str(CORPUS / "valid" / "full.yaml"), "--environments", str(ENVS), "--env", "prod", "-f", "json"], 0),
        ([str(CORPUS / "invalid"), "--environments", str(ENVS), "--env", "dev"], 1),  # no mlops.yaml there
        ([str(INVALID), "--environments", str(ENVS), "-f", "github"], 1),
        ([str(REPO / "examples")], None),
    ],
)
def test_validate_imports_no_heavy_modules(args: list[str], code: int | None) -> None:
    """``mlspec validate`` must not import kfp, kubernetes, feast, pyarrow, pandas (or rich when piped),
    nor what only generating needs."""
    env = {**os.environ}
    for name in ("NO_COLOR", "FORCE_COLOR", "GITHUB_ACTIONS"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    exit_code, heavy, rich, generators = proc.stdout.strip().splitlines()[-1].split(" ")
    if code is not None:
        assert int(exit_code) == code
    assert heavy == "-", f"validate imported {heavy}"
    assert rich == "-", "rich is imported only for coloured terminal output"
    assert generators == "-", f"validate imported {generators}"


def test_import_time_has_no_heavy_modules() -> None:
    """The same, seen by ``-X importtime`` of a real ``mlspec validate`` run."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlspec.cli", "validate", str(CORPUS / "valid" / "full.yaml"),
         "--environments", str(ENVS), "--env", "prod"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "mlspec" in imported and "pydantic" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


BUILDS = """
import json, os, sys
from mlspec.cli import main
try:
    main(["validate", *sys.argv[1:]])
except SystemExit:
    pass
metadata = "importlib.metadata" in sys.modules
from pydantic.plugin import _loader
from mlspec.models import Model

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

built = {(c.__module__.rpartition(".")[2], c.__qualname__) for c in subclasses(Model) if c.__pydantic_complete__}
print(json.dumps({"built": sorted(".".join(b) for b in built), "plugins": list(_loader.get_plugins()),
                  "real_loader": _loader._plugins, "metadata": metadata,
                  "env": "PYDANTIC_DISABLE_PLUGINS" in os.environ}))
"""


def test_validate_builds_each_validator_once() -> None:
    """``mlspec validate`` builds one validator per kind of document -- the spec's and the
    environment's, each holding every model nested in it (sources, checks, the targets'
    settings blocks) -- and no nested model again on its own: a nested default such as
    ``training.preprocessing`` or an environment's absent ``feast:`` block is validated by its
    parent's validator.  (github's action pins are built on their own: their defaults call
    ``Pin(...)``.)  And it looks for no pydantic plugins, without telling the processes it
    starts so through PYDANTIC_DISABLE_PLUGINS, nor importing importlib.metadata (pydantic's loader
    does, to scan for them); asked for anything else, the loader is pydantic's own, with no plugins."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    proc = subprocess.run([sys.executable, "-c", BUILDS, str(REPO / "examples" / "churn")], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report["built"]) - {"github.Pin"} == {"models.Spec", "environments.Environment"}, report["built"]
    assert report["plugins"] == [] and report["env"] is False and report["metadata"] is False, report
    assert report["real_loader"] == {}, report
