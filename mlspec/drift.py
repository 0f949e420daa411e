"""The drift policy offline: which methods fit which features, and ``mlspec drift``.

``mlspec drift SPEC --reference A --current B`` runs the spec's ``drift:`` policy on two data
files with the statistics of the detector the pipeline deploys (alibi-detect 0.11.4,
``alibi_detect/cd/{ks,chisquare,tabular,mmd}.py`` and ``cd/base.py``), so a batch job or a CI
step sees the decision the served detector would make on the same rows:

* ``ks`` (KSDrift): one two-sample Kolmogorov-Smirnov test per feature, scipy's ``ks_2samp``
  (two-sided, asymptotic distribution).
* ``chi2`` (ChiSquareDrift): one Chi-squared test of independence per feature on the
  contingency table of category counts (scipy's ``chi2_contingency``, with Yates' correction
  when the table is 2x2); the categories are those of the reference plus those of the batch.
* ``tabular`` (TabularDrift): Chi-squared for bool features, KS for the others.
* The p-values are rounded to float32 and compared with the threshold as alibi does:
  ``bonferroni`` -- drift when a p-value is below ``p_value / n_features``; ``fdr`` -- the
  Benjamini-Hochberg procedure at q = ``p_value`` (alibi's ``utils.statstest.fdr``).
* ``mmd`` (MMDDrift, tensorflow backend): alibi's permutation test -- MMD² with the Gaussian
  RBF kernel whose bandwidth is the median heuristic on the reference, computed in float32 as
  alibi's Keras kernel computes it; 100 permutations of the pooled kernel matrix; p-value =
  the share of permuted MMD² >= the observed one.  The permutations come from
  ``numpy.random.RandomState(0)``, the generator alibi draws from (``np.random.permutation``),
  so the p-value equals alibi's when alibi's global numpy seed is 0; MMD² agrees to float32
  rounding (about 1e-7: TensorFlow sums in another order), not to 1e-9.  The served detector
  is not seeded: its p-value varies between runs on the same rows by the permutation test's
  own noise (about +-0.02 near 0.05).

The whole current file is one batch (the served detector tests every ``batch_size`` rows).
``--reference`` is a CSV or Parquet file whose rows are the reference, or a detector directory
the pipeline wrote (its ``x_ref.npy``: exactly the served detector's reference).  Rows with a
missing value in a monitored feature are dropped and counted, as the pipeline drops them.

:func:`method_problem` (in :mod:`mlspec.drift_methods`, which validation imports alone) is what
validation asks.  This module imports nothing heavy at import time either (numpy, scipy and
pandas are the ``drift`` extra, imported when a check runs).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .drift_methods import INTEGER_DTYPES, NUMERIC_DTYPES, method_problem  # noqa: F401 - re-exported
from .errors import UNLOCATED, SpecError, SpecErrors

#: The seed of ``mlspec drift``'s MMD permutation test (numpy's legacy RandomState).
MMD_SEED = 0
#: MMDDrift's permutations (alibi's default, which the written config.toml keeps).
MMD_PERMUTATIONS = 100
EXTRA_HINT = "pip install 'mlspec[drift]' (scipy, pandas, pyarrow)"


def feature_dtypes(spec) -> dict[str, str]:
    """Spec dtype of every feature the training feature service serves, in the served order
    (:meth:`mlspec.models.Spec.served_dtypes`)."""
    return spec.served_dtypes(spec.training.feature_service)


def policy(spec) -> dict:
    """The policy :func:`mlspec.generators.drift_components.fit_drift_detector` takes (as
    JSON): the drift block with the monitored features in the served order and their dtypes,
    and every served feature in order (``served``: the vector a request carries, which the
    detector selects the monitored columns from)."""
    drift = spec.drift
    dtypes = feature_dtypes(spec)
    features = [f for f in dtypes if f in drift.features]
    return {"method": drift.method, "detector": drift.detector, "features": features, "served": list(dtypes),
            "dtypes": {f: dtypes[f] for f in features}, "p_value": drift.p_value, "correction": drift.correction,
            "batch_size": drift.batch_size, "sample_size": drift.reference.sample_size}


@dataclass(frozen=True)
class Test:
    """One test: a feature's univariate test, or the MMD test of all features (``feature`` None)."""

    feature: str | None
    test: str  # "KS", "Chi2", "MMD"
    statistic: float
    p_value: float
    threshold: float
    drift: bool

    def to_dict(self) -> dict:
        return {"feature": self.feature, "test": self.test, "statistic": self.statistic, "p_value": self.p_value,
                "threshold": self.threshold, "drift": self.drift}


