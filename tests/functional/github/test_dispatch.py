"""The repository_dispatch workflows (rollback on drift, a new model as the challenger), run as
a GitHub runner runs their jobs: each ``run:`` step in order under ``bash --noprofile --norc
-eo pipefail``, with the job's and the step's ``env:`` expanded from a sample
``client_payload`` (and the step outputs the earlier steps wrote to ``$GITHUB_OUTPUT``), on a
fresh clone of a real git repository made of the examples, whose ``origin`` is a local bare
repository.  The ``uses:`` steps are what the clone and this virtual environment stand for
(checkout, setup-python), and the install step is skipped: ``mlspec`` is the one under test.
``gh`` is a fake on PATH that records its arguments and the pull request's body.

Checked: the spec diff each job pushes (rollback: 100/0 in ``overrides.<env>``; new model: the
challenger's uri, version and traffic there), the regenerated output it carries (``compile
--check`` passes on the pushed branch), the pull request's body (drift result; metrics table),
no second pull request when one is open or there is nothing to change, no token left in the
clone -- and that hostile payloads are refused by the first step, before any mlspec command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from github_lint import (LOOP_NEW_MODELS, LOOP_ROLLBACK, NEW_MODEL, ROLLBACK, WORKFLOW, compile_workflow,
                         copy_project, mlspec, set_drift_loop)

MLSPEC_BIN = Path(sys.executable).parent  # where the mlspec under test is installed
SPEC = "examples/churn/mlops.yaml"
REPOSITORY = "acme/ml-gitops"
GIT_ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}

ROLLBACK_PAYLOAD = {"spec": SPEC, "env": "prod", "reason": "drift", "is_drift": 1, "p_val": 0.0004,
                    "threshold": 0.0025, "source": "io.mlspec/ml-prod/churn/drift-detector"}
NEW_MODEL_PAYLOAD = {"spec": SPEC, "env": "staging", "uri": "s3://acme-ml-staging/models/churn/v7-0123456789/model",
                     "version": "v7-0123456789", "traffic": 20, "metric": "roc_auc", "goal": "maximize",
                     "score": 0.91, "threshold": 0.7, "champion_score": 0.88}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=GIT_ENV)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


FAKE_GH = '''#!{python}
"""gh, as far as the workflows use it: `gh pr list` answers $FAKE_GH_OPEN open pull requests,
`gh pr create` records the body; every call is logged to $FAKE_GH_LOG."""
import json, os, sys

assert os.environ["GH_TOKEN"] and os.environ["GH_REPO"]
args = sys.argv[1:]
call = {{"args": args, "repo": os.environ["GH_REPO"]}}
if args[:2] == ["pr", "create"]:
    call["body"] = open(args[args.index("--body-file") + 1], encoding="utf-8").read()
with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(call) + "\\n")
if args[:2] == ["pr", "list"]:
    print(os.environ.get("FAKE_GH_OPEN", "0"))
elif args[:2] == ["pr", "create"]:
    print("https://github.com/" + os.environ["GH_REPO"] + "/pull/1")
else:
    sys.exit("unexpected gh call: " + " ".join(args))
'''

#: An mlspec that must never run: it only leaves a trace.
TRAP = '#!/bin/sh\nprintf "%s\\n" "$*" >> "$MLSPEC_TRAP"\nexit 0\n'


def _fake(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """The GitOps repository on GitHub, as a bare repository: the examples with the closed loop
    configured (churn rolls back on drift in prod; staging takes new models), compiled with every
    target into the repository root, committed on main."""
    base = tmp_path_factory.mktemp("dispatch")
    repo = copy_project(base / "source")
    set_drift_loop(repo, LOOP_ROLLBACK, LOOP_NEW_MODELS)
    git(repo, "init", "-q", "-b", "main")
    compile_workflow(repo, repo)
    assert (repo / ROLLBACK).is_file() and (repo / NEW_MODEL).is_file()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the GitOps repository")
    bare = base / "github" / f"{REPOSITORY}.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True, env=GIT_ENV)
    return bare


class Runner:
    """One job run: a fresh clone of main (what actions/checkout makes), a runner temp folder, PATH."""

    def __init__(self, origin: Path, where: Path, *, open_prs: int = 0, trap: bool = False) -> None:
        self.origin, self.where = origin, where
        self.work = where / "workspace"
        subprocess.run(["git", "clone", "-q", str(origin), str(self.work)], check=True, env=GIT_ENV)
        self.temp = where / "runner-temp"
        self.temp.mkdir()
        self.bin = where / "bin"
        _fake(self.bin, "gh", FAKE_GH.format(python=sys.executable))
        if trap:
            _fake(self.bin, "mlspec", TRAP)
        self.gh_log, self.trap_log = where / "gh.log", where / "mlspec-trap.log"
        self.open_prs = open_prs
        self.outputs: dict[str, dict[str, str]] = {}

    def expand(self, value: str, payload: dict) -> str:
        """A workflow value with its ``${{ }}`` expressions evaluated as GitHub does for these."""

        def one(match: re.Match) -> str:
            expr = match.group(1)
            if expr.startswith("github.event.client_payload."):
                item = payload.get(expr.removeprefix("github.event.client_payload."))
                if item is None:
                    return ""
                if isinstance(item, bool):
                    return "true" if item else "false"
                if isinstance(item, (dict, list)):
                    return "Object" if isinstance(item, dict) else "Array"
                return item if isinstance(item, str) else json.dumps(item)
            if expr.startswith("steps."):
                step, _, key = expr.removeprefix("steps.").partition(".outputs.")
                return self.outputs.get(step, {}).get(key, "")
            known = {"github.token": "ghs_faketoken", "github.repository": REPOSITORY}
            assert expr in known, f"an expression the test does not know: {expr}"
            return known[expr]

        return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", one, str(value))

    def run(self, workflow: dict, payload: dict) -> list[tuple[str, subprocess.CompletedProcess]]:
        """The job's ``run:`` steps in order, until one fails."""
        job = workflow["jobs"]["pull-request"]
        assert job["defaults"] == {"run": {"shell": "bash"}}
        done = []
        for index, step in enumerate(job["steps"]):
            if "uses" in step or step["name"] == "Install mlspec":
                continue
            output = self.temp / f"output-{index}"
            output.touch()
            env = {"PATH": os.pathsep.join([str(self.bin), str(MLSPEC_BIN), "/usr/bin", "/bin"]),
                   "HOME": str(self.where), "NO_COLOR": "1", "GITHUB_ACTIONS": "true",
                   "GITHUB_WORKSPACE": str(self.work), "RUNNER_TEMP": str(self.temp), "GITHUB_OUTPUT": str(output),
                   "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": REPOSITORY,
                   "GITHUB_REF_NAME": "main", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                   "FAKE_GH_LOG": str(self.gh_log), "FAKE_GH_OPEN": str(self.open_prs),
                   "MLSPEC_TRAP": str(self.trap_log),
                   **{k: self.expand(v, payload) for k, v in {**job.get("env", {}), **step.get("env", {})}.items()}}
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                  cwd=self.work, env=env, capture_output=True, text=True, timeout=600)
            done.append((step["name"], proc))
            if proc.returncode != 0:
                break
            if "id" in step:
                self.outputs[step["id"]] = dict(line.split("=", 1) for line in output.read_text().splitlines())
        return done

    def gh_calls(self) -> list[dict]:
        return [json.loads(line) for line in self.gh_log.read_text().splitlines()] if self.gh_log.exists() else []


