"""The api in-process (Starlette's TestClient over httpx, lifespan included) on a tiny model
fitted here and saved as data: the request path without a registry, a server or the data set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from conftest import flat_rates
from fastapi.testclient import TestClient

from readmit_api.app import create_app
from readmit_api.settings import Settings
from readmit_core import artifact
from readmit_core.features import FEATURE_NAMES, encode_records
from readmit_core.model import ReadmissionModel
from readmit_core.schema import example_encounter
from readmit_core.scorers import BoosterScorer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)
    rates = flat_rates()
    x = encode_records([example_encounter()] * 400, rates)
    x[:, FEATURE_NAMES.index("number_inpatient")] = rng.integers(0, 6, 400)
    y = (x[:, FEATURE_NAMES.index("number_inpatient")] + rng.normal(size=400) > 3).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4,
                         "min_data_in_leaf": 5}, lgb.Dataset(x, y), 10)  # fmt: skip
    model = ReadmissionModel(BoosterScorer(booster.model_to_string()), 0.5, "lightgbm", rates,
                             info={"drift_baseline": None})  # fmt: skip
    directory = tmp_path_factory.mktemp("model")
    artifact.save(model, directory)
    return directory


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(model_uri=str(model_dir), reload_interval_s=0, max_batch=3))
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
