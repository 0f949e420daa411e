"""``mlspec run --local`` of a spec whose features Feast serves needs a Python with Feast."""

import pytest


@pytest.fixture(autouse=True)
def _feast_python_for_local_runs(feast_env):
    return feast_env
