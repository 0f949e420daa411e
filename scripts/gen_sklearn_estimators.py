"""Regenerate mlspec/sklearn_estimators.json from the installed scikit-learn.

    .venv/bin/python scripts/gen_sklearn_estimators.py

tests/test_estimators.py fails when the committed table is stale.
"""

from mlspec.estimators import TABLE_PATH, build_table, dumps

if __name__ == "__main__":
    TABLE_PATH.write_text(dumps(build_table()), encoding="utf-8")
    print(f"wrote {TABLE_PATH}")
