"""The real MLServer for the serving-runtime tests, in a virtual environment of its own.

Why a second environment: ``pip install --dry-run mlserver mlserver-sklearn`` into ``.venv``
resolves today, but MLServer 1.7.1 supports only Python < 3.13 (mlspec: >= 3.10), pulls about
45 packages (gevent, uvloop, aiokafka, opentelemetry, tritonclient, ...) that nothing else in
the test suite wants in its process, and in production the model crosses exactly this
boundary: it is trained in the pipeline's environment and loaded by the server's.  So the
session fixture :func:`mlserver_bin` creates ``<checkout>/.venv-mlserver`` once (gitignored)
with the pinned MLServer and the *same* scikit-learn, NumPy, SciPy and joblib versions as the
running interpreter (a joblib file is only guaranteed to load with the versions that wrote
it), and reuses it while those versions stay the same.  Only the package registry is needed.

``MLSPEC_MLSERVER_VENV`` points the fixture at another location.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("MLSPEC_MLSERVER_VENV", ROOT / ".venv-mlserver"))

#: The runtime under test (MLServer and its scikit-learn runtime are released together), with
#: uvloop at the version of MLServer 1.7.1's poetry.lock (what its images ship): with uvloop
#: 0.22, which pip picks otherwise, every inference worker dies at start ("There is no current
#: event loop in thread 'MainThread'" in ``mlserver/parallel/worker.py``) and the model never loads.
MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")
#: Packages whose versions must equal the training environment's for the joblib file to load.
SAME_AS_TRAINING = ("scikit-learn", "numpy", "scipy", "joblib")
#: MLServer 1.7.1's ``Requires-Python``.
SUPPORTED_PYTHON = ((3, 9), (3, 12))
MARKER = "mlspec-requirements.txt"  # written last: a venv without it is incomplete


def requirements() -> list[str]:
    return list(MLSERVER_PINS) + [f"{name}=={importlib.metadata.version(name)}" for name in SAME_AS_TRAINING]


def _interpreter() -> str:
    """This interpreter if MLServer supports it, else the first supported ``python3.X`` on PATH."""
    low, high = SUPPORTED_PYTHON
    if low <= sys.version_info[:2] <= high:
        return sys.executable
    for minor in range(high[1], low[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    pytest.fail(f"MLServer {MLSERVER_PINS[0].split('==')[1]} needs Python {low[0]}.{low[1]}-{high[0]}.{high[1]}; "
                f"this is {sys.version.split()[0]} and no python3.{low[1]}..python3.{high[1]} is on PATH")


def _run(args: list[str], timeout: float) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="session")
def mlserver_bin() -> Path:
    """The ``bin/`` folder of a virtual environment with the pinned MLServer installed."""
    wanted = "\n".join(requirements()) + "\n"
    marker = VENV / MARKER
    lock_name = "mlspec-venv-mlserver-" + hashlib.sha256(str(VENV.resolve()).encode()).hexdigest()[:16] + ".lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:  # one creator when sessions overlap
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.is_file() and marker.read_text() == wanted):
            if VENV.exists():
                shutil.rmtree(VENV)
            _run([_interpreter(), "-m", "venv", str(VENV)], timeout=300)
            _run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                  *requirements()], timeout=1200)
            marker.write_text(wanted)
    assert (VENV / "bin" / "mlserver").is_file(), f"{VENV} has no bin/mlserver"
    return VENV / "bin"


@pytest.fixture(autouse=True)
def _feast_python_for_local_runs(feast_env):
    """The churn model is trained with ``mlspec run --local``, whose features Feast serves."""
    return feast_env
