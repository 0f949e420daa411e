"""Seldon Core v1 target: one SeldonDeployment with a predictor per model.

For a spec with ``serving.runtime: seldon``, ``deploy/<env>/<spec>/seldon/seldondeployment.yaml``
holds a ``machinelearning.seldon.io/v1`` SeldonDeployment (the schema of v1.17.1, the last
Apache-2.0 release; later releases are BSL-1.1):

* a ``champion`` predictor and, when the spec has one, a ``challenger`` predictor, each with a
  one-node graph running the prepackaged server for the model format
  (:data:`mlspec.generators.serving.MATRIX`), its ``modelUri``, ``envSecretRefName`` (the
  spec's ``storage_secret``: credentials for the rclone storage initializer, by reference
  only) and ``serviceAccountName`` when given;
* ``canary`` and ``ab``: both predictors get ``traffic`` (the spec's split; Seldon's webhook
  requires the non-shadow predictors' traffic to sum to exactly 100, which validation
  guarantees; a challenger at 0 % keeps its pods but no route);
* ``shadow``: the challenger predictor is ``shadow: true`` with ``traffic`` = the mirrored
  share (``serving.mirror``; Seldon turns it into an Istio ``mirrorPercentage``), the champion
  takes 100 -- at most one shadow, never the only predictor;
* with a drift policy, the champion's graph logs its requests (``logger``, mode ``request``)
  to the spec's Knative Broker, by explicit URL (see :mod:`mlspec.generators.drift`);
* ``protocol``: ``seldon`` for the spec's v1, ``v2`` for v2;
* each predictor's ``componentSpecs`` pins the model container's resources (requests and
  limits always set), pod and container security (non-root, RuntimeDefault seccomp, no
  privilege escalation, all capabilities dropped), no automounted service-account token
  unless a service account is named, and ``replicas``; with autoscaling an ``hpaSpec`` on
  ``cpu`` or ``memory`` utilisation (the HPA's metrics; other metrics are validation errors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlspec.artefact import Artefact
from mlspec.registry import Target

from . import drift
from . import serving as common

if TYPE_CHECKING:
    from mlspec.context import Context

API = "machinelearning.seldon.io/v1"
GRAPH_NODE = "model"  # graph node and model container name: they must match for the override
PROTOCOLS = {"v1": "seldon", "v2": "v2"}
READS = ("spec.serving", "spec.labels", "spec.drift", "env.drift.broker")


def _predictor(ctx: Context, role: str, ref, traffic: int, shadow: bool) -> dict:
    sv = ctx.spec.serving
    graph = {
        "name": GRAPH_NODE,
        "type": "MODEL",
        "implementation": common.support("seldon", sv.model_format).server,
        "modelUri": ref.uri,
        "children": [],
    }
    if sv.storage_secret:
        graph["envSecretRefName"] = sv.storage_secret
    if sv.service_account:
        graph["serviceAccountName"] = sv.service_account
    url = drift.logger_url(ctx) if role == "champion" else None
    if url is not None:  # the drift detector watches the champion's requests, through the Broker
        graph["logger"] = {"mode": "request", "url": url}
    pod = {
        "containers": [{"name": GRAPH_NODE, "resources": common.resources(sv.resources),
                        "securityContext": dict(common.CONTAINER_SECURITY)}],
        "securityContext": dict(common.POD_SECURITY),
    }
    if sv.service_account:
        pod["serviceAccountName"] = sv.service_account
    else:
        pod["automountServiceAccountToken"] = False
    component: dict = {"spec": pod}
    if sv.autoscaling is not None:
        component["hpaSpec"] = {
            "minReplicas": max(sv.replicas.min, 1),
            "maxReplicas": sv.replicas.max,
            "metricsv2": [{"type": "Resource", "resource": {
                "name": sv.autoscaling.metric or "cpu",
                "target": {"type": "Utilization", "averageUtilization": sv.autoscaling.target}}}],
        }
    predictor = {
        "name": role,
        "replicas": sv.replicas.min,
        "traffic": traffic,
        "graph": graph,
        "componentSpecs": [component],
        "labels": {"mlspec.io/role": role, **({"mlspec.io/model-version": ref.version} if ref.version else {})},
    }
    if shadow:
        predictor["shadow"] = True
    return predictor


def generate(ctx: Context) -> list[Artefact]:
    sv = ctx.spec.serving
    if sv.runtime != "seldon":
        return []
    predictors = []
    for role, ref, share in common.candidates(sv):
        shadow = sv.rollout == "shadow" and role == "challenger"
        traffic = sv.mirror if shadow else (100 if sv.rollout == "shadow" else share)
        predictors.append(_predictor(ctx, role, ref, traffic, shadow))
    deployment = {
        "apiVersion": API,
        "kind": "SeldonDeployment",
        "metadata": {"name": ctx.names.serving, "namespace": ctx.namespace, "labels": ctx.labels("serving"),
                     "annotations": ctx.annotations()},
        "spec": {"protocol": PROTOCOLS[sv.protocol], "predictors": predictors},
    }
    return [Artefact(ctx.deploy_path("seldon", "seldondeployment.yaml"), deployment)]


def rules(rc) -> None:
    sv = rc.spec.serving
    if sv.runtime != "seldon":
        return
    common.check(rc, "seldon")
    if sv.autoscaling is not None and sv.autoscaling.metric not in (None, "cpu", "memory"):
        rc.error(("serving", "autoscaling", "metric"), f"Seldon Core v1 autoscales with the HPA on cpu or memory, "
                 f"not {sv.autoscaling.metric}", "use metric: cpu", code="seldon-autoscaling")
    if sv.autoscaling is not None and sv.autoscaling.target > 100:
        rc.error(("serving", "autoscaling", "target"), f"the HPA target is a utilisation percentage; "
                 f"{sv.autoscaling.target} is over 100", code="seldon-autoscaling")


target = Target(
    name="seldon",
    generate=generate,
    reads=READS,
    rules=rules,
    version_key=lambda: common.version_key(__file__),
    description="Seldon Core v1 SeldonDeployment with champion/challenger predictors",
)
