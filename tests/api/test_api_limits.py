"""One request cannot take the api down: each attack once measured against this api, sent with
real sockets to a real process, while /health is asked every 50 ms.

Each test writes what it measured (the answer, the process's RSS before and after, the slowest
/health) to test-artifacts/api-limits.txt, then asserts: RSS grows by less than 50 MiB, /health
never takes a second, and the attack gets its answer (413/422/431/408/503, or a closed socket).
"""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from support.project import ARTIFACTS
from support.servers import API_MODEL, ApiProcess, ready_api, start_api

REPORT = ARTIFACTS / "api-limits.txt"
MAX_RSS_GROWTH_MIB = 50
JSON = {"content-type": "application/json"}


def rss_mib(api: ApiProcess) -> float:
    for line in Path(f"/proc/{api.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds(api: ApiProcess) -> int:
    return len(list(Path(f"/proc/{api.proc.pid}/fd").iterdir()))


class Health:
    """/health asked every 50 ms on fresh connections, in a thread, while an attack runs."""

    def __init__(self, api: ApiProcess) -> None:
        self.url = f"{api.url}/health"
        self.slowest = 0.0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            started = time.monotonic()
            try:
                status = requests.get(self.url, timeout=5).status_code
                if status != 200:
                    self.failures.append(f"status {status}")
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            self.slowest = max(self.slowest, time.monotonic() - started)

    def __enter__(self) -> Health:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class Attack:
    """Measures one attack: RSS before and after, the slowest /health; writes the report line."""

    def __init__(self, api: ApiProcess, name: str) -> None:
        self.api, self.name = api, name
        self.answer = ""

    def __enter__(self) -> Attack:
        self.rss_before = rss_mib(self.api)
        self.health = Health(self.api).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # a last /health after the attack
        self.health.__exit__()
        self.rss_after = rss_mib(self.api)
        failed = ", ".join(self.health.failures[:3])
        REPORT.parent.mkdir(exist_ok=True)
        with REPORT.open("a") as out:
            out.write(
                f"{self.name}: {self.answer}; RSS {self.rss_before:.0f} -> "
                f"{self.rss_after:.0f} MiB; slowest /health {self.health.slowest:.3f} s"
                f"{'; /health failed: ' + failed if failed else ''}\n"
            )
        if exc[0] is None:
            assert self.rss_after - self.rss_before < MAX_RSS_GROWTH_MIB, self.answer
            assert not self.health.failures, self.health.failures
            assert self.health.slowest < 1.0


@pytest.fixture(scope="module")
def api(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """The api on a small model, with its default limits and a 2 s header timeout."""
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("")  # this run's measurements only
    with ready_api(
        tmp_path_factory.mktemp("limits") / "api.log",
        READMIT_MODEL_URI=str(tiny_model),
        READMIT_HEADER_TIMEOUT_S="2",
        READMIT_KEEP_ALIVE_S="2",
    ) as proc:
        yield proc


def test_a_body_of_100k_unknown_keys_gets_a_short_answer(
    api: ApiProcess, example: dict[str, Any]
) -> None:
    body = json.dumps({**example, **{f"k{i}": 0 for i in range(100_000)}}).encode()
    with Attack(api, f"{len(body) / 1e6:.2f} MB body, 100k unknown keys") as attack:
        r = requests.post(f"{api.url}/predict", data=body, headers=JSON, timeout=60)
        attack.answer = f"{r.status_code}, {len(r.content):,} bytes"
    assert r.status_code == 413  # counted before it is parsed
    assert len(r.content) < 1000


def test_a_body_of_empty_objects_is_refused_before_validation(api: ApiProcess) -> None:
    body = b'{"encounters": [' + b"{}," * 800_000 + b"{}]}"
    with Attack(api, f"{len(body) / 1e6:.1f} MB body, 800k empty encounters") as attack:
        r = requests.post(f"{api.url}/predict/batch", data=body, headers=JSON, timeout=60)
        attack.answer = f"{r.status_code}, {len(r.content):,} bytes"
    assert r.status_code == 413


def test_a_422_lists_at_most_50_errors_and_counts_the_rest(
    api: ApiProcess, example: dict[str, Any]
) -> None:
    bad = {
        **example,
        "age": "old",
        "race": "X",
        "gender": "Y",
        "num_procedures": -1,
        "diag_1": "nope",
    }
    with Attack(api, "1,000 encounters with 5 invalid fields each") as attack:
        r = requests.post(f"{api.url}/predict/batch", json={"encounters": [bad] * 1000}, timeout=60)
        attack.answer = f"{r.status_code}, {len(r.content):,} bytes"
    assert r.status_code == 422
    body = r.json()
    assert len(body["errors"]) == 50
    assert body["more_errors"] == 4950
    assert body["detail"] == "5000 invalid fields (the first 50 listed)"


def test_an_object_with_too_many_members_is_422_before_validation(
    api: ApiProcess, example: dict[str, Any]
) -> None:
    """Within the body's bound on values, an object still has at most an encounter's members."""
    nested = {**example, "age": {f"k{i}": 0 for i in range(70)}}
    r = requests.post(
        f"{api.url}/predict/batch", json={"encounters": [example, nested]}, timeout=10
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("an object has 70 members")


def test_duplicate_keys_and_non_json_numbers_are_400(
    api: ApiProcess, example: dict[str, Any]
) -> None:
    text = json.dumps(example)
    for body in (
        text[:-1] + ', "age": "[10-20)"}',
        text.replace('"number_inpatient": 0', '"number_inpatient": NaN'),
    ):
        assert body != text
        r = requests.post(f"{api.url}/predict", data=body, headers=JSON, timeout=10)
        assert r.status_code == 400, r.text
    assert (
        "duplicate key 'age'"
        in requests.post(
            f"{api.url}/predict", headers=JSON, timeout=10, data=text[:-1] + ', "age": "[10-20)"}'
        ).text
    )


def test_codes_take_ascii_digits_only(api: ApiProcess, example: dict[str, Any]) -> None:
    r = requests.post(
        f"{api.url}/predict", json={**example, "diag_1": "\uff14\uff12\uff18"}, timeout=10
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "diag_1"


def send_headers(api: ApiProcess, total: int) -> str:
    """One request whose headers go on for ``total`` bytes; what came back."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Padding: " + b"a" * 8000 + b"\r\n"
        sent = 0
        try:
            while sent < total:
                s.sendall(line)
                sent += len(line)
        except OSError as exc:
            return (
                f"closed after {sent / 2**20:.1f} MiB sent ({type(exc).__name__}): "
                + s.recv(200).decode(errors="replace").split("\r\n")[0]
            )
        return f"all {sent / 2**20:.0f} MiB sent: " + s.recv(200).decode(errors="replace")


def test_200_mib_of_headers_is_431(api: ApiProcess) -> None:
    with Attack(api, "3 requests with 200 MiB of headers each") as attack:
        answers = [send_headers(api, 200 * 2**20) for _ in range(3)]
        attack.answer = answers[0]
    assert all("431" in a for a in answers), answers


def test_too_many_headers_is_431(api: ApiProcess) -> None:
    headers = {f"X-H{i}": "1" for i in range(100)}
    r = requests.get(f"{api.url}/health", headers=headers, timeout=10)
    assert r.status_code == 431
    assert r.json() == {"detail": "too many request headers"}


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent first."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        pass
    return True, got


def test_idle_and_half_sent_connections_are_closed(api: ApiProcess) -> None:
    with Attack(api, "50 idle and 50 half-sent-header connections") as attack:
        idle = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(50)]
        half = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(50)]
        for s in half:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty")
        started = time.monotonic()
        results = [closed_within(s, 6) for s in idle + half]
        attack.answer = f"all closed within {time.monotonic() - started:.1f} s"
        for s in idle + half:
            s.close()
    assert all(closed for closed, _ in results)
    assert all(got == b"" for _, got in results[:50])  # nothing asked, nothing answered
    assert all(got.startswith(b"HTTP/1.1 408") for _, got in results[50:])


def test_an_idle_kept_alive_connection_is_closed(api: ApiProcess) -> None:
    with socket.create_connection(("127.0.0.1", api.port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        closed, _ = closed_within(s, 6)
    assert closed
    assert time.monotonic() - started < 4  # READMIT_KEEP_ALIVE_S=2


def test_a_full_batch_leaves_the_event_loop_free(api: ApiProcess, example: dict[str, Any]) -> None:
    """A full, explained batch is scored in the worker thread: /health is not held up by it."""
    batch = {"encounters": [{**example, "number_inpatient": i % 6} for i in range(1000)]}
    with Attack(api, "10 full batches of 1,000 explained encounters, back to back") as attack:
        took = []
        for _ in range(10):
            started = time.monotonic()
            r = requests.post(f"{api.url}/predict/batch?explain=true", json=batch, timeout=60)
            took.append(time.monotonic() - started)
            assert r.status_code == 200, r.text
        attack.answer = f"200 each, {min(took):.2f}-{max(took):.2f} s a batch"
    assert attack.health.slowest < 0.25, attack.health.slowest


def test_requests_past_the_in_flight_limit_get_503_with_retry_after(
    tiny_model: Path, tmp_path: Path, example: dict[str, Any]
) -> None:
    api = start_api(
        tmp_path / "api.log", READMIT_MODEL_URI=str(tiny_model), READMIT_MAX_IN_FLIGHT="2"
    )
    try:
        api.wait_ready()
        batch = {"encounters": [example] * 1000}
        url = f"{api.url}/predict/batch?explain=true"
        with ThreadPoolExecutor(12) as pool:
            answers = list(
                pool.map(lambda _: requests.post(url, json=batch, timeout=60), range(12))
            )
        statuses = sorted(r.status_code for r in answers)
        busy = [r for r in answers if r.status_code == 503]
        assert set(statuses) == {200, 503}, statuses
        assert all(r.headers["retry-after"] == "1" for r in busy)
        assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
        assert api.metric("readmit_http_refused_total", reason="too_many_requests") == len(busy)
    finally:
        api.close()


def test_a_connection_flood_leaves_descriptors_for_the_registry(
    mlflow_server: str, api_model: dict[str, Any], tmp_path: Path
) -> None:
    """22,000 connections once exhausted the descriptors and the alias checks failed (Errno
    24). Here the api gets 512 descriptors and 1,500 connections: it holds at most
    512 - 128 of them, answers the rest 503, and its alias checks go on succeeding."""

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    api = start_api(
        tmp_path / "api.log",
        MLFLOW_TRACKING_URI=mlflow_server,
        READMIT_MODEL_NAME=API_MODEL,
        preexec_fn=few_descriptors,
    )
    conns: list[socket.socket] = []
    try:
        api.wait_ready()
        checks = api.metric("readmit_model_alias_check_failures_total")
        with Attack(api, "1,500 connections held open, 512 descriptors") as attack:
            for _ in range(1500):
                conns.append(socket.create_connection(("127.0.0.1", api.port)))
            time.sleep(1.5)  # the api checks the alias every second meanwhile
            most = open_fds(api)
            evicted = api.metric("readmit_http_refused_total", reason="idle_evicted")
            attack.answer = f"api held {most} descriptors, closed {evicted:.0f} idle connections"
        assert most < 512
        assert evicted >= 1500 - 384
        assert api.metric("readmit_model_alias_check_failures_total") == checks
        assert "Errno 24" not in api.log_text()
    finally:
        for s in conns:
            s.close()
        api.close()
