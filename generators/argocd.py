"""Argo CD target: kustomizations over what the other targets generated, and per spec and
environment an Application, an AppProject and the health checks Argo CD lacks or gets wrong.

It is a spec-scope target that *consumes* the other targets' output (see
:mod:`mlspec.registry`): like a kustomize transformer it sees every Kubernetes object the
other targets made for the spec in the environment, so that what it writes lists exactly those.

Per environment ``<env>`` and spec ``<spec>``:

``deploy/<env>/<spec>/<folder>/kustomization.yaml``
    For every folder holding Kubernetes objects (``kubeflow/``, ``kserve/``, ``feast/`` ...):
    ``resources`` lists exactly the files of that folder that hold Kubernetes objects, so the
    other files beside them (the KFP IR ``pipeline-ir.yaml``, Feast's ``repo/`` code and its
    ``feature_store.yaml``) are never applied: Argo CD builds a folder with a
    ``kustomization.yaml`` with kustomize, which reads only what is listed.
``deploy/<env>/<spec>/kustomization.yaml``
    The spec's Application path: its folders as ``resources``, and the sync waves as JSON
    patches on the ``argocd.argoproj.io/sync-wave`` annotation (a string) by API group:
    wave 0 -- feature store and pipelines (everything not named below); wave 1 -- serving
    (KServe, Seldon Core v1 and 2, Gateway API routes); wave 2 -- drift routing (Knative
    Serving and Eventing).  Argo CD applies a wave only once the previous one is synced and
    healthy (docs/user-guide/sync-waves.md), hence the health checks below.  The waves live
    here rather than on the objects so that each folder builds to exactly the objects its
    target generated.
``argocd/<env>/<spec>/application.yaml``
    ``argoproj.io/v1alpha1`` Application ``<spec>-<env>`` (:mod:`mlspec.naming`) in Argo CD's
    namespace, source ``<repo_url>@<revision>:<path_prefix>/deploy/<env>/<spec>``, destination
    the environment's cluster and namespace.  Chosen over one ApplicationSet: an Application per
    spec is a plain file per spec in git (a new spec adds a file, nothing else changes), each
    can be synced, paused or rolled back alone, and nothing is templated at run time (an
    ApplicationSet's git generator would discover folders Argo CD-side, out of review).
    ``syncPolicy`` from the spec's ``gitops`` block (``sync: automated`` with
    ``prune``/``self_heal``, or ``manual``: a person presses sync), which ``argocd:`` in
    ``environments/<env>.yaml`` may override for the whole environment (e.g. prod manual);
    ``CreateNamespace=true`` (optional), ``PruneLast=true`` (deletions after the new
    objects are healthy), ``ApplyOutOfSyncOnly=true`` (large environments), and
    ``RespectIgnoreDifferences=true`` so the ignored fields below are not re-applied either
    (docs/user-guide/sync-options.md); retries with exponential backoff.  With prune on, the
    ``resources-finalizer.argocd.argoproj.io`` finalizer deletes a removed spec's objects with
    its Application.  ``ignoreDifferences``, only for kinds the Application holds, each for a
    field an upstream webhook writes that mlspec does not (see :data:`IGNORED`).
``argocd/<env>/<spec>/project.yaml``
    ``argoproj.io/v1alpha1`` AppProject named like the Application, one per spec for least
    privilege, limited to the repository, to the destination namespaces the objects use, and
    to exactly the kinds they are: ``namespaceResourceWhitelist`` lists their (group, kind) pairs and
    ``clusterResourceWhitelist`` only ``Namespace``, by name, when ``CreateNamespace`` is on --
    Argo CD refuses to create a namespace the project does not whitelist (argoproj/argo-cd#20233,
    #22869).  When the environment's ``argocd.project`` names a project, the Application uses
    that one and none is generated.
``argocd/<env>/<spec>/kustomization.yaml``
    The project and the Application: bootstrap with ``kubectl apply -k argocd/<env>/<spec>``
    (or an app-of-apps Application over ``argocd/<env>/``).
``argocd/<env>/<spec>/argocd-cm.patch.yaml``
    A strategic-merge patch of Argo CD's own ``argocd-cm`` ConfigMap (add it to the
    ``patches`` of your Argo CD installation's kustomization; it is deliberately not in the
    kustomization above) with Lua health checks (``resource.customizations.health.<group>_<kind>``)
    for the kinds of this spec where Argo CD's built-in one is wrong or missing:
    ``serving.kserve.io/InferenceService`` -- the check shipped before Argo CD v3.3.0, v3.2.1,
    v3.1.10 and v3.0.21 counts KServe >= 0.15.1's ``Stopped: False`` condition as a failure and
    expects three Knative conditions that Standard mode never sets, so the application is stuck
    Progressing (kserve/kserve#4791, argoproj/argo-cd#25312); ours reads the ``Ready``
    condition.  ``feast.dev/FeatureStore`` -- Argo CD ships none, so a FeatureStore would count
    as healthy at once and serving (wave 1) would not wait for it; ours reads
    ``status.phase`` (``Ready``/``Pending``/``Failed``, feast-dev/feast infra/feast-operator
    api/v1 featurestore_types.go).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlspec.artefact import Artefact
from mlspec.registry import Target, source_key

if TYPE_CHECKING:
    from mlspec.context import Context

KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
ARGOCD_API = "argoproj.io/v1alpha1"
WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"

#: Sync waves by API group: serving after the feature store and pipelines (wave 0, the
#: default), drift routing after serving.
WAVES = {
    "serving.kserve.io": 1,
    "machinelearning.seldon.io": 1,
    "mlops.seldon.io": 1,
    "gateway.networking.k8s.io": 1,
    "serving.knative.dev": 2,
    "eventing.knative.dev": 2,
    "sources.knative.dev": 2,
}

#: (group, kind) → JSON pointers Argo CD should not diff, each a field an upstream mutating
#: webhook sets on objects that do not set it (mlspec leaves it unset on purpose):
IGNORED: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("serving.kserve.io", "InferenceService"): (
        # KServe's defaulter sets it to false on every component when the inferenceservice-config
        # security setting disables automounting (kserve/kserve@v0.20.0
        # pkg/apis/serving/v1beta1/inference_service_defaults.go, disableAutomountServiceAccountToken);
        # mlspec sets it only where the storage credentials need the token.
        ("/spec/predictor/automountServiceAccountToken",
         "KServe's webhook defaults it (inference_service_defaults.go, disableAutomountServiceAccountToken)"),
    ),
}

HEALTH_INFERENCESERVICE = """\
-- mlspec: KServe InferenceService health from the Ready condition; Stopped is not a failure
hs = {status = "Progressing", message = "Waiting for the InferenceService to report Ready"}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      if condition.status == "True" then
        hs.status = "Healthy"
        hs.message = "InferenceService is ready"
      elseif condition.status == "False" then
        hs.status = "Degraded"
        hs.message = (condition.reason or "NotReady") .. ": " .. (condition.message or "")
      else
        hs.message = condition.message or hs.message
      end
    end
  end
