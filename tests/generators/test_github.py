"""The github target: the pull-request workflow of the users' GitOps repository -- its
triggers, least-privilege permissions, SHA pins with their version comments, no expression
inside any ``run:``, settings from the environment files (and located ``validate`` errors
when those disagree), and output that depends on the declared inputs only -- and the
repository_dispatch workflows of the closed loop (rollback, new model): when they are
generated, their allow-lists, their hardening.  The workflows are linted by real tools, and
their steps run by bash, in tests/functional/github/."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

import mlspec
from mlspec import commands, registry
from mlspec.generators import github
from mlspec.generators import github_workflows

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ".github/workflows/mlspec.yaml"
ROLLBACK = ".github/workflows/mlspec-rollback.yaml"
NEW_MODEL = ".github/workflows/mlspec-new-model.yaml"
CHURN = "examples/churn/mlops.yaml"
PINNED_USES = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v\S+)$", re.M)
TOKEN_SECRET = {"secret": "gitops-dispatch", "key": "token"}


def drift_loop(repo: Path, rollback: tuple[tuple[str, str], ...] = (), new_models: tuple[str, ...] = ()) -> None:
    """Make the closed loop exactly this, whatever the examples say: ``drift.action: rollback``
    for these (spec, environment) pairs (in the spec's ``overrides.<env>``) and nowhere else,
    ``drift.new_models`` in these environments only, the dispatch token's Secret where a
    dispatch is sent.  Files that need no change keep their bytes."""
    dispatching = set(new_models) | {env for _, env in rollback}
    for path in sorted((repo / "environments").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        drift = dict(data.get("drift") or {})
        drift.pop("new_models", None)
        if data["name"] in new_models:
            drift["new_models"] = {"traffic": 10}
        if data["name"] in dispatching:
            drift["github"] = {**drift.get("github", {}), "token_secret": TOKEN_SECRET}
        if drift != (data.get("drift") or {}):
            data["drift"] = drift
            path.write_text(yaml.safe_dump({k: v for k, v in data.items() if k != "drift" or v}, sort_keys=False))
    for path in sorted(repo.glob("examples/*/mlops.yaml")):
        data = yaml.safe_load(path.read_text())
        before = json.dumps(data)
        if (data.get("drift") or {}).get("action") == "rollback":
            data["drift"]["action"] = "retrain"
        for block in (data.get("overrides") or {}).values():
            if (block.get("drift") or {}).get("action") == "rollback":
                del block["drift"]["action"]
        for spec, env in rollback:
            if path == repo / spec:
                data.setdefault("overrides", {}).setdefault(env, {}).setdefault("drift", {})["action"] = "rollback"
        if json.dumps(data) != before:
            path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    """The examples and environments at the root of a scratch repository (the cwd), without
    a closed loop (no rollback, no new models) whatever the examples configure."""
    work = tmp_path / "repo"
    for folder in ("examples", "environments"):
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (work / ".git").mkdir()
    drift_loop(work)
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def loop_repo(repo: Path) -> Path:
    """The same with the closed loop: churn rolls back on drift in prod, staging takes new models."""
    drift_loop(repo, rollback=((CHURN, "prod"),), new_models=("staging",))
    return repo


def compile_github(repo: Path, *paths: str, out: str = ".") -> tuple[int, str]:
    buffer = io.StringIO()
    code = commands.guarded("text", lambda: commands.compile(
        [repo / p for p in paths] or [repo], None, None, repo / out, ["github"], check=False, dry_run=False,
        force=False, fmt="text", out=buffer))
    return code, buffer.getvalue()


def workflow(repo: Path) -> tuple[str, dict]:
    code, output = compile_github(repo)
    assert code == 0, output
    text = (repo / WORKFLOW).read_text()
    return text, yaml.safe_load(text)


def validate(repo: Path) -> tuple[int, list[dict]]:
    buffer = io.StringIO()
    code = commands.guarded("json", lambda: commands.validate([repo], None, None, "json", out=buffer))
    return code, json.loads(buffer.getvalue())["errors"]


def set_github(repo: Path, env: str, block: str) -> int:
    """Append a ``github:`` block (YAML text) to an environment file; the line it starts on."""
    path = repo / "environments" / f"{env}.yaml"
    text = path.read_text()
    path.write_text(text + "github:\n" + block)
    return text.count("\n") + 1


def steps(doc: dict):
    for job_name, job in doc["jobs"].items():
        for step in job["steps"]:
            yield job_name, step


def test_the_target_is_registered_at_repository_scope_and_reads_only_its_settings():
    target = registry.load(registry.available()["github"])
    assert target.scope == "repository" and target.settings is github.Settings and target.rules is github.rules
    # besides its own settings only what every target reads (the scope's identity) and the two
    # switches of the dispatch workflows; the spec paths come with the scope and are hashed
    # into its inputs
    assert target.reads == ("env.drift.new_models", "env.github", "env.name", "env.namespace", "spec.drift.action",
                            "spec.name")


def test_triggers_are_pull_requests_touching_specs_environments_or_output(repo):
    text, doc = workflow(repo)
    assert text.startswith("# Generated by mlspec from the specs of this repository. DO NOT EDIT")
    assert doc["on"] == {"pull_request": {"paths": [
        "examples/churn/**", "examples/fraud/**", "**/mlops.yaml", "**/mlops.yml", "environments/**",
        "deploy/**", "argocd/**", ".mlspec/**", ".github/workflows/mlspec.yaml"]}}
    assert "pull_request_target" not in text and "workflow_run" not in text
    assert list(doc) == ["name", "on", "permissions", "concurrency", "jobs"]  # written in the usual order


def test_permissions_are_least_privilege_per_job(repo):
    text, doc = workflow(repo)
    assert doc["permissions"] == {}
    assert {name: job["permissions"] for name, job in doc["jobs"].items()} == {
        "check": {"contents": "read"}, "comment": {"pull-requests": "write"}}
    comment = doc["jobs"]["comment"]
    assert comment["needs"] == "check"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in comment["if"]  # not forks
    # each permission says why, on its line
    assert "      contents: read # check out the repository\n" in text
    assert "      pull-requests: write # post and update the sticky diff comment\n" in text


def test_every_action_is_pinned_by_full_sha_with_its_version(repo):
    text, doc = workflow(repo)
    uses = [step["uses"] for _, step in steps(doc) if "uses" in step]
    pinned = PINNED_USES.findall(text)
    assert len(pinned) == len(uses) == 4 == text.count("uses: ")
    assert {(a, sha, v) for a, sha, v in pinned} == {(a, sha, v) for a, (sha, v) in github.DEFAULT_PINS.items()}
    assert all(re.fullmatch(r"[0-9a-f]{40}", use.split("@")[1]) for use in uses)
    for _, step in steps(doc):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False and step["with"]["fetch-depth"] == 0


def test_no_expression_inside_any_run(repo):
    _, doc = workflow(repo)
    runs = [step["run"] for _, step in steps(doc) if "run" in step]
    assert len(runs) == 5 and not [r for r in runs if "${{" in r]
    diff = next(step for _, step in steps(doc) if step.get("id") == "diff")
    assert diff["env"] == {"BASE_SHA": "${{ github.event.pull_request.base.sha }}"}  # through env:, into ${BASE_SHA}
    assert 'git merge-base "${BASE_SHA}" HEAD' in diff["run"]
    assert 'mlspec diff --base "${base}" --format markdown > "${RUNNER_TEMP}/mlspec-diff/diff.md"' in diff["run"]
    assert '>> "${GITHUB_STEP_SUMMARY}"' in diff["run"]


def test_timeouts_concurrency_and_the_commands(repo):
    _, doc = workflow(repo)
    assert {name: job["timeout-minutes"] for name, job in doc["jobs"].items()} == {"check": 20, "comment": 5}
    assert doc["concurrency"] == {"group": "${{ github.workflow }}-${{ github.event.pull_request.number }}",
                                  "cancel-in-progress": True}
    assert all(job["defaults"] == {"run": {"shell": "bash"}} for job in doc["jobs"].values())
    runs = {step["name"]: step.get("run") for _, step in steps(doc)}
    assert runs["mlspec validate"] == "mlspec validate --format github"
    assert runs["mlspec compile --check"] == 'mlspec compile --check --out "${GITHUB_WORKSPACE}" --format github'
    install = next(step for _, step in steps(doc) if step["name"] == "Install mlspec")
    assert install["env"] == {"MLSPEC_REQUIREMENT": f"mlspec[kfp]=={mlspec.__version__}"}  # exactly this mlspec
    setup = next(step for _, step in steps(doc) if step["name"] == "Set up Python")
    assert setup["with"] == {"python-version": "3.12"}


def test_the_settings_shape_the_workflow(repo):
    set_github(repo, "dev", "  python_version: '3.11'\n  runs_on: ubuntu-22.04\n  timeout_minutes: 45\n"
                            "  mlspec: mlspec==0.1.0\n  actions:\n    actions/checkout:\n"
                            "      sha: 08c6903cd8c0fde910a37f88322edcfb5dd907a8\n      version: v5.0.0\n")
    set_github(repo, "prod", "  python_version: '3.11'\n")  # agrees
    text, doc = workflow(repo)
    assert "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n" in text
    assert "actions/setup-python@ece7cb06caefa5fff74198d8649806c4678c61a1 # v6.3.0\n" in text  # the default
    assert {job["runs-on"] for job in doc["jobs"].values()} == {"ubuntu-22.04"}
    assert doc["jobs"]["check"]["timeout-minutes"] == 45
    named = {step["name"]: step for _, step in steps(doc)}
    assert named["Set up Python"]["with"] == {"python-version": "3.11"}
    assert named["Install mlspec"]["env"] == {"MLSPEC_REQUIREMENT": "mlspec==0.1.0"}


def test_a_project_below_the_repository_root(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    for folder in ("examples", "environments"):
        shutil.copytree(ROOT / folder, repo / "ml" / folder, ignore=shutil.ignore_patterns("*.py"))
    (repo / ".git").mkdir()
    (repo / "ml/environments/staging.yaml").write_text(
        (repo / "ml/environments/staging.yaml").read_text() + "github: {working_directory: ml}\n")
    monkeypatch.chdir(repo)
    buffer = io.StringIO()
    code = commands.compile([repo / "ml"], None, None, repo, ["github"], check=False, dry_run=False, force=False,
                            fmt="text", out=buffer)
    assert code == 0, buffer.getvalue()
    doc = yaml.safe_load((repo / WORKFLOW).read_text())
    assert doc["on"]["pull_request"]["paths"][:2] == ["ml/examples/churn/**", "ml/examples/fraud/**"]
    assert "ml/environments/**" in doc["on"]["pull_request"]["paths"]
    runs = {step["name"]: step.get("run", "") for _, step in steps(doc)}
    # run at the repository root, naming the project: annotations are then relative to the repository
    assert runs["mlspec validate"] == "mlspec validate --format github ml"
    assert runs["mlspec compile --check"].endswith("--format github ml")
    assert "--format markdown ml >" in runs["mlspec diff against the merge base"]
    assert "working-directory" not in (repo / WORKFLOW).read_text()


def test_a_spec_at_the_project_root_runs_the_checks_on_every_pull_request():
    settings = github_workflows.effective([github.Settings()])
    assert github_workflows.paths_filter(settings, ["mlops.yaml", "other/mlops.yaml"]) is None
    entries = dict(github_workflows.workflow(settings, ["mlops.yaml"]))
    assert entries["on"] == {"pull_request": {}}
    # folders are matched literally, and nested ones once
    paths = github_workflows.paths_filter(settings, ["a/mlops.yaml", "a/b/mlops.yaml", "odd[1]*/x/mlops.yaml"])
    assert paths[:2] == ["a/**", r"odd\[1\]\*/x/**"]


def test_environments_that_disagree_are_located_validate_errors(repo):
    dev = set_github(repo, "dev", "  python_version: '3.11'\n  runs_on: ubuntu-22.04\n  actions:\n"
                                  "    actions/checkout: {sha: 08c6903cd8c0fde910a37f88322edcfb5dd907a8, version: v5.0.0}\n")
    prod = set_github(repo, "prod", "  python_version: '3.12'\n  runs_on: ubuntu-22.04\n  actions:\n"
                                    "    actions/checkout: {sha: 93cb6efe18208431cddfb8368fd83d5badbf9bfd, version: v5.0.1}\n")
    set_github(repo, "staging", "  timeout_minutes: 30\n")  # set in one file only: fine
    code, errors = validate(repo)
    assert code == 1
    assert [(e["file"], e["line"], e["col"], e["message"]) for e in errors] == [
        ("environments/prod.yaml", prod + 1, 19,
         "github.python_version is '3.12' here but '3.11' in environments/dev.yaml (environment 'prod')"),
        ("environments/prod.yaml", prod + 4, 5,
         "github.actions.actions/checkout is 93cb6efe18208431cddfb8368fd83d5badbf9bfd # v5.0.1 here but "
         "08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0 in environments/dev.yaml (environment 'prod')"),
    ]
    assert all(e["code"] == "github-settings" and "one for the whole repository" in e["hint"] for e in errors)
    assert dev  # dev is where the values were set first: the errors are on the files that differ from it
    # compile refuses what validate refuses
    code, output = compile_github(repo)
    assert code == 1 and "github.python_version is '3.12' here" in output and not (repo / WORKFLOW).exists()
    # once they agree, the key set in one file applies to the repository
    path = repo / "environments/prod.yaml"
    path.write_text(path.read_text().replace("'3.12'", "'3.11'").replace("93cb6efe18208431cddfb8368fd83d5badbf9bfd",
                                             "08c6903cd8c0fde910a37f88322edcfb5dd907a8").replace("v5.0.1", "v5.0.0"))
    assert validate(repo) == (0, [])
    _, doc = workflow(repo)
    assert doc["jobs"]["check"]["timeout-minutes"] == 30


def test_bad_settings_are_located_errors(repo):
    line = set_github(repo, "staging", "  working_directory: ../elsewhere\n  actions:\n"
                                       "    actions/chekout: {sha: 08c6903cd8c0fde910a37f88322edcfb5dd907a8, version: v5.0.0}\n"
                                       "  mlspec: mlspec>=0.1\n")
    code, errors = validate(repo)
    assert code == 1
    found = {(e["line"], e["message"]): e.get("hint") for e in errors}
    assert any(ln == line + 3 and "unknown key 'actions/chekout'" in m and h == "did you mean 'actions/checkout'?"
               for (ln, m), h in found.items()), found
    assert any(ln == line + 4 and "mlspec" in m for ln, m in found), found  # not an exact pin
    path = repo / "environments/staging.yaml"
    path.write_text(path.read_text().replace("  actions:\n    actions/chekout: {sha: 08c6903cd8c0fde910a37f88322edcfb5dd907a8,"
                                             " version: v5.0.0}\n  mlspec: mlspec>=0.1\n", ""))
    code, errors = validate(repo)
    assert [(e["file"], e["line"], e["message"]) for e in errors] == [
        ("environments/staging.yaml", line + 1,
         "github.working_directory '../elsewhere' is outside the repository (environment 'staging')")]


def test_the_workflow_depends_only_on_the_spec_paths_and_the_github_settings(repo):
    first, _ = workflow(repo)
    manifest = json.loads((repo / ".mlspec/manifest.json").read_text())["files"][WORKFLOW]
    assert manifest["scope"] == "*@*/github" and manifest["target"] == "github"
    spec = repo / "examples/churn/mlops.yaml"
    spec.write_text(spec.read_text().replace("traffic: {champion: 90, challenger: 10}",
                                             "traffic: {champion: 80, challenger: 20}"))
    prod = repo / "environments/prod.yaml"
    prod.write_text(prod.read_text().replace("artifacts: s3://acme-ml-prod/pipelines", "artifacts: s3://acme-ml-prod/p2"))
    again, _ = workflow(repo)
    assert again == first
    assert json.loads((repo / ".mlspec/manifest.json").read_text())["files"][WORKFLOW]["inputs"] == manifest["inputs"]
    # a new spec folder is a new paths filter, and nothing else changes
    shutil.copytree(repo / "examples/churn", repo / "examples/churn2")
    (repo / "examples/churn2/mlops.yaml").write_text(
        (repo / "examples/churn2/mlops.yaml").read_text().replace("\nname: churn\n", "\nname: churn2\n"))
    third, _ = workflow(repo)
    changed = [line for line in third.splitlines() if line not in first.splitlines()]
    assert changed == ["    - examples/churn2/**"]
    # a github setting changes it
    set_github(repo, "dev", "  python_version: '3.13'\n")
    fourth, _ = workflow(repo)
    assert [line for line in fourth.splitlines() if line not in third.splitlines()] == ["        python-version: '3.13'"]


def test_the_workflow_is_not_made_by_a_partial_compile(repo):
    code, output = compile_github(repo, "examples/churn")
    assert code == 0, output
    assert "left *@*/github alone: it is made from every spec" in output
    assert not (repo / WORKFLOW).exists()


def test_the_same_bytes_from_any_folder(repo, tmp_path, monkeypatch):
    first, _ = workflow(repo)
    monkeypatch.chdir(tmp_path)
    buffer = io.StringIO()
    code = commands.compile([repo], None, None, tmp_path / "elsewhere", ["github"], check=False, dry_run=False,
                            force=False, fmt="text", out=buffer)
    assert code == 0, buffer.getvalue()
    assert (tmp_path / "elsewhere" / WORKFLOW).read_text() == first


# ------------------------------------------------------------------ repository_dispatch workflows


def workflows(repo: Path) -> dict[str, str]:
    code, output = compile_github(repo)
    assert code == 0, output
    return {p.relative_to(repo).as_posix(): p.read_text() for p in sorted((repo / ".github/workflows").iterdir())}


def _arms(script: str, word: str) -> list[str]:
    """The patterns of the ``case "<word>" in`` of a script, one line each (``*`` left out)."""
    block = script.split(f'case "{word}" in\n', 1)[1].split("\nesac", 1)[0]
    return [line.strip().split(")", 1)[0] for line in block.splitlines() if not line.strip().startswith("*)")]


def test_no_rollback_and_no_new_models_no_dispatch_workflow(repo):
    found = workflows(repo)
    assert list(found) == [WORKFLOW]
    assert yaml.safe_load(found[WORKFLOW])["on"]["pull_request"]["paths"][-1] == WORKFLOW
    # a drift block with another action does not make one (the examples have retrain and alert)
    resolved = [yaml.safe_load((repo / p).read_text())["drift"]["action"] for p in (CHURN, "examples/fraud/mlops.yaml")]
    assert resolved == ["retrain", "alert"]


def test_a_resolved_rollback_makes_the_rollback_workflow_only(repo):
    plain = workflows(repo)[WORKFLOW]
    drift_loop(repo, rollback=((CHURN, "prod"),))  # an override: the resolved action, in prod only
    found = workflows(repo)
    assert list(found) == [ROLLBACK, WORKFLOW]
    # the checks now also run when the rollback workflow changes: that line, nothing else
    assert [line for line in found[WORKFLOW].splitlines() if line not in plain.splitlines()] == [f"    - {ROLLBACK}"]
    doc = yaml.safe_load(found[ROLLBACK])
    assert doc["on"] == {"repository_dispatch": {"types": ["mlspec-rollback"]}}
    check = doc["jobs"]["pull-request"]["steps"][0]
    assert check["name"] == "Check the payload" and check["id"] == "payload"
    # the allow-lists: every environment, every spec (with its name and file), the pairs rolled back
    assert _arms(check["run"], "${PAYLOAD_ENV}") == ["dev | prod | staging"]
    assert _arms(check["run"], "${PAYLOAD_SPEC}") == ["examples/churn/mlops.yaml", "examples/fraud/mlops.yaml"]
    assert "  examples/churn/mlops.yaml) name=churn file=examples/churn/mlops.yaml ;;\n" in check["run"]
    assert _arms(check["run"], "${PAYLOAD_SPEC} ${PAYLOAD_ENV}") == ["'examples/churn/mlops.yaml prod'"]
    assert 'branch="mlspec/rollback/${PAYLOAD_ENV}/${name}"' in check["run"]
    run = {s["name"]: s.get("run") for s in doc["jobs"]["pull-request"]["steps"]}
    assert run["Edit the spec and compile"].startswith('mlspec rollback "${SPEC_FILE}" --env "${PAYLOAD_ENV}"\n')
    assert "gh pr create " in run["Open the pull request"]


def test_new_models_in_an_environment_make_the_new_model_workflow(repo):
    drift_loop(repo, new_models=("staging",))
    found = workflows(repo)
    assert list(found) == [NEW_MODEL, WORKFLOW]
    assert yaml.safe_load(found[WORKFLOW])["on"]["pull_request"]["paths"][-2:] == [WORKFLOW, NEW_MODEL]
    doc = yaml.safe_load(found[NEW_MODEL])
    assert doc["on"] == {"repository_dispatch": {"types": ["mlspec-new-model"]}}
    check = doc["jobs"]["pull-request"]["steps"][0]["run"]
    # every spec of that environment, no other environment
    assert _arms(check, "${PAYLOAD_SPEC} ${PAYLOAD_ENV}") == [
        "'examples/churn/mlops.yaml staging' | 'examples/fraud/mlops.yaml staging'"]
    assert _arms(check, "${PAYLOAD_GOAL}") == ["maximize | minimize"]
    assert _arms(check, "${PAYLOAD_METRIC}")[0].split(" | ") == [
        "accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc", "gini", "log_loss", "r2", "mae", "mape", "mse",
        "rmse"]
    patterns = dict(re.findall(r"^(pattern_\d+)='(.*)'$", check, re.M))
    tested = dict(re.findall(r'"\$\{(PAYLOAD_\w+)\}" =~ \$\{(pattern_\d+)\}', check))
    assert {var: patterns[p] for var, p in tested.items()} == {
        "PAYLOAD_URI": r"^(gs|s3|pvc|https?|oci|hf|file)://[A-Za-z0-9._~/:@%+=,-]+$",
        "PAYLOAD_VERSION": github_workflows.TOKEN, "PAYLOAD_TRAFFIC": github_workflows.PERCENT, "PAYLOAD_SCORE": github_workflows.NUMBER,
        "PAYLOAD_THRESHOLD": github_workflows.NUMBER, "PAYLOAD_CHAMPION_SCORE": github_workflows.NUMBER}
    assert '[ -z "${PAYLOAD_CHAMPION_SCORE}" ] ||' in check  # null: no champion score
    assert 'branch="mlspec/new-model/${PAYLOAD_ENV}/${name}/${PAYLOAD_VERSION}"' in check
    edit = next(s["run"] for s in doc["jobs"]["pull-request"]["steps"] if s["name"] == "Edit the spec and compile")
    assert edit.startswith('mlspec challenger "${SPEC_FILE}" --env "${PAYLOAD_ENV}" --uri "${PAYLOAD_URI}" '
                           '--version "${PAYLOAD_VERSION}" --traffic "${PAYLOAD_TRAFFIC}"\n')


def test_the_payload_patterns_are_what_they_claim():
    uri, number, token, percent = (re.compile(p) for p in (github_workflows.SAFE_URI, github_workflows.NUMBER, github_workflows.TOKEN, github_workflows.PERCENT))
    assert github_workflows.SAFE_URI.startswith(mlspec.models.MODEL_URI.split("://")[0])  # mlspec's schemes
    assert all(uri.match(u) for u in ("gs://b/churn/v3", "s3://b/m/v7-0123456789/model", "hf://org/model",
                                      "oci://ghcr.io/acme/m:1@sha256:ab", "https://h/m%20x"))
    assert not any(uri.match(u) for u in ("gs://b/$(id)", "gs://b/`id`", "gs://b/a;b", "gs://b/a b", "gs://b/a|b",
                                          "gs://b/a\nb", "ftp://b/m", "gs://", "gs://b/'a'", "gs://b/<a>", "gs://b/[x](y)"))
    assert all(number.match(n) for n in ("0", "-1", "0.91", "1e-05", "1E-05", "3.", ".5", "2.5e+3"))
    assert not any(number.match(n) for n in ("", "-", "1e", "0x1", "1,5", "nan", "1 ", "Object"))
    assert [n for n in range(-1, 102) if percent.match(str(n))] == list(range(101))
    assert not any(percent.match(n) for n in ("010", "10.0", "1e2", " 10"))
    assert token.match("v7-0123456789") and not any(token.match(v) for v in ("-v", "1 2", "a/b", "x" * 65))


def test_dispatch_workflows_are_hardened(loop_repo):
    found = workflows(loop_repo)
    check_job = yaml.safe_load(found[WORKFLOW])["jobs"]["check"]
    install = next(s for s in check_job["steps"] if s["name"] == "Install mlspec")
    compile_check = next(s["run"] for s in check_job["steps"] if s["name"] == "mlspec compile --check")
    for path in (ROLLBACK, NEW_MODEL):
        text, doc = found[path], yaml.safe_load(found[path])
        assert list(doc) == ["name", "on", "permissions", "concurrency", "jobs"]
        assert doc["permissions"] == {} and list(doc["jobs"]) == ["pull-request"]
        job = doc["jobs"]["pull-request"]
        assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
        assert "      contents: write # push the pull request's branch\n" in text
        assert "      pull-requests: write # open the pull request\n" in text
        assert job["timeout-minutes"] == 20 and job["defaults"] == {"run": {"shell": "bash"}}
        assert doc["concurrency"] == {"group": "${{ github.workflow }}-${{ github.event.client_payload.env }}-"
                                               "${{ github.event.client_payload.spec }}", "cancel-in-progress": False}
        # pinned by SHA, with the version comment, as mlspec.yaml
        pinned = PINNED_USES.findall(text)
        assert len(pinned) == text.count("uses: ") == 2
        assert {(a, sha, v) for a, sha, v in pinned} <= {(a, sha, v) for a, (sha, v) in github.DEFAULT_PINS.items()}
        steps = job["steps"]
        assert [s["name"] for s in steps] == ["Check the payload", "Check out the default branch", "Set up Python",
                                              "Install mlspec", "Edit the spec and compile", "Open the pull request"]
        assert steps[1]["with"] == {"persist-credentials": False}
        assert steps[3] == install  # the same pin, the same command
        # compiled the way the check job checks it
        assert steps[4]["run"].splitlines()[1] == compile_check.replace("compile --check", "compile")
        # the payload reaches the scripts only through env: no expression inside any run:, and
        # client_payload only in the job's env (and the concurrency group)
        assert not [s["name"] for s in steps if "${{" in s.get("run", "")]
        keys = re.findall(r"client_payload\.(\w+)", text)
        assert len(keys) == len(job["env"]) + 2
        assert job["env"] == {f"PAYLOAD_{k.upper()}": f"${{{{ github.event.client_payload.{k} }}}}"
                              for k in sorted(set(keys))}
        # later steps read what the payload step derived from the allow-lists
        derived = {"SPEC_FILE": "${{ steps.payload.outputs.file }}", "SPEC_NAME": "${{ steps.payload.outputs.name }}",
                   "BRANCH": "${{ steps.payload.outputs.branch }}"}
        assert steps[4]["env"] == {"SPEC_FILE": derived["SPEC_FILE"]}
        assert steps[5]["env"] == {"GH_TOKEN": "${{ github.token }}", "GH_REPO": "${{ github.repository }}", **derived}
        # the token only for the push, never stored in the checkout's config
        script = steps[5]["run"]
        assert 'git push --force --quiet origin "HEAD:refs/heads/${BRANCH}"' in script
        assert 'GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL}/.extraheader"' in script
        assert "git config" not in script and "printf '::add-mask::%s\\n' \"${auth}\"" in script
    payload_keys = {p: set(yaml.safe_load(found[p])["jobs"]["pull-request"]["env"]) for p in (ROLLBACK, NEW_MODEL)}
    assert payload_keys == {
        ROLLBACK: {"PAYLOAD_SPEC", "PAYLOAD_ENV", "PAYLOAD_REASON", "PAYLOAD_IS_DRIFT", "PAYLOAD_P_VAL",
                   "PAYLOAD_THRESHOLD", "PAYLOAD_SOURCE"},
        NEW_MODEL: {"PAYLOAD_SPEC", "PAYLOAD_ENV", "PAYLOAD_URI", "PAYLOAD_VERSION", "PAYLOAD_TRAFFIC", "PAYLOAD_METRIC",
                    "PAYLOAD_GOAL", "PAYLOAD_SCORE", "PAYLOAD_THRESHOLD", "PAYLOAD_CHAMPION_SCORE"}}


def test_dispatch_workflows_are_deterministic_and_depend_on_their_inputs_only(loop_repo, tmp_path, monkeypatch):
    first = workflows(loop_repo)
    manifest = json.loads((loop_repo / ".mlspec/manifest.json").read_text())["files"]
    assert first == workflows(loop_repo)  # again: the same bytes
    monkeypatch.chdir(tmp_path)  # from another folder, into another output root: the same bytes
    buffer = io.StringIO()
    code = commands.compile([loop_repo], None, None, tmp_path / "elsewhere", ["github"], check=False, dry_run=False,
                            force=False, fmt="text", out=buffer)
    assert code == 0, buffer.getvalue()
    assert {p: (tmp_path / "elsewhere" / p).read_text() for p in first} == first
    monkeypatch.chdir(loop_repo)
    # edits the workflows do not read leave their bytes and their recorded inputs alone
    spec = loop_repo / CHURN
    doc = yaml.safe_load(spec.read_text())
    doc["drift"]["p_value"] /= 2
    doc["serving"]["traffic"] = {"champion": 80, "challenger": 20}
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    staging = loop_repo / "environments/staging.yaml"
    data = yaml.safe_load(staging.read_text())
    data["drift"]["retries"] = 7
    staging.write_text(yaml.safe_dump(data, sort_keys=False))
    assert workflows(loop_repo) == first
    again = json.loads((loop_repo / ".mlspec/manifest.json").read_text())["files"]
    assert {p: again[p]["inputs"] for p in first} == {p: manifest[p]["inputs"] for p in first}
    # the new_models traffic is the register step's to send: not read either
    data["drift"]["new_models"]["traffic"] = 20
    staging.write_text(yaml.safe_dump(data, sort_keys=False))
    assert workflows(loop_repo) == first


def test_the_drift_settings_may_be_absent():
    """A project run without the drift target: its environments have no ``drift`` field at all."""
    from types import SimpleNamespace

    from mlspec import environments, inputs

    target = registry.load(registry.available()["github"])
    model = environments.model_for([target])  # the core environment with the github block only
    assert "drift" not in model.model_fields
    core = {"name": "dev", "namespace": "ml-dev", "registry": "ghcr.io/acme",
            "argocd": {"repo_url": "https://github.com/acme/ml-gitops.git"}, "storage": {"artifacts": "s3://acme/p"}}
    guarded = inputs.guard(model.model_validate(core), "env", target.reads, "github")
    assert github_workflows.new_model_envs([guarded]) == []
    # with the drift target: new_models is what is read, and all that may be
    model = environments.model_for([target, registry.load(registry.available()["drift"])])
    off, on = (inputs.guard(model.model_validate({**core, "name": name, **extra}), "env", target.reads, "github")
               for name, extra in (("dev", {}), ("staging", {"drift": {"new_models": {"traffic": 10}}})))
    assert github_workflows.new_model_envs([off, on]) == ["staging"]
    with pytest.raises(inputs.UndeclaredRead):
        bool(on.drift.retries)  # a placeholder, which raises when used
    # the contexts' specs: no drift block, another action, rollback
    contexts = [SimpleNamespace(spec_path=f"{n}/mlops.yaml", env=SimpleNamespace(name="prod"),
                                spec=SimpleNamespace(name=n, drift=d))
                for n, d in (("a", None), ("b", SimpleNamespace(action="alert")), ("c", SimpleNamespace(action="rollback")))]
    assert github_workflows.rollback_pairs(contexts) == [("c/mlops.yaml", "prod")]


def test_a_project_below_the_repository_root_names_its_specs_from_there():
    from types import SimpleNamespace

    settings = github_workflows.effective([github.Settings(working_directory="ml")])
    ctx = SimpleNamespace(
        contexts=[SimpleNamespace(spec_path=CHURN, env=SimpleNamespace(name="prod"),
                                  spec=SimpleNamespace(name="churn", drift=SimpleNamespace(action="rollback")))],
        envs=[SimpleNamespace(name="prod")])
    dispatch = github_workflows.rollback_dispatch(ctx, settings)
    assert dispatch.specs == {CHURN: ("churn", f"ml/{CHURN}")}  # the payload names it as the targets do
    steps = dict(github_workflows.dispatch_workflow(dispatch, settings))["jobs"]["pull-request"]["steps"]
    assert f"  {CHURN}) name=churn file=ml/{CHURN} ;;\n" in steps[0]["run"]
    assert steps[4]["run"].endswith('mlspec compile --out "${GITHUB_WORKSPACE}" --format github ml\n')
    assert github_workflows.new_model_dispatch(ctx, settings) is None
