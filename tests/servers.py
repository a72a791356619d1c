"""Real processes for the tests: start, wait until ready, stop; and a switchable TCP proxy."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
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


def wait_http(url: str, timeout: float, proc: subprocess.Popen[Any] | None = None,
              status: int = 200) -> requests.Response:  # fmt: skip
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

    def __init__(self, log_path: Path, preexec_fn: Callable[[], None] | None = None,
                 audit_path: Path | None = None, **env: str) -> None:  # fmt: skip
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
            env={**os.environ, "READMIT_RELOAD_INTERVAL_S": "1", "READMIT_LOAD_RETRY_MAX_S": "1",
                 "READMIT_METRICS_PORT": str(self.metrics_port), **env},
        )  # fmt: skip

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
        config.write_text(yaml.safe_dump(dex_config(self.issuer, f"127.0.0.1:{port}",
                                                    redirect_uris)))  # fmt: skip
        self.log_path = tmp / "dex.log"
        self.proc = subprocess.Popen(
            [str(DEX_BIN), "serve", str(config)], stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_http(f"{self.issuer}/.well-known/openid-configuration", 30, self.proc)

    def close(self) -> None:
        stop(self.proc)
