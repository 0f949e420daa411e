"""The generated workflow's ``run:`` steps, executed by bash as a GitHub runner executes them
(``bash --noprofile --norc -eo pipefail``, in the job's working directory, with its ``env:``):
the checks pass on a current project and fail, with an annotation, on a stale one; the diff
step diffs against the merge base of a real git history; the comment step keeps one sticky
comment, found by its marker through a fake ``gh`` that serves the GitHub REST endpoints from a
JSON file, in pages, and applies the workflow's own ``--jq`` filter with libjq."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from github_lint import ACTION, WORKFLOW, compile_workflow, make_configurations

MLSPEC_BIN = Path(sys.executable).parent  # where the mlspec under test is installed
MARKER = "<!-- mlspec-diff -->"


def _workflow(repo: Path) -> dict:
    return yaml.safe_load((repo / WORKFLOW).read_text())


def _step(workflow: dict, job: str, name: str) -> dict:
    return next(s for s in workflow["jobs"][job]["steps"] if s.get("name") == name)


def _run_step(workflow: dict, job: str, name: str, repo: Path, env: dict, path: list[Path]) -> subprocess.CompletedProcess:
    step = _step(workflow, job, name)
    assert "working-directory" not in workflow["jobs"][job]["defaults"]["run"]  # the repository root
    full = {"PATH": os.pathsep.join([*map(str, path), "/usr/local/bin", "/usr/bin", "/bin"]), "HOME": str(repo),
            "NO_COLOR": "1", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(repo),
            **{k: str(v) for k, v in step.get("env", {}).items()}, **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo, env=full,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """The examples, at the repository root and in a sub-folder, compiled with every target."""
    made = make_configurations(tmp_path_factory.mktemp("github-steps"))
    chosen = {name: made[name] for name in ("examples", "configured")}
    for repo, project in chosen.values():
        compile_workflow(repo, project)
    return chosen


@pytest.mark.parametrize("name", ["examples", "configured"])
def test_the_checks_pass_on_current_output_and_fail_on_stale(compiled, name):
    repo, project = compiled[name]
    workflow = _workflow(repo)
    for step in ("mlspec validate", "mlspec compile --check"):
        proc = _run_step(workflow, "check", step, repo, {}, [MLSPEC_BIN])
        assert proc.returncode == 0, (step, proc.stdout + proc.stderr)
    spec = project / "examples/churn/mlops.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("traffic: {champion: 90, challenger: 10}", "traffic: {champion: 80, challenger: 20}"))
    try:
        proc = _run_step(workflow, "check", "mlspec compile --check", repo, {}, [MLSPEC_BIN])
        assert proc.returncode == 1, proc.stdout + proc.stderr
        # an absolute path below the workspace: the runner makes it relative to the repository
        assert f"::error file={repo}/deploy/prod/churn/kserve/inferencegraph.yaml,line=1," in proc.stdout, proc.stdout
        proc = _run_step(workflow, "check", "mlspec validate", repo, {}, [MLSPEC_BIN])
        assert proc.returncode == 0  # valid, just not compiled
        spec.write_text(original.replace("feature_service: churn_model", "feature_service: churn_modl"))
        proc = _run_step(workflow, "check", "mlspec validate", repo, {}, [MLSPEC_BIN])
        assert proc.returncode == 1
        where = "examples/churn/mlops.yaml" if name == "examples" else "ml/examples/churn/mlops.yaml"
        assert f"::error file={where},line=" in proc.stdout, proc.stdout  # relative to the repository root
    finally:
        spec.write_text(original)


def _git(repo: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _fake(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)


def test_the_diff_step_diffs_against_the_merge_base(compiled, tmp_path):
    workflow = _workflow(compiled["examples"][0])
    step = _step(workflow, "check", "mlspec diff against the merge base")
    assert step["env"] == {"BASE_SHA": "${{ github.event.pull_request.base.sha }}"}
    checkout = workflow["jobs"]["check"]["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0  # the merge base must be in the clone
    # main: A - B; the pull request branched at A: A - C; GitHub checks out their merge M
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("A")
    _git(repo, "add", "f")
    _git(repo, "commit", "-qm", "A")
    (repo / "f").write_text("B")
    _git(repo, "commit", "-qam", "B")
    a, b = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "pr", a)
    (repo / "g").write_text("C")
    _git(repo, "add", "g")
    _git(repo, "commit", "-qm", "C")
    fake_bin = tmp_path / "bin"
    _fake(fake_bin, "mlspec", '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\nprintf "## mlspec diff\\n\\nchanged\\n"\n')
    for head, expected in (("pr", a), ("merge", b)):  # the PR's head, and GitHub's merge commit
        if head == "merge":
            _git(repo, "checkout", "-q", "main")
            _git(repo, "merge", "-q", "--no-ff", "--no-edit", "pr")
        runner = tmp_path / f"runner-{head}"
        runner.mkdir()
        summary = runner / "summary.md"
        summary.write_text("earlier steps' summary\n")
        env = {"BASE_SHA": b, "RUNNER_TEMP": runner, "GITHUB_STEP_SUMMARY": summary, "ARGS_FILE": runner / "args"}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
                              env={"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(repo),
                                   **{k: str(v) for k, v in env.items()}},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert (runner / "args").read_text().split() == ["diff", "--base", expected, "--format", "markdown"]
        assert summary.read_text() == "earlier steps' summary\n## mlspec diff\n\nchanged\n"
        assert (runner / "mlspec-diff/diff.md").read_text() == "## mlspec diff\n\nchanged\n"
    # the artifact the upload step takes is the file the step wrote, and the comment job reads it there
    upload = _step(workflow, "check", "Upload the diff")
    assert upload["with"]["path"] == "${{ runner.temp }}/mlspec-diff/diff.md"
    download = _step(workflow, "comment", "Download the diff")
    assert download["with"] == {"name": upload["with"]["name"], "path": "${{ runner.temp }}/mlspec-diff"}


FAKE_GH = '''#!{python}
"""gh api, as far as the comment step uses it: REST endpoints served from $FAKE_GH_STATE."""
import json, os, sys
import jq

args, method, jq_filter, fields, paginate, endpoint = sys.argv[2:], "GET", None, {{}}, False, None
assert sys.argv[1] == "api" and os.environ["GH_TOKEN"]
i = 0
while i < len(args):
    if args[i] == "--paginate":
        paginate = True
    elif args[i] in ("--method", "--jq", "-F"):
        value = args[i + 1]
        if args[i] == "--method":
            method = value
        elif args[i] == "--jq":
            jq_filter = value
        else:
            key, _, raw = value.partition("=")
            fields[key] = open(raw[1:], encoding="utf-8").read() if raw.startswith("@") else raw
        i += 1
    else:
        endpoint = args[i]
    i += 1
state = json.load(open(os.environ["FAKE_GH_STATE"]))
state["calls"].append([method, endpoint])
repo, pr = os.environ["GH_REPO"], os.environ["PR_NUMBER"]
if method == "GET" and endpoint == f"repos/{{repo}}/issues/{{pr}}/comments":
    pages = [state["comments"][n:n + 2] for n in range(0, len(state["comments"]), 2)] or [[]]
    for page in pages if paginate else pages[:1]:  # 2 a page; only --paginate reads them all
        for value in jq.compile(jq_filter).input_value(page).all():
            print(value if isinstance(value, str) else json.dumps(value))
elif method == "POST" and endpoint == f"repos/{{repo}}/issues/{{pr}}/comments":
    state["comments"].append({{"id": state["next_id"], "user": {{"login": "github-actions[bot]"}},
                              "body": fields["body"]}})
    state["next_id"] += 1
elif method == "PATCH" and endpoint.startswith(f"repos/{{repo}}/issues/comments/"):
    comment = next(c for c in state["comments"] if str(c["id"]) == endpoint.rsplit("/", 1)[1])
    comment["body"] = fields["body"]
else:
    sys.exit(f"unexpected request {{method}} {{endpoint}}")
json.dump(state, open(os.environ["FAKE_GH_STATE"], "w"))
if method != "GET":
    print("{{}}")  # the response, which the step sends to /dev/null
'''


def test_the_comment_is_sticky(compiled, lint_bin, tmp_path):
    workflow = _workflow(compiled["examples"][0])
    job = workflow["jobs"]["comment"]
    assert job["needs"] == "check" and job["permissions"] == {"pull-requests": "write"}
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]  # not from forks
    fake_bin = tmp_path / "bin"
    _fake(fake_bin, "gh", FAKE_GH.format(python=lint_bin / "python"))
    state_file = tmp_path / "state.json"
    others = [{"id": 1, "user": {"login": "alice"}, "body": f"{MARKER} quoting the bot"},
              {"id": 2, "user": {"login": "github-actions[bot]"}, "body": "another bot comment"},
              {"id": 3, "user": {"login": "bob"}, "body": "lgtm"}]
    state_file.write_text(json.dumps({"comments": others, "next_id": 10, "calls": []}))
    runner = tmp_path / "runner"
    (runner / "mlspec-diff").mkdir(parents=True)
    env = {"RUNNER_TEMP": str(runner), "FAKE_GH_STATE": str(state_file), "GH_TOKEN": "t", "GH_REPO": "acme/gitops",
           "PR_NUMBER": "7"}
    name = "Post or update the sticky comment"

    def post(diff: str) -> dict:
        (runner / "mlspec-diff/diff.md").write_text(diff)
        proc = _run_step(workflow, "comment", name, runner, env, [fake_bin])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(state_file.read_text())

    state = post("## first\n")
    mine = [c for c in state["comments"] if c["id"] >= 10]
    assert [c["body"] for c in mine] == [f"{MARKER}\n## first\n"]  # a new one: alice's quote is not ours
    assert state["comments"][:3] == others
    state = post(f"{MARKER}\n## marked by mlspec diff itself\n")  # not marked twice
    assert [c["body"] for c in state["comments"] if c["id"] >= 10] == [f"{MARKER}\n## marked by mlspec diff itself\n"]
    state = post("## second\n| a | b |\n")
    assert [(c["id"], c["body"]) for c in state["comments"] if c["id"] >= 10] == [(10, f"{MARKER}\n## second\n| a | b |\n")]
    assert state["calls"][-1] == ["PATCH", "repos/acme/gitops/issues/comments/10"]
    # a diff too big for a comment is cut at a line end, and says where the rest is
    lines = [f"line {n:05d} " + "x" * 80 for n in range(1000)]
    state = post("\n".join(lines) + "\n")
    body = next(c["body"] for c in state["comments"] if c["id"] == 10)
    assert len(body) < 65536 and body.startswith(MARKER + "\nline 00000 ")
    kept = body.split("\n")[1:-3]
    assert kept == lines[:len(kept)] and 500 < len(kept) < 1000
    assert body.endswith("\n\n_Cut to fit a comment: the whole diff is in the job summary and the mlspec-diff "
                         "artifact._\n")
    assert len([c for c in state["comments"] if c["body"].startswith(MARKER)]) == 2  # ours, and alice's


def test_the_diff_step_runs_the_real_mlspec_diff(tmp_path):
    """The step's command line as the real `mlspec diff --base` takes it: a pull request that
    moves churn's traffic shows the move in the job summary (what the report says in detail is
    tested with mlspec diff itself)."""
    made = make_configurations(tmp_path / "configurations")
    repo, project = made["examples"]
    compile_workflow(repo, project)
    shutil.rmtree(repo / ".git")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "compiled")
    base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "pr")
    spec = repo / "examples/churn/mlops.yaml"
    spec.write_text(spec.read_text().replace("traffic: {champion: 90, challenger: 10}",
                                             "traffic: {champion: 70, challenger: 30}"))
    compile_workflow(repo, project)
    _git(repo, "commit", "-qam", "more traffic to the challenger")
    runner = tmp_path / "runner"
    runner.mkdir()
    summary = runner / "summary.md"
    env = {"BASE_SHA": base, "RUNNER_TEMP": str(runner), "GITHUB_STEP_SUMMARY": str(summary)}
    proc = _run_step(_workflow(repo), "check", "mlspec diff against the merge base", repo, env, [MLSPEC_BIN])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = summary.read_text()
    assert report == (runner / "mlspec-diff/diff.md").read_text()
    assert "churn" in report and "70" in report and "30" in report, report


def _action_step(name: str) -> dict:
    return next(s for s in yaml.safe_load(ACTION.read_text())["runs"]["steps"] if s.get("name") == name)


def _run_action_step(name: str, cwd: Path, env: dict, path: list[Path]) -> subprocess.CompletedProcess:
    step = _action_step(name)
    assert step["shell"] == "bash"
    full = {"PATH": os.pathsep.join([*map(str, path), "/usr/bin", "/bin"]), "HOME": str(cwd), "NO_COLOR": "1", **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=600)


def test_the_composite_action_runs_the_checks_or_any_command(compiled, tmp_path):
    repo, _ = compiled["examples"]
    run = "Run mlspec"
    proc = _run_action_step(run, repo, {"MLSPEC_COMMAND": "check", "MLSPEC_ARGS": "", "MLSPEC_DIR": ".",
                                        "MLSPEC_OUT": "."}, [MLSPEC_BIN])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""  # --format github: annotations only, and there are none
    proc = _run_action_step(run, repo, {"MLSPEC_COMMAND": "validate", "MLSPEC_ARGS": "--env dev  examples/churn",
                                        "MLSPEC_DIR": ".", "MLSPEC_OUT": "."}, [MLSPEC_BIN])
    assert proc.returncode == 0 and "ok: 2 spec/environment combination(s) valid (dev)" in proc.stdout, proc.stdout
    proc = _run_action_step(run, repo, {"MLSPEC_COMMAND": "check", "MLSPEC_ARGS": "", "MLSPEC_DIR": ".",
                                        "MLSPEC_OUT": "elsewhere"}, [MLSPEC_BIN])
    assert proc.returncode == 1 and f"::error file={repo}/elsewhere/deploy/" in proc.stdout  # nothing compiled there
    # a project below the repository root: annotations name files from the repository root
    configured, _ = compiled["configured"]
    spec = configured / "ml/examples/churn/mlops.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("traffic: {champion: 90, challenger: 10}", "traffic: {champion: 80, challenger: 20}"))
    try:
        proc = _run_action_step(run, configured, {"MLSPEC_COMMAND": "check", "MLSPEC_ARGS": "--env prod",
                                                  "MLSPEC_DIR": "ml", "MLSPEC_OUT": ".."}, [MLSPEC_BIN])
    finally:
        spec.write_text(text)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"::error file={configured}/deploy/prod/churn/kserve/inferencegraph.yaml,"), proc.stdout
    assert "/staging/" not in proc.stdout  # --env prod only
    # the install step: the action's own source by default, an exact version from the registry, nothing else
    fake = tmp_path / "bin"
    _fake(fake, "python", '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    install = "Install mlspec"
    for version, expected in (("", "/action/path[kfp]"), ("0.1.0", "mlspec[kfp]==0.1.0")):
        env = {"MLSPEC_VERSION": version, "GITHUB_ACTION_PATH": "/action/path", "ARGS_FILE": str(tmp_path / "args")}
        proc = _run_action_step(install, tmp_path, env, [fake])
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "args").read_text().split() == ["-m", "pip", "install", "--disable-pip-version-check",
                                                           expected]
    (tmp_path / "args").unlink()
    env = {"MLSPEC_VERSION": "0.1.0 --index-url=https://example.invalid", "GITHUB_ACTION_PATH": "/action/path",
           "ARGS_FILE": str(tmp_path / "args")}
    proc = _run_action_step(install, tmp_path, env, [fake])
    assert proc.returncode == 2 and "::error title=mlspec::mlspec-version must be an exact version" in proc.stdout
    assert not (tmp_path / "args").exists()
