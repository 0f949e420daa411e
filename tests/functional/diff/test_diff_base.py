"""`mlspec diff --base REF` on a real git repository with one commit per kind of change:
the exact report in all three formats, the Mermaid block, ranking across several commits,
what is (not) rendered, exit codes, and that the work tree and index stay untouched."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from diffrepo import CHURN, edit, git, mlspec, new_repo

from mlspec import semdiff


def report(where: Path, base: str, monkeypatch, envs=None, targets=None) -> semdiff.Report:
    monkeypatch.chdir(where)
    return semdiff.build_report([], envs, None, base=base, target_names=targets)


def label(repo: Path, ref: str) -> str:
    return f"{ref} ({git(repo, 'rev-parse', ref).strip()[:10]})"


def picture(where: Path, spec: str, env: str, highlight) -> str:
    """The Mermaid flowchart mlspec.graph draws of ``spec`` in ``env`` in this work tree."""
    from mlspec import graph
    from mlspec.project import resolve

    [resolved] = [r for r in resolve(where / spec, [env]).resolved if r.env is not None]
    return graph.mermaid(graph.build(resolved), highlight)


# ---------------------------------------------------------------------------- one commit each


def test_traffic_change(history: Path, at, monkeypatch):
    where = at("traffic")
    r = report(where, "base", monkeypatch, envs=["prod"])
    assert semdiff.render(r, "text") == f"""\
mlspec diff: {label(history, 'base')} → work tree: 1 file(s) changed; resources: 1 changed, 0 added, 0 removed

ML changes:
  * churn [prod]: traffic champion 90% → 80%, challenger 10% → 20%

 deploy/prod/churn/kserve/inferencegraph.yaml | 4 ++--
 1 file(s) changed, 2 insertion(s)(+), 2 deletion(s)(-)

~ prod/churn: InferenceGraph ml-prod/churn
    spec.nodes.root.steps[name=champion].weight: 90 → 80
    spec.nodes.root.steps[name=challenger].weight: 10 → 20
"""
    assert semdiff.render(r, "markdown") == f"""\
<!-- mlspec-diff -->
## mlspec diff: `{label(history, 'base')}` → work tree

**1** resource(s) changed, **0** added, **0** removed, in **1** file(s).

### ML changes

- **churn** (prod): traffic champion 90% → 80%, challenger 10% → 20%

### Resources

| environment | spec | added | changed | removed | files |
|---|---|---:|---:|---:|---:|
| prod | churn | 0 | 1 | 0 | 1 |

<details><summary>prod/churn: 1 resource(s), 2 field change(s)</summary>

- ~ `InferenceGraph ml-prod/churn` in `deploy/prod/churn/kserve/inferencegraph.yaml`
  - `spec.nodes.root.steps[name=champion].weight`: `90` → `80`
  - `spec.nodes.root.steps[name=challenger].weight`: `10` → `20`

</details>

### System

**churn** in prod (changed parts highlighted):

```mermaid
{picture(where, CHURN, "prod", {"split"})}```
"""
    commit = git(history, "rev-parse", "base").strip()
    assert json.loads(semdiff.render(r, "json")) == {
        "schema": "mlspec.diff/v1",
        "base": {"kind": "git", "ref": "base", "commit": commit},
        "head": {"kind": "worktree"},
        "changed": True,
        "summary": {"files": 1, "notes": 1, "resources": {"added": 0, "changed": 1, "removed": 0}},
        "notes": [{"kind": "traffic", "spec": "churn", "envs": ["prod"],
                   "message": "traffic champion 90% → 80%, challenger 10% → 20%",
                   "old": {"champion": 90, "challenger": 10}, "new": {"champion": 80, "challenger": 20}}],
        "resources": [{
            "change": "changed", "env": "prod", "spec": "churn", "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "InferenceGraph", "namespace": "ml-prod", "name": "churn", "old_name": None,
            "file": "deploy/prod/churn/kserve/inferencegraph.yaml", "old_file": None,
            "fields": [
                {"path": "spec.nodes.root.steps[name=champion].weight", "change": "changed", "old": 90, "new": 80},
                {"path": "spec.nodes.root.steps[name=challenger].weight", "change": "changed", "old": 10, "new": 20}]}],
        "files": [{"path": "deploy/prod/churn/kserve/inferencegraph.yaml", "change": "modified", "env": "prod",
                   "spec": "churn", "kubernetes": True, "insertions": 2, "deletions": 2, "diff": ""}],
        "warnings": [],
    }


def test_model_uri_change(history: Path, at, monkeypatch):
    where = at("model")  # the serving target's view (the drift detector, next to the champion, moves too)
    r = report(where, "traffic", monkeypatch, envs=["staging"], targets=["kserve"])
    assert semdiff.render(r, "text") == f"""\
