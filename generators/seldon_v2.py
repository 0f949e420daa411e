"""Seldon Core 2 target: a Model per candidate and an Experiment that splits or mirrors traffic.

For a spec with ``serving.runtime: seldon-v2``, ``deploy/<env>/<spec>/seldon-v2/`` holds
(``mlops.seldon.io/v1alpha1``, the schema of v2.6.0, the last Apache-2.0 release):

``models.yaml``
    A ``Model`` for the champion (``<spec>-champion``) and one for the challenger
    (``<spec>-challenger``) when the spec has one: ``storageUri``, ``requirements`` from the
    model format (:data:`mlspec.generators.serving.MATRIX`: matched against the MLServer or
    Triton server capabilities), ``memory`` from the spec's memory request, ``replicas``
    (``minReplicas``/``maxReplicas`` when it autoscales) and ``secretName`` (the spec's
    ``storage_secret``, a reference to the rclone storage Secret).  Seldon Core 2 runs the
    pods from its ``Server`` resources, which the platform owns; a Model has no pod spec, so
    pod security and CPU limits belong to those Servers (documented, not generated).
``experiment.yaml`` (when the challenger gets traffic, or is shadowed)
    An ``Experiment`` named after the spec with ``default`` = the champion, so the champion
    Model's own endpoint is split.  ``canary``/``ab``: ``candidates`` with the spec's split as
    weights -- Seldon reads weights as relative (weight ÷ sum), and the spec's sum to 100, so
    the shares are exactly the spec's percentages.  ``shadow``: the champion as the only
    candidate and ``mirror`` = the challenger with ``percent`` = ``serving.mirror``.

Seldon Core 2 serves every model over the v2 protocol; a spec asking for v1 is a validation
error.  It scales Models between ``minReplicas`` and ``maxReplicas`` by itself: an
``autoscaling.metric`` it cannot use is a validation error rather than silently ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlspec.artefact import Artefact
from mlspec.registry import Target

from . import serving as common

if TYPE_CHECKING:
    from mlspec.context import Context

API = "mlops.seldon.io/v1alpha1"
READS = ("spec.serving", "spec.labels")


def _model(ctx: Context, role: str, ref) -> dict:
    sv = ctx.spec.serving
    spec: dict = {
        "storageUri": ref.uri,
        "requirements": [common.support("seldon-v2", sv.model_format).server],
        "memory": common.resources(sv.resources)["requests"]["memory"],
        "replicas": sv.replicas.min,
    }
    if sv.replicas.max > sv.replicas.min:
        spec["minReplicas"] = sv.replicas.min
        spec["maxReplicas"] = sv.replicas.max
    if sv.storage_secret:
        spec["secretName"] = sv.storage_secret
    labels = {**ctx.labels("serving"), "mlspec.io/role": role}
    return {
        "apiVersion": API,
        "kind": "Model",
        "metadata": {"name": getattr(ctx.names, role), "namespace": ctx.namespace, "labels": labels,
                     "annotations": {**ctx.annotations(),
                                     **({"mlspec.io/model-version": ref.version} if ref.version else {})}},
        "spec": spec,
    }


def generate(ctx: Context) -> list[Artefact]:
    sv = ctx.spec.serving
    if sv.runtime != "seldon-v2":
        return []
    models = common.candidates(sv)
    out = [Artefact(ctx.deploy_path("seldon-v2", "models.yaml"), [_model(ctx, role, ref) for role, ref, _ in models],
                    multi_document=True)]
    names = ctx.names
    experiment: dict | None = None
    if sv.challenger is not None and sv.rollout == "shadow":
        experiment = {"default": names.champion, "candidates": [{"name": names.champion, "weight": 100}],
                      "mirror": {"name": names.challenger, "percent": sv.mirror}}
    elif sv.challenger is not None and sv.traffic.challenger > 0:
        experiment = {"default": names.champion,
                      "candidates": [{"name": getattr(names, role), "weight": share} for role, _, share in models]}
    if experiment is not None:
        out.append(Artefact(ctx.deploy_path("seldon-v2", "experiment.yaml"), {
            "apiVersion": API,
            "kind": "Experiment",
            "metadata": {"name": names.serving, "namespace": ctx.namespace, "labels": ctx.labels("serving-router"),
                         "annotations": ctx.annotations()},
            "spec": experiment,
        }))
    return out


def rules(rc) -> None:
    sv = rc.spec.serving
    if sv.runtime != "seldon-v2":
        return
    common.check(rc, "seldon-v2")
    if sv.autoscaling is not None:
        rc.error(("serving", "autoscaling"), "Seldon Core 2 scales Models between replicas.min and replicas.max by "
                 "itself; it has no metric or target to set",
                 "remove autoscaling and keep replicas.min < replicas.max", code="seldon-v2-autoscaling")


target = Target(
    name="seldon-v2",
    generate=generate,
    reads=READS,
    rules=rules,
    version_key=lambda: common.version_key(__file__),
    description="Seldon Core 2 Models and an Experiment for the traffic split or mirror",
)
