"""Shared fixtures: the real data set, free ports, a real MLflow server, a trained model.

Servers and models are session-scoped: started or trained once per test run.
READMIT_STRICT=1 (set by .ci/run) turns every "tool or data missing" skip into a failure.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_tools import HELM
from servers import API_BIN, DEX_USER, ApiProcess, free_port, stop, wait_http

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STRICT = os.environ.get("READMIT_STRICT") == "1"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dataset_diabetes.zip"
CHART_FILES = ("Chart.yaml", "Chart.lock", "values.yaml", "values.schema.json", ".helmignore",
               "templates", "charts", "dashboards")  # fmt: skip


# The real kube-prometheus-stack, the version Chart.lock pins (beside the project, never committed).
KPS_CHART = ROOT.parent / "shared" / "charts" / "kube-prometheus-stack-88.5.3.tgz"


def copy_chart(dst: Path, real_stack: bool = False) -> Path:
    """The chart at ``dst`` with kube-prometheus-stack in its charts/ (Helm refuses a chart whose
    dependency is missing, even a disabled one): the real chart (the e2e tier, and the renders
    of what it makes of our values: test_chart_kps), or a test-only stand-in
    (tests/helm/kube-prometheus-stack) where a render concerns our own templates only, which
    keeps the fast tier fast."""
    dst.mkdir(parents=True)
    for name in CHART_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("*.tgz"))
        else:
            shutil.copy(src, dst / name)
    if real_stack:
        require(KPS_CHART.is_file(), f"the kube-prometheus-stack chart is not at {KPS_CHART}")
        shutil.copy(KPS_CHART, dst / "charts")
    else:
        shutil.copytree(ROOT / "tests/helm/kube-prometheus-stack",
                        dst / "charts/kube-prometheus-stack")  # fmt: skip
    return dst


# The fast tier (`make test-fast`): a test is in it when it needs none of these, directly or
# through its fixtures (they start servers, train models or read the 100k-row data set), and is
# not an e2e test (those have their own cluster fixtures).
SLOW_FIXTURES = frozenset({
    "data_path", "encounters", "mlflow_server", "sqlite_registry", "api_model", "api",
    "browser", "ui", "stack", "server", "lifecycle_api", "lifecycle_model", "server_runs",
    "records", "reference",
})  # fmt: skip
SLOW_MODULES = frozenset({"test_api_schemathesis", "test_locust", "test_ui", "test_ui_browser",
                          "test_chart_commands"})  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if item.module else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if "e2e" in item.keywords or module in SLOW_MODULES or fixtures & SLOW_FIXTURES:
            continue
        item.add_marker(pytest.mark.fast)


def require(condition: bool, reason: str) -> None:
    """Skip when a laptop lacks a tool or the data; under READMIT_STRICT=1, fail instead."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"READMIT_STRICT=1: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def helm() -> Path:
    require(HELM.exists(), "helm is not built: run `make tools`")
    return HELM


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The umbrella as the chart tests render it (the e2e modules bring their own)."""
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


def run_trainer(data: Path, tracking_uri: str, *args: str) -> dict[str, Any]:
    """Run the real ``readmit-train`` CLI; returns the JSON of its last stdout line."""
    out = subprocess.run(
        [
            str(VENV_BIN / "readmit-train"),
            "--data",
            str(data),
            "--tracking-uri",
            tracking_uri,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` (sqlite + proxied local artifacts) on a free loopback port."""
    mlflow_bin = VENV_BIN / "mlflow"
    require(mlflow_bin.exists() or shutil.which("mlflow") is not None, "mlflow is not installed")
    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination",
            str(home / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=120, proc=proc)
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="session")
def sqlite_registry(data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model trained once on a subsample and registered in a local sqlite store."""
    db = tmp_path_factory.mktemp("sqlite-registry") / "mlflow.db"
    uri = f"sqlite:///{db}"
    result = run_trainer(data_path, uri, "--sample", "6000", "--seed", "7")
    return {"uri": uri, "result": result}


API_MODEL = "api-test"


@pytest.fixture(scope="session")
def api_model(mlflow_server: str, data_path: Path) -> dict[str, Any]:
    """A model for the api tests, trained once and registered under its own name."""
    return run_trainer(
        data_path, mlflow_server, "--model-name", API_MODEL, "--sample", "5000",
        "--candidates", "lightgbm", "--seed", "3",
    )  # fmt: skip


def start_api(log_path: Path, preexec_fn: Any = None, audit_path: Path | None = None,
              **env: str) -> ApiProcess:  # fmt: skip
    require(API_BIN.exists(), f"{API_BIN} is missing: run `make install`")
    return ApiProcess(log_path, preexec_fn, audit_path, **env)


@pytest.fixture(scope="session")
def api(mlflow_server: str, api_model: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:  # fmt: skip
    """The api serving ``api-test@production`` from the real MLflow server."""
    proc = start_api(tmp_path_factory.mktemp("api") / "api.log",
                     MLFLOW_TRACKING_URI=mlflow_server, READMIT_MODEL_NAME=API_MODEL)  # fmt: skip
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="session")
def example() -> dict[str, Any]:
    from readmit_core.schema import example_encounter

    return example_encounter()


def flat_rates(prior: float = 0.1) -> Any:
    """Diagnosis rates that know no code: every rate is the prior (for models made by hand)."""
    from readmit_core.diagnosis_rates import TABLES, DiagnosisRates

    return DiagnosisRates(prior, {name: {} for name in TABLES})


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
    from readmit_core.scorers import BoosterScorer

    rng = np.random.default_rng(1)
    rates = flat_rates()
    x = encode_records([example_encounter()] * 400, rates)
    x[:, FEATURE_NAMES.index("number_inpatient")] = rng.integers(0, 6, 400)
    y = (x[:, FEATURE_NAMES.index("number_inpatient")] + rng.normal(size=400) > 3).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4,
                         "min_data_in_leaf": 5}, lgb.Dataset(x, y), 10)  # fmt: skip
    model = ReadmissionModel(BoosterScorer(booster.model_to_string()), 0.5, "lightgbm", rates,
                             info={"drift_baseline": None})  # fmt: skip
    directory = tmp_path_factory.mktemp("tiny-model")
    artifact.save(model, directory)
    return directory


def use_mlflow(uri: str) -> None:
    """Point this process's MLflow client (tracking and registry: both are global) at ``uri``."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


# Debian's Chromium, driven by Playwright (no browser download).
CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps dialling Google's hosts, refused here.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-quic"]  # fmt: skip
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require(CHROMIUM.exists(), "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


# The lab login the tests' ui processes are started with (readmit_ui.signin).
UI_USER, UI_PASSWORD = "clinician", "test-" + "p" * 16


@functools.cache
def ui_login_env() -> dict[str, str]:
    import bcrypt

    hashed = bcrypt.hashpw(UI_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    return {"READMIT_UI_AUTH": "password", "READMIT_UI_LOGIN_USER": UI_USER,
            "READMIT_UI_LOGIN_PASSWORD_HASH": hashed}  # fmt: skip


def shows_a_risk(browser, url: str, screenshot: str,
                 login: tuple[str, str] = (UI_USER, UI_PASSWORD)) -> None:  # fmt: skip
    """The page at ``url`` signs in, predicts the default encounter and shows a risk (a
    screenshot of it goes to test-artifacts/)."""
    page = open_page(browser, url, login)
    page.get_by_role("button", name="Predict readmission risk").click()
    result = page.get_by_text("Readmission risk within 30 days")
    result.wait_for()
    assert "%" in result.inner_text()
    result.scroll_into_view_if_needed()
    page.screenshot(path=str(ROOT / "test-artifacts" / screenshot))
    page.close()


def sign_in(page, login: tuple[str, str]) -> None:
    """The lab login's form: nothing else of the page is there before it."""
    page.get_by_role("textbox", name="User name").fill(login[0])
    page.get_by_role("textbox", name="Password").fill(login[1])
    page.get_by_role("button", name="Sign in").click()


def dex_sign_in(page, password: str) -> None:
    """Dex's own login page (the tests' provider, tests/servers.py), as its user."""
    page.get_by_label("Email Address").fill(DEX_USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Login").click()


def open_page(browser, url: str, login: tuple[str, str] | None = (UI_USER, UI_PASSWORD)):
    """A new page at ``url``, signed in with the lab login (``login``; None: as it comes)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    if login is not None:
        sign_in(page, login)
        page.get_by_text("30-day readmission risk").first.wait_for()
    return page
