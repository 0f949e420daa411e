"""The drift detector's training step (a KFP lightweight component) and its plain-Python entry.

:func:`fit_drift_detector` runs in the training pipeline next to the register step: it draws
the reference sample from the training frame of the model being registered and writes the
detector in Alibi Detect's saved format, so the served detector always watches the
distribution of the model actually served.  Like :mod:`mlspec.generators.kubeflow_components`,
KFP ships the function's *source text* to the step's container, so the body is self-contained
(every import inside it, helpers nested) and needs numpy and pandas only -- **not**
alibi-detect.  :func:`write_detector` runs the same function outside KFP (``mlspec run
--local``, tests); there is one implementation.

The directory written (``detector.path``)::

    config.toml          the keys alibi-detect 0.11.4's ``save_detector`` writes for the
                         detector (same order, same value spelling, ``[meta] version =
                         "0.11.4"``), so ``alibi_detect.saving.load_detector`` loads it
    x_ref.npy            the reference sample: float64, shape (rows, features), columns in
                         the policy's feature order (the served order)
    preprocess_fn/       only when the monitored features are not the whole served vector:
      function.dill      the pickled ``numpy.take`` that selects them
    model-settings.json  for MLServer's alibi-detect runtime (Seldon Core 2):
                         ``mlserver_alibi_detect.AlibiDetectRuntime``, ``parameters.uri``
                         "./" (the directory itself) and ``parameters.version``

Choices (see the docstring of :func:`fit_drift_detector` for the details):

* Requests carry every served feature; when the policy monitors fewer (or reorders them),
  ``preprocess_fn`` selects the monitored columns (``functools.partial(numpy.take, ...)``,
  pickled as dill would, with the standard library) and ``x_ref`` holds those columns only.
* ``x_ref`` is float64 whatever the feature dtypes: served requests arrive as JSON numbers,
  and float64 holds every int32, every int64 up to 2**53 and bools as 0/1 exactly.
* TabularDrift: bool features are categorical with ``categories_per_feature = {index:
  "None"}`` (alibi infers the categories from ``x_ref``; a fixed ``2`` would make alibi's
  Chi-squared test fail with a zero expected count on a batch where both sample and batch hold
  one value only); every other feature gets KS.  ChiSquareDrift: every feature categorical,
  ``categories_per_feature = "None"`` (inferred from ``x_ref``).
* MMDDrift: ``backend = "tensorflow"`` -- the backend the alibi-detect-server image and
  MLServer's alibi-detect runtime install (alibi-detect[tensorflow]); kernel and sigma are
  left to alibi (Gaussian RBF, sigma from ``x_ref`` by the median heuristic at load).
* No ``batch_size`` in ``model-settings.json``: the runtime's ``parameters.extra.batch_size``
  counts *requests* and would batch again what the Seldon Core 2 Pipeline step already
  batches with ``batch.size``; alibi-detect-server gets it as ``--drift_batch_size``.
"""

# No ``from __future__ import annotations`` here: KFP reads the annotations at run time.
from kfp.dsl import Artifact, Dataset, Input, Output


