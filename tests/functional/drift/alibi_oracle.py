"""Runs in the alibi-detect 0.11.4 environment (``.venv-alibi``): ``python alibi_oracle.py
REQUEST.json`` prints one JSON answer.

For each case of the request (``{"name", "dir", "policy", "resave", "batches": {name: .npy}}``):

* loads the detector directory mlspec wrote (``dir``) with ``alibi_detect.saving.load_detector``;
* builds the same detector with alibi's own constructor from the policy and the written
  ``x_ref.npy`` and saves it with ``save_detector`` into ``resave``, for comparing the files;
* runs ``predict(batch, return_p_val=True, return_distance=True)`` of the *loaded* detector on
  every batch (full served vectors, as requests carry them); numpy's global seed is 0 before
  each call, for MMDDrift's permutation test.
"""

import functools
import hashlib
import json
import os
import sys
import warnings

import numpy as np
import toml

warnings.filterwarnings("ignore")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from alibi_detect.cd import ChiSquareDrift, KSDrift, MMDDrift, TabularDrift
from alibi_detect.saving import load_detector, save_detector


def plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def files(directory):
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, directory).replace(os.sep, "/")] = hashlib.sha256(handle.read()).hexdigest()
    return out


def alibi_own(policy, x_ref):
    names, served = policy["features"], policy.get("served") or policy["features"]
    selection = [served.index(n) for n in names]
    kwargs = {"p_val": policy["p_value"]}
    if selection != list(range(len(served))):
        kwargs.update(preprocess_fn=functools.partial(np.take, indices=selection, axis=1), x_ref_preprocessed=True)
    method = policy["method"]
    if method == "mmd":
        return MMDDrift(x_ref, backend="tensorflow", **kwargs)
    kwargs["correction"] = policy["correction"]
    if method == "ks":
        return KSDrift(x_ref, **kwargs)
    if method == "chi2":
        return ChiSquareDrift(x_ref, **kwargs)
    bools = {i: None for i, n in enumerate(names) if policy["dtypes"][n] == "bool"}
    return TabularDrift(x_ref, categories_per_feature=bools or None, **kwargs)


def main(request_path):
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    answer = {}
    for case in request["cases"]:
        detector = load_detector(case["dir"])
        x_ref = np.load(os.path.join(case["dir"], "x_ref.npy"))
        save_detector(alibi_own(case["policy"], x_ref), case["resave"])
        predictions = {}
        for name, path in case["batches"].items():
            np.random.seed(0)
            result = detector.predict(np.load(path), return_p_val=True, return_distance=True)["data"]
            predictions[name] = {key: plain(value) for key, value in result.items()}
        answer[case["name"]] = {
            "class": type(detector).__name__,
            "n_features": int(getattr(detector, "n_features", x_ref.shape[1])),
            "ours_config": toml.load(os.path.join(case["dir"], "config.toml")),
            "alibi_config": toml.load(os.path.join(case["resave"], "config.toml")),
            "ours_text": open(os.path.join(case["dir"], "config.toml"), encoding="utf-8").read(),
            "alibi_text": open(os.path.join(case["resave"], "config.toml"), encoding="utf-8").read(),
            "ours_files": files(case["dir"]),
            "alibi_files": files(case["resave"]),
            "predict": predictions,
        }
    json.dump(answer, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
