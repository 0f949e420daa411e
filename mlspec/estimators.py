"""The committed table of scikit-learn estimators that ``validate`` checks ``training.estimator`` against.

``validate`` must not import scikit-learn (it is slow to import and not a dependency of the
core), so what it needs to know about an estimator -- whether it is a classifier or a
regressor, which constructor parameters it takes, and whether it has ``predict_proba`` -- is
read from ``sklearn_estimators.json`` beside this module.  That file is generated from the
installed scikit-learn by :func:`build_table` (``.venv/bin/python scripts/gen_sklearn_estimators.py``)
and a test fails when the committed copy is stale.

Estimators outside the ``sklearn`` package (xgboost, lightgbm, your own) are not in the
table and are not checked.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).resolve().parent / "sklearn_estimators.json"
REGEN = ".venv/bin/python scripts/gen_sklearn_estimators.py"


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The committed table: ``{"sklearn_version": ..., "estimators": {import path: entry}}``."""
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


def lookup(import_path: str) -> dict[str, Any] | None:
    """The entry of a scikit-learn import path (public or defining module), or None."""
    entries = table()["estimators"]
    entry = entries.get(import_path)
    if entry is None:
        entry = table()["aliases"].get(import_path)
        entry = entries.get(entry) if entry else None
    return entry


def public_paths() -> list[str]:
    return list(table()["estimators"])


def is_sklearn(import_path: str) -> bool:
    return import_path.split(".", 1)[0] == "sklearn"


def build_table() -> dict[str, Any]:
    """Introspect the installed scikit-learn (imports it: never called by ``validate``)."""
    import importlib
    import inspect
    import warnings

    import sklearn
    from sklearn.utils import all_estimators

    public_modules = sorted(m for m in getattr(sklearn, "__all__", []) if not m.startswith("_") and m[0].islower())
    estimators: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifiers = {n for n, _ in all_estimators(type_filter="classifier")}
        regressors = {n for n, _ in all_estimators(type_filter="regressor")}
        for name, cls in all_estimators():
            exposed = []  # public modules that export the class; its own package first
            for mod in public_modules:
                try:
                    module = importlib.import_module(f"sklearn.{mod}")
                except ImportError:
                    continue
                if getattr(module, name, None) is cls:
                    exposed.append(f"sklearn.{mod}.{name}")
            if not exposed:
                continue
            exposed.sort(key=lambda path: not cls.__module__.startswith(path.rsplit(".", 1)[0] + "."))
            public = exposed[0]
            instance_kind = "classifier" if name in classifiers else "regressor" if name in regressors else "other"
            sig = inspect.signature(cls.__init__)
            params = [p for p in sig.parameters.values() if p.name != "self"]
            estimators[public] = {
                "kind": instance_kind,
                "parameters": sorted(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)),
                "required": sorted(p.name for p in params
                                   if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)),
                "var_kwargs": any(p.kind is p.VAR_KEYWORD for p in params),
                "predict_proba": hasattr(cls, "predict_proba"),
            }
            for alias in [f"{cls.__module__}.{name}", *exposed[1:]]:
                if alias != public:
                    aliases[alias] = public
    return {"sklearn_version": sklearn.__version__,
            "estimators": dict(sorted(estimators.items())),
            "aliases": dict(sorted(aliases.items()))}


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
