"""The committed scikit-learn estimator table (mlspec/sklearn_estimators.json) is current."""

from __future__ import annotations

import pytest

from mlspec import estimators


def test_committed_table_is_current() -> None:
    pytest.importorskip("sklearn")
    committed = estimators.TABLE_PATH.read_text(encoding="utf-8")
    assert committed == estimators.dumps(estimators.build_table()), \
        f"{estimators.TABLE_PATH.name} is stale; regenerate with: {estimators.REGEN}"


def test_table_knows_kinds_parameters_and_predict_proba() -> None:
    logistic = estimators.lookup("sklearn.linear_model.LogisticRegression")
    assert logistic["kind"] == "classifier" and logistic["predict_proba"] and "C" in logistic["parameters"]
    ridge = estimators.lookup("sklearn.linear_model.Ridge")
    assert ridge["kind"] == "regressor" and not ridge["predict_proba"] and "alpha" in ridge["parameters"]
    assert estimators.lookup("sklearn.svm.LinearSVC")["predict_proba"] is False
    assert estimators.lookup("sklearn.preprocessing.StandardScaler")["kind"] == "other"
    # the defining module is an alias of the public path
    assert estimators.lookup("sklearn.ensemble._forest.RandomForestClassifier") == \
        estimators.lookup("sklearn.ensemble.RandomForestClassifier")
    assert estimators.lookup("sklearn.ensemble.RandomForestClasifier") is None