@dataclass(frozen=True)
class Sample:
    path: str
    rows: int
    dropped_missing: int

    def to_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "dropped_missing": self.dropped_missing}


@dataclass(frozen=True)
class Result:
    """What :func:`check` found; ``threshold`` is alibi's ``data.threshold`` (for ``fdr``
    without drift: the Benjamini-Hochberg critical values by rank, a list, as alibi returns)."""

    spec: str
    env: str | None
    method: str
    detector: str
    correction: str | None
    p_value: float
    features: tuple[str, ...]
    tests: tuple[Test, ...]
    is_drift: bool
    threshold: Any
    reference: Sample
    current: Sample
    permutations: dict | None = None  # mmd: {"n", "seed", "distance_threshold"}

    def to_dict(self) -> dict:
        return {"spec": self.spec, "env": self.env, "method": self.method, "detector": self.detector,
                "correction": self.correction, "p_value": self.p_value, "features": list(self.features),
                "is_drift": self.is_drift, "threshold": self.threshold, "tests": [t.to_dict() for t in self.tests],
                "reference": self.reference.to_dict(), "current": self.current.to_dict(),
                "permutations": self.permutations}


# ------------------------------------------------------------------------------------------
# the check
# ------------------------------------------------------------------------------------------


def _locate(doc, path: tuple, message: str, hint: str | None = None, code: str = "drift") -> SpecError:
    if doc is None:
        return SpecError(message, UNLOCATED, hint=hint, code=code, path=path)
    loc = doc.positions.value(path)
    return SpecError(message, loc.file, loc.line, loc.col, hint=hint, code=code, path=path)


def _imports():
    try:
        import numpy as np
        import pandas as pd
        from scipy import stats
    except ImportError as exc:
        raise SpecError(f"mlspec drift needs {exc.name or 'scipy and pandas'}, which is not installed",
                        hint=EXTRA_HINT, code="missing-dependency") from exc
    return np, pd, stats


def _display(path) -> str:
    from .loader import display_path

    return display_path(Path(path))


def _read(path, role: str, names: list[str], np, pd):
    """The monitored columns of a data file (or a detector directory's x_ref.npy) as a float64
    array, rows with a missing value dropped; and the number dropped."""
    path = Path(path)
    shown = _display(path)
    if path.is_dir():
        ref = path / "x_ref.npy"
        if role != "reference" or not ref.is_file():
            raise SpecError(f"{role} {shown} is a directory" + ("" if role != "reference" else " without x_ref.npy"),
                            shown, hint="give a CSV or Parquet file" + (", or a detector directory the pipeline "
                                                                       "wrote" if role == "reference" else ""),
                            code="usage")
        values = np.load(ref, allow_pickle=False)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise SpecError(f"{_display(ref)} holds an array of shape {values.shape}, not (rows, {len(names)}) for "
                            f"the monitored features {', '.join(names)}", _display(ref),
                            hint="was the detector written for another drift policy?", code="drift")
        values = values.astype(np.float64)
    else:
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                frame = pd.read_csv(path)
            elif suffix in (".parquet", ".pq"):
                frame = pd.read_parquet(path)
            else:
                raise SpecError(f"{role} file {shown} is neither CSV (.csv) nor Parquet (.parquet)", shown,
                                hint="name the file by its format", code="usage")
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"cannot read {role} file {shown}: {type(exc).__name__}: {exc}", shown,
                            code="data-file") from exc
        missing = [n for n in names if n not in frame.columns]
        if missing:
            found = ", ".join(map(str, frame.columns[:20])) + (", ..." if len(frame.columns) > 20 else "")
            raise SpecError(f"{role} file {shown} has no column {', '.join(missing)} (a monitored drift feature)",
                            shown, 1, 1, hint=f"its columns: {found}", code="data-file")
        columns = []
        for name in names:
            column = frame[name]
            if column.dtype == object or str(column.dtype) in ("string", "str"):
                try:
                    column = pd.to_numeric(column, errors="raise")
                except (TypeError, ValueError):
                    raise SpecError(f"column {name} of {role} file {shown} is not numeric ({column.dtype})", shown,
                                    hint="drift tests compare numbers, as the model is served them",
                                    code="data-file") from None
            columns.append(column.astype("float64").to_numpy(dtype=np.float64))
        values = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    complete = ~np.isnan(values).any(axis=1)
    values = values[complete]
    if len(values) == 0:
        raise SpecError(f"{role} {shown} has no row with a value for every monitored feature ({', '.join(names)})",
                        shown, code="data-file")
    return np.ascontiguousarray(values), int((~complete).sum())