end
return hs
"""

HEALTH_FEATURESTORE = """\
-- mlspec: Feast operator FeatureStore health from status.phase (Ready, Pending, Failed)
hs = {status = "Progressing", message = "Waiting for the FeatureStore to be deployed"}
if obj.status ~= nil and obj.status.phase ~= nil then
  if obj.status.phase == "Ready" then
    hs.status = "Healthy"
    hs.message = "FeatureStore is ready"
  elseif obj.status.phase == "Failed" then
    hs.status = "Degraded"
    hs.message = "FeatureStore failed"
    if obj.status.conditions ~= nil then
      for _, condition in ipairs(obj.status.conditions) do
        if condition.status == "False" and condition.message ~= nil then
          hs.message = condition.type .. ": " .. condition.message
        end
      end
    end
  else
    hs.message = "FeatureStore is " .. obj.status.phase
  end
end
return hs
"""

#: (group, kind) → the Lua health check mlspec installs for it.
HEALTH = {
    ("serving.kserve.io", "InferenceService"): HEALTH_INFERENCESERVICE,
    ("feast.dev", "FeatureStore"): HEALTH_FEATURESTORE,
}


def group_of(obj: dict) -> str:
    api = str(obj["apiVersion"])
    return api.rpartition("/")[0]


def kustomization(resources: list[str], patches: list[dict] | None = None) -> dict:
    doc: dict[str, Any] = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": resources}
    if patches:
        doc["patches"] = patches
    return doc


def _wave_patch(group: str, kind: str, wave: int) -> dict:
    ops = [{"op": "add", "path": "/metadata/annotations/" + WAVE_ANNOTATION.replace("/", "~1"), "value": str(wave)}]
    return {"target": {"group": group, "kind": kind}, "patch": json.dumps(ops, separators=(",", ":"))}


def generate(ctx: Context) -> list[Artefact]:
    settings = ctx.env.argocd
    root = ctx.deploy_path()
    destination_ns = settings.destination.namespace or ctx.namespace
    folders: dict[str, list[str]] = {}
    kinds: set[tuple[str, str]] = set()
    namespaces = {destination_ns}
    for output in ctx.outputs:
        if not output.path.startswith(root + "/"):
            continue  # not one of the spec's deployable files
        folder, _, filename = output.path[len(root) + 1:].rpartition("/")
        if not folder:
            raise ValueError(f"{output.path}: Kubernetes files belong in a target's folder under {root}/")
        folders.setdefault(folder, []).append(filename)
        for obj in output.objects:
            kinds.add((group_of(obj), str(obj["kind"])))
            namespaces.add((obj.get("metadata") or {}).get("namespace") or destination_ns)
    if not folders:
        return []
    artefacts = [Artefact(f"{root}/{folder}/kustomization.yaml", kustomization(sorted(names)))
                 for folder, names in sorted(folders.items())]
    patches = [_wave_patch(group, kind, WAVES[group]) for group, kind in sorted(kinds) if group in WAVES]
    artefacts.append(Artefact(f"{root}/kustomization.yaml", kustomization(sorted(folders), patches)))

    here = f"argocd/{ctx.env.name}/{ctx.spec.name}"
    listed = ["application.yaml"]
    artefacts.append(Artefact(f"{here}/application.yaml", application(ctx, settings, destination_ns, kinds)))
    if settings.project is None:
        listed.insert(0, "project.yaml")
        artefacts.append(Artefact(f"{here}/project.yaml", app_project(ctx, settings, destination_ns,
                                                                             sorted(namespaces), kinds)))
    artefacts.append(Artefact(f"{here}/kustomization.yaml", kustomization(listed)))
    checks = {f"resource.customizations.health.{group}_{kind}": HEALTH[(group, kind)]
              for group, kind in sorted(kinds) if (group, kind) in HEALTH}
    if checks:
        artefacts.append(Artefact(f"{here}/argocd-cm.patch.yaml", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": settings.namespace,
                         "labels": {"app.kubernetes.io/part-of": "argocd"}},
            "data": checks,
        }))
    return artefacts


def sync_policy(ctx: Context) -> dict[str, Any]:
    """The spec's ``gitops`` sync policy (after its overrides for the environment), where the
    environment's ``argocd`` block sets nothing else (e.g. ``sync: manual`` for all of prod)."""
    env, spec = ctx.env.argocd, ctx.spec.gitops
    return {"sync": env.sync or spec.sync, "prune": spec.prune if env.prune is None else env.prune,
            "self_heal": spec.self_heal if env.self_heal is None else env.self_heal}


