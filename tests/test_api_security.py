"""API keys, and no patient data in any log line or error message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import API_MODEL, start_api
from servers import ApiProcess

KEYS = "first-key-0123456789,second-key-9876543210"


@pytest.fixture(scope="module")
def keyed_api(
    mlflow_server: str, api_model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
):
    """API keys on (from a file, as the chart mounts its Secret), and logging at debug: the most
    a log could ever say."""
    state = tmp_path_factory.mktemp("keyed")
    (state / "api-keys").write_text(KEYS + "\n")
    api = start_api(state / "api.log", MLFLOW_TRACKING_URI=mlflow_server,
                    READMIT_MODEL_NAME=API_MODEL, READMIT_API_KEYS_FILE=str(state / "api-keys"),
                    READMIT_LOG_LEVEL="debug")  # fmt: skip
    try:
        api.wait_ready()
        yield api
    finally:
        api.close()


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/model"])
def test_protected_routes_need_a_valid_key(keyed_api: ApiProcess, path: str,
                                           example: dict[str, Any]) -> None:  # fmt: skip
    body = {"encounters": [example]} if path.endswith("batch") else example
    call = requests.get if path == "/model" else requests.post
    kwargs = {} if path == "/model" else {"json": body}
    key = KEYS.split(",")[0]
    wrong = ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key},
             {"Authorization": f"Basic {key}"})  # fmt: skip
    for headers in wrong:
        r = call(f"{keyed_api.url}{path}", headers=headers, timeout=10, **kwargs)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
    for key in KEYS.split(","):
        r = call(f"{keyed_api.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                 **kwargs)  # fmt: skip
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probe_and_metrics_routes_stay_open(keyed_api: ApiProcess, path: str) -> None:
    assert requests.get(f"{keyed_api.url}{path}", timeout=5).status_code == 200


def test_no_patient_data_in_logs_or_errors(keyed_api: ApiProcess, example: dict[str, Any],
                                           tmp_path: Path) -> None:  # fmt: skip
    """Distinctive values go in, valid and invalid; none comes back out in errors or logs."""
    auth = {"Authorization": f"Bearer {KEYS.split(',')[0]}"}
    valid = {**example, "diag_1": "V58.67", "num_lab_procedures": 173, "medical_specialty":
             "Surgery-PlasticwithinHeadandNeck"}  # fmt: skip
    invalid = {**example, "race": "ZEBRA-MARKER-31337", "diag_2": "QUOKKA-MARKER",
               "num_medications": 987654, "mrn": "MRN-MARKER-4242"}  # fmt: skip
    # (173 itself is no marker: timestamps could contain it by chance)
    markers = ["V58.67", "Surgery-PlasticwithinHeadandNeck", "ZEBRA-MARKER-31337",
               "QUOKKA-MARKER", "987654", "MRN-MARKER-4242"]  # fmt: skip
    errors_seen = []
    for body in (valid, invalid, {"encounters": [valid, invalid]}):
        path = "/predict/batch" if "encounters" in body else "/predict"
        r = requests.post(f"{keyed_api.url}{path}", json=body, headers=auth, timeout=10)
        if r.status_code != 200:
            errors_seen.append(r.text)
    garbled = b'{"race": "ZEBRA-MARKER-31337", "diag_1": '
    r = requests.post(f"{keyed_api.url}/predict", data=garbled, timeout=10,
                      headers={**auth, "content-type": "application/json"})  # fmt: skip
    errors_seen.append(r.text)
    assert len(errors_seen) == 3
    assert "mrn" in errors_seen[0]  # the NAME of an unknown field is fine
    for text in errors_seen:
        for marker in markers:
            assert marker not in text, (marker, text)
    log = keyed_api.log_text()
    assert '"level": "debug"' in log or '"level": "info"' in log  # logging really is on
    for marker in markers:
        assert marker not in log, marker
