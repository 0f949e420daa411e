"""The target interface, exercised by a second, third-party target next to kubeflow:
declared reads (an undeclared read is caught), settings in the environment file, rules
run by ``validate``, environment-scope output, per-target ownership -- and the one error
handler: a crashing target and a corrupted manifest give a clean message and the
documented exit code in every output format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]

PLUGIN = '''
from pydantic import Field

from mlspec.artefact import Artefact
from mlspec.models import Model
from mlspec.registry import Target


class Settings(Model):
    greeting: str = Field("hello", min_length=1)


def generate(ctx):
    return [Artefact(
        path=ctx.deploy_path("hello", "configmap.yaml"),
        content={"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": f"{ctx.names.serving}-hello", "namespace": ctx.namespace,
                              "labels": ctx.labels("hello")},
                 "data": {"greeting": f"{ctx.settings.greeting} from {ctx.env.name}",
                          "champion": ctx.spec.serving.champion.uri}},
    )]


def rules(rc):
    if "team" not in rc.spec.labels:
        rc.error(("labels",), "the hello target needs a 'team' label", "add labels: {team: ...}", code="hello")
    if rc.settings.greeting == "boo":
        rc.env_error(("hello", "greeting"), "'boo' is not a greeting", code="hello")


def index(sc):
    lines = [f"{c.spec.name}: {c.spec.serving.runtime}" for c in sc.contexts]
    return [Artefact(path=f"deploy/{sc.env.name}/index.yaml", content={"specs": lines})]


def peek(ctx):
    return [Artefact(path=ctx.deploy_path("peek", "x.yaml"), content={"runtime": ctx.spec.serving.runtime})]


def boom(ctx):
    return [Artefact(path=ctx.deploy_path("boom", "x.yaml"), content={"x": 1 / 0})]


hello = Target(name="hello", generate=generate, reads=("spec.serving", "spec.labels"), settings=Settings,
               rules=rules)
index = Target(name="index", generate=index, reads=("spec.serving.runtime",), scope="environment")
peek = Target(name="peek", generate=peek, reads=("spec.labels",))
boom = Target(name="boom", generate=boom, reads=("spec.labels",))
'''


def install(site: Path, *targets: str) -> dict[str, str]:
    """A minimal installed distribution providing ``targets``; the environment to run with."""
    (site / "mlspec_hello").mkdir(parents=True, exist_ok=True)
    (site / "mlspec_hello" / "__init__.py").write_text(PLUGIN)
    info = site / "mlspec_hello-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlspec-hello\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[mlspec.generators]\n" + "".join(f"{t} = mlspec_hello:{t}\n" for t in targets))
    return {**os.environ, "PYTHONPATH": str(site), "MLSPEC_LOG": str(site / "mlspec.log"),
            "NO_COLOR": "1", "GITHUB_ACTIONS": ""}


def mlspec(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlspec.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def repo(project: Path) -> Path:
    return project


def files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and ".mlspec" not in p.parts}


def test_settings_and_rules_of_a_target_are_part_of_validate(repo: Path, tmp_path: Path):
    env = install(tmp_path / "site", "hello")
    proc = mlspec(env, "validate", "examples/", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the target's settings are in the environment schema, and checked with a location
    schema = json.loads(mlspec(env, "schema", "--environment", cwd=repo).stdout)
    assert "hello" in schema["properties"] and "kubeflow" in schema["properties"]
    prod = repo / "environments" / "prod.yaml"
    line = prod.read_text().count("\n") + 2  # of the greeting appended below
    prod.write_text(prod.read_text() + "hello:\n  greeting: ''\n")
    proc = mlspec(env, "validate", "examples/", "-f", "json", cwd=repo)
    assert proc.returncode == 1
    [err] = json.loads(proc.stdout)["errors"]
    assert err["file"] == "environments/prod.yaml" and err["line"] == line and "at least 1 character" in err["message"]
    # rules: a located error in the spec, and one in the environment file
    prod.write_text(prod.read_text().replace("greeting: ''", "greeting: boo"))
    spec = repo / "examples" / "churn" / "mlops.yaml"
    spec.write_text(spec.read_text().replace("  team: growth\n", ""))
    proc = mlspec(env, "validate", "examples/", cwd=repo)
    assert proc.returncode == 1
    assert "examples/churn/mlops.yaml:10:1: error: the hello target needs a 'team' label" in proc.stdout
    assert f"environments/prod.yaml:{line}:13: error: 'boo' is not a greeting (environment 'prod')" in proc.stdout
    # and compile refuses what validate refuses, writing nothing
    proc = mlspec(env, "compile", "examples/", "--out", "gitops", cwd=repo)
    assert proc.returncode == 1 and not (repo / "gitops").exists()


def test_each_target_owns_its_files(repo: Path, tmp_path: Path):
    env = install(tmp_path / "site", "hello")
    assert mlspec(env, "compile", "examples/", "--out", "gitops", cwd=repo).returncode == 0
    out = repo / "gitops"
    both = files(out)
    assert {p.split("/")[3] for p in both if p.startswith("deploy/")} == {
        "kubeflow", "kserve", "seldon", "feast", "drift", "hello", "kustomization.yaml"}  # the last: argocd's
    # a third-party target's objects flow into the Argo CD application like the built-in ones'
    assert "hello" in yaml.safe_load((out / "deploy/dev/churn/kustomization.yaml").read_text())["resources"]
    assert {p.split("/")[0] for p in both} == {"deploy", "argocd"}
    manifest = json.loads((out / ".mlspec/manifest.json").read_text())["files"]
    assert manifest["deploy/dev/churn/hello/configmap.yaml"]["scope"] == "churn@dev/hello"
    assert manifest["deploy/dev/churn/hello/configmap.yaml"]["target"] == "hello"

    # compiling hello alone, after an edit only hello reads: kubeflow's files are untouched
    spec = repo / "examples" / "churn" / "mlops.yaml"
    spec.write_text(spec.read_text().replace("uri: gs://acme-models/churn/v3/model}", "uri: gs://acme-models/churn/v8/model}"))
    proc = mlspec(env, "compile", "examples/", "--targets", "hello", "--out", "gitops", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    now = files(out)
    assert set(now) == set(both)
    changed = {p for p in now if now[p] != both[p]}
    assert changed == {f"deploy/{e}/churn/hello/configmap.yaml" for e in ("dev", "staging", "prod")}
    assert "v8" in (out / "deploy/dev/churn/hello/configmap.yaml").read_text()

    # and compiling kubeflow alone leaves hello's files alone (it rewrites only its own schedules of
    # the environments that announce new models: their runs carry the champion to compare with)
    assert mlspec(env, "compile", "examples/", "--targets", "kubeflow", "--out", "gitops", cwd=repo).returncode == 0
    after = files(out)
    assert {p for p in after if after[p] != now[p]} == {f"deploy/{e}/churn/kubeflow/schedule.yaml"
                                                        for e in ("staging", "prod")}
    now = after

    # --check judges only the targets named
    hello_file = out / "deploy/dev/fraud/hello/configmap.yaml"
    hello_file.write_text(hello_file.read_text() + "# edited\n")
    proc = mlspec(env, "compile", "examples/", "--targets", "kubeflow", "--check", "--out", "gitops", cwd=repo)
    assert proc.returncode == 0, proc.stdout
    proc = mlspec(env, "compile", "examples/", "--targets", "hello", "--check", "--out", "gitops", cwd=repo)
    assert proc.returncode == 1 and "deploy/dev/fraud/hello/configmap.yaml:1:1: error: generated file is out of date" \
        in proc.stdout
    assert "kubeflow" not in proc.stdout


def test_environment_scope_output_is_made_from_every_spec(repo: Path, tmp_path: Path):
    env = install(tmp_path / "site", "index")
    proc = mlspec(env, "compile", "examples/churn/mlops.yaml", "--out", "gitops", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: left *@dev/index alone: it is made from every spec" in proc.stdout
    assert not (repo / "gitops/deploy/dev/index.yaml").exists()
    proc = mlspec(env, "compile", "--out", "gitops", cwd=repo)  # the project root: every spec
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (repo / "gitops/deploy/dev/index.yaml").read_text()
    assert text.startswith("# Generated by mlspec from the specs of environment 'dev'.")
    assert "churn: kserve" in text and "fraud: seldon" in text
    manifest = json.loads((repo / "gitops/.mlspec/manifest.json").read_text())["files"]
    assert manifest["deploy/prod/index.yaml"]["scope"] == "*@prod/index"


CRASH_FORMATS = ("text", "json", "github")


@pytest.mark.parametrize("fmt", CRASH_FORMATS)
def test_a_crashing_target_exits_3_with_a_clean_message(repo: Path, tmp_path: Path, fmt: str):
    env = install(tmp_path / "site", "boom")
    proc = mlspec(env, "compile", "examples/churn/mlops.yaml", "--env", "dev", "--targets", "boom",
                  "--out", "gitops", "-f", fmt, cwd=repo)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    message = ("internal error in target boom (mlspec-hello==1.0) while generating churn@dev: "
               "ZeroDivisionError: division by zero")
    if fmt == "json":
        report = json.loads(proc.stdout)
        assert report["ok"] is False and report["errors"][0]["code"] == "internal-error"
        assert report["errors"][0]["message"] == message
    elif fmt == "github":
        assert proc.stdout.startswith(f"::error title=mlspec internal-error::{message}")
    else:
        assert proc.stdout.startswith(f"mlspec: error: {message}\n")
        assert "this is a bug in target boom" in proc.stdout
    log = Path(env["MLSPEC_LOG"]).read_text()
    assert "Traceback" in log and "ZeroDivisionError" in log
    assert not (repo / "gitops").exists()


def test_an_undeclared_read_is_an_error(repo: Path, tmp_path: Path):
    env = install(tmp_path / "site", "peek")
    proc = mlspec(env, "compile", "examples/churn/mlops.yaml", "--env", "dev", "--targets", "peek",
                  "--out", "gitops", cwd=repo)
    assert proc.returncode == 3
    assert ("target 'peek' read spec.serving, which it does not declare in its inputs" in proc.stdout)
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("fmt", CRASH_FORMATS)
def test_a_corrupted_manifest_is_a_located_error_not_a_traceback(repo: Path, fmt: str):
    env = {**os.environ, "NO_COLOR": "1", "GITHUB_ACTIONS": ""}
    assert mlspec(env, "compile", "examples/", "--out", "gitops", cwd=repo).returncode == 0
    (repo / "gitops/.mlspec/manifest.json").write_text("{not json")
    commands = (("compile",), ("compile", "--check"), ("diff",)) if fmt == "text" else (("compile",),)
    for command in commands:
        proc = mlspec(env, *command, "examples/", "--out", "gitops", *(("-f", fmt) if command[0] == "compile" else ()),
                      cwd=repo)
        # diff reports errors with 2, as `git diff` does (its 1 means "there are changes", with --exit-code)
        assert proc.returncode == (2 if command[0] == "diff" else 1), (command, proc.stdout + proc.stderr)
        assert "Traceback" not in proc.stderr and not proc.stderr.strip(), proc.stderr
        text = proc.stdout
        if fmt == "json" and command[0] == "compile":
            [err] = json.loads(text)["errors"]
            assert err["code"] == "manifest-invalid" and err["file"] == "gitops/.mlspec/manifest.json"
        elif fmt == "github" and command[0] == "compile":
            assert text.startswith("::error file=gitops/.mlspec/manifest.json,line=1,col=1,")
        else:
            assert "gitops/.mlspec/manifest.json:1:1: error: cannot use the ownership manifest: it is not valid JSON" \
                in text
