"""Real Alibi Detect for the drift tests, in a virtual environment of its own.

alibi-detect 0.11.4 (2023-07-07, the last Apache-2.0 release) needs numpy<2, pydantic<2 and,
for MMDDrift's tensorflow backend, tensorflow<2.13 -- none of which can share ``.venv``.  The
session fixture :func:`alibi_python` creates ``<checkout>/.venv-alibi`` once (gitignore it like
``.venv-feast``; ``$MLSPEC_ALIBI_VENV`` moves it) with the pins below from the package
registry (about two minutes, most of it tensorflow-cpu), and reuses it afterwards.  Every
alibi call runs there in a subprocess (``alibi_oracle.py``); this process never imports it.

TensorFlow, not PyTorch: the detectors mlspec writes name ``backend = "tensorflow"`` for
MMDDrift, the backend the alibi-detect-server image and MLServer's alibi-detect runtime
install (``alibi-detect[tensorflow]``), so the oracle loads exactly what is deployed.
MLServer 1.3.5 with its alibi-detect runtime (what Seldon Core 2.6 runs drift detectors with)
serves a written directory as Seldon Core 2 would (``test_drift_mlserver.py``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pinned_venv import pinned_venv

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("MLSPEC_ALIBI_VENV", ROOT / ".venv-alibi"))
ALIBI_VERSION = "0.11.4"
TENSORFLOW_VERSION = "2.12.1"
MLSERVER_VERSION = "1.3.5"
#: alibi-detect 0.11.4 with the versions of its dependencies that install on Python 3.11:
#: tensorflow<2.13 (alibi's extra) wants numpy<1.24; numba<0.58 (alibi) supports that numpy.
PINS = [f"alibi-detect=={ALIBI_VERSION}", "numba==0.57.1", "numpy==1.23.5", "scipy==1.11.4",
        "scikit-learn==1.3.2", "pandas==2.0.3", f"tensorflow-cpu=={TENSORFLOW_VERSION}",
        "tensorflow-probability==0.19.0",
        # Seldon Core 2's drift runtime of the same era (Apache-2.0; pydantic<2 like alibi 0.11.4)
        f"mlserver=={MLSERVER_VERSION}", f"mlserver-alibi-detect=={MLSERVER_VERSION}"]


def _ready(python: Path) -> bool:
    if not python.exists():
        return False
    probe = ("import sys; from importlib.metadata import version; "  # no tensorflow import: seconds
             f"sys.exit(not (version('alibi-detect') == {ALIBI_VERSION!r} "
             f"and version('tensorflow-cpu') == {TENSORFLOW_VERSION!r} and version('numpy') == '1.23.5' "
             f"and version('mlserver-alibi-detect') == {MLSERVER_VERSION!r}))")
    return subprocess.run([str(python), "-c", probe], capture_output=True, timeout=300).returncode == 0


@pytest.fixture(scope="session")
def alibi_python() -> Path:
    return pinned_venv(VENV, PINS, _ready, f"alibi-detect {ALIBI_VERSION} with tensorflow {TENSORFLOW_VERSION}")