mlspec diff: {label(history, 'traffic')} → work tree: 1 file(s) changed; resources: 1 changed, 0 added, 0 removed

ML changes:
  * churn [staging]: champion model gs://acme-models/churn/v3/model → gs://acme-models/churn/v5/model

 deploy/staging/churn/kserve/inferenceservice.yaml | 2 +-
 1 file(s) changed, 1 insertion(s)(+), 1 deletion(s)(-)

~ staging/churn: InferenceService ml-staging/churn-champion
    spec.predictor.model.storageUri: "gs://acme-models/churn/v3/model" → "gs://acme-models/churn/v5/model"
"""
    markdown = semdiff.render(r, "markdown")
    assert markdown == f"""\
<!-- mlspec-diff -->
## mlspec diff: `{label(history, 'traffic')}` → work tree

**1** resource(s) changed, **0** added, **0** removed, in **1** file(s).

### ML changes

- **churn** (staging): champion model gs://acme-models/churn/v3/model → gs://acme-models/churn/v5/model

### Resources

| environment | spec | added | changed | removed | files |
|---|---|---:|---:|---:|---:|
| staging | churn | 0 | 1 | 0 | 1 |

<details><summary>staging/churn: 1 resource(s), 1 field change(s)</summary>

- ~ `InferenceService ml-staging/churn-champion` in `deploy/staging/churn/kserve/inferenceservice.yaml`
  - `spec.predictor.model.storageUri`: `"gs://acme-models/churn/v3/model"` → `"gs://acme-models/churn/v5/model"`

</details>

### System

**churn** in staging (changed parts highlighted):

```mermaid
{picture(where, CHURN, "staging", {"champion"})}```
"""
    document = json.loads(semdiff.render(r, "json"))
    assert document["notes"] == [{
        "kind": "model", "spec": "churn", "envs": ["staging"],
        "message": "champion model gs://acme-models/churn/v3/model → gs://acme-models/churn/v5/model",
        "old": {"uri": "gs://acme-models/churn/v3/model", "version": None},
        "new": {"uri": "gs://acme-models/churn/v5/model", "version": None}}]
    assert [(x["kind"], x["name"], x["fields"]) for x in document["resources"]] == [
        ("InferenceService", "churn-champion", [{"path": "spec.predictor.model.storageUri", "change": "changed",
                                                 "old": "gs://acme-models/churn/v3/model", "new": "gs://acme-models/churn/v5/model"}])]


def test_added_environment(history: Path, at, monkeypatch):
    where = at("qa")
    r = report(where, "model", monkeypatch, targets=["kserve"])
    assert semdiff.render(r, "text") == f"""\
mlspec diff: {label(history, 'model')} → work tree: 2 file(s) changed; resources: 0 changed, 3 added, 0 removed

ML changes:
  * environment qa added: churn, fraud

 deploy/qa/churn/kserve/inferencegraph.yaml   | 28 ++++++++++++
 deploy/qa/churn/kserve/inferenceservice.yaml | 97 ++++++++++++++++++++++++++++++++++++++++
 2 file(s) changed, 125 insertion(s)(+), 0 deletion(s)(-)

+ qa/churn: InferenceGraph ml-qa/churn
+ qa/churn: InferenceService ml-qa/churn-challenger
+ qa/churn: InferenceService ml-qa/churn-champion
"""
    from mlspec import graph
    from mlspec.project import resolve

    everything = {n.id for n in graph.build(resolve(where / CHURN, ["qa"]).resolved[0]).nodes}
    assert semdiff.render(r, "markdown") == f"""\
<!-- mlspec-diff -->
## mlspec diff: `{label(history, 'model')}` → work tree

**0** resource(s) changed, **3** added, **0** removed, in **2** file(s).

### ML changes

- environment qa added: churn, fraud

### Resources

| environment | spec | added | changed | removed | files |
|---|---|---:|---:|---:|---:|
| qa | churn | 3 | 0 | 0 | 2 |

<details><summary>qa/churn: 3 resource(s), 0 field change(s)</summary>

