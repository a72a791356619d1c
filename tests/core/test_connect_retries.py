"""The api's clients ride over a pod that just died, and never send a request twice.

Both clients (the ui's httpx and Locust's urllib3) against real sockets on 127.0.0.1: a port that
refuses connections for a while before a server listens on it, and a server that reads the
request and hangs up without answering (a pod killed mid-request).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from readmit_locust.retry import connect_retry
from readmit_ui.client import ApiCallError, ApiClient

REFUSED_FOR_S = 1.2  # the old schedules (0.2 s, 0.5 s) gave up well before this


class Counting(BaseHTTPRequestHandler):
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        if self.path == "/hang-up":
            self.close_connection = True
            return  # read, never answered
        body = b'{"name": "readmit"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def late_server() -> Iterator[tuple[str, type[Counting]]]:
    """A base URL whose port refuses connections for REFUSED_FOR_S, then answers."""
    port = free_port()
    handler = type("Handler", (Counting,), {"seen": 0})
    servers: list[ThreadingHTTPServer] = []

    def listen_later() -> None:
        time.sleep(REFUSED_FOR_S)
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        servers.append(server)
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=listen_later, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", handler
    while not servers:  # a test that failed early still stops the server it would have met
        time.sleep(0.05)
    servers[0].shutdown()
    servers[0].server_close()
    thread.join()


def ui_get(base: str, path: str) -> dict[str, Any]:
    return ApiClient(base, timeout_s=5)._call("GET", path)


def locust_get(base: str, path: str) -> dict[str, Any]:
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=connect_retry()))
        response = session.get(base + path, timeout=5)
        response.raise_for_status()
        return response.json()


CLIENTS = [pytest.param(ui_get, id="ui"), pytest.param(locust_get, id="locust")]


@pytest.mark.parametrize("get", CLIENTS)
def test_refused_connections_are_retried_until_the_api_answers(
    late_server: tuple[str, type[Counting]], get: Callable[[str, str], dict[str, Any]]
) -> None:
    base, handler = late_server
    start = time.monotonic()
    assert get(base, "/model") == {"name": "readmit"}
    assert time.monotonic() - start >= REFUSED_FOR_S
    assert handler.seen == 1


@pytest.mark.parametrize("get", CLIENTS)
def test_a_request_that_was_sent_is_never_sent_again(
    late_server: tuple[str, type[Counting]], get: Callable[[str, str], dict[str, Any]]
) -> None:
    base, handler = late_server
    with pytest.raises((ApiCallError, requests.ConnectionError)):
        get(base, "/hang-up")
    assert handler.seen == 1
