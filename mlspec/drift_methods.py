"""Which drift methods fit which feature dtypes: what ``validate`` asks of a drift policy.

Apart from :mod:`mlspec.drift` (``mlspec drift``, its statistics and result records), so
that validation imports only this.
"""

from __future__ import annotations

INTEGER_DTYPES = ("int32", "int64")
NUMERIC_DTYPES = INTEGER_DTYPES + ("float32", "float64")


def method_problem(method: str, dtype: str) -> str | None:
    """Why drift ``method`` cannot watch a feature of spec dtype ``dtype``; None when it can.

    Served features reach the detector as JSON numbers, so a string, bytes or timestamp
    feature has nothing the tests can compare.  ``ks`` assumes a continuous distribution: on
    a bool (two values) its p-values are meaningless, so bools go to ``chi2`` or ``tabular``
    (which tests them with Chi-squared).  ``chi2`` counts categories: integer codes or bools,
    not floats.  ``tabular`` and ``mmd`` take every numeric dtype and bool."""
    if dtype in ("string", "bytes"):
        return f"a {dtype} feature is not served as a number, and Alibi Detect's tests compare numbers"
    if dtype == "unix_timestamp":
        return "a unix_timestamp feature is not served to the model as a number the tests can compare"
    if dtype not in NUMERIC_DTYPES + ("bool",):
        return f"unknown dtype {dtype}"
    if method == "ks" and dtype == "bool":
        return ("ks (Kolmogorov-Smirnov) assumes a continuous distribution; a bool feature takes two values "
                "-- use tabular (Chi-squared for bools, KS for the rest) or chi2")
    if method == "chi2" and dtype not in INTEGER_DTYPES + ("bool",):
        return (f"chi2 counts categories, and a {dtype} feature has none -- chi2 takes integer codes or bools; "
                "use ks or tabular for numbers")
    if method not in ("ks", "chi2", "tabular", "mmd"):
        return f"unknown drift method {method}"
    return None
