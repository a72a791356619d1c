"""The api in-process (Starlette's TestClient over httpx, lifespan included) on a tiny model
fitted here and saved as data: the request path without a registry, a server or the data set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from readmit_api.app import create_app
from readmit_api.settings import Settings
from readmit_core.schema import example_encounter


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[TestClient]:
    app = create_app(Settings(model_uri=str(tiny_model), reload_interval_s=0, max_batch=3))
    with TestClient(app) as c:
        for _ in range(200):  # the model loads in the background
            if c.get("/ready").status_code == 200:
                break
            time.sleep(0.02)
        yield c


def test_ready_predict_explain_and_errors(client: TestClient) -> None:
    assert client.get("/ready").json()["status"] == "ready"
    low = {**example_encounter(), "number_inpatient": 0}
    high = {**example_encounter(), "number_inpatient": 5}
    risks = [client.post("/predict", json=r).json()["readmission_risk"] for r in (low, high)]
    assert risks[0] < risks[1]
    why = client.post("/predict?explain=true&top=1", json=high).json()["explanation"]
    assert why["factors"][0]["field"] == "number_inpatient"
    assert why["factors"][0]["contribution"] > 0
    bad = client.post("/predict", json={**low, "age": "[200-210)"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "age"
    too_many = client.post("/predict/batch", json={"encounters": [low] * 4})
    assert too_many.status_code == 413
    # A bad query parameter gets the same 422 shape as a bad field (not FastAPI's default).
    bad_top = client.post("/predict?explain=true&top=0", json=low)
    assert bad_top.status_code == 422
    (error,) = bad_top.json()["errors"]
    assert (error["field"], error["type"]) == ("top", "greater_than_equal")


def test_no_model_is_503_not_500(tmp_path: Path) -> None:
    app = create_app(Settings(model_uri=str(tmp_path / "nothing"), reload_interval_s=0))
    with TestClient(app) as c:
        r = c.post("/predict", json=example_encounter())
        assert r.status_code == 503
        assert "Retry-After" in r.headers
