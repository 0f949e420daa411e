"""The pieces of `mlspec diff` (mlspec.semdiff, mlspec.gitbase): masking, field paths,
pairing, notes, the markdown budget, and git blob ids."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mlspec import gitbase, semdiff
from mlspec.errors import SpecError
from mlspec.semdiff import FieldChange, OutFile, Side

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("key", ["password", "db_password", "DB_PASSWORD", "apiKey", "X-Api-Key", "API_TOKEN",
                                 "token", "credentials", "clientSecret", "connection_string", "webhook", "key",
                                 "privateKey", "ACCESS_KEY_ID_SECRET", "authorization"])
def test_secret_like_keys(key):
    assert semdiff.secret_key(key)


@pytest.mark.parametrize("key", ["secretKeyName", "secretRef", "tokenPath", "KF_PIPELINES_SA_TOKEN_PATH",
                                 "secretName", "join_key", "outputParameterKey", "configMapKey", "name", "uri",
                                 "storageUri", "passwordFile", "monkey", "tokenizer", 3, None])
def test_keys_that_only_name_a_secret_are_not(key):
    assert not semdiff.secret_key(key)


def test_mask_text_masks_url_userinfo_only():
    assert semdiff.mask_text("pull https://deploy:hunter2@models.example/m and s3://b/k") == \
        "pull https://***@models.example/m and s3://b/k"
    assert semdiff.mask_text("redis://:pw@cache:6379/0, ghp@github.com") == "redis://***@cache:6379/0, ghp@github.com"
    assert semdiff.mask_text("mail growth-ml@acme.example") == "mail growth-ml@acme.example"


@pytest.mark.parametrize("line, masked", [
    ("password: hunter2\n", "password: ***\n"),
    ('  - "api_key": "abc",\n', '  - "api_key": ***\n'),
    ('    token = "abc"  \n', "    token = ***  \n"),
    ("password: ${FEAST_PASSWORD}\n", "password: ${FEAST_PASSWORD}\n"),  # a placeholder is not a secret
    ("password:\n", "password:\n"),
    ("credentials: {secret_ref: x}\n", "credentials: {secret_ref: x}\n"),  # a structure: its keys decide
    ("secretKeyName: redis\n", "secretKeyName: redis\n"),
    ("url = 'https://u:p@h/'\n", "url = 'https://***@h/'\n"),
])
def test_mask_line(line, masked):
    assert semdiff.mask_line(line) == masked


def test_a_secrets_data_and_secret_like_fields_are_masked_wherever_they_are():
    old = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"a": "x", "nested": {"b": "y"}}, "stringData": {"c": "z"}, "type": "Opaque"}
    new = {**old, "data": {"a": "x2", "nested": {"b": "y2"}, "new": "n"}, "stringData": {}, "type": "kubernetes.io/tls"}
    changes = semdiff.diff_values(old, new, object_doc=new)
    assert changes == [
        FieldChange("data.a", "changed", "***", "***"),
        FieldChange("data.nested.b", "changed", "***", "***"),
        FieldChange("data.new", "added", None, "***"),
        FieldChange("stringData.c", "removed", "***", None),
        FieldChange("type", "changed", "Opaque", "kubernetes.io/tls")]
    # a ConfigMap's data is not secret, but a password in it is; an env var by its name
    cm_old = {"kind": "ConfigMap", "data": {"password": "a", "url": "https://u:p@h/x", "plain": "a"},
              "env": [{"name": "DB_TOKEN", "value": "t1"}, {"name": "LEVEL", "value": "1"}],
              "auth": {"password": "a", "enabled": True, "credentials": ["c1"]}}
    cm_new = {"kind": "ConfigMap", "data": {"password": "b", "url": "https://u:q@h/y", "plain": "b"},
              "env": [{"name": "DB_TOKEN", "value": "t2"}, {"name": "LEVEL", "value": "2"}],
              "auth": {"password": "b", "enabled": False, "credentials": ["c2", "c3"]}}
    assert semdiff.diff_values(cm_old, cm_new, object_doc=cm_new) == [
        FieldChange("auth.credentials[0]", "changed", "***", "***"),
        FieldChange("auth.credentials[1]", "added", None, "***"),
        FieldChange("auth.enabled", "changed", True, False),
        FieldChange("auth.password", "changed", "***", "***"),
        FieldChange("data.password", "changed", "***", "***"),
        FieldChange("data.plain", "changed", "a", "b"),
        FieldChange("data.url", "changed", "https://***@h/x", "https://***@h/y"),
        FieldChange("env[name=DB_TOKEN].value", "changed", "***", "***"),
        FieldChange("env[name=LEVEL].value", "changed", "1", "2")]


# --------------------------------------------------------------------------- field paths


def test_lists_pair_by_name_and_by_a_sequence_match():
    old = {"steps": [{"name": "champion", "weight": 90}, {"name": "challenger", "weight": 10}],
           "args": ["a", "b", "c"], "metadata": {"labels": {"app.kubernetes.io/name": "x"}}}
    new = {"steps": [{"name": "challenger", "weight": 20}, {"name": "champion", "weight": 80}],
           "args": ["a", "x", "b", "c", "d"], "metadata": {"labels": {"app.kubernetes.io/name": "y"}}}
    assert semdiff.diff_values(old, new) == [
        FieldChange("args[1]", "added", None, "x"),
        FieldChange("args[4]", "added", None, "d"),
        FieldChange('metadata.labels["app.kubernetes.io/name"]', "changed", "x", "y"),
        FieldChange("steps[name=champion].weight", "changed", 90, 80),
        FieldChange("steps[name=challenger].weight", "changed", 10, 20),
        FieldChange("steps[*].name", "changed", ["champion", "challenger"], ["challenger", "champion"])]
    # tuples (the compiler's content) and lists (parsed YAML) are the same thing
    assert semdiff.diff_values({"a": (1, 2)}, {"a": [1, 2]}) == []


def test_json_in_a_string_is_compared_as_data():
    old = {"constant": json.dumps({"candidates": 8, "grid": [1, 2]})}
    new = {"constant": json.dumps({"candidates": 12, "grid": [1, 2, 3]})}
    assert semdiff.diff_values(old, new) == [
        FieldChange("constant(json).candidates", "changed", 8, 12),
        FieldChange("constant(json).grid[2]", "added", None, 3)]
    assert semdiff.diff_values({"s": "[not json"}, {"s": "[nor this"}) == [
        FieldChange("s", "changed", "[not json", "[nor this")]


def test_long_strings_are_shown_around_their_difference():
    old, new = "x" * 300 + "-old-" + "y" * 300, "x" * 300 + "-new-" + "y" * 300
    text = semdiff._field_text(FieldChange("p", "changed", old, new))
    context = "x" * 23 + "-{}-" + "y" * 23
    assert text == f"p: …{context.format('old')}… → …{context.format('new')}…"


# --------------------------------------------------------------------------- pairing


def _yaml(*docs) -> bytes:
    from mlspec.render import dump_yaml_documents

    return dump_yaml_documents(list(docs)).encode()


def _version(name: str, ir: str) -> dict:
    return {"apiVersion": "pipelines.kubeflow.org/v2beta1", "kind": "PipelineVersion",
            "metadata": {"name": name, "namespace": "kubeflow"},
            "spec": {"pipelineName": "churn", "displayName": name, "pipelineSpec": {"ir": ir}}}


def test_a_renamed_pipeline_version_pairs_with_its_predecessor_and_objects_pair_across_files():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"port": 1}}
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["a"]}
    base = Side(files={
        "deploy/dev/churn/kubeflow/pipeline.yaml": OutFile(_yaml(_version("churn-0123456789", "old")), None, "dev",
                                                           "churn"),
        "deploy/dev/churn/x/a.yaml": OutFile(_yaml(service), None, "dev", "churn"),
        "deploy/dev/churn/x/kustomization.yaml": OutFile(_yaml(kustomization), None, "dev", "churn"),
        "deploy/dev/churn/x/ir.yaml": OutFile(b"pipelineInfo: {name: a}\n", None, "dev", "churn"),
        "deploy/dev/churn/x/blob.bin": OutFile(b"\xff\x00", None, "dev", "churn"),
    })
    head = Side(files={
        "deploy/dev/churn/kubeflow/pipeline.yaml": OutFile(b"", [_version("churn-abcdefabcd", "new")], "dev", "churn"),
        "deploy/dev/churn/x/b.yaml": OutFile(_yaml(service), None, "dev", "churn"),
        "deploy/dev/churn/x/kustomization.yaml": OutFile(_yaml({**kustomization, "resources": ["b"]}), None, "dev",
                                                         "churn"),
        "deploy/dev/churn/x/ir.yaml": OutFile(b"pipelineInfo: {name: b}\n", None, "dev", "churn"),
        "deploy/dev/churn/x/blob.bin": OutFile(b"\xff\x01", None, "dev", "churn"),
    })
    resources, files = semdiff.compare(base, head)
    summary = [(r.change, r.kind, r.name, r.old_name, r.file, r.old_file, [(f.path, f.old, f.new) for f in r.fields])
               for r in resources]
    assert summary == [
        ("changed", "Kustomization", None, None, "deploy/dev/churn/x/kustomization.yaml", None,
         [("resources[0]", "a", "b")]),
        ("changed", "PipelineVersion", "churn-abcdefabcd", "churn-0123456789", "deploy/dev/churn/kubeflow/pipeline.yaml",
         None, [("metadata.name", "churn-0123456789", "churn-abcdefabcd"),
                ("spec.displayName", "churn-0123456789", "churn-abcdefabcd"),
                ("spec.pipelineSpec.ir", "old", "new")]),
        ("changed", "Service", "s", None, "deploy/dev/churn/x/b.yaml", "deploy/dev/churn/x/a.yaml", []),
    ]
    by_path = {f.path: f for f in files}
    assert by_path["deploy/dev/churn/x/ir.yaml"].kubernetes is False
    assert by_path["deploy/dev/churn/x/ir.yaml"].diff.endswith("-pipelineInfo: {name: a}\n+pipelineInfo: {name: b}\n")
    assert by_path["deploy/dev/churn/x/blob.bin"].diff == \
        "Binary files a/deploy/dev/churn/x/blob.bin and b/deploy/dev/churn/x/blob.bin differ\n"
    assert (by_path["deploy/dev/churn/x/a.yaml"].change, by_path["deploy/dev/churn/x/b.yaml"].change) == \
        ("removed", "added")


def test_owner_of_an_output_path():
    assert semdiff._owner("deploy/dev/churn/kserve/x.yaml", {"env": "dev", "spec": "examples/churn/mlops.yaml"}) == \
        ("dev", "churn")
    assert semdiff._owner("deploy/dev/index.yaml", {"env": "dev", "spec": None}) == ("dev", None)
    assert semdiff._owner(".github/workflows/mlspec.yaml", {"env": None, "spec": None}) == (None, None)
    assert semdiff._owner("deploy/prod/fraud/seldon/x.yaml", None) == ("prod", "fraud")
    info = {"env": "dev", "spec": "specs/a/mlops.yaml"}
    assert semdiff._owner("argocd/dev/a/application.yaml", info, {"specs/a/mlops.yaml": "alpha"}) == ("dev", "alpha")
    assert semdiff._owner("argocd/dev/a/application.yaml", info) == ("dev", "a")


# ------------------------------------------------------------------------------ notes


@pytest.fixture
def variants(tmp_path: Path):
    """``variants(edits...)``: the churn example resolved in prod, as is and after ``(old, new)`` edits."""
    from mlspec.project import resolve

    shutil.copytree(ROOT / "examples/churn", tmp_path / "churn", ignore=shutil.ignore_patterns("*.py"))
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    (tmp_path / ".git").mkdir()
    spec = tmp_path / "churn/mlops.yaml"
    original = spec.read_text()

    def make(*edits):
        text = original
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new, 1)
        spec.write_text(text)
        result = resolve(spec, ["prod"])
        assert not result.errors, result.errors
        return result.resolved[0]

    return make


def test_spec_notes_name_each_ml_change(variants):
    before = variants()
    after = variants(
        ("  challenger: {uri: gs://acme-models/churn/v4/model}\n  traffic: {champion: 90, challenger: 10}\n", ""),
        ("metric: {name: roc_auc, goal: maximize, threshold: 0.7}", "metric: {name: roc_auc, goal: maximize, threshold: 0.8}"),
        ("p_value: 0.01", "p_value: 0.05"),
        ("action: retrain", "action: alert\n  alert_webhook: {secret: churn-alerts, key: url}"),
        ("replicas: {min: 3, max: 10}", "replicas: {min: 2, max: 6}"),
        ("search:\n    strategy: grid\n    parameters:\n      n_estimators: [50, 100]\n",
         "search:\n    strategy: random\n    trials: 20\n    parameters:\n      n_estimators: [50, 100]\n"),
        ('schedule: "0 3 * * 1"   # Mondays 03:00 UTC', 'schedule: "0 4 * * 1"\n  timezone: Europe/Berlin'),
    )
    assert semdiff.spec_notes(before, after) == [
        ("traffic", "traffic champion 90% → 100%, challenger 10% → 0%", {"champion": 90, "challenger": 10},
         {"champion": 100, "challenger": 0}),
        ("model", "challenger model removed (was gs://acme-models/churn/v4/model)",
         {"uri": "gs://acme-models/churn/v4/model", "version": None}, None),
        ("quality-gate", "quality gate roc_auc ≥ 0.7 → roc_auc ≥ 0.8",
         {"name": "roc_auc", "goal": "maximize", "threshold": 0.7}, {"name": "roc_auc", "goal": "maximize", "threshold": 0.8}),
        ("drift", "drift threshold ks p < 0.01 → ks p < 0.05", "ks p < 0.01", "ks p < 0.05"),
        ("drift", "drift action retrain → alert", "retrain", "alert"),
        ("replicas", "replicas 3-10 → 2-6", {"min": 3, "max": 10}, {"min": 2, "max": 6}),
        ("search", "search grid (8 candidates) → random (20 trials)", {"strategy": "grid", "size": 8},
         {"strategy": "random", "size": 20}),
        ("schedule", "training schedule 0 3 * * 1 (Etc/UTC) → 0 4 * * 1 (Europe/Berlin)", "0 3 * * 1", "0 4 * * 1"),
    ]
    shadow = variants(("rollout: ab ", "rollout: shadow\n  mirror: 30\n  #"),
                      ("traffic: {champion: 90, challenger: 10}", "traffic: {champion: 100, challenger: 0}"))
    assert semdiff.spec_notes(before, shadow) == [
        ("traffic", "rollout ab → shadow", "ab", "shadow"),
        ("traffic", "traffic champion 90% / challenger 10% → shadow, 30% mirrored to the challenger",
         {"champion": 90, "challenger": 10}, {"mirror": 30})]
    assert semdiff.spec_notes(shadow, variants(("rollout: ab ", "rollout: shadow\n  mirror: 50\n  #"), (
        "traffic: {champion: 90, challenger: 10}", "traffic: {champion: 100, challenger: 0}"))) == [
        ("traffic", "shadow mirror 30% → 50%", {"mirror": 30}, {"mirror": 50})]
    assert semdiff.spec_notes(before, variants()) == []


def test_notes_group_the_same_change_across_environments_and_rank_it():
    class Spec:  # what ml_notes reads of a Resolved
        training = type("Training", (), {"feature_service": "s"})

        def served_features(self, service):
            return [("v", "f")]

    class R:
        def __init__(self, name, traffic, uri="gs://m/1"):
            serving = {"traffic": {"champion": 100 - traffic, "challenger": traffic}, "rollout": "ab",
                       "champion": {"uri": uri, "version": None}, "challenger": {"uri": "gs://m/2", "version": None}}
            self.document = {"spec": {"name": name, "serving": serving, "training": {}}}
            self.spec = Spec()

    old = Side(resolved={("a", "dev"): R("a", 10), ("a", "prod"): R("a", 10), ("b", "dev"): R("b", 0)},
               envs={"dev", "prod", "gone"})
    new = Side(resolved={("a", "dev"): R("a", 20, "gs://m/3"), ("a", "prod"): R("a", 20), ("c", "dev"): R("c", 0),
                         ("c", "qa"): R("c", 0)}, envs={"dev", "prod", "qa"})
    notes = semdiff.ml_notes(old, new)
    assert [(n.kind, n.spec, n.envs, n.message) for n in notes] == [
        ("environment", None, ["gone"], "environment gone removed"),
        ("environment", None, ["qa"], "environment qa added: c"),
        ("spec", "b", ["dev"], "spec removed"),
        ("spec", "c", ["dev"], "new spec"),
        ("traffic", "a", ["dev", "prod"], "traffic champion 90% → 80%, challenger 10% → 20%"),
        ("model", "a", ["dev"], "champion model gs://m/1 → gs://m/3"),
    ]


# --------------------------------------------------------------------------- formats


def test_markdown_stays_under_the_comment_limit_and_keeps_the_notes():
    big = "\n".join(f"+line {i} " + "x" * 80 for i in range(3000)) + "\n"
    report = semdiff.Report({"kind": "git", "ref": "main", "commit": "0" * 40}, {"kind": "worktree"})
    report.notes = [semdiff.Note("traffic", "churn", ["prod"], "traffic champion 90% → 80%")]
    report.files = [semdiff.FileChange(f"deploy/prod/churn/x/f{i}.py", "modified", "prod", "churn", False, 3000, 0, big)
                    for i in range(5)]
    report.resources = [semdiff.ResourceChange("changed", "prod", "churn", "v1", "ConfigMap", "ns", f"cm{i}",
                                               fields=[FieldChange(f"data.k{j}", "changed", "a" * 50, "b" * 50)
                                                       for j in range(40)]) for i in range(200)]
    text = semdiff.render_markdown(report)
    assert len(text) <= semdiff.MARKDOWN_LIMIT
    assert text.startswith(semdiff.MARKER + "\n## mlspec diff: `main (0000000000)` → work tree\n")
    assert "- **churn** (prod): traffic champion 90% → 80%\n" in text
    full = semdiff._markdown(report, 0)
    assert len(full) > semdiff.MARKDOWN_LIMIT and "+line 2999" in full


def test_markdown_escapes_what_it_quotes():
    assert semdiff._code("a`b") == "``a`b``"
    assert semdiff._code("`x`") == "`` `x` ``"
    assert semdiff._md_escape("0 3 * * 1 <b>|x_y") == "0 3 \\* \\* 1 &lt;b&gt;\\|x\\_y"


def test_json_schema_keys_are_stable():
    report = semdiff.Report({"kind": "output", "path": "."}, {"kind": "worktree"})
    assert sorted(semdiff.as_json(report)) == ["base", "changed", "files", "head", "notes", "resources", "schema",
                                               "summary", "warnings"]
    assert semdiff.as_json(report)["schema"] == semdiff.SCHEMA == "mlspec.diff/v1"


# ------------------------------------------------------------------------------- git


def test_data_paths():
    assert semdiff.data_paths("data:\n  sources:\n    - name: a\n      path: data/a.parquet  # x\n"
                              "    - {name: b, type: file, path: 'data/b c.csv'}\n"
                              "reference: {path: \"ref.csv\", sample_size: 3}\n") == \
        ["data/a.parquet", "data/b c.csv", "ref.csv"]
    assert semdiff.data_paths("path_prefix: x\nfeatureRepoPath: y\n") == []
    assert semdiff.data_paths("path: >-\n  data/x.csv\n") is None
    assert semdiff.data_paths("path: *anchor\n") is None


def test_blob_ids_are_gits(tmp_path: Path):
    for data in (b"", b"hello\n", bytes(range(256)) * 10):
        (tmp_path / "f").write_bytes(data)
        expected = subprocess.run(["git", "hash-object", str(tmp_path / "f")], capture_output=True, text=True,
                                  check=True).stdout.strip()
        assert gitbase.blob_id(data) == expected == gitbase.worktree_blob(tmp_path / "f")
    assert gitbase.worktree_blob(tmp_path / "missing") is None


def test_a_tree_lists_and_reads_a_commit(tmp_path: Path):
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"}

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, env=env)

    git("init", "-q")
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x.txt").write_bytes(b"one\n")
    (tmp_path / "a/bin").write_bytes(b"\x00\xff\n" * 3)
    (tmp_path / "a/link").symlink_to("x.txt")
    git("add", "-A")
    git("commit", "-qm", "one")
    (tmp_path / "a/x.txt").write_bytes(b"two\n")  # the work tree moves on; the commit does not
    tree = gitbase.open_tree(tmp_path, "HEAD")
    assert sorted(tree.files) == ["a/bin", "a/link", "a/x.txt"] and tree.is_dir("a") and tree.listdir("a") == [
        "bin", "link", "x.txt"]
    assert tree.read(["a/x.txt", "a/bin", "nope"]) == {"a/x.txt": b"one\n", "a/bin": b"\x00\xff\n" * 3}
    assert tree.blob("a/x.txt") == gitbase.blob_id(b"one\n") != gitbase.worktree_blob(tmp_path / "a/x.txt")
    tree.materialize(["a/x.txt", "a/link"], tmp_path / "out")
    assert (tmp_path / "out/a/link").read_bytes() == b"one\n" and not (tmp_path / "out/a/link").is_symlink()
    with pytest.raises(SpecError, match="unknown git revision 'nope'") as info:
        gitbase.open_tree(tmp_path, "nope")
    assert info.value.code == "bad-ref"
    with pytest.raises(SpecError, match="is not a git revision"):
        gitbase.open_tree(tmp_path, "--output=x")
