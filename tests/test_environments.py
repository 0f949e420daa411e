"""Environments: finding them, and merging their overrides into a spec.

Precedence, lowest to highest: the spec < the environment file's ``overrides`` < the
spec's ``overrides.<env>``.  Mappings merge deeply, lists and scalars are replaced
whole, ``null`` deletes, and merged values keep the position of the file they came
from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec import environments as envs
from mlspec.errors import SpecError
from mlspec.loader import load_text
from mlspec.project import resolve

CORPUS = Path(__file__).resolve().parent / "corpus"
DATA = (CORPUS / "data").as_posix()

SPEC = f"""\
name: churn
owner: ml@acme.example
labels: {{team: growth, tier: gold}}
data:
  sources:
    - {{name: customers, type: file, path: {DATA}/customers.csv, timestamp: event_timestamp}}
features:
  entities:
    - {{name: customer, join_key: customer_id}}
  views:
    - name: profile
      source: customers
      entities: [customer]
      fields:
        - {{name: tenure_months, dtype: int64}}
        - {{name: monthly_charges, dtype: float64}}
  services:
    - {{name: svc, features: [profile]}}
training:
  label: {{source: customers, column: support_calls, snapshot: true}}
  feature_service: svc
  estimator: sklearn.linear_model.LogisticRegression
  metric: {{name: accuracy, goal: maximize, threshold: 0.5}}
  parallelism: 2