def project_name(ctx: Context) -> str:
    """The environment's ``argocd.project`` if it names one (mlspec then generates none),
    else the spec's own AppProject, named like its Application."""
    return ctx.env.argocd.project or ctx.names.argocd_application


def application(ctx: Context, settings: Any, destination_ns: str, kinds: set[tuple[str, str]]) -> dict:
    prefix = settings.path_prefix.strip("/")
    path = "/".join(p for p in (prefix, ctx.deploy_path()) if p)
    options = (["CreateNamespace=true"] if settings.create_namespace else []) + [
        "PruneLast=true", "ApplyOutOfSyncOnly=true", "RespectIgnoreDifferences=true"]
    sync: dict[str, Any] = {
        "syncOptions": options,
        "retry": {"limit": settings.retry_limit, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
    }
    policy = sync_policy(ctx)
    if policy["sync"] == "automated":
        sync["automated"] = {"prune": policy["prune"], "selfHeal": policy["self_heal"]}
    spec: dict[str, Any] = {
        "project": project_name(ctx),
        "source": {"repoURL": settings.repo_url, "targetRevision": settings.revision, "path": path},
        "destination": {"server": settings.destination.server, "namespace": destination_ns},
        "syncPolicy": sync,
    }
    ignored = [{"group": group, "kind": kind, "jsonPointers": [pointer for pointer, _ in IGNORED[(group, kind)]]}
               for group, kind in sorted(kinds) if (group, kind) in IGNORED]
    if ignored:
        spec["ignoreDifferences"] = ignored
    metadata: dict[str, Any] = {
        "name": ctx.names.argocd_application, "namespace": settings.namespace,
        "labels": _labels(ctx), "annotations": ctx.annotations(),
    }
    if policy["sync"] == "automated" and policy["prune"]:
        metadata["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    return {"apiVersion": ARGOCD_API, "kind": "Application", "metadata": metadata, "spec": spec}


def _labels(ctx: Context) -> dict[str, str]:
    return {"app.kubernetes.io/name": ctx.spec.name, "app.kubernetes.io/managed-by": "mlspec",
            "mlspec.io/environment": ctx.env.name}


def app_project(ctx: Context, settings: Any, destination_ns: str, namespaces: list[str],
                kinds: set[tuple[str, str]]) -> dict:
    spec: dict[str, Any] = {
        "description": f"mlspec: {ctx.spec.name} in environment {ctx.env.name}",
        "sourceRepos": [settings.repo_url],
        "destinations": [{"server": settings.destination.server, "namespace": ns} for ns in namespaces],
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace", "name": destination_ns}]
        if settings.create_namespace else [],
        "namespaceResourceWhitelist": [{"group": group, "kind": kind} for group, kind in sorted(kinds)],
    }
    return {"apiVersion": ARGOCD_API, "kind": "AppProject",
            "metadata": {"name": project_name(ctx), "namespace": settings.namespace, "labels": _labels(ctx),
                         "annotations": ctx.annotations()},
            "spec": spec}


target = Target(
    name="argocd",
    generate=generate,
    reads=("spec.gitops", "env.argocd"),
    consumes=True,
    version_key=lambda: source_key(__file__),
    description="Argo CD Applications and AppProject, kustomizations and health checks over the other targets' output",
)