def _workflow(origin: Path, path: str) -> dict:
    return yaml.safe_load(git(origin, "show", f"main:{path}"))


def _succeeded(steps) -> None:
    assert [name for name, _ in steps] == ["Check the payload", "Edit the spec and compile", "Open the pull request"]
    for name, proc in steps:
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)


def _spec_at(origin: Path, ref: str) -> dict:
    return yaml.safe_load(git(origin, "show", f"{ref}:{SPEC}"))


def _branches(origin: Path) -> dict[str, str]:
    out = git(origin, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in out.splitlines())


def _check_compiled(runner: Runner) -> None:
    """The pushed branch carries current output: `compile --check` passes on it."""
    proc = mlspec("compile", "--check", "--out", ".", cwd=runner.work)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rollback_pushes_the_edit_and_opens_one_pull_request(origin, tmp_path):
    branch = "mlspec/rollback/prod/churn"
    assert branch not in _branches(origin)
    runner = Runner(origin, tmp_path / "first")
    _succeeded(runner.run(_workflow(origin, ROLLBACK), ROLLBACK_PAYLOAD))
    # the spec diff: prod's traffic all to the champion, in overrides.prod, and nothing else
    before, after = _spec_at(origin, "main"), _spec_at(origin, branch)
    assert after["overrides"]["prod"]["serving"]["traffic"] == {"champion": 100, "challenger": 0}
    after["overrides"]["prod"]["serving"].pop("traffic")
    assert after == before
    # one commit on main, by the bot, carrying the regenerated output of churn in prod only
    assert git(origin, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert git(origin, "log", "-1", "--format=%an <%ae>|%s", branch).strip() == (
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>|"
        "mlspec: roll back churn in prod (drift)")
    changed = git(origin, "diff", "--name-only", "main", branch).split()
    assert SPEC in changed and ".mlspec/manifest.json" in changed
    assert any(p.startswith("deploy/prod/churn/") for p in changed), changed
    assert not [p for p in changed if p.startswith("deploy/") and not p.startswith("deploy/prod/churn/")], changed
    _check_compiled(runner)
    # the pull request: to main, from the branch, with the drift result and the spec's edit
    calls = runner.gh_calls()
    assert [c["args"][:2] for c in calls] == [["pr", "list"], ["pr", "create"]]
    assert calls[0]["args"] == ["pr", "list", "--head", branch, "--state", "open", "--json", "number", "--jq", "length"]
    create = calls[1]
    assert create["repo"] == REPOSITORY
    assert create["args"][2:8] == ["--base", "main", "--head", branch, "--title", "mlspec: roll back churn in prod (drift)"]
    body = create["body"]
    assert body.startswith("## Roll back `churn` in `prod`\n")
    for row in ("| drift | 1 |", "| p-value | 0.0004 |", "| threshold | 0.0025 |",
                "| source | `io.mlspec/ml-prod/churn/drift-detector` |", "| reason | drift |"):
        assert row in body, body
    assert "`mlspec rollback examples/churn/mlops.yaml --env prod`" in body
    assert "```diff\n" in body and "+      traffic: {champion: 100, challenger: 0}\n" in body, body
    # the token was never stored in the clone
    assert "extraheader" not in (runner.work / ".git/config").read_text()
    assert "faketoken" not in (runner.work / ".git/config").read_text()

    # the same event again, on that branch: nothing to change, no gh call
    before_log = len(runner.gh_calls())
    steps = runner.run(_workflow(origin, ROLLBACK), ROLLBACK_PAYLOAD)
    _succeeded(steps)
    assert "::notice title=mlspec::nothing to change: churn already sends 100% of the traffic to the champion in " \
           "prod" in steps[-1][1].stdout
    assert len(runner.gh_calls()) == before_log

    # the same event on a fresh checkout of main while the pull request is open: no push, no second one
    pushed = _branches(origin)[branch]
    again = Runner(origin, tmp_path / "open", open_prs=1)
    steps = again.run(_workflow(origin, ROLLBACK), ROLLBACK_PAYLOAD)
    _succeeded(steps)
    assert f"::notice title=mlspec::a pull request from {branch} is open already" in steps[-1][1].stdout
    assert [c["args"][:2] for c in again.gh_calls()] == [["pr", "list"]]
    assert _branches(origin)[branch] == pushed

    # someone pushed to the branch, the pull request was closed unmerged, drift again: the branch
    # is mlspec's, so it is replaced, and one pull request opened
    (runner.work / "stray.txt").write_text("pushed by hand\n")  # that first clone is on the branch
    git(runner.work, "add", "stray.txt")
    git(runner.work, "commit", "-qm", "by hand")
    git(runner.work, "push", "-q", "origin", branch)
    closed = Runner(origin, tmp_path / "closed")
    _succeeded(closed.run(_workflow(origin, ROLLBACK), ROLLBACK_PAYLOAD))
    assert [c["args"][:2] for c in closed.gh_calls()] == [["pr", "list"], ["pr", "create"]]
    assert git(origin, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert "stray.txt" not in git(origin, "ls-tree", "--name-only", branch).split()
    assert _spec_at(origin, branch)["overrides"]["prod"]["serving"]["traffic"] == {"champion": 100, "challenger": 0}


def test_a_new_model_becomes_the_challenger_in_a_pull_request_with_the_metrics(origin, tmp_path):
    branch = "mlspec/new-model/staging/churn/v7-0123456789"
    runner = Runner(origin, tmp_path / "new")
    _succeeded(runner.run(_workflow(origin, NEW_MODEL), NEW_MODEL_PAYLOAD))
    before, after = _spec_at(origin, "main"), _spec_at(origin, branch)
    staging = after["overrides"]["staging"]["serving"]
    assert staging.pop("challenger") == {"uri": NEW_MODEL_PAYLOAD["uri"], "version": "v7-0123456789"}
    assert staging.pop("traffic") == {"champion": 80, "challenger": 20}
    if not staging:
        after["overrides"]["staging"].pop("serving")
    if not after["overrides"]["staging"]:
        after["overrides"].pop("staging")
    assert after == before
    changed = git(origin, "diff", "--name-only", "main", branch).split()
    assert any(p.startswith("deploy/staging/churn/") for p in changed), changed
    assert not [p for p in changed if p.startswith("deploy/") and not p.startswith("deploy/staging/churn/")], changed
    _check_compiled(runner)
    calls = runner.gh_calls()
    assert [c["args"][:2] for c in calls] == [["pr", "list"], ["pr", "create"]]
    assert calls[1]["args"][2:8] == ["--base", "main", "--head", branch, "--title",
                                     "mlspec: new challenger for churn in staging (version v7-0123456789, 20%)"]
    body = calls[1]["body"]
    assert body.startswith("## New challenger for `churn` in `staging`\n")
    table = ["| Metric | Champion | New model | Threshold | Goal |", "|---|---|---|---|---|",
             "| `roc_auc` | 0.88 | 0.91 | 0.7 | maximize |"]
    assert "\n".join(table) + "\n" in body, body
    assert "The new model scores better than the champion on roc_auc (goal: maximize)." in body
    assert f"`{NEW_MODEL_PAYLOAD['uri']}` (version `v7-0123456789`)" in body and "20% of the traffic" in body
    assert "+      challenger: {uri: " in body  # the spec's edit

    # no champion score (null), a metric to minimize, another version: the table says so
    payload = {**NEW_MODEL_PAYLOAD, "version": "v8-abcdef0123", "uri": "s3://acme-ml-staging/models/churn/v8/model",
               "metric": "log_loss", "goal": "minimize", "score": 0.3, "threshold": 0.5, "champion_score": None}
    other = Runner(origin, tmp_path / "unscored")
    _succeeded(other.run(_workflow(origin, NEW_MODEL), payload))
    body = other.gh_calls()[1]["body"]
    assert "| `log_loss` | n/a | 0.3 | 0.5 | minimize |\n" in body and "The champion has no score to compare with." in body
    assert "mlspec/new-model/staging/churn/v8-abcdef0123" in _branches(origin)


HOSTILE = [
    ("spec", {"spec": "../../etc/passwd"}, "spec is not one of the"),
    ("spec", {"spec": "examples/churn/mlops.yaml; touch PWNED"}, "spec is not one of the"),
    ("env", {"env": "prod; rm -rf /"}, "env is not one of the environments dev, prod, staging"),
    ("env", {"env": "$(touch PWNED)"}, "env is not one of the environments"),
    ("pair", {"env": "dev"}, None),  # a known spec and environment, but not a pair the workflow is for
    ("uri", {"uri": "gs://acme/$(touch PWNED)"}, "uri is not a model URI"),
    ("uri", {"uri": "gs://acme/`touch PWNED`"}, "uri is not a model URI"),
    ("uri", {"uri": "gs://acme/m\n::add-mask::x"}, "uri is not a model URI"),
    ("uri", {"uri": "--force"}, "uri is not a model URI"),
    ("traffic", {"traffic": 101}, "traffic is not an integer from 0 to 100"),
    ("traffic", {"traffic": "10; rm -rf /"}, "traffic is not an integer from 0 to 100"),
    ("traffic", {"traffic": 12.5}, "traffic is not an integer from 0 to 100"),
    ("version", {"version": "1 --force"}, "version is not a version token"),
    ("version", {"version": "a..b"}, "the branch name is not valid"),
    ("metric", {"metric": "auc"}, "metric is not one of mlspec's metrics"),
    ("score", {"score": "0.9 | x"}, "score is not a number"),
    ("champion_score", {"champion_score": {"a": 1}}, "champion_score is not a number or null"),
]
ROLLBACK_HOSTILE = [
    ("reason", {"reason": "drift `touch PWNED`"}, "reason is not short text"),
    ("reason", {"reason": "drift\n::error::forged"}, "reason is not short text"),
    ("source", {"source": "x; touch PWNED"}, "source is not an event source"),
    ("is_drift", {"is_drift": "yes"}, "is_drift is not true, false, 1 or 0"),
    ("p_val", {"p_val": "0.01)"}, "p_val is not a number or null"),
    ("env", {"env": "prod\nstaging"}, "env is not one of the environments"),
]


def _hostile_cases():
    for field, change, message in HOSTILE:
        if field in ("spec", "env", "pair"):
            yield pytest.param(ROLLBACK, ROLLBACK_PAYLOAD, change, message or "drift.action is not rollback",
                               id=f"rollback-{field}-{list(change.values())[0]!r}")
        yield pytest.param(NEW_MODEL, NEW_MODEL_PAYLOAD, change, message or "drift.new_models is not set",
                           id=f"new-model-{field}-{list(change.values())[0]!r}")
    for field, change, message in ROLLBACK_HOSTILE:
        yield pytest.param(ROLLBACK, ROLLBACK_PAYLOAD, change, message, id=f"rollback-{field}-{list(change.values())[0]!r}")


@pytest.mark.parametrize(("path", "payload", "change", "message"), list(_hostile_cases()))
def test_a_hostile_payload_is_refused_before_any_mlspec_command(origin, tmp_path, path, payload, change, message):
    if change.get("env") == "dev" and path == NEW_MODEL:
        assert "dev" not in LOOP_NEW_MODELS
    runner = Runner(origin, tmp_path, trap=True)
    branches = _branches(origin)
    steps = runner.run(_workflow(origin, path), {**payload, **change})
    assert [name for name, _ in steps] == ["Check the payload"]
    proc = steps[0][1]
    assert proc.returncode == 1
    title = "mlspec rollback" if path == ROLLBACK else "mlspec new model"
    assert proc.stdout.startswith(f"::error title={title}::refused the client_payload: "), proc.stdout
    assert message in proc.stdout, proc.stdout
    # the value is never echoed (it could be read as a workflow command), and nothing ran
    assert proc.stdout.count("\n") == 1 and not proc.stderr, (proc.stdout, proc.stderr)
    for value in change.values():
        if isinstance(value, str) and len(value) > 4:
            assert value not in proc.stdout
    assert not runner.trap_log.exists() and not runner.gh_calls()
    assert not list(runner.work.rglob("PWNED")) and not (tmp_path / "PWNED").exists()
    assert (runner.temp / "output-0").read_text() == ""
    assert _branches(origin) == branches


@pytest.mark.parametrize("change", [
    {"is_drift": True}, {"is_drift": 0}, {"p_val": None, "threshold": None}, {"p_val": 1e-05},
    {"source": None, "reason": None},
], ids=repr)
def test_what_the_drift_target_may_send_is_accepted(origin, tmp_path, change):
    """The payload step alone (the job's later steps are the ones tested above)."""
    runner = Runner(origin, tmp_path, trap=True)
    workflow = _workflow(origin, ROLLBACK)
    workflow["jobs"]["pull-request"]["steps"] = workflow["jobs"]["pull-request"]["steps"][:1]
    steps = runner.run(workflow, {**ROLLBACK_PAYLOAD, **change})
    assert steps[0][1].returncode == 0, steps[0][1].stdout
    assert runner.outputs["payload"] == {"file": SPEC, "name": "churn", "branch": "mlspec/rollback/prod/churn"}


def test_the_checks_workflow_watches_the_other_workflows(origin):
    paths = _workflow(origin, WORKFLOW)["on"]["pull_request"]["paths"]
    assert paths[-3:] == [WORKFLOW, ROLLBACK, NEW_MODEL]


def test_a_stale_default_branch_whose_compile_changes_a_workflow_fails_before_pushing(origin, tmp_path):
    """GITHUB_TOKEN may not push workflow files: when the compile rewrites one (here main lacks
    the new-model workflow its environments ask for), the job says so and pushes nothing."""
    runner = Runner(origin, tmp_path)
    git(runner.work, "rm", "-q", NEW_MODEL)
    git(runner.work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "an older main")
    branches = _branches(origin)
    steps = runner.run(_workflow(origin, NEW_MODEL), {**NEW_MODEL_PAYLOAD, "version": "v9-stale"})
    assert [name for name, proc in steps if proc.returncode == 0] == ["Check the payload", "Edit the spec and compile"]
    assert (runner.work / NEW_MODEL).is_file()  # the compile made it again
    proc = steps[-1][1]
    assert proc.returncode == 1 and proc.stdout.startswith(
        "::error title=mlspec::compiling changed .github/workflows/, which GITHUB_TOKEN may not push"), proc.stdout
    assert not runner.gh_calls() and _branches(origin) == branches
