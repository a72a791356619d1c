"""Bad input gets a clear JSON error, never a 500, and the process stays healthy."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from support.servers import ApiProcess

JSON = {"content-type": "application/json"}


def post(api: ApiProcess, path: str, **kwargs: Any) -> requests.Response:
    return requests.post(f"{api.url}{path}", timeout=30, **kwargs)


@pytest.mark.parametrize(
    ("change", "field", "error_type"),
    [
        ({"surprise": 1}, "surprise", "extra_forbidden"),
        ({"time_in_hospital": "3"}, "time_in_hospital", "int_type"),
        ({"time_in_hospital": True}, "time_in_hospital", "int_type"),
        ({"number_inpatient": 51}, "number_inpatient", "less_than_equal"),
        ({"race": "Martian"}, "race", "literal_error"),
        ({"admission_type_id": 1.5}, "admission_type_id", "int_type"),
        ({"num_procedures": 2.5}, "num_procedures", "int_type"),
        ({"diag_1": "not-a-code"}, "diag_1", "string_pattern_mismatch"),
    ],
)
def test_invalid_record_is_422_naming_the_field(
    api: ApiProcess, example: dict[str, Any], change: dict[str, Any], field: str, error_type: str
) -> None:
    r = post(api, "/predict", json={**example, **change})
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert (error["field"], error["type"], error["index"]) == (field, error_type, None)
    assert error["message"]


def test_unknown_category_lists_the_allowed_values(
    api: ApiProcess, example: dict[str, Any]
) -> None:
    (error,) = post(api, "/predict", json={**example, "A1Cresult": "high"}).json()["errors"]
    assert error["allowed"] == ["None", "Norm", ">7", ">8"]


def test_missing_field_is_422(api: ApiProcess, example: dict[str, Any]) -> None:
    record = {k: v for k, v in example.items() if k != "age"}
    (error,) = post(api, "/predict", json=record).json()["errors"]
    assert (error["field"], error["type"]) == ("age", "missing")


def test_batch_errors_say_which_encounter(api: ApiProcess, example: dict[str, Any]) -> None:
    bad = [example, {**example, "gender": "X"}, example, {**example, "num_procedures": -2}]
    r = post(api, "/predict/batch", json={"encounters": bad})
    assert r.status_code == 422
    got = {(e["index"], e["field"]) for e in r.json()["errors"]}
    assert got == {(1, "gender"), (3, "num_procedures")}


def test_malformed_json_is_400(api: ApiProcess) -> None:
    r = post(api, "/predict", data=b'{"race": "Caucasian",', headers=JSON)
    assert r.status_code == 400
    assert "malformed JSON" in r.json()["detail"]


def test_wrong_content_type_is_415(api: ApiProcess, example: dict[str, Any]) -> None:
    import json

    r = post(api, "/predict", data=json.dumps(example), headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.headers["content-type"] == "application/json"


def test_oversized_batch_is_413(api: ApiProcess, example: dict[str, Any]) -> None:
    r = post(api, "/predict/batch", json={"encounters": [example] * 1001})
    assert r.status_code == 413
    assert "at most 1000" in r.json()["detail"]


def test_body_over_the_byte_limit_is_413(api: ApiProcess) -> None:
    big = b'{"encounters": [' + b" " * (5 * 1024 * 1024) + b"]}"
    assert post(api, "/predict/batch", data=big, headers=JSON).status_code == 413

    def chunks():
        yield b'{"encounters": ['
        for _ in range(80):
            yield b" " * 65536
        yield b"]}"

    assert post(api, "/predict/batch", data=chunks(), headers=JSON).status_code == 413


def test_empty_batch_is_422(api: ApiProcess) -> None:
    r = post(api, "/predict/batch", json={"encounters": []})
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert (error["field"], error["type"]) == ("encounters", "too_short")


def test_unknown_route_and_method(api: ApiProcess) -> None:
    assert requests.get(f"{api.url}/nope", timeout=5).status_code == 404
    assert requests.get(f"{api.url}/predict", timeout=5).status_code == 405


def test_process_stays_healthy_after_bad_input(api: ApiProcess, example: dict[str, Any]) -> None:
    for body in (b"", b"null", b"[]", b"{}", b'"x"', b"\xff\xfe", b"[" * 500, b"{" * 10000):
        r = post(api, "/predict", data=body, headers=JSON)
        assert r.status_code in (400, 413, 422), (body[:10], r.status_code)
        assert r.headers["content-type"] == "application/json"
    assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
    assert post(api, "/predict", json=example).status_code == 200
    assert (
        api.metric("readmit_http_requests_total", method="POST", route="/predict", status="500")
        == 0
    )