def _univariate(x_ref, x, categorical: list[int], np, stats):
    """alibi's BaseUnivariateDrift.feature_score for KSDrift / ChiSquareDrift / TabularDrift:
    float32 p-values and statistics, categories inferred from x_ref (categories_per_feature
    "None") united with the batch's."""
    n_features = x_ref.shape[1]
    p_val = np.zeros(n_features, dtype=np.float32)
    dist = np.zeros_like(p_val)
    for f in range(n_features):
        if f in categorical:
            ref_categories = list(np.unique(x_ref[:, f]))
            all_categories = list(set().union(ref_categories, list(np.unique(x[:, f]))))
            table = np.vstack(([(x_ref[:, f] == v).sum() for v in all_categories],
                               [(x[:, f] == v).sum() for v in all_categories]))
            dist[f], p_val[f], _, _ = stats.chi2_contingency(table)
        else:
            dist[f], p_val[f] = stats.ks_2samp(x_ref[:, f], x[:, f], alternative="two-sided", method="asymp")
    return p_val, dist


def _fdr(p_val, q_val: float, np):
    """alibi_detect.utils.statstest.fdr: (drift, threshold) plus the features it rejects."""
    n = p_val.shape[0]
    i = np.arange(n) + 1
    p_sorted = np.sort(p_val)
    q_threshold = q_val * i / n
    below = p_sorted < q_threshold
    where = np.where(below)[0]
    if len(where) == 0:
        return 0, q_threshold, np.zeros(n, dtype=bool)
    cutoff = p_sorted[where.max()]
    return int(below.any()), q_threshold[where.max()], p_val <= cutoff


def _mmd(x_ref, x, p_value: float, np):
    """alibi's MMDDriftTF.score with its default GaussianRBF kernel, in float32 as Keras runs it
    (the kernel is a Keras model, which casts its inputs to float32): squared distances clipped
    to [1e-30, 1e30], sigma by the median heuristic on the reference (kept as a float32 log),
    MMD² from the pooled kernel matrix with a zero diagonal; permutations from
    ``RandomState(MMD_SEED)``, drawn as alibi draws them (``np.random.permutation``)."""
    f32 = np.float32
    x_ref, x = x_ref.astype(f32), x.astype(f32)

    def sq_dist(a, b):
        d = (a ** 2).sum(-1, keepdims=True) + (b ** 2).sum(-1, keepdims=True).T - f32(2.0) * (a @ b.T)
        return np.clip(d, f32(1e-30), f32(1e30)).astype(f32)

    ref_dist = sq_dist(x_ref, x_ref)
    n = x_ref.shape[0]
    n_median = n + (ref_dist.size - n) // 2 - 1
    sigma = (f32(0.5) * np.sort(ref_dist.reshape(-1))[n_median]) ** f32(0.5)
    sigma = np.exp(np.log(sigma, dtype=f32), dtype=f32)  # alibi keeps log(sigma) in a float32 Variable
    gamma = f32(1.0) / (f32(2.0) * sigma ** 2)

    def kernel(a, b):
        return np.exp(-(gamma * sq_dist(a, b)), dtype=f32)

    k_xy = kernel(x_ref, x)
    kernel_mat = np.block([[kernel(x_ref, x_ref), k_xy], [k_xy.T, kernel(x, x)]]).astype(f32)
    np.fill_diagonal(kernel_mat, f32(0.0))
    m = x.shape[0]
    c_xx, c_yy = f32(1 / (n * (n - 1))), f32(1 / (m * (m - 1)))

    def mmd2(mat):
        k_xx, k_yy, k_xy_ = mat[:-m, :-m], mat[-m:, -m:], mat[-m:, :-m]
        return c_xx * k_xx.sum(dtype=f32) + c_yy * k_yy.sum(dtype=f32) - f32(2.0) * k_xy_.mean(dtype=f32)

    observed = mmd2(kernel_mat)
    rng = np.random.RandomState(MMD_SEED)
    permuted = []
    for _ in range(MMD_PERMUTATIONS):
        idx = rng.permutation(kernel_mat.shape[0])
        permuted.append(mmd2(kernel_mat[idx][:, idx]))
    permuted = np.array(permuted, dtype=f32)
    p_val = float((observed <= permuted).mean())
    distance_threshold = float(np.sort(permuted)[::-1][int(p_value * len(permuted))])
    return p_val, float(observed), distance_threshold


