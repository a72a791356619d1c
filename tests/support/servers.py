"""Real processes for the tests: start, wait until ready, stop; and a switchable TCP proxy."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from readmit_trainer.registry_server import local_command
from support.project import ROOT, VENV_BIN, require

# The api runs from its own venv, installed as its image installs it (mlflow-skinny only).
API_BIN = ROOT / ".venv-api" / "bin" / "readmit-api"
DEX_BIN = ROOT / ".tools" / "bin" / "dex"  # `make tools` builds it
# Dex's one clinician and the ui's client there (tests only).
DEX_USER, DEX_PASSWORD = "ada@hospital.example", "dex-" + "d" * 16
DEX_CLIENT, DEX_SECRET = "readmit-ui", "client-" + "s" * 24


def dex_config(issuer: str, listen: str, redirect_uris: list[str]) -> dict[str, Any]:
    """A real OpenID provider's config: Dex with one static user, in memory."""
    import bcrypt

    # Dex refuses bcrypt hashes under cost 10 ("does not meet minimum cost requirement").
    hashed = bcrypt.hashpw(DEX_PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    return {
        "issuer": issuer,
        "storage": {"type": "memory"},
        "web": {"http": listen},
        "logger": {"level": "info", "format": "json"},
        "oauth2": {"skipApprovalScreen": True},
        "staticClients": [
            {
                "id": DEX_CLIENT,
                "secret": DEX_SECRET,
                "name": "readmit",
                "redirectURIs": redirect_uris,
            },
        ],
        "enablePasswordDB": True,
        "staticPasswords": [
            {
                "email": DEX_USER,
                "hash": hashed,
                "username": "ada",
                "userID": "7f3c2a5e-8d41-4c1e-9b0a-2f6d5e4c3b21",
            },
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen[Any] | None = None, status: int = 200
) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == status:
                return response
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class ApiProcess:
    """A real ``readmit-api`` process on a free loopback port."""

    def __init__(
        self,
        log_path: Path,
        preexec_fn: Callable[[], None] | None = None,
        audit_path: Path | None = None,
        **env: str,
    ) -> None:
        """``audit_path``: stdout (the audit records) there, stderr (the logs) to ``log_path``;
        else both to ``log_path``."""
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.log_path = log_path
        self._log = log_path.open("w")
        self._audit = audit_path.open("w") if audit_path else None
        self.proc = subprocess.Popen(
            [str(API_BIN), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._audit or self._log,
            stderr=self._log if self._audit else subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
            env={
                **os.environ,
                "READMIT_RELOAD_INTERVAL_S": "1",
                "READMIT_LOAD_RETRY_MAX_S": "1",
                "READMIT_METRICS_PORT": str(self.metrics_port),
                **env,
            },
        )

    def wait_healthy(self, timeout: float = 60) -> None:
        wait_http(f"{self.url}/health", timeout, self.proc)

    def wait_ready(self, timeout: float = 90) -> None:
        wait_http(f"{self.url}/ready", timeout, self.proc)

    def metric(self, metric: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in requests.get(self.metrics_url, timeout=5).text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            if key == (f"{metric}{{{want}}}" if want else metric):
                return float(value)
        return 0.0

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def close(self) -> None:
        stop(self.proc)
        self._log.close()
        if self._audit:
            self._audit.close()


class TcpProxy:
    """Forwards a loopback port to a target; ``down()`` cuts the open connections and refuses
    new ones (a registry gone), ``up()`` serves."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            # shutdown() first: close() alone leaves a blocked accept() listening
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        for conn in list(self._open):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                self._open.discard(s)


class DexProcess:
    """Dex serving ``dex_config`` on a free loopback port."""

    def __init__(self, tmp: Path, redirect_uris: list[str]) -> None:
        import yaml

        port = free_port()
        self.issuer = f"http://127.0.0.1:{port}/dex"
        config = tmp / "dex.yaml"
        config.write_text(
            yaml.safe_dump(dex_config(self.issuer, f"127.0.0.1:{port}", redirect_uris))
        )
        self.log_path = tmp / "dex.log"
        self.proc = subprocess.Popen(
            [str(DEX_BIN), "serve", str(config)],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{self.issuer}/.well-known/openid-configuration", 30, self.proc)

    def close(self) -> None:
        stop(self.proc)


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


def start_mlflow(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``mlflow server`` on ``store`` (sqlite + proxied local artifacts) on a free
    loopback port, healthy; its output in ``store/server.log``."""
    mlflow_bin = VENV_BIN / "mlflow"
    require(mlflow_bin.exists() or shutil.which("mlflow") is not None, "mlflow is not installed")
    port = free_port()
    with (store / "server.log").open("a") as log:
        proc = subprocess.Popen(
            local_command(mlflow_bin, store / "mlflow.db", store / "artifacts", port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=120, proc=proc)
    except BaseException:
        stop(proc)
        raise
    return proc, url


API_MODEL = "api-test"  # the registered model the session's api serves


def start_api(
    log_path: Path, preexec_fn: Any = None, audit_path: Path | None = None, **env: str
) -> ApiProcess:
    require(API_BIN.exists(), f"{API_BIN} is missing: run `make install`")
    return ApiProcess(log_path, preexec_fn, audit_path, **env)


@contextlib.contextmanager
def ready_api(log_path: Path, audit_path: Path | None = None, **env: str) -> Iterator[ApiProcess]:
    """An api started with ``env`` and Ready (its model loaded); closed after."""
    proc = start_api(log_path, audit_path=audit_path, **env)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.close()


def use_mlflow(uri: str) -> None:
    """Point this process's MLflow client (tracking and registry: both are global) at ``uri``."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def client(uri: str):
    """MLflow's client of the registry at ``uri``."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)