serving:
  runtime: kserve
  model_format: sklearn
  champion: {{uri: gs://m/v1}}
  challenger: {{uri: gs://m/v2}}
  traffic: {{champion: 90, challenger: 10}}
  replicas: {{min: 1, max: 3}}
  autoscaling: {{target: 5}}
  resources:
    requests: {{cpu: 100m, memory: 1Gi}}
    limits: {{cpu: "1", memory: 2Gi}}
"""

ENV = """\
name: {name}
namespace: ml-{name}
registry: ghcr.io/acme
argocd: {{repo_url: https://github.com/acme/gitops.git}}
storage: {{artifacts: s3://acme/{name}}}
"""


def write(tmp_path: Path, spec_extra: str = "", **env_overrides: str) -> tuple[Path, Path]:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(SPEC + spec_extra, encoding="utf-8")
    env_dir = tmp_path / "environments"
    env_dir.mkdir(exist_ok=True)
    for name, overrides in env_overrides.items():
        (env_dir / f"{name}.yaml").write_text(ENV.format(name=name) + overrides, encoding="utf-8")
    return spec, env_dir


def resolved(spec: Path, env_dir: Path, env: str):
    result = resolve(spec, [env], env_dir)
    assert result.errors == [], "\n".join(map(str, result.errors))
    [one] = result.resolved
    return one


def test_spec_alone_when_neither_layer_overrides(tmp_path: Path) -> None:
    spec, env_dir = write(tmp_path, dev="")
    r = resolved(spec, env_dir, "dev")
    assert r.env_name == "dev"
    assert r.spec.serving.replicas.max == 3
    assert r.env_path.endswith("environments/dev.yaml")


def test_environment_overrides_beat_the_spec(tmp_path: Path) -> None:
    spec, env_dir = write(tmp_path, dev="overrides:\n  serving:\n    replicas: {max: 8}\n")
    r = resolved(spec, env_dir, "dev")
    assert (r.spec.serving.replicas.min, r.spec.serving.replicas.max) == (1, 8)  # deep merge keeps min


def test_spec_overrides_beat_the_environment(tmp_path: Path) -> None:
    spec, env_dir = write(
        tmp_path,
        "overrides:\n  dev:\n    serving:\n      replicas: {max: 5}\n",
        dev="overrides:\n  serving:\n    replicas: {min: 2, max: 8}\n",
    )
    r = resolved(spec, env_dir, "dev")
    # min from the environment, max from the spec's own overrides
    assert (r.spec.serving.replicas.min, r.spec.serving.replicas.max) == (2, 5)


def test_overrides_apply_only_to_their_environment(tmp_path: Path) -> None:
    spec, env_dir = write(
        tmp_path, "overrides:\n  prod:\n    training: {parallelism: 8}\n", dev="", prod="",
    )
    result = resolve(spec, None, env_dir)
    assert result.errors == []
    by_env = {r.env_name: r.spec for r in result.resolved}
    assert by_env["dev"].training.parallelism == 2
    assert by_env["prod"].training.parallelism == 8
    assert result.checked == 3  # the spec as written, dev, prod


def test_lists_are_replaced_not_appended(tmp_path: Path) -> None:
    spec, env_dir = write(
        tmp_path,
        "overrides:\n  dev:\n    features:\n      services:\n        - {name: svc, features: ['profile:tenure_months']}\n",
        dev="",
    )
    r = resolved(spec, env_dir, "dev")
    assert r.spec.features.services[0].features == ["profile:tenure_months"]
    assert len(r.spec.features.views) == 1  # untouched


def test_null_deletes_a_key(tmp_path: Path) -> None:
    spec, env_dir = write(
        tmp_path,
        "overrides:\n  dev:\n    serving:\n      autoscaling: null\n      challenger: ~\n"
        "      traffic: {champion: 100, challenger: 0}\n    labels: {tier: null}\n",
        dev="",
    )
    r = resolved(spec, env_dir, "dev")
    assert r.spec.serving.autoscaling is None and r.spec.serving.challenger is None
    assert r.spec.labels == {"team": "growth"}
    assert "autoscaling" not in r.doc.data["serving"]


def test_null_for_a_key_that_is_not_there_is_harmless(tmp_path: Path) -> None:
    spec, env_dir = write(tmp_path, "overrides:\n  dev:\n    drift: null\n", dev="")
    assert resolved(spec, env_dir, "dev").spec.drift is None


def test_a_scalar_replaces_a_mapping_and_is_then_checked(tmp_path: Path) -> None:
    spec, env_dir = write(tmp_path, "overrides:\n  dev:\n    serving:\n      replicas: 3\n", dev="")
    errors = resolve(spec, ["dev"], env_dir).errors
    assert [(e.line, e.col, e.message) for e in errors] == [
        (SPEC.count("\n") + 4, 17, "serving.replicas: expected a mapping, got number 3")
    ]


def test_merged_positions_point_into_the_overlay(tmp_path: Path) -> None:
    spec, env_dir = write(
        tmp_path,
        "overrides:\n  dev:\n    serving:\n      traffic: {champion: 40, challenger: 60}\n",
        staging="overrides:\n  serving:\n    replicas: {min: 0, max: 2}\n",
        dev="policies: {max_challenger_traffic: 50}\n",
    )
    n = SPEC.count("\n")
    dev = resolve(spec, ["dev"], env_dir).errors
    assert [(Path(e.file).name, e.line, e.col) for e in dev] == [("mlops.yaml", n + 4, 43)]
    assert "challenger traffic 60% exceeds 50%" in dev[0].message
    ok = resolved(spec, env_dir, "staging")
    pos = ok.doc.positions
    assert Path(pos.value(("serving", "replicas", "min")).file).name == "staging.yaml"
    assert (pos.value(("serving", "replicas", "min")).line, pos.value(("serving", "replicas", "min")).col) == (8, 21)
    assert (pos.key(("serving", "replicas")).line, pos.key(("serving", "replicas")).col) == (8, 5)
    # values that no overlay touched keep their place in the spec
    assert Path(pos.value(("serving", "runtime")).file).name == "mlops.yaml"
    assert pos.value(("serving", "runtime")).line == 26


def test_environment_file_errors_are_located(tmp_path: Path) -> None:
    env_dir = tmp_path / "environments"
    env_dir.mkdir()
    (env_dir / "dev.yaml").write_text(
        "name: dev\nnamespace: ml-dev\nregistry: r\nkubeflow: {namespace: Kubeflow}\n"
        "argocd: {repo_url: https://g/x}\nstorag: {artifacts: s3://b}\n",
        encoding="utf-8",
    )
    spec = tmp_path / "mlops.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    errors = resolve(spec, ["dev"], env_dir).errors
    got = sorted((Path(e.file).name, e.line, e.col, e.message, e.hint) for e in errors)
    assert got == [
        ("dev.yaml", 1, 1, "missing required key 'storage'", None),
        ("dev.yaml", 4, 23, "kubeflow.namespace: must be a DNS-1123 label: lowercase letters, digits and '-', "
         "starting and ending with a letter or digit, at most 63 characters", None),
        ("dev.yaml", 6, 1, "unknown key 'storag'", "did you mean 'storage'?"),
    ]


def test_environment_file_must_name_itself(tmp_path: Path) -> None:
    spec, env_dir = write(tmp_path, dev="")
    (env_dir / "dev.yaml").write_text(ENV.format(name="prod"), encoding="utf-8")
    [err] = resolve(spec, ["dev"], env_dir).errors
    assert (Path(err.file).name, err.line, err.col) == ("dev.yaml", 1, 7)
    assert err.message == "environment file dev.yaml names itself 'prod'"


def test_overrides_of_unknown_environments(tmp_path: Path) -> None:
    spec, env_dir = write(tmp_path, "overrides:\n  stagin:\n    training: {parallelism: 3}\n", dev="", staging="")
    [err] = resolve(spec, [], env_dir).errors
    assert (err.line, err.col) == (SPEC.count("\n") + 2, 3)
    assert err.message == "overrides name unknown environment 'stagin'" and err.hint == "did you mean 'staging'?"


def test_no_environments_folder(tmp_path: Path) -> None:
    spec = tmp_path / "project" / "mlops.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC, encoding="utf-8")
    (tmp_path / "project" / ".git").mkdir()  # the search stops at the repository root
    assert envs.find_environments_dir(spec) is None
    result = resolve(spec, None, None)
    assert result.errors == [] and [r.env_name for r in result.resolved] == [None]


def test_find_environments_dir_walks_up_to_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "environments").mkdir()
    (repo / "environments" / "dev.yaml").write_text(ENV.format(name="dev"))
    (repo / "environments" / ".hidden.yaml").write_text("x: 1\n")
    spec = repo / "ml" / "churn" / "mlops.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(SPEC)
    found = envs.find_environments_dir(spec, stop=tmp_path)
    assert found == repo / "environments"
    assert envs.list_environments(found) == ["dev"]
    assert envs.list_environments(None) == [] and envs.list_environments(tmp_path / "nope") == []


def test_environment_path_hints() -> None:
    with pytest.raises(SpecError) as info:
        envs.environment_path(Path("/e"), "prdo", ["dev", "prod"])
    assert info.value.hint == "did you mean 'prod'?" and info.value.file == "/e/prdo.yaml"
    with pytest.raises(SpecError) as info:
        envs.environment_path(None, "dev", [])
    assert info.value.file == "environments/dev.yaml" and "no environments/ folder found" in info.value.message


# --- merge() directly ------------------------------------------------------------------------------


def test_merge_is_deep_replaces_lists_and_deletes_with_null() -> None:
    base = load_text("a: {x: 1, y: [1, 2], z: {k: v}}\nb: 2\nc: keep\n", "base.yaml")
    over = load_text("a: {y: [3], z: null, w: new}\nb: {now: mapping}\nc: null\n", "over.yaml")
    merged = envs.merge(base, over.data, over.positions)
    assert merged.data == {"a": {"x": 1, "y": [3], "w": "new"}, "b": {"now": "mapping"}}
    assert base.data["a"]["y"] == [1, 2] and "c" in base.data  # the base is not modified
    assert merged.positions.value(("a", "x")).file == "base.yaml"
    assert merged.positions.value(("a", "y", 0)).file == "over.yaml"
    assert merged.positions.value(("a", "y", 1)).file == "over.yaml"  # [1, 2]'s second item is gone
    assert merged.positions.value(("b", "now")) == over.positions.value(("b", "now"))
    assert ("a", "z", "k") not in merged.positions.values
    assert ("c",) not in merged.positions.values and ("c",) not in merged.positions.keys


def test_merge_at_a_path() -> None:
    base = load_text("a: {x: 1}\n", "base.yaml")
    over = load_text("y: 2\n", "over.yaml")
    merged = envs.merge(base, over.data, over.positions, at=("a",))
    assert merged.data == {"a": {"x": 1, "y": 2}}
    assert merged.positions.value(("a", "y")).file == "over.yaml"


def test_merge_is_layered_in_order() -> None:
    spec = load_text("s: {a: spec, b: spec, c: spec}\n", "spec.yaml")
    env = load_text("s: {b: env, c: env}\n", "env.yaml")
    own = load_text("s: {c: own}\n", "own.yaml")
    merged = envs.merge(envs.merge(spec, env.data, env.positions), own.data, own.positions)
    assert merged.data == {"s": {"a": "spec", "b": "env", "c": "own"}}
    assert [merged.positions.value(("s", k)).file for k in "abc"] == ["spec.yaml", "env.yaml", "own.yaml"]


def test_environments_are_found_from_a_sub_folder_of_the_repository(tmp_path: Path, monkeypatch) -> None:
    """``cd ml/churn && mlspec validate`` still finds the repository's environments/."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "environments").mkdir()
    (repo / "environments" / "dev.yaml").write_text(ENV.format(name="dev"))
    spec = repo / "ml" / "churn" / "mlops.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(SPEC)
    monkeypatch.chdir(spec.parent)
    assert envs.find_environments_dir(Path("mlops.yaml")) == repo / "environments"
    result = resolve(Path("mlops.yaml"), None, None)
    assert result.errors == [] and [r.env_name for r in result.resolved] == ["dev"]
    # without a repository, the search stops at the working directory
    (repo / ".git").rmdir()
    assert envs.find_environments_dir(Path("mlops.yaml")) is None


def test_a_named_environment_without_any_environments_folder_is_a_located_error(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    result = resolve(spec, ["dev"], None)
    [err] = [e for e in result.errors if "unknown environment" in e.message]
    assert err.message == "unknown environment 'dev' (no environments/ folder found)"
