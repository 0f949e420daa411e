"""Declared inputs (mlspec.inputs), the naming module and the context's labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec import inputs, naming
from mlspec.compiler import context
from mlspec.project import resolve_paths
from mlspec.registry import Target

ROOT = Path(__file__).resolve().parents[1]
RESOLVED = {r.env_name: r for r in resolve_paths([ROOT / "examples" / "churn" / "mlops.yaml"]).resolved}


def target(*reads: str) -> Target:
    return Target("t", generate=lambda ctx: [], reads=reads)


def test_declared_paths_are_readable_and_undeclared_ones_raise():
    ctx = context(RESOLVED["dev"], target("spec.serving.traffic", "env.storage"))
    assert ctx.spec.serving.traffic.challenger == 50  # the dev override
    assert ctx.spec.name == "churn" and ctx.env.name == "dev" and ctx.env.namespace == "ml-dev"  # implicit
    assert ctx.env.storage.artifacts.startswith("s3://")
    for read in (lambda: ctx.spec.training.estimator, lambda: ctx.spec.serving.champion.uri,
                 lambda: ctx.env.argocd.repo_url, lambda: list(ctx.spec.labels), lambda: bool(ctx.spec.drift),
                 lambda: f"{ctx.spec.description}"):
        with pytest.raises(inputs.UndeclaredRead, match="target 't' read spec|target 't' read env"):
            read()


def test_getattr_with_a_default_does_not_swallow_an_undeclared_read():
    ctx = context(RESOLVED["dev"], target("spec.labels"))
    with pytest.raises(inputs.UndeclaredRead, match=r"read spec\.training"):
        getattr(ctx.spec.training, "estimator", None)
    with pytest.raises(inputs.UndeclaredRead):
        hasattr(ctx.spec.training, "estimator")


def test_methods_of_the_spec_work_on_what_is_declared():
    ctx = context(RESOLVED["dev"], target("spec.features"))
    assert ctx.spec.served_features("churn_model")
    with pytest.raises(inputs.UndeclaredRead, match=r"spec\.data"):
        ctx.spec.source("customers")


def test_reads_are_normalised():
    assert inputs.normalise(["spec.serving.traffic", "spec.serving", "env"]) == ("env", "spec.name", "spec.serving")
    with pytest.raises(ValueError):
        inputs.normalise(["serving"])
    assert inputs.covers(["spec.serving"], "spec.serving.traffic") and not inputs.covers(["spec.serving"], "spec.drift")


def test_slices_hash_what_is_declared_only():
    dev, prod = (inputs.document(RESOLVED[e].spec, RESOLVED[e].env) for e in ("dev", "prod"))
    training = ("spec.training",)
    assert inputs.digest(inputs.slice_of(dev, training)) == inputs.digest(inputs.slice_of(prod, training))
    serving = ("spec.serving",)  # dev and prod override serving differently
    assert inputs.digest(inputs.slice_of(dev, serving)) != inputs.digest(inputs.slice_of(prod, serving))
    # a path below an unset optional section, and one that does not exist, both hash stably
    assert inputs.slice_of({"spec": {"drift": None}}, ["spec.drift.features"]) == {"spec.drift.features": None}
    assert inputs.slice_of({"spec": {}}, ["spec.nope"]) == {"spec.nope": {"$absent": True}}


def test_a_target_always_reads_its_own_settings():
    class Settings:  # any model; only its presence matters here
        pass

    t = Target("kserve", generate=lambda ctx: [], reads=("spec.serving",), settings=Settings)
    assert "env.kserve" in t.reads


def test_mlspec_labels_win_over_the_specs():
    ctx = context(RESOLVED["dev"], target("spec.labels"))
    object.__setattr__(ctx.spec, "labels", {"app.kubernetes.io/managed-by": "helm", "mlspec.io/environment": "prod",
                                            "team": "growth"})
    labels = ctx.labels("x")
    assert labels["app.kubernetes.io/managed-by"] == "mlspec" and labels["mlspec.io/environment"] == "dev"
    assert labels["team"] == "growth"


# --------------------------------------------------------------------------- naming


def test_names_are_derived_in_one_place():
    names = naming.Names("churn", "dev", "ml-dev")
    assert names.pipeline == names.experiment == names.serving == "churn"
    assert names.pipeline_version("0123456789abcdef") == "churn-0123456789"
    assert names.training_cronjob == "churn-training"
    assert names.feast_project == "churn" and naming.Names("a-b", "dev", "x").feast_project == "a_b"
    assert names.argocd_application == "churn-dev"
    assert names.trigger("retrain") == "churn-retrain-trigger"
    assert names.registry_path("s3://m/") == "s3://m/churn"


def test_budgets_follow_the_real_suffixes():
    long = "a" * 44
    problems = naming.check(naming.Names(long, "dev", "ml-dev"), ["kubeflow"])
    assert problems == [f"the training CronJob name '{long}-training' is 53 characters, over the limit of 52 (a CronJob "
                        "leaves 11 characters for the names of its Jobs); shorten the spec name to at most 43 characters"]
    assert naming.check(naming.Names("a" * 43, "dev", "ml-dev"), ["kubeflow"]) == []
    assert len(naming.check(naming.Names("a" * 53, "dev", "ml-dev"), ["kubeflow"])) == 2  # + the PipelineVersion
    # KServe's predictor host label depends on the namespace
    host = naming.check(naming.Names("a" * 40, "dev", "a-very-long-namespace"), ["kserve"])
    assert host and "kserve/kserve#4807" in host[0] and "-predictor-a-very-long-namespace" in host[0]
    assert naming.check(naming.Names("a" * 40, "dev", "a-very-long-namespace"), []) == []
