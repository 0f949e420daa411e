"""Every workflow -- the users' one as the github target generates it for each example
configuration, and mlspec's own ci.yml and e2e.yml -- and action.yml, checked by linters
nobody here wrote, each run once over all the files: actionlint, zizmor (offline, auditor
persona: every audit at every severity, so also 0 findings by default), check-jsonschema's
vendored GitHub schemas, shellcheck on every ``run:`` script; and pre-commit's own check of
``.pre-commit-hooks.yaml``.  actionlint and zizmor also get a deliberately broken copy in the
same run, and must report it and nothing else: a linter that sees nothing proves nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from github_lint import ACTION, PRE_COMMIT_HOOKS, ROOT


def _staged(files: dict[str, Path], folder: Path) -> list[Path]:
    """The files under unique names in one folder (so that one glob names them all)."""
    folder.mkdir(parents=True)
    staged = []
    for name, path in sorted(files.items()):
        staged.append(folder / f"{name}.yaml")
        shutil.copyfile(path, staged[-1])
    return staged


def _run(*args, cwd: Path) -> subprocess.CompletedProcess:
    """A linter in a clean environment, its home (caches, pre-commit's store) in the test's folder."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "NO_COLOR": "1", "FORCE_COLOR": "0",
                               "HOME": str(cwd)})


def test_every_configuration_is_linted(all_workflows, configurations):
    assert {"examples", "serving-knative", "serving-standard", "starter", "configured", "drift-loop",
            "drift-loop-mlspec-rollback", "drift-loop-mlspec-new-model", "own-ci", "own-e2e"} <= set(all_workflows)
    # every file of every generated .github/workflows/ is among them
    generated = {p for repo, _ in configurations.values() for p in (repo / ".github/workflows").iterdir()}
    assert generated == {p for name, p in all_workflows.items() if not name.startswith("own-")}


def _broken(generated_workflows, folder: Path) -> Path:
    """The examples' workflow with three mistakes a linter must see: a job that needs a job
    that is not there, an unknown context, and a pull request's branch name inside run:."""
    text = generated_workflows["examples"].read_text()
    broken = (text.replace("needs: check", "needs: chek").replace("${{ github.token }}", "${{ gihub.token }}")
              .replace('git merge-base "${BASE_SHA}" HEAD', 'git merge-base "${{ github.head_ref }}" HEAD'))
    assert broken.count("chek") == broken.count("gihub") == broken.count("head_ref") == 1
    path = folder / "zz-broken.yaml"
    path.write_text(broken)
    return path


def test_actionlint_finds_nothing(actionlint, all_workflows, generated_workflows, tmp_path):
    staged = _staged(all_workflows, tmp_path / "workflows")
    broken = _broken(generated_workflows, tmp_path / "workflows")  # the linter is live: it sees these
    proc = _run(*actionlint, str(tmp_path / "workflows" / "*.yaml"), cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert f"Checking {len(staged) + 1} workflow file(s)..." in output
    findings = re.findall(r"^(\S+\.yaml):(\d+):(\d+) (.*)$", output, re.M)
    assert proc.returncode == 1 and {f[0] for f in findings} == {f"workflows/{broken.name}"}, output
    assert any("chek" in f[3] for f in findings) and any("gihub" in f[3] for f in findings), output


def test_zizmor_finds_nothing(lint_bin, all_workflows, generated_workflows, tmp_path):
    staged = _staged(all_workflows, tmp_path / "workflows")
    broken = _broken(generated_workflows, tmp_path / "workflows")
    action = tmp_path / "action" / "action.yml"
    action.parent.mkdir()
    shutil.copyfile(ACTION, action)
    proc = _run(lint_bin / "zizmor", "--offline", "--persona", "auditor", "--no-progress", "--format", "json",
                *staged, action, broken, cwd=tmp_path)
    assert proc.stderr.count("completed ") == len(staged) + 2, proc.stderr
    findings = json.loads(proc.stdout)
    where = {loc["symbolic"]["key"]["Local"]["verbatim_path"] for f in findings for loc in f["locations"]}
    assert where == {str(broken)}, json.dumps(findings, indent=1)[:4000]
    assert "template-injection" in {f["ident"] for f in findings}
    assert proc.returncode != 0


def test_check_jsonschema_accepts_every_workflow_and_the_action(lint_bin, all_workflows, tmp_path):
    proc = _run(lint_bin / "check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                *sorted(all_workflows.values()), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run(lint_bin / "check-jsonschema", "--builtin-schema", "vendor.github-actions", ACTION, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _run_scripts(path: Path) -> list[tuple[str, str]]:
    """(where, script) of every ``run:`` in a workflow or a composite action."""
    doc = yaml.safe_load(path.read_text())
    steps = [(f"{job}[{i}]", s) for job, j in (doc.get("jobs") or {}).items() for i, s in enumerate(j["steps"])]
    steps += [(f"runs[{i}]", s) for i, s in enumerate((doc.get("runs") or {}).get("steps") or [])]
    return [(where, step["run"]) for where, step in steps if "run" in step]


def test_shellcheck_passes_every_run_script(lint_bin, all_workflows, tmp_path):
    scripts = []
    for name, path in sorted({**all_workflows, "action": ACTION}.items()):
        for where, script in _run_scripts(path):
            assert "${{" not in script, (name, where)
            file = tmp_path / f"{name}-{re.sub(r'[^A-Za-z0-9]+', '-', where)}.sh"
            file.write_text("#!/usr/bin/env bash\n" + script)  # GitHub runs them with bash -e {0}
            scripts.append(file)
    assert len(scripts) > 20
    proc = _run(lint_bin / "shellcheck", "--severity", "style", *scripts, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pre_commit_accepts_the_hooks_manifest(lint_bin, tmp_path):
    proc = _run(lint_bin / "pre-commit", "validate-manifest", PRE_COMMIT_HOOKS, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = {h["id"]: h for h in yaml.safe_load(PRE_COMMIT_HOOKS.read_text())}
    assert set(hooks) == {"mlspec-validate", "mlspec-compile-check"}
    assert all(h["language"] == "python" and h["pass_filenames"] is False for h in hooks.values())
    # compile --check needs kfp, at the version of mlspec's own `kfp` extra (the IR records it)
    pyproject = (ROOT / "pyproject.toml").read_text()
    kfp_pin = re.search(r'^kfp = \["(kfp==[^"]+)"', pyproject, re.M).group(1)
    assert hooks["mlspec-compile-check"]["additional_dependencies"] == [kfp_pin]
    for hook in hooks.values():
        files = re.compile(hook["files"])
        assert files.search("examples/churn/mlops.yaml") and files.search("environments/prod.yaml")
        assert files.search("examples/churn/data/customers.csv")
        assert not files.search("README.md") and not files.search("tests/golden/deploy/dev/churn/x.yaml")
    check = re.compile(hooks["mlspec-compile-check"]["files"])
    assert check.search("deploy/dev/churn/kserve/inferenceservice.yaml") and check.search(".mlspec/manifest.json")
    assert check.search(".github/workflows/mlspec.yaml")