def check(spec, env, reference_path, current_path, doc=None) -> Result:
    """Run ``spec``'s drift policy on two files (see the module docstring); ``env`` (an
    Environment or None) only names the result.  ``doc`` (the resolved document) locates
    problems in the spec.  Raises :class:`SpecError` for a spec without drift, a monitored
    feature a method cannot test, and a file that lacks a monitored column."""
    drift = spec.drift
    if drift is None:
        raise _locate(doc, (), f"spec '{spec.name}' has no drift policy" + (f" in environment '{env.name}'" if env else ""),
                      hint="add a drift: block (see docs/spec.md), or choose the environment with --env",
                      code="no-drift")
    rules = policy(spec)
    names, dtypes = rules["features"], rules["dtypes"]
    problems = []
    for j, feature in enumerate(drift.features):
        if feature not in dtypes:
            problems.append(_locate(doc, ("drift", "features", j),
                                    f"drift feature '{feature}' is not served by feature service "
                                    f"'{spec.training.feature_service}'"))
            continue
        why = method_problem(drift.method, dtypes[feature])
        if why:
            problems.append(_locate(doc, ("drift", "features", j),
                                    f"drift method {drift.method} cannot test feature '{feature}' "
                                    f"({dtypes[feature]}): {why}", code="drift-dtype"))
    if problems:
        raise SpecErrors(problems)
    np, pd, stats = _imports()
    x_ref, ref_dropped = _read(reference_path, "reference", names, np, pd)
    x, cur_dropped = _read(current_path, "current", names, np, pd)
    samples = (Sample(_display(reference_path), len(x_ref), ref_dropped),
               Sample(_display(current_path), len(x), cur_dropped))
    common = dict(spec=spec.name, env=env.name if env is not None else None, method=drift.method,
                  detector=drift.detector, p_value=drift.p_value, features=tuple(names),
                  reference=samples[0], current=samples[1])
    if drift.method == "mmd":
        if len(x_ref) < 2 or len(x) < 2:
            raise SpecError("the MMD test needs at least 2 rows in each file", samples[len(x_ref) >= 2].path,
                            code="data-file")
        p_val, distance, distance_threshold = _mmd(x_ref, x, drift.p_value, np)
        drifted = bool(p_val < drift.p_value)
        test = Test(None, "MMD", distance, p_val, drift.p_value, drifted)
        return Result(correction=None, tests=(test,), is_drift=drifted, threshold=drift.p_value,
                      permutations={"n": MMD_PERMUTATIONS, "seed": MMD_SEED,
                                    "distance_threshold": distance_threshold}, **common)
    if drift.method == "chi2":
        categorical = list(range(len(names)))
    elif drift.method == "tabular":
        categorical = [i for i, n in enumerate(names) if dtypes[n] == "bool"]
    else:
        categorical = []
    p_vals, dist = _univariate(x_ref, x, categorical, np, stats)
    if drift.correction == "bonferroni":
        threshold = drift.p_value / len(names)
        rejected = p_vals < threshold
        is_drift = int(rejected.any())
        per_feature = [threshold] * len(names)
        overall: Any = threshold
    else:
        is_drift, overall, rejected = _fdr(p_vals, drift.p_value, np)
        ranks = np.argsort(p_vals, kind="stable")
        critical = drift.p_value * (np.arange(len(names)) + 1) / len(names)
        per_feature = [0.0] * len(names)
        for rank, f in enumerate(ranks):
            per_feature[int(f)] = float(critical[rank])
        overall = overall.tolist() if hasattr(overall, "tolist") else float(overall)
    tests = tuple(Test(name, "Chi2" if i in categorical else "KS", float(dist[i]), float(p_vals[i]),
                       float(per_feature[i]), bool(rejected[i])) for i, name in enumerate(names))
    return Result(correction=drift.correction, tests=tests, is_drift=bool(is_drift), threshold=overall, **common)