- \\+ `InferenceGraph ml-qa/churn` in `deploy/qa/churn/kserve/inferencegraph.yaml`
- \\+ `InferenceService ml-qa/churn-challenger` in `deploy/qa/churn/kserve/inferenceservice.yaml`
- \\+ `InferenceService ml-qa/churn-champion` in `deploy/qa/churn/kserve/inferenceservice.yaml`

</details>

### System

**churn** in qa (changed parts highlighted):

```mermaid
{picture(where, CHURN, "qa", everything)}```
"""
    document = json.loads(semdiff.render(r, "json"))
    assert document["notes"] == [{"kind": "environment", "spec": None, "envs": ["qa"],
                                  "message": "environment qa added: churn, fraud", "old": None, "new": "qa"}]
    assert [(x["change"], x["env"], x["kind"], x["name"], x["file"]) for x in document["resources"]] == [
        ("added", "qa", "InferenceGraph", "churn", "deploy/qa/churn/kserve/inferencegraph.yaml"),
        ("added", "qa", "InferenceService", "churn-challenger", "deploy/qa/churn/kserve/inferenceservice.yaml"),
        ("added", "qa", "InferenceService", "churn-champion", "deploy/qa/churn/kserve/inferenceservice.yaml")]
    assert document["summary"] == {"files": 2, "notes": 1, "resources": {"added": 3, "changed": 0, "removed": 0}}


def test_removed_feature_view(history: Path, at, monkeypatch):
    where = at("no-merchant-view")
    r = report(where, "qa", monkeypatch, envs=["dev"], targets=["feast"])
    text = semdiff.render(r, "text")
    head, _, diffs = text.partition("\n--- a/")
    assert head == f"""\
mlspec diff: {label(history, 'qa')} → work tree: 2 file(s) changed; resources: 0 changed, 0 added, 0 removed

ML changes:
  * fraud [dev]: drift features −risk_score
  * fraud [dev]: feature view merchant_risk removed
  * fraud [dev]: served features 5 → 4 (−risk_score)

 deploy/dev/fraud/feast/jobs/prepare.py  | 2 +-
 deploy/dev/fraud/feast/repo/features.py | 31 +++----------------------------
 2 file(s) changed, 4 insertion(s)(+), 29 deletion(s)(-)
