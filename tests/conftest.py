"""Shared fixtures: the real data set, free ports, a real MLflow server, a trained model.

Servers and models are session-scoped: started or trained once per test run.
READMIT_STRICT=1 (set by .ci/run) turns every "tool or data missing" skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STRICT = os.environ.get("READMIT_STRICT") == "1"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dataset_diabetes.zip"


def require(condition: bool, reason: str) -> None:
    """Skip when a laptop lacks a tool or the data; under READMIT_STRICT=1, fail instead."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"READMIT_STRICT=1: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="session")
def data_path() -> Path:
    path = Path(os.environ.get("READMIT_DATA") or DEFAULT_DATA)
    require(path.is_file(), f"the UCI data set is not at {path} (set READMIT_DATA)")
    return path


@pytest.fixture(scope="session")
def encounters(data_path: Path):
    from readmit_core.data import load_encounters

    return load_encounters(data_path)


def run_trainer(data: Path, tracking_uri: str, *args: str) -> dict[str, Any]:
    """Run the real ``readmit-train`` CLI; returns the JSON of its last stdout line."""
    out = subprocess.run(
        [
            str(VENV_BIN / "readmit-train"),
            "--data",
            str(data),
            "--tracking-uri",
            tracking_uri,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` (sqlite + proxied local artifacts) on a free loopback port."""
    mlflow_bin = VENV_BIN / "mlflow"
    require(mlflow_bin.exists() or shutil.which("mlflow") is not None, "mlflow is not installed")
    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination",
            str(home / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=120, proc=proc)
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="session")
def sqlite_registry(data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model trained once on a subsample and registered in a local sqlite store."""
    db = tmp_path_factory.mktemp("sqlite-registry") / "mlflow.db"
    uri = f"sqlite:///{db}"
    result = run_trainer(data_path, uri, "--sample", "6000", "--seed", "7")
    return {"uri": uri, "result": result}