def fit_drift_detector(features: Input[Dataset], policy: str, version: str, detector: Output[Artifact]) -> str:
    """Fit the drift policy's detector on the training frame at ``features.path`` (Parquet)
    and write it into the directory ``detector.path``.

    ``policy`` is JSON: ``{"method": "ks"|"chi2"|"tabular"|"mmd", "detector": Alibi Detect
    class name, "features": [served names, in the served order], "dtypes": {feature: spec
    dtype}, "p_value", "correction": "bonferroni"|"fdr", "batch_size", "sample_size"}`` and,
    optionally, ``"served"``: every served feature in the served order -- the vector each
    request carries (default: ``features``).  When the monitored features are not that whole
    vector, the detector selects them: ``preprocess_fn = functools.partial(numpy.take,
    indices=<their positions>, axis=1)`` (saved as alibi saves a partial:
    ``preprocess_fn/function.dill`` plus ``[preprocess_fn.kwargs]``) with
    ``x_ref_preprocessed = true``, ``x_ref`` holding the monitored columns only.  ``batch_size``
    is not written (see the module docstring).

    Rows with a missing value in a monitored feature are dropped (alibi's tests would give NaN
    p-values); of the rest, ``sample_size`` rows are drawn without replacement (all rows when
    there are fewer), seeded by ``version``: each row's rank is the sha256 of ``"<version>:<row
    index>"``, so the same frame and version give the same sample on every machine and numpy
    version; the drawn rows keep the frame's order.  Same inputs, same bytes.

    Returns JSON ``{"rows", "features", "detector", "dropped_missing"}``."""
    import hashlib
    import json
    import os

    import numpy as np
    import pandas as pd

    settings = json.loads(policy)

    def fail(message: str):
        print(f"MLSPEC-FAILURE: {message}", flush=True)
        raise ValueError(message)

    def toml_value(value) -> str:  # as the ``toml`` package (alibi's writer) spells scalars
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return repr(value).replace("e+0", "e+").replace("e-0", "e-")
        if isinstance(value, list):
            return "[" + "".join(f" {toml_value(v)}," for v in value) + "]"
        return json.dumps(str(value))  # names and "None": plain ASCII, no escapes needed

    def toml_document(scalars: dict, tables: dict) -> str:
        lines = [f"{key} = {toml_value(value)}\n" for key, value in scalars.items()]
        for name, table in tables.items():
            lines.append(f"\n[{name}]\n")
            lines.extend(f"{key} = {toml_value(value)}\n" for key, value in table.items())
        return "".join(lines)

    names = list(settings["features"])
    served = list(settings.get("served") or names)
    unserved = [n for n in names if n not in served]
    if unserved:
        fail(f"monitored feature(s) {', '.join(unserved)} are not among the served features {', '.join(served)}")
    dtypes = settings.get("dtypes", {})
    method, name = settings["method"], settings["detector"]
    frame = pd.read_parquet(features.path)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        fail(f"the training frame has no column(s) {', '.join(missing)} to fit the drift detector on")

    values = frame[names].astype("float64").to_numpy(dtype=np.float64)
    complete = ~np.isnan(values).any(axis=1)
    dropped = int((~complete).sum())
    rows = np.flatnonzero(complete)
    if len(rows) == 0:
        fail(f"no row of the training frame has a value for every monitored feature ({', '.join(names)})")
    size = int(settings.get("sample_size") or len(rows))
    if len(rows) > size:
        def rank(i):
            return hashlib.sha256(f"{version}:{int(i)}".encode()).digest()

        rows = np.sort(np.array(sorted(rows, key=rank)[:size], dtype=np.int64))
    x_ref = np.ascontiguousarray(values[rows], dtype=np.float64)

    # config.toml: alibi-detect 0.11.4's keys, in its order (saving/saving.py write_config)
    scalars = {"name": name, "x_ref": "x_ref.npy", "preprocess_fn": "None", "input_shape": "None",
               "data_type": "None", "x_ref_preprocessed": False}
    if method == "mmd":
        scalars["backend"] = "tensorflow"
    scalars.update({"p_val": float(settings["p_value"]), "preprocess_at_init": True, "update_x_ref": "None"})
    tables = {}
    meta = {"version": "0.11.4", "version_warning": False}
    selection = [served.index(n) for n in names]
    if selection != list(range(len(served))):
        # the detector gets the whole served vector: select the monitored columns with
        # functools.partial(numpy.take, indices=..., axis=1), the way alibi saves a partial
        del scalars["preprocess_fn"]
        scalars["x_ref_preprocessed"] = True
    if method == "mmd":
        scalars.update({"kernel": "None", "sigma": "None", "configure_kernel_from_x_ref": True,
                        "n_permutations": 100, "batch_size_permutations": 1000000, "device": "None"})
        tables["meta"] = meta
        if "preprocess_fn" not in scalars:
            tables["preprocess_fn"] = {"src": "preprocess_fn/function.dill"}
    else:
        scalars["correction"] = settings.get("correction", "bonferroni")
        categorical = [i for i, n in enumerate(names) if dtypes.get(n) == "bool"]
        if method == "chi2" or (method == "tabular" and not categorical):
            scalars["categories_per_feature"] = "None"
        if method in ("ks", "tabular"):
            scalars["alternative"] = "two-sided"
        scalars["n_features"] = "None"
        tables["meta"] = meta
        if "preprocess_fn" not in scalars:
            tables["preprocess_fn"] = {"src": "preprocess_fn/function.dill"}
        if method == "tabular" and categorical:
            tables["categories_per_feature"] = {str(i): "None" for i in categorical}
    if "preprocess_fn" not in scalars:  # subtables come after every table of the level above
        tables["preprocess_fn.kwargs"] = {"indices": selection, "axis": 1}

    os.makedirs(detector.path, exist_ok=True)
    with open(os.path.join(detector.path, "config.toml"), "w", encoding="utf-8", newline="\n") as handle:
        handle.write(toml_document(scalars, tables))
    np.save(os.path.join(detector.path, "x_ref.npy"), x_ref, allow_pickle=False)
    if "preprocess_fn" not in scalars:
        # pickle protocol 4 of the global numpy.take: what dill 0.3 (alibi's serializer)
        # writes for it and what dill.load reads back, byte for byte
        os.makedirs(os.path.join(detector.path, "preprocess_fn"), exist_ok=True)
        with open(os.path.join(detector.path, "preprocess_fn", "function.dill"), "wb") as handle:
            handle.write(b"\x80\x04\x95\x12\x00\x00\x00\x00\x00\x00\x00\x8c\x05numpy\x94\x8c\x04take\x94\x93\x94.")
    model_settings = {"implementation": "mlserver_alibi_detect.AlibiDetectRuntime",
                      "parameters": {"uri": "./", "version": version}}
    with open(os.path.join(detector.path, "model-settings.json"), "w", encoding="utf-8", newline="\n") as handle:
        handle.write(json.dumps(model_settings, indent=2, sort_keys=True) + "\n")

    detector.metadata.update({"detector": name, "rows": len(x_ref), "features": names, "version": version})
    print(f"drift detector {name}: {len(x_ref)} reference rows of {', '.join(names)}"
          + (f" ({dropped} row(s) with missing values dropped)" if dropped else ""), flush=True)
    return json.dumps({"rows": len(x_ref), "features": names, "detector": name, "dropped_missing": dropped},
                      sort_keys=True)


class _Local:
    """What :func:`fit_drift_detector` uses of a KFP artifact: ``path`` and ``metadata``."""

    def __init__(self, path: str) -> None:
        self.path, self.metadata = path, {}


def write_detector(directory, data, policy: dict, version: str) -> dict:
    """:func:`fit_drift_detector` outside KFP: write the detector for ``policy`` (a dict, see
    there) into ``directory``.  ``data``: a pandas DataFrame, a path to a Parquet file, or a 2-D
    array whose columns are ``policy["features"]`` in order.  Returns the step's summary."""
    import json
    import os
    import tempfile

    if isinstance(data, (str, os.PathLike)):
        return json.loads(fit_drift_detector(_Local(os.fspath(data)), json.dumps(policy), version,
                                             _Local(os.fspath(directory))))
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data, columns=list(policy["features"]))
    with tempfile.TemporaryDirectory(prefix="mlspec-drift-") as work:
        path = os.path.join(work, "features.parquet")
        frame.to_parquet(path, index=False)
        return json.loads(fit_drift_detector(_Local(path), json.dumps(policy), version, _Local(os.fspath(directory))))
