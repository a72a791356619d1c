"""Who may drive Locust, and where its api key goes: a real master and worker with the web UI
behind its login, against the real api, and a capture server standing in for another host."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from support.servers import ApiProcess, free_port, stop, wait_http

from readmit_locust.access import ApiKeyAuth

LOADTEST = Path(sys.executable).parent / "readmit-loadtest"
PASSWORD = "web-password-0123456789"
KEY = "locust-key-0123456789abcdef"


class Capture:
    """An HTTP server on 127.0.0.1 that records every request's path and headers."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, dict(self.headers)))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_GET  # noqa: N815

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    yield c
    c.close()


@pytest.fixture(scope="module")
def web(
    api: ApiProcess, data_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Locust's web UI (master + 1 worker) with its login, targeting the real api."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(LOADTEST),
            "--web",
            "--web-port",
            str(port),
            "--host",
            api.url,
            "--workers",
            "1",
            "--report-dir",
            str(tmp_path_factory.mktemp("locust")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={
            **os.environ,
            "READMIT_DATA": str(data_path),
            "READMIT_LOCUST_ENCOUNTERS": "200",
            "READMIT_LOCUST_METRICS_PORT": str(free_port()),
            "READMIT_LOCUST_METRICS_ADDR": "127.0.0.1",
            "READMIT_LOCUST_WEB_PASSWORD": PASSWORD,
            "READMIT_LOCUST_MAX_USERS": "20",
            "READMIT_API_KEY": KEY,
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/login", 120, proc)
        yield url
    finally:
        stop(proc)


def login(url: str, password: str) -> requests.Session:
    """A session after the login form: the page it lands on in ``session.landed``."""
    session = requests.Session()
    form = {"username": "admin", "password": password}
    landed = session.post(f"{url}/login_submit", data=form, timeout=10).text
    session.landed = landed  # type: ignore[attr-defined]
    return session


def test_the_web_ui_and_its_api_need_a_login(web: str) -> None:
    stranger = requests.Session()
    for method, path in (
        ("GET", "/"),
        ("GET", "/stats/requests"),
        ("POST", "/swarm"),
        ("POST", "/stop"),
        ("POST", "/stats/reset"),
    ):
        r = stranger.request(
            method,
            f"{web}{path}",
            allow_redirects=False,
            timeout=10,
            data={"user_count": 1, "spawn_rate": 1},
        )
        assert r.status_code == 302, (method, path)
        assert "/login" in r.headers["location"]
    wrong = login(web, "guess")
    assert "Wrong user name or password" in wrong.landed  # the login page, with the reason
    assert wrong.get(f"{web}/stats/requests", allow_redirects=False, timeout=10).status_code == 302
    operator = login(web, PASSWORD)
    stats = operator.get(f"{web}/stats/requests", timeout=10)
    assert stats.status_code == 200
    assert stats.json()["state"] == "ready"  # nothing the stranger sent started a run
    cookie = next(c for c in operator.cookies if c.name == "session")
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_a_run_against_another_host_or_too_large_is_refused(web: str, capture: Capture) -> None:
    operator = login(web, PASSWORD)
    other = operator.post(
        f"{web}/swarm", timeout=10, data={"user_count": 2, "spawn_rate": 2, "host": capture.url}
    )
    assert other.status_code == 400
    assert "only loads" in other.json()["message"]
    huge = operator.post(f"{web}/swarm", data={"user_count": 100000, "spawn_rate": 10}, timeout=10)
    assert huge.status_code == 400
    assert "at most 20 users" in huge.json()["message"]
    time.sleep(3)
    assert operator.get(f"{web}/stats/requests", timeout=10).json()["state"] == "ready"
    assert capture.seen == []  # neither the key nor an encounter reached the other host


def test_the_key_goes_to_the_configured_api_only(capture: Capture) -> None:
    """A worker's requests carry the key to READMIT_API_URL's origin, and to no other host."""
    elsewhere = f"http://127.0.0.1:{free_port()}"
    session = requests.Session()
    session.auth = ApiKeyAuth(KEY, elsewhere)  # configured: another port
    session.get(f"{capture.url}/predict", timeout=5)
    session.auth = ApiKeyAuth(KEY, capture.url + "/")  # configured: this one
    session.get(f"{capture.url}/predict", timeout=5)
    (_, first), (_, second) = capture.seen
    assert "Authorization" not in first
    assert second["Authorization"] == f"Bearer {KEY}"
