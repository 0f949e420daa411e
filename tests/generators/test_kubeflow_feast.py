"""The Kubeflow pipeline's feature section when Feast serves the features (issue 9, item 3):
one Feast step with the pinned Feast instead of the per-view joins, the joins when the spec
opts out, and a validation error when the feast target is not there to define the store."""

from __future__ import annotations

from mlspec.generators import feast as ft
from mlspec.generators import kubeflow as kf
from mlspec.generators import kubeflow_pipeline
from mlspec.project import resolve_paths

from test_kubeflow import ROOT, variant  # noqa: E402  (same folder)


def _executors(ctx) -> dict[str, str]:
    ir = kubeflow_pipeline.compile_ir(ctx)[0]
    return {n: " ".join(e["container"]["command"]) for n, e in ir["deploymentSpec"]["executors"].items()}


def test_feast_served_features_are_read_by_one_feast_step_with_the_pinned_feast():
    commands = _executors(variant("churn", lambda d: None))
    feast = [c for c in commands.values() if "def feast_training_features(" in c]
    assert len(feast) == 1 and ft.FEAST_PIN in feast[0]
    assert not any("def join_view_fields(" in c or "def join_view_aggregations(" in c for c in commands.values())
    ir = kubeflow_pipeline.compile_ir(variant("churn", lambda d: None))[0]
    tasks = ir["root"]["dag"]["tasks"]
    (name,) = [n for n in tasks if n.startswith("feast-training-features")]
    assert tasks[name]["inputs"]["artifacts"]["entity"]["taskOutputArtifact"]["producerTask"] == "build-entity-frame"
    service = tasks[name]["inputs"]["parameters"]["feature_service"]["runtimeValue"]["constant"]
    assert service == "churn_model"


def test_the_feast_step_installs_the_file_system_of_its_remote_data_root():
    """On a cluster the Feast step reads the data root and writes the prepared tables through
    fsspec: an s3:// root needs s3fs in the step's image, a gs:// one gcsfs (pinned as the
    other steps'); the pins resolve together with Feast (tests/functional/feast)."""
    commands = _executors(variant("churn", lambda d: None))  # dev: s3://acme-ml-dev/...
    (feast,) = [c for c in commands.values() if "def feast_training_features(" in c]
    assert f"'{ft.FEAST_PIN}' '{kf.PINS['s3fs']}'" in feast and "gcsfs" not in feast


def test_opting_out_of_the_feature_store_keeps_the_pipelines_own_joins():
    commands = _executors(variant("churn", lambda d: d["features"].update(feature_store=False)))
    assert not any("def feast_training_features(" in c for c in commands.values())
    assert any("def join_view_fields(" in c for c in commands.values())


def test_the_feast_step_needs_the_feast_target(tmp_path):
    import shutil

    import yaml

    shutil.copytree(ROOT / "examples" / "churn", tmp_path / "churn", ignore=shutil.ignore_patterns("*.py"))
    (tmp_path / "environments").mkdir()
    keep = {"name", "namespace", "registry", "argocd", "storage", "policies", "kubeflow"}
    for env_file in (ROOT / "environments").glob("*.yaml"):
        env = yaml.safe_load(env_file.read_text(encoding="utf-8"))
        (tmp_path / "environments" / env_file.name).write_text(yaml.safe_dump({k: v for k, v in env.items() if k in keep}))
    (tmp_path / ".git").mkdir()
    result = resolve_paths([tmp_path / "churn" / "mlops.yaml"], ["dev"], tmp_path / "environments",
                           targets=[kf.target])
    found = [e for e in result.errors if e.code == "kubeflow" and e.path == ("features", "feature_store")]
    assert found and "feast target" in found[0].message, result.errors
