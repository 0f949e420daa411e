"""KServe target: the spec's champion and challenger as InferenceServices, with the traffic split.

For a spec with ``serving.runtime: kserve``, ``deploy/<env>/<spec>/kserve/`` holds:

``inferenceservice.yaml``
    ``serving.kserve.io/v1beta1`` InferenceServices in the ``predictor.model`` form only (the
    legacy per-framework keys are rewritten by KServe's webhook and would show as drift in
    Argo CD): ``modelFormat``, ``storageUri``, an explicit ``protocolVersion`` (``mlflow``,
    ``onnx`` and ``triton`` need v2: without it KServe selects a runtime for v1 and finds
    none), resources (requests and limits always set), min/max replicas, the scale metric and
    target where the spec autoscales, ``serviceAccountName`` when the spec names one for
    storage credentials, and pod security (non-root, RuntimeDefault seccomp, no privilege
    escalation, all capabilities dropped, no automounted service-account token unless the
    storage credentials come through the service account).  With a drift policy the
    champion's predictor logs its requests (``logger``, mode ``request``) to the spec's Knative
    Broker, whose URL is always explicit (the default ``http://default-broker`` resolves only
    where a Broker of that name exists; see :mod:`mlspec.generators.drift`).  The
    ``serving.kserve.io/deploymentMode`` annotation is always emitted, from the environment's
    ``kserve.deployment_mode`` (``Standard`` or ``Knative``): the cluster defaults disagree
    (code: Standard; shipped ConfigMap: Serverless; Helm chart: Knative), so relying on them
    would make git mean different things on different clusters.
``inferencegraph.yaml`` (rollout ``ab``)
    ``serving.kserve.io/v1alpha1`` InferenceGraph whose ``root`` node is a ``Splitter`` with
    one step per model, ``serviceName`` the InferenceService and ``weight`` its traffic share
    (the webhook requires every step to have a weight and the weights to sum to exactly 100).
``httproute.yaml`` (rollout ``shadow``)
    ``gateway.networking.k8s.io/v1`` HTTPRoute on the environment's ``kserve.gateway``:
    every request goes to the champion's predictor Service, and ``serving.mirror`` percent of
    them are mirrored (``RequestMirror`` filter) to the challenger's, whose answers nobody sees.

Rollout modes, and why each is built this way:

* ``canary`` -- KServe's native ``canaryTrafficPercent`` on one InferenceService (named after
  the spec) whose model is the challenger: KServe splits between the latest revision (the
  challenger) and the previously rolled-out one, which must be the champion.  That history is
  in the cluster, not in git, and the field is silently ignored in Standard mode
  (kserve/kserve#5335), so ``canary`` is a validation error there that names ``ab``.  Without a
  challenger (or at 0 %) the InferenceService serves the champion.
* ``ab`` -- chosen as the explicit, GitOps-native split: champion and challenger are separate
  InferenceServices (``<spec>-champion``, ``<spec>-challenger``), each named in git, and the
  weights live in an InferenceGraph ``Splitter``, which KServe itself validates and which works
  in both deployment modes without a service mesh or Gateway API (an HTTPRoute weight split
  would need the predictor Services, which only Standard mode creates, and a Gateway).  Clients
  call the InferenceGraph.
* ``shadow`` -- champion and challenger InferenceServices, plus the HTTPRoute described above.
  InferenceGraph has no mirroring router, so this needs Gateway API and the ``<isvc>-predictor``
  Services (port 80) that KServe creates in Standard mode only
  (``reconcilers/service/service_reconciler.go``); in Knative mode it is a validation error.

Autoscaling: Standard mode scales with the HPA on ``cpu`` or ``memory`` (with the
``serving.kserve.io/autoscalerClass: hpa`` annotation; KServe's validation then rejects a
target above 100), Knative mode with the Knative autoscaler on ``concurrency`` or ``rps``; the
other combinations are validation errors rather than objects KServe would refuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mlspec.artefact import Artefact
from mlspec.models import K8sLabel, Model
from mlspec.registry import Target

from . import drift
from . import serving as common

if TYPE_CHECKING:
    from mlspec.context import Context

API = "serving.kserve.io/v1beta1"
GRAPH_API = "serving.kserve.io/v1alpha1"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
AUTOSCALER_ANNOTATION = "serving.kserve.io/autoscalerClass"
#: Port of the ``<isvc>-predictor`` Service KServe creates in Standard mode.
PREDICTOR_PORT = 80
SCALE_METRICS = {"Standard": ("cpu", "memory"), "Knative": ("concurrency", "rps")}


class Gateway(Model):
    name: K8sLabel = Field(description="The Gateway (Gateway API) the shadow HTTPRoute attaches to.")
    namespace: K8sLabel | None = Field(None, description="Its namespace (default: the environment's).")


class Settings(Model):
    """The ``kserve:`` block of ``environments/<env>.yaml``."""

    deployment_mode: Literal["Standard", "Knative"] = Field(
        "Standard", description="KServe deployment mode, always written on every InferenceService.")
    gateway: Gateway | None = Field(None, description="Gateway for the shadow rollout's HTTPRoute.")


READS = ("spec.serving", "spec.labels", "spec.drift", "env.kserve", "env.drift.broker")


def _isvc(ctx: Context, name: str, ref, canary_percent: int | None, logged: bool = False) -> dict:
    sv, settings = ctx.spec.serving, ctx.settings
    support = common.support("kserve", sv.model_format)
    model = {
        "modelFormat": {"name": support.server},
        "protocolVersion": sv.protocol,
        "storageUri": ref.uri,
        "resources": common.resources(sv.resources),
        "securityContext": dict(common.CONTAINER_SECURITY),
    }
    predictor: dict = {
        "minReplicas": sv.replicas.min,
        "maxReplicas": sv.replicas.max,
        "securityContext": dict(common.POD_SECURITY),
        "model": model,
    }
    if sv.service_account:
        predictor["serviceAccountName"] = sv.service_account
    else:
        predictor["automountServiceAccountToken"] = False
    annotations = {**ctx.annotations(), MODE_ANNOTATION: settings.deployment_mode}
    if ref.version:
        annotations["mlspec.io/model-version"] = ref.version
    if sv.autoscaling is not None:
        predictor["scaleMetric"] = sv.autoscaling.metric or SCALE_METRICS[settings.deployment_mode][0]
        predictor["scaleTarget"] = sv.autoscaling.target
        if settings.deployment_mode == "Standard":
            annotations[AUTOSCALER_ANNOTATION] = "hpa"
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    url = drift.logger_url(ctx) if logged else None
    if url is not None:  # the drift detector watches the champion's requests, through the Broker
        predictor["logger"] = {"mode": "request", "url": url}
    return {
        "apiVersion": API,
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": ctx.labels("serving"),
                     "annotations": annotations},
        "spec": {"predictor": predictor},
    }


def generate(ctx: Context) -> list[Artefact]:
    sv = ctx.spec.serving
    if sv.runtime != "kserve":
        return []
    names = ctx.names
    path = ctx.deploy_path
    if sv.rollout == "canary":
        challenger = sv.challenger is not None and sv.traffic.challenger > 0
        isvc = _isvc(ctx, names.serving, sv.challenger if challenger else sv.champion,
                     sv.traffic.challenger if challenger else None, logged=True)
        if challenger:
            isvc["metadata"]["annotations"]["mlspec.io/champion-uri"] = sv.champion.uri
        return [Artefact(path("kserve", "inferenceservice.yaml"), isvc)]

    models = common.candidates(sv)
    isvcs = [_isvc(ctx, getattr(names, role), ref, None, logged=role == "champion") for role, ref, _ in models]
    out = [Artefact(path("kserve", "inferenceservice.yaml"), isvcs, multi_document=True)]
    meta = {"namespace": ctx.namespace, "labels": ctx.labels("serving-router"),
            "annotations": {**ctx.annotations(), MODE_ANNOTATION: ctx.settings.deployment_mode}}
    if sv.rollout == "ab":
        steps = [{"name": role, "serviceName": getattr(names, role), "weight": share} for role, _, share in models]
        graph = {
            "apiVersion": GRAPH_API,
            "kind": "InferenceGraph",
            "metadata": {"name": names.serving, **meta},
            "spec": {"nodes": {"root": {"routerType": "Splitter", "steps": steps}}},
        }
        out.append(Artefact(path("kserve", "inferencegraph.yaml"), graph))
    else:  # shadow: validation guarantees a challenger, Standard mode and a gateway
        gateway = ctx.settings.gateway
        parent = {"name": gateway.name, **({"namespace": gateway.namespace} if gateway.namespace else {})}
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": names.serving, "namespace": ctx.namespace, "labels": ctx.labels("serving-router"),
                         "annotations": ctx.annotations()},
            "spec": {
                "parentRefs": [parent],
                "rules": [{
                    "backendRefs": [{"name": f"{names.champion}-predictor", "port": PREDICTOR_PORT}],
                    "filters": [{"type": "RequestMirror", "requestMirror": {
                        "backendRef": {"name": f"{names.challenger}-predictor", "port": PREDICTOR_PORT},
                        "percent": sv.mirror}}],
                }],
            },
        }
        out.append(Artefact(path("kserve", "httproute.yaml"), route))
    return out


def rules(rc) -> None:
    sv = rc.spec.serving
    if sv.runtime != "kserve":
        return
    common.check(rc, "kserve")
    mode = rc.settings.deployment_mode
    mode_path = ("kserve", "deployment_mode")
    if sv.rollout == "canary" and mode == "Standard" and sv.challenger is not None:
        rc.error(("serving", "rollout"), "rollout canary needs KServe's Knative deployment mode: in Standard mode "
                 "canaryTrafficPercent is silently ignored (kserve/kserve#5335)",
                 f"use rollout: ab (an InferenceGraph splitter, both modes), or set kserve.deployment_mode: Knative "
                 f"in the environment file of '{rc.env.name}'", code="kserve-mode")
    if sv.rollout == "shadow":
        if mode != "Standard":
            rc.error(("serving", "rollout"), "rollout shadow on KServe mirrors requests with a Gateway API HTTPRoute "
                     "to the predictor Services, which KServe creates in Standard deployment mode only",
                     "set kserve.deployment_mode: Standard for this environment, or use rollout: ab", code="kserve-mode")
        elif rc.settings.gateway is None:
            rc.env_error(mode_path[:1], "rollout shadow on KServe needs a Gateway for its HTTPRoute",
                         "set kserve.gateway: {name: ..., namespace: ...}", code="kserve-gateway")
    if sv.autoscaling is not None:
        allowed = SCALE_METRICS[mode]
        if sv.autoscaling.metric is not None and sv.autoscaling.metric not in allowed:
            rc.error(("serving", "autoscaling", "metric"), f"KServe in {mode} mode scales on {' or '.join(allowed)}, "
                     f"not {sv.autoscaling.metric}", f"use metric: {allowed[0]}", code="kserve-autoscaling")
        elif mode == "Standard" and sv.autoscaling.target > 100:
            rc.error(("serving", "autoscaling", "target"), f"KServe's HPA target is a utilisation percentage; "
                     f"{sv.autoscaling.target} is over 100", code="kserve-autoscaling")


target = Target(
    name="kserve",
    generate=generate,
    reads=READS,
    settings=Settings,
    rules=rules,
    version_key=lambda: common.version_key(__file__),
    description="KServe InferenceServices, InferenceGraph splitter or shadow HTTPRoute",
)