"""
    # the Feast definitions (not Kubernetes objects) as unified diffs
    assert diffs.startswith("deploy/dev/fraud/feast/jobs/prepare.py\n+++ b/deploy/dev/fraud/feast/jobs/prepare.py\n")
    assert "\n--- a/deploy/dev/fraud/feast/repo/features.py\n+++ b/deploy/dev/fraud/feast/repo/features.py\n" in text
    assert "\n-view_merchant_risk = FeatureView(\n" in text
    assert "\n-    features=[view_card_activity, view_merchant_risk[['risk_score']]],\n" in text
    document = json.loads(semdiff.render(r, "json"))
    assert [(n["kind"], n["message"], n["old"], n["new"]) for n in document["notes"]] == [
        ("drift", "drift features −risk_score", ["spend_1h", "txn_count_1h", "risk_score"], ["spend_1h", "txn_count_1h"]),
        ("features", "feature view merchant_risk removed", "merchant_risk", None),
        ("features", "served features 5 → 4 (−risk_score)",
         ["spend_1h", "txn_count_1h", "max_amount_1d", "foreign_share_1d", "risk_score"],
         ["spend_1h", "txn_count_1h", "max_amount_1d", "foreign_share_1d"])]
    assert document["resources"] == []
    assert [(f["path"], f["kubernetes"], f["insertions"], f["deletions"]) for f in document["files"]] == [
        ("deploy/dev/fraud/feast/jobs/prepare.py", False, 1, 1),
        ("deploy/dev/fraud/feast/repo/features.py", False, 3, 28)]
    assert document["files"][1]["diff"] in text
    markdown = semdiff.render(r, "markdown")
    assert "### Other files\n\n<details><summary><code>deploy/dev/fraud/feast/jobs/prepare.py</code> (modified, +1 −1)" \
        "</summary>\n\n```diff\n--- a/deploy/dev/fraud/feast/jobs/prepare.py\n" in markdown
    assert "```diff\n" + document["files"][1]["diff"] + "```\n\n</details>" in markdown
    assert "- **fraud** (dev): feature view merchant\\_risk removed\n" in markdown


def test_grid_change(history: Path, at, monkeypatch):
    where = at("grid")
    r = report(where, "no-merchant-view", monkeypatch, envs=["dev"], targets=["kubeflow"])
    document = json.loads(semdiff.render(r, "json"))
    assert document["notes"] == [{"kind": "search", "spec": "churn", "envs": ["dev"],
                                  "message": "search grid 8 → 12 candidates",
                                  "old": {"strategy": "grid", "size": 8}, "new": {"strategy": "grid", "size": 12}}]
    configmap, cronjob, version = document["resources"]
    old_name, new_name = version["old_name"], version["name"]
    # the retrain action's ConfigMap names the new version (and only that changes in it)
    assert (configmap["kind"], configmap["name"], configmap["fields"]) == (
        "ConfigMap", "churn-pipeline-version",
        [{"path": "data.version", "change": "changed", "old": old_name, "new": new_name}])
    assert old_name != new_name and old_name.startswith("churn-") and new_name.startswith("churn-")
    assert (version["change"], version["kind"], len(new_name)) == ("changed", "PipelineVersion", len("churn-") + 10)
    renamed = {"change": "changed", "old": old_name, "new": new_name}
    added = [{"learning_rate": lr, "max_depth": depth, "n_estimators": 200} for lr in (0.05, 0.1) for depth in (2, 3)]
    tasks = "spec.pipelineSpec.root.dag.tasks"
    assert version["fields"] == [
        {"path": "metadata.name", **renamed},
        {"path": "spec.displayName", **renamed},
        {"path": "spec.pipelineSpec.pipelineInfo.name", **renamed},
        {"path": f"{tasks}.fit-drift-detector.inputs.parameters.version.runtimeValue.constant", **renamed},
        *({"path": f"{tasks}.for-loop-2.parameterIterator.items.raw(json)[{i}]", "change": "added", "old": None,
           "new": json.dumps(item)} for i, item in zip((2, 5, 8, 11), added)),
        {"path": f"{tasks}.register-model.inputs.parameters.lineage.runtimeValue.constant(json).search.candidates",
         "change": "changed", "old": 8, "new": 12},
        {"path": f"{tasks}.register-model.inputs.parameters.pipeline_version.runtimeValue.constant", **renamed},
        *({"path": f"{tasks}.select-best.inputs.parameters.candidates.runtimeValue.constant(json)[{i}]",
           "change": "added", "old": None, "new": item} for i, item in zip((2, 5, 8, 11), added)),
    ]
    assert (cronjob["kind"], cronjob["name"], [f["path"] for f in cronjob["fields"]]) == (
        "CronJob", "churn-training",
        ['metadata.annotations["mlspec.io/pipeline-version"]',
         "spec.jobTemplate.spec.template.spec.containers[name=trigger-run].env[name=KFP_PIPELINE_VERSION].value"])
    assert [(f["path"], f["kubernetes"]) for f in document["files"]] == [
        ("deploy/dev/churn/kubeflow/pipeline-ir.yaml", False),
        ("deploy/dev/churn/kubeflow/pipeline-version.yaml", True), ("deploy/dev/churn/kubeflow/pipeline.yaml", True),
        ("deploy/dev/churn/kubeflow/schedule.yaml", True)]
    text = semdiff.render(r, "text")
    assert "\nML changes:\n  * churn [dev]: search grid 8 → 12 candidates\n\n" in text
    assert f"\n~ dev/churn: PipelineVersion kubeflow/{old_name} → {new_name}\n" \
           f'    metadata.name: "{old_name}" → "{new_name}"\n' in text
    assert f"\n-  name: {old_name}\n+  name: {new_name}\n" in text  # pipeline-ir.yaml, as a unified diff
    markdown = semdiff.render(r, "markdown")
    assert f"- ~ `PipelineVersion kubeflow/{old_name} → {new_name}` in `deploy/dev/churn/kubeflow/pipeline.yaml`\n" \
        in markdown
    assert f"  - `{tasks}.register-model.inputs.parameters.lineage.runtimeValue.constant(json).search.candidates`: " \
           "`8` → `12`\n" in markdown
    assert "\n```mermaid\n" + picture(where, CHURN, "dev", {"training"}) + "```\n" in markdown


def test_several_commits_at_once_ranked(history: Path, at, monkeypatch):
    """From base to the last commit: every kind of note, the most consequential first, one
    note for the same change in several environments."""
    where = at("grid")
    r = report(where, "base", monkeypatch)
    assert [(n.kind, n.spec, n.envs, n.message) for n in r.notes] == [
        ("environment", None, ["qa"], "environment qa added: churn, fraud"),
        ("traffic", "churn", ["prod", "staging"], "traffic champion 90% → 80%, challenger 10% → 20%"),
        ("model", "churn", ["dev", "prod", "staging"],
         "champion model gs://acme-models/churn/v3/model → gs://acme-models/churn/v5/model"),
        ("drift", "fraud", ["dev", "prod", "staging"], "drift features −risk_score"),
        ("search", "churn", ["dev", "prod", "staging"], "search grid 8 → 12 candidates"),
        ("features", "fraud", ["dev", "prod", "staging"], "feature view merchant_risk removed"),
        ("features", "fraud", ["dev", "prod", "staging"], "served features 5 → 4 (−risk_score)"),
    ]
    # every qa object is new; nothing was removed
    assert {x.change for x in r.resources if x.env == "qa"} == {"added"}
    assert not [x for x in r.resources if x.change == "removed"]
    assert r.notes and r.changed


def test_unchanged_specs_are_rendered_on_neither_side(history: Path, at, monkeypatch):
    from mlspec import compiler

    rendered = []
    original = compiler.generate_scope

    def spy(resolved, target, *args, **kwargs):
        rendered.append((resolved.spec.name, resolved.env_name, target.name))
        return original(resolved, target, *args, **kwargs)

    monkeypatch.setattr(compiler, "generate_scope", spy)
    where = at("traffic")
    monkeypatch.chdir(where)
    r = semdiff.build_report([], None, None, base="base", jobs=1)
    assert {name for name, _, _ in rendered} == {"churn"}  # fraud is the same on both sides
    # churn's spec file changed: each of its environments is rendered, and twice (base and head)
    # only by the targets that read the traffic (and argocd, which consumes what they make)
    # where it changed; dev overrides the split
    twice = {(e, t) for (_, e, t), n in Counter(rendered).items() if n == 2}
    assert twice == {(env, target) for env in ("staging", "prod") for target in ("kserve", "seldon", "seldon-v2", "argocd")}
    assert sorted({(n, e) for n, e, _ in rendered}) == [("churn", "dev"), ("churn", "prod"), ("churn", "staging")]
    assert max(Counter(rendered).values()) == 2
    assert {(x.env, x.kind) for x in r.resources} == {("prod", "InferenceGraph"), ("staging", "InferenceGraph")}
    # an environment file edit renders that environment only, for every spec
    rendered.clear()
    edit(where / "environments/staging.yaml", "namespace: ml-staging", "namespace: ml-staging2")
    semdiff.build_report([], None, None, base="traffic", jobs=1)
    assert {(n, e) for n, e, _ in rendered} == {("churn", "staging"), ("fraud", "staging")}


# ------------------------------------------------------------------------------ the CLI


def test_exit_codes_and_errors(history: Path, at, tmp_path: Path):
    where = at("traffic")
    same = mlspec("diff", "--base", "HEAD", cwd=where)
    assert (same.returncode, same.stdout) == (0, f"mlspec diff: {label(where, 'HEAD')} → work tree: no changes\n")
    assert mlspec("diff", "--base", "HEAD", "--exit-code", cwd=where).returncode == 0
    changed = mlspec("diff", "--base", "base", "--env", "prod", cwd=where)
    assert changed.returncode == 0 and "traffic champion 90% → 80%" in changed.stdout  # changes: still 0 ...
    assert mlspec("diff", "--base", "base", "--env", "prod", "--exit-code", cwd=where).returncode == 1  # ... unless asked
    bad_ref = mlspec("diff", "--base", "no-such-branch", cwd=where)
    assert bad_ref.returncode == 2
    assert "error: unknown git revision 'no-such-branch'" in bad_ref.stdout
    as_json = json.loads(mlspec("diff", "--base", "no-such-branch", "--format", "json", cwd=where).stdout)
    assert (as_json["ok"], as_json["errors"][0]["code"]) == (False, "bad-ref")
    markdown = mlspec("diff", "--base", "no-such-branch", "--format", "markdown", cwd=where)
    assert markdown.returncode == 2 and markdown.stdout.startswith("<!-- mlspec-diff -->\n## mlspec diff: failed\n")
    both = mlspec("diff", "--base", "HEAD", "--against", ".", cwd=where)
    assert both.returncode == 2 and "give --base or --against, not both" in both.stderr
    edit(where / CHURN, "threshold: 0.7}", "threshold: 7}")  # roc_auc is at most 1: invalid in the work tree
    invalid = mlspec("diff", "--base", "HEAD", cwd=where)
    assert invalid.returncode == 2 and "examples/churn/mlops.yaml:" in invalid.stdout
    outside = tmp_path / "not-git"
    outside.mkdir()
    proc = mlspec("diff", "--base", "HEAD", cwd=outside)
    assert proc.returncode == 2 and "is not in a git repository" in proc.stdout
    help_text = mlspec("diff", "--help", cwd=where).stdout
    assert "Exit codes:\n    0  no changes, or changes without --exit-code\n    1  changes with --exit-code\n" \
           "    2  error (invalid spec, unknown revision, bad option)\n    3  internal error\n" in help_text


def test_an_invalid_base_is_shown_as_added(history: Path, tmp_path: Path):
    repo = new_repo(tmp_path / "repo")
    edit(repo / CHURN, "threshold: 0.7}", "threshold: 7}")
    git(repo, "commit", "-qam", "broken")
    edit(repo / CHURN, "threshold: 7}", "threshold: 0.7}")  # the work tree fixes it
    proc = mlspec("diff", "--base", "HEAD", "--env", "dev", "--targets", "kserve", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("note: examples/churn/mlops.yaml does not validate at HEAD (2 problem(s), the first: "
                                  "examples/churn/mlops.yaml:91:54: threshold 7 is out of range: roc_auc is between 0 and 1")
    assert "what it makes now is shown as added\n" in proc.stdout
    assert "\n  * churn [dev]: new spec\n" in proc.stdout
    assert "\n+ dev/churn: InferenceService ml-dev/churn-champion\n" in proc.stdout


def _snapshot(repo: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every file of the repository, .git included: size, mtime and (outside .git/objects) bytes."""
    out = {}
    for path in sorted(repo.rglob("*")):
        if path.is_file():
            rel = path.relative_to(repo).as_posix()
            stat = path.stat()
            out[rel] = (stat.st_size, stat.st_mtime_ns, None if "/objects/" in rel else path.read_bytes())
    return out


