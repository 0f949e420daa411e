"""What the serving targets share: the model-format × runtime matrix, pod security, resources.

Three targets serve a spec's champion and challenger, one per runtime, chosen by
``serving.runtime``: :mod:`mlspec.generators.kserve` (``kserve``),
:mod:`mlspec.generators.seldon` (``seldon``, Seldon Core v1) and
:mod:`mlspec.generators.seldon_v2` (``seldon-v2``, Seldon Core 2).  Each emits nothing for
a spec served by another runtime.

The matrix (:data:`MATRIX`) is the one place that says which model formats each runtime
can serve, over which protocols, and how (KServe ``modelFormat``, Seldon v1 prepackaged
server, Seldon Core 2 ``requirements``); :func:`check` is the validation rule every serving
target runs on it, with located errors.  Sources (see ``shared/references/upstream-facts.md``):

* KServe v0.20.0 ``config/runtimes``: sklearn, xgboost, lightgbm (v1, v2); mlflow (MLServer,
  v2 only); onnx and triton (Triton, v2 only); tensorflow (TF Serving v1, Triton v2);
  pytorch (TorchServe v1, v2).  Storage URIs: every scheme the spec allows
  (``SupportedStorageURIPrefixList``).
* Seldon Core v1.17.1 prepackaged servers: ``SKLEARN_SERVER``, ``XGBOOST_SERVER``,
  ``MLFLOW_SERVER`` (protocol ``seldon`` or ``v2``), ``TENSORFLOW_SERVER`` (``seldon`` via the
  tfserving proxy), ``TRITON_SERVER`` (``v2`` only); there is no server for lightgbm, onnx or
  pytorch.  The rclone storage initializer reads ``gs://`` and ``s3://`` (also MinIO).
* Seldon Core v2.6.0: every Model is served over the v2 protocol; ``requirements`` are
  matched against the MLServer (sklearn, xgboost, lightgbm, mlflow, ...) and Triton (onnx,
  pytorch, tensorflow, triton, ...) server capabilities.  Storage through rclone: ``gs://``
  and ``s3://``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mlspec import units

#: Protocol names as the spec says them.
V1, V2 = "v1", "v2"


@dataclass(frozen=True)
class Support:
    protocols: tuple[str, ...]
    server: str = ""  # Seldon v1 implementation, or Seldon Core 2 requirement, or KServe modelFormat


#: runtime → model format → how it is served.  Formats missing from a runtime are not servable there.
MATRIX: dict[str, dict[str, Support]] = {
    "kserve": {
        "sklearn": Support((V1, V2), "sklearn"),
        "xgboost": Support((V1, V2), "xgboost"),
        "lightgbm": Support((V1, V2), "lightgbm"),
        "tensorflow": Support((V1, V2), "tensorflow"),
        "pytorch": Support((V1, V2), "pytorch"),
        "onnx": Support((V2,), "onnx"),
        "mlflow": Support((V2,), "mlflow"),
        "triton": Support((V2,), "triton"),
    },
    "seldon": {
        "sklearn": Support((V1, V2), "SKLEARN_SERVER"),
        "xgboost": Support((V1, V2), "XGBOOST_SERVER"),
        "mlflow": Support((V1, V2), "MLFLOW_SERVER"),
        "tensorflow": Support((V1,), "TENSORFLOW_SERVER"),
        "triton": Support((V2,), "TRITON_SERVER"),
    },
    "seldon-v2": {
        "sklearn": Support((V2,), "sklearn"),
        "xgboost": Support((V2,), "xgboost"),
        "lightgbm": Support((V2,), "lightgbm"),
        "mlflow": Support((V2,), "mlflow"),
        "onnx": Support((V2,), "onnx"),
        "tensorflow": Support((V2,), "tensorflow"),
        "pytorch": Support((V2,), "pytorch"),
        "triton": Support((V2,), "triton"),
    },
}

#: URI schemes each runtime's storage initializer can download a model from.
URI_SCHEMES: dict[str, tuple[str, ...]] = {
    "kserve": ("gs", "s3", "pvc", "file", "https", "http", "oci", "hf"),
    "seldon": ("gs", "s3"),
    "seldon-v2": ("gs", "s3"),
}

RUNTIME_NAMES = {"kserve": "KServe", "seldon": "Seldon Core v1", "seldon-v2": "Seldon Core 2"}

#: Requests and limits used when the spec sets none (pods without them are refused by many
#: clusters' admission policies, and unbounded ones starve their neighbours).
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "1", "memory": "1Gi"}

#: Pod and container security, wherever the CRD lets us say it.
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}


def support(runtime: str, model_format: str) -> Support | None:
    return MATRIX[runtime].get(model_format)


def candidates(serving: Any) -> list[tuple[str, Any, int]]:
    """(role, model ref, traffic share) of the models to serve: the champion, then the
    challenger when there is one."""
    out = [("champion", serving.champion, serving.traffic.champion)]
    if serving.challenger is not None:
        out.append(("challenger", serving.challenger, serving.traffic.challenger))
    return out


def resources(res: Any) -> dict[str, dict[str, str]]:
    """Kubernetes requests and limits from the spec, with :data:`DEFAULT_REQUESTS` and
    :data:`DEFAULT_LIMITS` where it sets none (a default limit never falls below the request),
    in canonical form (:func:`mlspec.units.canonical_quantity`)."""
    requests, limits = {}, {}
    for key in ("cpu", "memory"):
        req, lim = getattr(res.requests, key), getattr(res.limits, key)
        requests[key] = req or DEFAULT_REQUESTS[key]
        if lim is None:
            default = DEFAULT_LIMITS[key]
            lim = default if units.parse_quantity(default) >= units.parse_quantity(requests[key]) else requests[key]
        limits[key] = lim
    gpus = res.limits.gpu or res.requests.gpu
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    # written as the webhooks write them back, or Argo CD would see drift (argoproj/argo-cd#12463)
    return {"requests": {k: units.canonical_quantity(v) for k, v in requests.items()},
            "limits": {k: units.canonical_quantity(v) for k, v in limits.items()}}


def memory_bytes(quantity: str) -> Decimal:
    return units.parse_quantity(quantity)


def check(rc: Any, runtime: str) -> None:
    """The matrix rule: the format is servable by the runtime over the spec's protocol, and
    every model URI uses a scheme the runtime's storage initializer reads."""
    serving = rc.spec.serving
    name = RUNTIME_NAMES[runtime]
    found = support(runtime, serving.model_format)
    if found is None:
        servable = ", ".join(sorted(MATRIX[runtime]))
        others = [RUNTIME_NAMES[r] for r in MATRIX if r != runtime and serving.model_format in MATRIX[r]]
        rc.error(("serving", "model_format"), f"{name} cannot serve model_format '{serving.model_format}'",
                 f"{name} serves {servable}" + (f"; {' or '.join(others)} can serve it" if others else ""),
                 code="serving-format")
    elif serving.protocol not in found.protocols:
        rc.error(("serving", "protocol"), f"{name} serves '{serving.model_format}' models over protocol "
                 f"{' or '.join(found.protocols)} only, not {serving.protocol}",
                 f"set serving.protocol: {found.protocols[0]}", code="serving-protocol")
    for role, ref, _ in candidates(serving):
        scheme = ref.uri.split("://", 1)[0]
        if scheme not in URI_SCHEMES[runtime]:
            rc.error(("serving", role, "uri"), f"{name}'s storage initializer cannot read {scheme}:// URIs",
                     f"use {', '.join(s + '://' for s in URI_SCHEMES[runtime])}", code="serving-uri")


def version_key(module_file: str) -> str:
    """A serving target's ``version_key``: its own module, this one and the drift target's
    (whose :func:`~mlspec.generators.drift.logger_url` the serving objects carry)."""
    from pathlib import Path

    from mlspec.registry import source_key

    return source_key(module_file, __file__, str(Path(__file__).with_name("drift.py")))
