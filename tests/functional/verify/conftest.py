"""Fixtures for the `mlspec verify` tests: the compiled examples, a fake API server, kubeconfigs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fake_apiserver import FakeAPIServer, kubeconfig

ROOT = Path(__file__).resolve().parents[3]
MLSPEC = [sys.executable, "-m", "mlspec.cli"]


@pytest.fixture(scope="session")
def compiled(tmp_path_factory) -> Path:
    """``mlspec compile examples/`` into a fresh output root (read-only for the tests)."""
    out = tmp_path_factory.mktemp("verify") / "out"
    proc = subprocess.run([*MLSPEC, "compile", "examples/", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture
def apiserver():
    api = FakeAPIServer().start()
    yield api
    api.stop()


@pytest.fixture
def second_apiserver():
    api = FakeAPIServer(token="other-token").start()
    yield api
    api.stop()


@pytest.fixture
def make_kubeconfig(tmp_path: Path):
    """``make(contexts, current)`` → the path of a kubeconfig file (see :func:`fake_apiserver.kubeconfig`)."""
    def make(contexts: list[dict], current: str | None, name: str = "kubeconfig") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(kubeconfig(contexts, current)), encoding="utf-8")
        return path

    return make


@pytest.fixture
def kubeconfig_file(apiserver, make_kubeconfig) -> Path:
    """One context, ``fake``, current, pointing at :func:`apiserver`."""
    return make_kubeconfig([{"name": "fake", "server": apiserver.url, "token": apiserver.token}], "fake")


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def run(tmp_path: Path, monkeypatch):
    """``run(*args, cwd=..., env=..., process=False)``: the CLI with no kubeconfig of the machine's
    (HOME is empty, KUBECONFIG unset) and no GitHub or colour defaults.  In this process through
    click's runner (the Kubernetes client is imported once for all tests), or with ``process``
    in a subprocess of its own (the exact stdout and stderr a user sees)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def run_(*args: str, cwd: Path = ROOT, env: dict | None = None,
             process: bool = False) -> subprocess.CompletedProcess:
        unset = {"KUBECONFIG": None, "GITHUB_ACTIONS": None, "FORCE_COLOR": None}
        mine = {"HOME": str(home), "NO_COLOR": "1", "MLSPEC_LOG": str(tmp_path / "mlspec.log"), **(env or {})}
        if process:
            base = {k: v for k, v in os.environ.items() if k not in unset}
            return subprocess.run([*MLSPEC, *args], cwd=cwd, capture_output=True, text=True,
                                  env={**base, **mine}, timeout=120)
        from click.testing import CliRunner

        from mlspec.cli import main

        monkeypatch.chdir(cwd)
        result = CliRunner().invoke(main, list(args), env={**unset, **mine}, catch_exceptions=False)
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, "")

    return run_