def test_base_leaves_the_work_tree_and_the_index_untouched(tmp_path: Path):
    repo = new_repo(tmp_path / "repo")
    edit(repo / CHURN, "traffic: {champion: 90, challenger: 10}", "traffic: {champion: 70, challenger: 30}")
    git(repo, "add", CHURN)  # staged ...
    edit(repo / CHURN, "challenger: {uri: gs://acme-models/churn/v4/model}", "challenger: {uri: gs://acme-models/churn/v6/model}")
    (repo / "examples/churn/notes.txt").write_text("untracked\n")  # ... unstaged, untracked
    status = git(repo, "status", "--porcelain=v2", "--untracked-files=all")
    before = _snapshot(repo)
    proc = mlspec("diff", "--base", "HEAD", "--env", "prod", cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "traffic champion 90% → 70%, challenger 10% → 30%" in proc.stdout  # the work tree, not the index
    assert "challenger model gs://acme-models/churn/v4/model → gs://acme-models/churn/v6/model" in proc.stdout
    assert _snapshot(repo) == before  # not one byte or mtime changed, .git/index included
    assert git(repo, "status", "--porcelain=v2", "--untracked-files=all") == status


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_secrets_in_model_uris_are_masked(tmp_path: Path, fmt: str):
    repo = new_repo(tmp_path / "repo")
    edit(repo / CHURN, "challenger: {uri: gs://acme-models/churn/v4/model}",
         "challenger: {uri: 'https://deploy:hunter2@models.acme.example/churn/v4'}")
    git(repo, "commit", "-qam", "challenger over https")
    edit(repo / CHURN, "deploy:hunter2@models.acme.example/churn/v4", "deploy:s3cr3t@models.acme.example/churn/v5")
    proc = mlspec("diff", "--base", "HEAD", "--env", "prod", "--targets", "kserve", "--format", fmt, cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hunter2" not in proc.stdout and "s3cr3t" not in proc.stdout and "deploy:" not in proc.stdout
    assert "https://***@models.acme.example/churn/v4" in proc.stdout
    assert "https://***@models.acme.example/churn/v5" in proc.stdout
