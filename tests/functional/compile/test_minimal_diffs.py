"""A diff in git means a real change: which output files an edit touches, byte for byte;
output that does not depend on the working directory; deleted specs pruned.

The edit matrix compiles the shipped examples into a scratch repository, applies one kind
of edit, compiles again and compares every file's bytes (and mtime: files that do not
change are not even rewritten) with what the edit must change.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mlspec import commands

ROOT = Path(__file__).resolve().parents[3]
LOCAL_STATE = {".mlspec/lock", ".mlspec/cache.json", ".mlspec/cache.json.tmp"}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() not in LOCAL_STATE}


def mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def compile_(repo: Path, *paths: str, out: str = "gitops", check: bool = False, cwd: Path | None = None,
             targets: list[str] | None = None) -> tuple[int, str]:
    """`mlspec compile` in-process, from ``cwd`` (default: the repository)."""
    buffer = io.StringIO()
    before = os.getcwd()
    os.chdir(cwd or repo)
    try:
        code = commands.guarded("text", lambda: commands.compile(
            [Path(p) for p in paths or ("examples",)], None, None, Path(out), targets, check=check,
            dry_run=False, force=False, fmt="text", jobs=1, out=buffer))
    finally:
        os.chdir(before)
    return code, buffer.getvalue()


@pytest.fixture
def repo(project: Path) -> Path:
    code, output = compile_(project)
    assert code == 0, output
    return project


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def version_names(out: Path) -> dict[str, str]:
    """PipelineVersion name per deploy/<env>/<spec>."""
    names = {}
    for path in sorted(out.glob("deploy/*/*/kubeflow/pipeline.yaml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        names["/".join(path.parts[-4:-2])] = next(d["metadata"]["name"] for d in docs if d["kind"] == "PipelineVersion")
    return names


def files(spec: str, envs=("dev", "staging", "prod"), names=("pipeline-ir.yaml", "pipeline.yaml", "schedule.yaml"),
          target: str = "kubeflow"):
    return {f"deploy/{env}/{spec}/{target}/{name}" for env in envs for name in names}


def feast(spec: str, envs=("dev", "staging", "prod"), names=("repo/features.py",)):
    """Files of the Feast repository (the definitions carry the owner, descriptions and tags)."""
    return files(spec, envs, names, "feast")


def serving(spec: str, envs=("dev", "staging", "prod")):
    """The serving files of an example: churn is on KServe (A/B), fraud on Seldon Core v1."""
    if spec == "churn":
        return files(spec, envs, ("inferenceservice.yaml", "inferencegraph.yaml"), "kserve")
    return files(spec, envs, ("seldondeployment.yaml",), "seldon")


def drift(spec: str, envs=("dev", "staging", "prod")):
    """The drift target's objects (prod routes through the environment's own Broker)."""
    return (files(spec, envs, ("detector.yaml", "actions.yaml", "triggers.yaml"), "drift")
            | files(spec, [e for e in envs if e != "prod"], ("broker.yaml",), "drift"))


CHURN = "examples/churn/mlops.yaml"
FRAUD = "examples/fraud/mlops.yaml"
PROD_ENV = "environments/prod.yaml"

# (what, file, old text, new text, the output files that must change, whether the
#  PipelineVersion names of the edited spec change)
EDITS = [
    # dev overrides churn's traffic, so the base split reaches staging and prod only
    ("traffic only", CHURN, "traffic: {champion: 90, challenger: 10}", "traffic: {champion: 80, challenger: 20}",
     files("churn", ("staging", "prod"), ("inferencegraph.yaml",), "kserve"), False),
    ("staging traffic override only", CHURN, "overrides:\n",
     "overrides:\n  staging:\n    serving:\n      traffic: {champion: 70, challenger: 30}\n",
     files("churn", ("staging",), ("inferencegraph.yaml",), "kserve"), False),
    ("owner only", CHURN, "owner: growth-ml@acme.example", "owner: churn-squad@acme.example", feast("churn"), False),
    ("description only", CHURN, "description: Predicts which subscribers cancel within 30 days.",
     "description: Predicts which subscribers cancel within the next 30 days.",
     files("churn", names=("pipeline.yaml",)) | feast("churn"), False),
    ("a label", FRAUD, "team: risk", "team: risk-platform",
     files("fraud", names=("pipeline.yaml", "schedule.yaml")) | serving("fraud")
     | feast("fraud", names=("repo/features.py", "featurestore.yaml")) | drift("fraud"), False),
    # a new PipelineVersion: churn's retrain action reads its name from the ConfigMap beside it
    ("the grid", CHURN, "max_depth: [2, 3]", "max_depth: [2, 3, 4]",
     files("churn", names=("pipeline-ir.yaml", "pipeline.yaml", "schedule.yaml", "pipeline-version.yaml")), True),
    ("a comment only", CHURN, "owner: growth-ml@acme.example", "owner: growth-ml@acme.example  # the growth team",
     set(), False),
    ("prod environment only", PROD_ENV, "  artifacts: s3://acme-ml-prod/pipelines",
     "  artifacts: s3://acme-ml-prod/pipelines-v2",
     files("churn", envs=("prod",)) | files("fraud", envs=("prod",))
     | files("churn", ("prod",), ("pipeline-version.yaml",))
     | feast("churn", ("prod",), ("repo/features.py", "jobs/prepare.py"))
     | feast("fraud", ("prod",), ("repo/features.py", "jobs/prepare.py")), True),
]


@pytest.mark.parametrize("what, file, old, new, changed, new_version", EDITS, ids=[e[0] for e in EDITS])
def test_edit_matrix(repo: Path, what, file, old, new, changed, new_version):
    out = repo / "gitops"
    before, stamps, versions = tree(out), mtimes(out), version_names(out)
    edit(repo / file, old, new)
    code, output = compile_(repo)
    assert code == 0, output
    after = tree(out)
    assert set(after) == set(before), "no file may appear or disappear"
    differ = {path for path in after if after[path] != before[path] and not path.startswith(".mlspec/")}
    assert differ == changed, what
    untouched = [p for p in after if p not in changed and not p.startswith(".mlspec/")]
    assert all(mtimes(out)[p] == stamps[p] for p in untouched), "unchanged files are not rewritten"
    if not changed:
        assert after[".mlspec/manifest.json"] == before[".mlspec/manifest.json"], "nothing changed: not even the manifest"
    if what.startswith(("traffic", "staging traffic")):
        # a traffic edit changes the weight lines of the splitter, and nothing else
        for path in changed:
            diff = [line for line in difflib.unified_diff(before[path].decode().splitlines(),
                                                          after[path].decode().splitlines(), lineterm="", n=0)
                    if line[:1] in "+-" and not line.startswith(("+++", "---"))]
            assert diff and all(re.fullmatch(r"[+-] +weight: \d+", line) for line in diff), diff
    spec = "churn" if "churn" in file else "fraud" if "fraud" in file else None
    now = version_names(out)
    for key, name in versions.items():
        expect_new = new_version and (spec is None and key.startswith("prod/") or spec is not None and key.endswith("/" + spec))
        assert (now[key] != name) == expect_new, (what, key)
    if new_version:
        # the schedule follows the new PipelineVersion
        for key in (k for k in now if now[k] != versions[k]):
            schedule = yaml.safe_load((out / f"deploy/{key}/kubeflow/schedule.yaml").read_text())
            env = schedule["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
            assert {"name": "KFP_PIPELINE_VERSION", "value": now[key]} in env


def test_key_reorder_changes_nothing(repo: Path):
    out = repo / "gitops"
    before = tree(out)
    spec = repo / CHURN
    data = yaml.safe_load(spec.read_text())
    reordered = {k: data[k] for k in reversed(list(data))}
    spec.write_text(yaml.safe_dump(reordered, sort_keys=True))
    code, output = compile_(repo)
    assert code == 0, output
    assert tree(out) == before


def test_an_mlspec_version_bump_rewrites_only_the_workflows_install_line(repo: Path, monkeypatch):
    """A new mlspec release: headers carry no version, so the one output line that changes is
    the GitHub workflow's install of mlspec at the version that compiles (generators/github.py,
    while ``github.mlspec`` is unset); the manifest keeps the version that wrote the other bytes."""
    import json
    import sys

    import mlspec

    out = repo / "gitops"
    code, output = compile_(repo, ".")  # the whole project: the repository-scope workflow too
    assert code == 0, output
    before, stamps = tree(out), mtimes(out)
    old = mlspec.__version__
    bound = [m for name, m in sys.modules.items()  # every module that bound mlspec's version
             if (name == "mlspec" or name.startswith("mlspec.")) and getattr(m, "__version__", None) == old]
    assert len(bound) > 3
    for module in bound:
        monkeypatch.setattr(module, "__version__", "99.0.0")
    code, output = compile_(repo, ".")
    assert code == 0, output
    after = tree(out)
    workflows = {p for p in after if p.startswith(".github/workflows/mlspec")}  # checks + the GitOps loop's
    assert ".github/workflows/mlspec.yaml" in workflows and len(workflows) > 1
    assert set(after) == set(before)
    assert {p for p in after if after[p] != before[p]} == workflows | {".mlspec/manifest.json"}
    for workflow in workflows:
        diff = [line for line in difflib.unified_diff(before[workflow].decode().splitlines(),
                                                      after[workflow].decode().splitlines(), lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert [line[0] + line[1:].strip() for line in diff] == [f"-MLSPEC_REQUIREMENT: mlspec[kfp]=={old}",
                                                                 "+MLSPEC_REQUIREMENT: mlspec[kfp]==99.0.0"], workflow
    untouched = [p for p in after if p not in workflows | {".mlspec/manifest.json"}]
    assert all(mtimes(out)[p] == stamps[p] for p in untouched), "unchanged files are not rewritten"
    files_before, files_after = (json.loads(t[".mlspec/manifest.json"])["files"] for t in (before, after))
    assert {p for p in files_after if files_after[p] != files_before[p]} == workflows
    assert all(files_after[w]["mlspec"] == "99.0.0" for w in workflows)


def test_output_does_not_depend_on_the_working_directory(repo: Path, tmp_path: Path):
    out_root = tree(repo / "gitops")
    absolute = tmp_path / "abs"
    code, output = compile_(repo, str(repo / "examples"), out=str(absolute), cwd=tmp_path)
    assert code == 0, output
    code, output = compile_(repo, "churn/mlops.yaml", "fraud/mlops.yaml", out="../from-examples", cwd=repo / "examples")
    assert code == 0, output
    assert tree(absolute) == out_root
    assert tree(repo / "from-examples") == out_root
    # --check passes from any of them
    for cwd, paths, out in ((repo, ("examples",), "gitops"), (repo / "examples", (".",), "../gitops"),
                            (tmp_path, (str(repo / "examples/churn/mlops.yaml"), str(repo / "examples/fraud")),
                             str(repo / "gitops"))):
        code, output = compile_(repo, *paths, out=out, check=True, cwd=cwd)
        assert code == 0, (cwd, output)
    header = (repo / "gitops/deploy/dev/churn/kubeflow/pipeline.yaml").read_text().splitlines()[0]
    assert header == ("# Generated by mlspec from examples/churn/mlops.yaml. DO NOT EDIT: change the spec and run "
                      "`mlspec compile`.")


def test_a_deleted_spec_is_pruned_by_the_next_compile_of_its_folder(repo: Path):
    out = repo / "gitops"
    shutil.rmtree(repo / "examples" / "fraud")
    # compiling another spec alone does not touch fraud's output
    code, output = compile_(repo, CHURN)
    assert code == 0, output
    assert (out / "deploy/dev/fraud/kubeflow/pipeline.yaml").exists()
    # --check of the folder reports it stale
    code, output = compile_(repo, "examples", check=True)
    assert code == 1 and "would be pruned" in output
    code, output = compile_(repo, "examples")
    assert code == 0, output
    assert "pruning fraud@dev/kubeflow: examples/fraud/mlops.yaml was deleted" in output
    assert not (out / "deploy/dev/fraud").exists() and not list(out.glob("deploy/*/fraud"))
    assert (out / "deploy/dev/churn/kubeflow/pipeline.yaml").exists()
    assert all("fraud" not in path for path in tree(out))
    code, output = compile_(repo, "examples", check=True)
    assert code == 0, output


def test_a_renamed_spec_prunes_its_old_output(repo: Path):
    out = repo / "gitops"
    edit(repo / CHURN, "\nname: churn\n", "\nname: churn-v2\n")
    code, output = compile_(repo, CHURN)
    assert code == 0, output
    assert "pruning churn@dev/kubeflow: examples/churn/mlops.yaml no longer produces it" in output
    assert not list(out.glob("deploy/*/churn/*")) and list(out.glob("deploy/*/churn-v2/kubeflow/pipeline.yaml"))


def test_an_invalid_spec_is_never_pruned(repo: Path):
    out = repo / "gitops"
    before = tree(out)
    edit(repo / FRAUD, "feature_service: fraud_scoring", "feature_service: fraud_scorin")
    code, output = compile_(repo, "examples")
    assert code == 1 and "unknown feature service 'fraud_scorin'" in output
    assert tree(out) == before
    (repo / FRAUD).write_text("name: [broken\n")
    code, output = compile_(repo, "examples")
    assert code == 1
    assert tree(out) == before


def test_a_deleted_environment_prunes_its_output(repo: Path):
    out = repo / "gitops"
    (repo / "environments" / "staging.yaml").unlink()
    code, output = compile_(repo)
    assert code == 0, output
    assert not (out / "deploy/staging").exists()
    assert re.search(r"pruning churn@staging/kubeflow: examples/churn/mlops.yaml no longer produces it", output)
