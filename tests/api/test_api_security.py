"""API keys (one per client, rotated without a restart), metrics only on their own port, and no
patient data in any log line or error message."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from support.servers import API_BIN, API_MODEL, ApiProcess, ready_api

KEYS = {"ui": "ui-key-0123456789abcdef", "alice": "alice-key-9876543210fedcba"}


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The keys as the chart mounts its Secret: a file per client."""
    directory = tmp_path_factory.mktemp("keys")
    for client, key in KEYS.items():
        (directory / client).write_text(key + "\n")
    return directory


@pytest.fixture(scope="module")
def keyed_api(
    mlflow_server: str,
    api_model: dict[str, Any],
    key_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
):
    """API keys on, read again every 0.2 s, and logging at debug: the most a log could say."""
    state = tmp_path_factory.mktemp("keyed")
    with ready_api(
        state / "api.log",
        MLFLOW_TRACKING_URI=mlflow_server,
        READMIT_MODEL_NAME=API_MODEL,
        READMIT_API_KEYS_DIR=str(key_dir),
        READMIT_API_KEYS_RELOAD_S="0.2",
        READMIT_LOG_LEVEL="debug",
    ) as api:
        yield api


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/model"])
def test_protected_routes_need_a_valid_key(
    keyed_api: ApiProcess, path: str, example: dict[str, Any]
) -> None:
    body = {"encounters": [example]} if path.endswith("batch") else example
    call = requests.get if path == "/model" else requests.post
    kwargs = {} if path == "/model" else {"json": body}
    key = KEYS["ui"]
    wrong = (
        {},
        bearer("wrong"),
        {"Authorization": key},
        {"Authorization": f"Basic {key}"},
        bearer(",".join(KEYS.values())),
        bearer(key[:-1]),
    )
    for headers in wrong:
        r = call(f"{keyed_api.url}{path}", headers=headers, timeout=10, **kwargs)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
    for key in KEYS.values():
        r = call(f"{keyed_api.url}{path}", headers=bearer(key), timeout=10, **kwargs)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_probe_routes_stay_open(keyed_api: ApiProcess, path: str) -> None:
    assert requests.get(f"{keyed_api.url}{path}", timeout=5).status_code == 200


def test_metrics_are_not_on_the_api_port(keyed_api: ApiProcess, example: dict[str, Any]) -> None:
    """Counters read before and after one request would say that patient's risk and flag: they
    are served on their own port, which only Prometheus is let reach (the chart's
    NetworkPolicy), and the api's port has no /metrics."""
    assert requests.get(f"{keyed_api.url}/metrics", timeout=5).status_code == 404
    assert "readmit_predictions_total" in requests.get(keyed_api.metrics_url, timeout=5).text


def wait_status(url: str, key: str, status: int, example: dict[str, Any]) -> float:
    started = time.monotonic()
    while requests.post(url, json=example, headers=bearer(key), timeout=5).status_code != status:
        assert time.monotonic() - started < 10, f"still not {status}"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_key_is_added_rotated_and_revoked_without_a_restart(
    keyed_api: ApiProcess, key_dir: Path, example: dict[str, Any]
) -> None:
    url = f"{keyed_api.url}/predict"
    new_client, new_key = "bob", "bob-key-000111222333444"
    assert requests.post(url, json=example, headers=bearer(new_key), timeout=5).status_code == 401
    (key_dir / new_client).write_text(new_key)
    wait_status(url, new_key, 200, example)  # a new client
    rotated = "ui-key-rotated-5555666677778888"
    (key_dir / "ui").write_text(f"{KEYS['ui']}\n{rotated}\n")  # both while the ui moves over
    wait_status(url, rotated, 200, example)
    assert requests.post(url, json=example, headers=bearer(KEYS["ui"]), timeout=5).ok
    (key_dir / "ui").write_text(rotated)  # the old one revoked
    wait_status(url, KEYS["ui"], 401, example)
    (key_dir / new_client).write_text("")  # a client emptied: refused, never let in
    wait_status(url, new_key, 401, example)
    assert requests.post(url, json=example, headers=bearer(rotated), timeout=5).ok
    assert requests.post(url, json=example, headers=bearer(KEYS["alice"]), timeout=5).ok
    assert keyed_api.proc.poll() is None  # the same process throughout
    log = keyed_api.log_text()
    assert "api keys reloaded" in log
    for key in (new_key, rotated, KEYS["ui"]):
        assert key not in log
    (key_dir / "ui").write_text(KEYS["ui"])
    (key_dir / new_client).unlink()
    wait_status(url, KEYS["ui"], 200, example)


@pytest.mark.parametrize("keys", [" , ", ""])
def test_the_api_does_not_start_with_keys_it_cannot_use(keys: str, tmp_path: Path) -> None:
    """Fail closed: READMIT_API_KEYS set but holding no usable key used to turn keys off."""
    out = subprocess.run(
        [str(API_BIN), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "READMIT_API_KEYS": keys, "READMIT_METRICS_PORT": "0"},
    )
    assert out.returncode == 1
    assert "refusing to start with authentication off" in out.stderr


def test_no_patient_data_in_logs_or_errors(
    keyed_api: ApiProcess, example: dict[str, Any], tmp_path: Path
) -> None:
    """Distinctive values go in, valid and invalid; none comes back out in errors or logs."""
    auth = bearer(KEYS["ui"])
    valid = {
        **example,
        "diag_1": "V58.67",
        "num_lab_procedures": 173,
        "medical_specialty": "Surgery-PlasticwithinHeadandNeck",
    }
    invalid = {
        **example,
        "race": "ZEBRA-MARKER-31337",
        "diag_2": "QUOKKA-MARKER",
        "num_medications": 987654,
        "mrn": "MRN-MARKER-4242",
    }
    # (173 itself is no marker: timestamps could contain it by chance)
    markers = [
        "V58.67",
        "Surgery-PlasticwithinHeadandNeck",
        "ZEBRA-MARKER-31337",
        "QUOKKA-MARKER",
        "987654",
        "MRN-MARKER-4242",
    ]
    errors_seen = []
    for body in (valid, invalid, {"encounters": [valid, invalid]}):
        path = "/predict/batch" if "encounters" in body else "/predict"
        r = requests.post(f"{keyed_api.url}{path}", json=body, headers=auth, timeout=10)
        if r.status_code != 200:
            errors_seen.append(r.text)
    garbled = b'{"race": "ZEBRA-MARKER-31337", "diag_1": '
    r = requests.post(
        f"{keyed_api.url}/predict",
        data=garbled,
        timeout=10,
        headers={**auth, "content-type": "application/json"},
    )
    errors_seen.append(r.text)
    assert len(errors_seen) == 3
    assert "mrn" in errors_seen[0]  # the NAME of an unknown field is fine
    for text in errors_seen:
        for marker in markers:
            assert marker not in text, (marker, text)
    log = keyed_api.log_text()
    assert '"level": "debug"' in log or '"level": "info"' in log  # logging really is on
    assert "POST /predict" not in log  # no access log: a line a request, and the paths asked
    assert all(line.startswith("{") for line in log.splitlines() if line), log[-2000:]
    for marker in markers:
        assert marker not in log, marker