# ------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:.6g}"


def text(result: Result, out: IO[str]) -> None:
    where = f" (environment {result.env})" if result.env else ""
    how = f"{result.correction} correction, " if result.correction else ""
    out.write(f"drift check of {result.spec}{where}: {result.method} ({result.detector}), {how}"
              f"p-value {_number(result.p_value)}\n")
    for role, sample in (("reference", result.reference), ("current", result.current)):
        extra = f", {sample.dropped_missing} with missing values dropped" if sample.dropped_missing else ""
        out.write(f"{role}: {sample.path} ({sample.rows} rows{extra})\n")
    header = ("feature", "test", "statistic", "p-value", "threshold", "drift")
    rows = [(t.feature if t.feature is not None else "(all, jointly)", t.test, _number(t.statistic),
             _number(t.p_value), _number(t.threshold), "yes" if t.drift else "no") for t in result.tests]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    if result.permutations:
        out.write(f"permutation test: {result.permutations['n']} permutations, seed {result.permutations['seed']}, "
                  f"MMD² above {_number(result.permutations['distance_threshold'])} is significant\n")
    drifted = [t for t in result.tests if t.drift]
    if result.is_drift:
        which = f" ({len(drifted)} of {len(result.tests)} features)" if result.method != "mmd" else ""
        out.write(f"result: drift{which}\n")
    else:
        out.write("result: no drift\n")


def run(spec_path: Path, env_name: str | None, env_dir: Path | None, reference: Path, current: Path,
        fmt: str = "text", out: IO[str] | None = None) -> int:
    """`mlspec drift`: resolve the spec (for ``env_name``; without it, for the first
    environment by name, as ``mlspec run`` does, or as written when there is none), run
    :func:`check` and print the result.  Exit 0 no drift, 1 drift; problems raise for
    :func:`mlspec.commands.guarded` to report (exit 1)."""
    from .loader import display_path
    from .paths import find_environments_dir, list_environments
    from .project import discover, resolve

    out = out or sys.stdout
    specs = discover([spec_path])
    if len(specs) != 1:
        raise SpecError(f"{len(specs)} specs under {display_path(spec_path)}; mlspec drift checks one",
                        display_path(spec_path), 1, 1, hint="pass one mlops.yaml", code="usage")
    if env_name is None:
        known = list_environments(env_dir if env_dir is not None else find_environments_dir(specs[0]))
        if known:
            env_name = known[0]
            if len(known) > 1 and fmt == "text":
                out.write(f"environment: {env_name} (the first of {', '.join(known)}; choose one with --env)\n")
    result = resolve(specs[0], [env_name] if env_name else [], env_dir)
    if result.errors:
        raise SpecErrors(result.errors)
    resolved = result.resolved[0]
    found = check(resolved.spec, resolved.env, reference, current, doc=resolved.doc)
    if fmt == "json":
        out.write(json.dumps(found.to_dict(), indent=2, sort_keys=True) + "\n")
    else:
        text(found, out)
    return 1 if found.is_drift else 0
