"""The fixtures, and the hook that sorts tests into the fast tier; what they use is in support/.

Servers and models are session-scoped: started or trained once per test run.
READMIT_STRICT=1 (set by .ci/run) turns every "tool or data missing" skip into a failure
(support.project.require).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.charts import HELM, copy_chart
from support.models import flat_rates
from support.project import ARTIFACTS, DEFAULT_DATA, require
from support.servers import (
    API_MODEL,
    ApiProcess,
    ready_api,
    run_trainer,
    start_mlflow,
    stop,
)

# The fast tier (`make test-fast`): a test is in it when it needs none of these, directly or
# through its fixtures (they start servers, train models or read the 100k-row data set), and is
# not an e2e test (those have their own cluster fixtures).
SLOW_FIXTURES = frozenset(
    {
        "data_path",
        "encounters",
        "mlflow_server",
        "sqlite_registry",
        "api_model",
        "api",
        "browser",
        "ui",
        "stack",
        "server",
        "lifecycle_api",
        "lifecycle_model",
        "server_runs",
        "records",
        "reference",
    }
)
SLOW_MODULES = frozenset(
    {"test_api_schemathesis", "test_locust", "test_ui", "test_ui_browser", "test_chart_commands"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if item.module else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        slow = "e2e" in item.keywords or "slow" in item.keywords
        if slow or module in SLOW_MODULES or fixtures & SLOW_FIXTURES:
            continue
        item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session")
def helm() -> Path:
    require(HELM.exists(), "helm is not built: run `make tools`")
    return HELM


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The umbrella as the chart tests render it (the e2e tier brings its own)."""
    return copy_chart(tmp_path_factory.mktemp("chart") / "readmit")


@pytest.fixture(scope="session")
def data_path() -> Path:
    path = Path(os.environ.get("READMIT_DATA") or DEFAULT_DATA)
    require(path.is_file(), f"the UCI data set is not at {path} (set READMIT_DATA)")
    return path


@pytest.fixture(scope="session")
def encounters(data_path: Path):
    from readmit_core.data import load_encounters

    return load_encounters(data_path)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's MLflow server's store (mlflow.db, artifacts/)."""
    return tmp_path_factory.mktemp("mlflow-server")


@pytest.fixture(scope="session")
def mlflow_server(mlflow_store: Path) -> Iterator[str]:
    """A real ``mlflow server`` (sqlite + proxied local artifacts) on a free loopback port."""
    proc, url = start_mlflow(mlflow_store)
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def sqlite_registry(data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model trained once on a subsample and registered in a local sqlite store."""
    db = tmp_path_factory.mktemp("sqlite-registry") / "mlflow.db"
    uri = f"sqlite:///{db}"
    result = run_trainer(data_path, uri, "--sample", "6000", "--seed", "7")
    return {"uri": uri, "result": result}


@pytest.fixture(scope="session")
def api_model(mlflow_server: str, data_path: Path) -> dict[str, Any]:
    """A model for the api tests, trained once and registered under its own name."""
    return run_trainer(
        data_path,
        mlflow_server,
        "--model-name",
        API_MODEL,
        "--sample",
        "5000",
        "--candidates",
        "lightgbm",
        "--seed",
        "3",
    )


@pytest.fixture(scope="session")
def api(
    mlflow_server: str, api_model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """The api serving ``api-test@production`` from the real MLflow server."""
    with ready_api(
        tmp_path_factory.mktemp("api") / "api.log",
        MLFLOW_TRACKING_URI=mlflow_server,
        READMIT_MODEL_NAME=API_MODEL,
    ) as proc:
        yield proc


@pytest.fixture(scope="session")
def example() -> dict[str, Any]:
    from readmit_core.schema import example_encounter

    return example_encounter()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LightGBM model fitted here and saved as data (a READMIT_MODEL_URI directory):
    the api's request path without a registry or the data set. Risk rises with prior stays."""
    import lightgbm as lgb
    import numpy as np

    from readmit_core import artifact
    from readmit_core.features import FEATURE_NAMES, encode_records
    from readmit_core.model import ReadmissionModel
    from readmit_core.schema import example_encounter
    from readmit_core.scoring import LightGBMScorer

    rng = np.random.default_rng(1)
    rates = flat_rates()
    x = encode_records([example_encounter()] * 400, rates)
    x[:, FEATURE_NAMES.index("number_inpatient")] = rng.integers(0, 6, 400)
    y = (x[:, FEATURE_NAMES.index("number_inpatient")] + rng.normal(size=400) > 3).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5},
        lgb.Dataset(x, y),
        10,
    )
    model = ReadmissionModel(
        LightGBMScorer(booster.model_to_string()),
        0.5,
        "lightgbm",
        rates,
        info={"drift_baseline": None},
    )
    directory = tmp_path_factory.mktemp("tiny-model")
    artifact.save(model, directory)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require(CHROMIUM.exists(), "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


# The lab login the tests' ui processes are started with (readmit_ui.signin).
