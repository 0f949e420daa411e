"""The whole loop in a GitOps repository whose output is committed beside the specs:
edit a spec → `compile --check` fails → `compile` → `--check` passes → `diff --base HEAD`
shows exactly the edit; and `mlspec diff` without a base is what `compile` would change."""

from __future__ import annotations

import json
from pathlib import Path

from diffrepo import CHURN, edit, git, mlspec, new_repo


def test_edit_check_compile_check_diff(tmp_path: Path):
    repo = new_repo(tmp_path / "gitops")
    first = mlspec("compile", cwd=repo)  # the whole project, into the repository itself (--out .)
    assert first.returncode == 0, first.stdout + first.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "compiled")
    assert mlspec("compile", "--check", cwd=repo).returncode == 0

    edit(repo / CHURN, "traffic: {champion: 90, challenger: 10}", "traffic: {champion: 75, challenger: 25}")
    check = mlspec("compile", "--check", cwd=repo)
    assert check.returncode == 1
    stale = sorted(line.split(":1:1:")[0].removeprefix("./") for line in check.stdout.splitlines()
                   if "out of date" in line)
    assert stale == ["deploy/prod/churn/kserve/inferencegraph.yaml", "deploy/staging/churn/kserve/inferencegraph.yaml"]
    # what compile would change, before compiling: the same two objects
    pending = mlspec("diff", "--exit-code", cwd=repo)
    assert pending.returncode == 1, pending.stdout + pending.stderr
    assert "\n~ prod/churn: InferenceGraph ml-prod/churn\n" in pending.stdout
    assert mlspec("compile", cwd=repo).returncode == 0
    assert mlspec("compile", "--check", cwd=repo).returncode == 0
    assert mlspec("diff", "--exit-code", cwd=repo).stdout.endswith(": no changes\n")
    assert sorted(git(repo, "status", "--porcelain").splitlines()) == [
        " M .mlspec/manifest.json", " M deploy/prod/churn/kserve/inferencegraph.yaml",
        " M deploy/staging/churn/kserve/inferencegraph.yaml", " M examples/churn/mlops.yaml"]

    proc = mlspec("diff", "--base", "HEAD", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    commit = git(repo, "rev-parse", "HEAD").strip()
    assert proc.stdout == f"""\
mlspec diff: HEAD ({commit[:10]}) → work tree: 2 file(s) changed; resources: 2 changed, 0 added, 0 removed

ML changes:
  * churn [prod, staging]: traffic champion 90% → 75%, challenger 10% → 25%

 deploy/prod/churn/kserve/inferencegraph.yaml    | 4 ++--
 deploy/staging/churn/kserve/inferencegraph.yaml | 4 ++--
 2 file(s) changed, 4 insertion(s)(+), 4 deletion(s)(-)

~ prod/churn: InferenceGraph ml-prod/churn
    spec.nodes.root.steps[name=champion].weight: 90 → 75
    spec.nodes.root.steps[name=challenger].weight: 10 → 25
~ staging/churn: InferenceGraph ml-staging/churn
    spec.nodes.root.steps[name=champion].weight: 90 → 75
    spec.nodes.root.steps[name=challenger].weight: 10 → 25
"""
    # exactly the files the compile rewrote, and nothing else
    document = json.loads(mlspec("diff", "--base", "HEAD", "--format", "json", cwd=repo).stdout)
    changed_outputs = sorted(line[3:] for line in git(repo, "status", "--porcelain").splitlines()
                             if line[3:].startswith("deploy/"))
    assert [f["path"] for f in document["files"]] == changed_outputs
    assert [(n["kind"], n["envs"]) for n in document["notes"]] == [("traffic", ["prod", "staging"])]
    # once committed, the same edit is the difference between the last two commits
    git(repo, "commit", "-qam", "traffic")
    again = mlspec("diff", "--base", "HEAD~1", cwd=repo)
    assert again.stdout.partition("\n")[2] == proc.stdout.partition("\n")[2]
    assert mlspec("diff", "--base", "HEAD", "--exit-code", cwd=repo).returncode == 0


def test_against_a_committed_output_root(tmp_path: Path):
    repo = new_repo(tmp_path / "repo")
    built = mlspec("compile", "examples/", "--out", "build", cwd=repo)
    assert built.returncode == 0, built.stdout + built.stderr
    assert mlspec("diff", "examples/", "--against", "build", "--exit-code", cwd=repo).returncode == 0
    edit(repo / CHURN, "champion: {uri: gs://acme-models/churn/v3/model}", "champion: {uri: gs://acme-models/churn/v7/model}")
    proc = mlspec("diff", "examples/", "--against", "build", "--env", "dev", "--format", "json", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(proc.stdout)
    assert document["base"] == {"kind": "directory", "path": "build"}
    assert document["notes"] == []  # a folder of output has no specs to compare
    assert [(r["kind"], r["name"], [(f["path"], f["old"], f["new"]) for f in r["fields"]])
            for r in document["resources"]] == [
        ("InferenceService", "churn-champion",
         [("spec.predictor.model.storageUri", "gs://acme-models/churn/v3/model", "gs://acme-models/churn/v7/model")]),
        # the drift detector watches the champion: it follows it to the new model's detector
        ("Service", "churn-drift-detector",
         [("spec.template.spec.containers[name=detector].args[7]", "gs://acme-models/churn/v3/drift-detector",
           "gs://acme-models/churn/v7/drift-detector")])]
    missing = mlspec("diff", "examples/", "--against", "nowhere", cwd=repo)
    assert missing.returncode == 2 and "nowhere is not a directory" in missing.stdout
