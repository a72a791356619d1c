"""The audit trail of a real api process: one JSON line on stdout per risk served, who asked,
for which encounter, from which model, and no patient field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.servers import API_MODEL, ApiProcess, ready_api

UI_KEY, LOCUST_KEY = "ui-key-" + "u" * 24, "locust-key-" + "l" * 24
USER = "dr.ada@hospital.example"


@pytest.fixture(scope="module")
def audited(
    mlflow_server: str, api_model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, Path]]:
    tmp = tmp_path_factory.mktemp("audit")
    with ready_api(
        tmp / "api.log",
        audit_path=tmp / "audit.jsonl",
        MLFLOW_TRACKING_URI=mlflow_server,
        READMIT_MODEL_NAME=API_MODEL,
        READMIT_API_KEYS=f"ui={UI_KEY},locust={LOCUST_KEY}",
    ) as proc:
        yield proc, tmp / "audit.jsonl"


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_every_risk_served_leaves_one_record_and_nothing_of_the_patient(
    audited: tuple[ApiProcess, Path], encounters, api_model: dict[str, Any]
) -> None:
    from readmit_api.audit import KEYS
    from readmit_core.data import to_records
    from readmit_core.schema import FIELD_NAMES

    api, path = audited
    records = to_records(encounters.sample(330, random_state=11))
    ui = {"Authorization": f"Bearer {UI_KEY}", "X-Readmit-User": USER}
    locust = {"Authorization": f"Bearer {LOCUST_KEY}"}
    answers: list[tuple[requests.Response, list[dict[str, Any]], str | None]] = []

    def send(route: str, body: Any, headers: dict[str, str], sent: list[dict[str, Any]]) -> None:
        r = requests.post(f"{api.url}{route}", json=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        answers.append((r, sent, headers.get("X-Readmit-User")))

    one = {**records[0], "encounter_id": "E-2278392"}
    send("/predict?explain=true&top=3", one, ui, [one])
    small = [{**r, "encounter_id": f"V{i}"} if i % 2 else r for i, r in enumerate(records[1:30])]
    send("/predict/batch", {"encounters": small}, ui, small)
    large = records[30:330]  # over 32 KB: validated and scored in the worker thread
    send("/predict/batch?explain=true", {"encounters": large}, locust, large)
    # refused requests serve no risk and leave no record
    named_by_locust = requests.post(
        f"{api.url}/predict",
        json=records[0],
        timeout=10,
        headers={**locust, "X-Readmit-User": USER},
    )
    assert named_by_locust.status_code == 403
    assert "x-readmit-user" in named_by_locust.json()["detail"]
    spaced = requests.post(
        f"{api.url}/predict",
        json=records[0],
        timeout=10,
        headers={**ui, "X-Readmit-User": "two words"},
    )
    assert spaced.status_code == 400
    invalid = requests.post(
        f"{api.url}/predict", json={**records[0], "age": "old"}, headers=ui, timeout=10
    )
    assert invalid.status_code == 422
    bad_id = requests.post(
        f"{api.url}/predict", json={**records[0], "encounter_id": "a b"}, headers=ui, timeout=10
    )
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["field"] == "encounter_id"

    lines = audit_lines(path)
    assert len(lines) == 1 + 29 + 300  # N records for N risks served, none for the refused
    for line in lines:
        assert set(line) == set(KEYS), line  # no other key: no patient field
        assert not set(line) & (set(FIELD_NAMES) - {"encounter_id"})
    expected = []
    for response, sent, user in answers:
        body = response.json()
        served = body.get("predictions", [body])
        rid = response.headers["X-Request-ID"]
        explained = "explain=true" in response.url
        for i, (record, prediction) in enumerate(zip(sent, served, strict=True)):
            expected.append(
                {
                    "request_id": rid,
                    "client": "ui" if user else "locust",
                    "user": user,
                    "index": i,
                    "encounter_id": record.get("encounter_id"),
                    "model_name": API_MODEL,
                    "model_version": api_model["version"],
                    "risk": prediction["readmission_risk"],
                    "band": prediction["risk_band"],
                    "explained": explained,
                }
            )
    got = [{k: v for k, v in line.items() if k in expected[0]} for line in lines]
    assert got == expected
    assert {line["route"] for line in lines} == {"/predict", "/predict/batch"}
    assert all(
        line["logger"] == "readmit.audit" and line["event"] == "risk_served" for line in lines
    )
    # apart from the other logs: none of them is an audit record
    assert "risk_served" not in api.log_text()
