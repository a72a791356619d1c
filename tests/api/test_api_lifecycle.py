"""Model lifecycle: not ready -> ready, registry down at start or later, hot reload, failing
reload, and the drain on SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from support.models import hostile_pickle
from support.servers import API_MODEL, ApiProcess, TcpProxy, client, start_api, use_mlflow

LIFECYCLE_MODEL = "api-lifecycle"


@pytest.fixture(scope="module")
def lifecycle_model(mlflow_server: str, api_model: dict[str, Any]) -> str:
    """Its own registered model (version 1 = the api-test model's artifacts), alias production."""
    c = client(mlflow_server)
    v = c.copy_model_version(f"models:/{API_MODEL}/{api_model['version']}", LIFECYCLE_MODEL)
    c.set_registered_model_alias(LIFECYCLE_MODEL, "production", v.version)
    return str(v.version)


def test_registry_down_at_start_then_up(
    mlflow_server: str, lifecycle_model: str, tmp_path: Path
) -> None:
    """No crash loop: /health 200 and /ready 503 with the reason, until the registry answers."""
    port = int(mlflow_server.rsplit(":", 1)[1])
    proxy = TcpProxy(port)  # not listening yet: the registry is "down"
    uri = f"http://127.0.0.1:{proxy.port}"
    api = start_api(
        tmp_path / "api.log", MLFLOW_TRACKING_URI=uri, READMIT_MODEL_NAME=LIFECYCLE_MODEL
    )
    try:
        api.wait_healthy()
        wait_for(lambda: api.metric("readmit_model_alias_check_failures_total") >= 2, 60)
        ready = requests.get(f"{api.url}/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.headers["retry-after"]
        assert ready.json()["status"] == "not ready"
        # anyone may ask /ready: a short reason there, the registry's own words in the log
        assert ready.json()["reason"] == (
            "no model loaded: the alias check failed (the api's log says why)"
        )
        assert "Connection refused" in api.log_text()
        # the autoscaler's load series exist at 0 before the first prediction (not missing)
        exposed = requests.get(api.metrics_url, timeout=5).text
        assert 'readmit_http_requests_total{method="POST",route="/predict",status="200"} 0.0' in (
            exposed
        )
        assert 'readmit_http_request_duration_seconds_sum{method="POST",route="/predict"} 0.0' in (
            exposed
        )
        predict = requests.post(f"{api.url}/predict", json={}, timeout=5)
        assert predict.status_code == 503
        assert predict.headers["retry-after"]
        assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
        assert api.metric("readmit_model_loaded") == 0
        assert api.metric("readmit_model_load_failures_total") == 0  # nothing failed to load
        assert api.proc.poll() is None  # still running
        proxy.up()
        api.wait_ready(timeout=60)
        assert requests.get(f"{api.url}/ready", timeout=5).json()["model"]["version"] == (
            lifecycle_model
        )
        assert api.metric("readmit_model_loaded") == 1
    finally:
        api.close()
        proxy.down()


@pytest.fixture(scope="module")
def lifecycle_api(
    mlflow_server: str, lifecycle_model: str, tmp_path_factory: pytest.TempPathFactory
):
    log = tmp_path_factory.mktemp("lifecycle") / "api.log"
    api = start_api(log, MLFLOW_TRACKING_URI=mlflow_server, READMIT_MODEL_NAME=LIFECYCLE_MODEL)
    try:
        api.wait_ready()
        yield api
    finally:
        api.close()


class Load:
    """Concurrent /predict traffic in background threads; counts statuses and versions served."""

    def __init__(self, api: ApiProcess, record: dict[str, Any], threads: int = 8) -> None:
        self.api, self.record = api, record
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with requests.Session() as s:
            while not self._stop.is_set():
                r = s.post(f"{self.api.url}/predict", json=self.record, timeout=30)
                with self._lock:
                    self.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        self.versions[r.json()["model"]["version"]] += 1

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_hot_reload_under_load_fails_no_request(
    lifecycle_api: ApiProcess, mlflow_server: str, lifecycle_model: str, example: dict[str, Any]
) -> None:
    c = client(mlflow_server)
    v2 = c.copy_model_version(f"models:/{LIFECYCLE_MODEL}/{lifecycle_model}", LIFECYCLE_MODEL)
    with Load(lifecycle_api, example) as load:
        wait_for(lambda: load.versions[lifecycle_model] > 20, 30)
        c.set_registered_model_alias(LIFECYCLE_MODEL, "production", v2.version)
        wait_for(lambda: load.versions[str(v2.version)] > 20, 60)
    assert set(load.statuses) == {200}, load.statuses
    assert requests.get(f"{lifecycle_api.url}/model", timeout=5).json()["version"] == str(
        v2.version
    )
    info = lifecycle_api.metric(
        "readmit_model_info", alias="production", name=LIFECYCLE_MODEL, version=str(v2.version)
    )
    assert info == 1


def alias_files_and_wait_for_refusal(api: ApiProcess, uri: str, files: Path) -> str:
    """Register ``files`` as a new version under the alias (a real run's "model" artifact) and
    wait until the api failed to load it; returns the version it still serves."""
    c = client(uri)
    serving = requests.get(f"{api.url}/model", timeout=5).json()["version"]
    failures = api.metric("readmit_model_load_failures_total")
    run = c.create_run(c.get_experiment_by_name("Default").experiment_id)
    c.log_artifacts(run.info.run_id, str(files), "model")
    version = c.create_model_version(
        LIFECYCLE_MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    c.set_registered_model_alias(LIFECYCLE_MODEL, "production", version.version)
    wait_for(lambda: api.metric("readmit_model_load_failures_total") > failures, 30)
    return serving


def test_failing_reload_keeps_the_old_model(
    lifecycle_api: ApiProcess, mlflow_server: str, example: dict[str, Any], tmp_path: Path
) -> None:
    bogus = tmp_path / "model"  # not a loadable model
    bogus.mkdir()
    (bogus / "MLmodel").write_text("flavors: {}\n")
    serving = alias_files_and_wait_for_refusal(lifecycle_api, mlflow_server, bogus)
    r = requests.post(f"{lifecycle_api.url}/predict", json=example, timeout=10)
    assert r.status_code == 200
    assert r.json()["model"]["version"] == serving
    assert requests.get(f"{lifecycle_api.url}/ready", timeout=5).status_code == 200
    assert "model load failed" in lifecycle_api.log_text()


def test_a_version_carrying_a_pickle_is_refused_and_never_run(
    lifecycle_api: ApiProcess, mlflow_server: str, example: dict[str, Any], tmp_path: Path
) -> None:
    """Whoever can write a version cannot run code in the api: the pickle would create a file."""
    marker = tmp_path / "unpickled"
    hostile = hostile_pickle(tmp_path / "model", marker)
    serving = alias_files_and_wait_for_refusal(lifecycle_api, mlflow_server, hostile)
    assert "pickled model format" in lifecycle_api.log_text()
    assert not marker.exists()
    r = requests.post(f"{lifecycle_api.url}/predict", json=example, timeout=10)
    assert r.status_code == 200
    assert r.json()["model"]["version"] == serving


def test_local_model_directory_without_a_registry(
    mlflow_server: str, api_model: dict[str, Any], tmp_path: Path, example: dict[str, Any]
) -> None:
    """READMIT_MODEL_URI: an air-gapped cluster serves a model directory, no MLflow server."""
    import mlflow

    use_mlflow(mlflow_server)
    local = mlflow.artifacts.download_artifacts(
        f"models:/{API_MODEL}/{api_model['version']}", dst_path=str(tmp_path / "model")
    )
    api = start_api(tmp_path / "api.log", READMIT_MODEL_URI=local, MLFLOW_TRACKING_URI="")
    try:
        api.wait_ready()
        body = requests.post(f"{api.url}/predict", json=example, timeout=10).json()
        assert body["model"] == {"name": "diabetes-readmission", "version": "local", "alias": None}
        assert body["threshold"] == pytest.approx(api_model["threshold"])
    finally:
        api.close()


def test_registry_down_later_keeps_serving_and_counts_the_checks(
    mlflow_server: str, api_model: dict[str, Any], tmp_path: Path, example: dict[str, Any]
) -> None:
    port = int(mlflow_server.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    proxy.up()
    uri = f"http://127.0.0.1:{proxy.port}"
    api = start_api(tmp_path / "api.log", MLFLOW_TRACKING_URI=uri, READMIT_MODEL_NAME=API_MODEL)
    try:
        api.wait_ready()
        proxy.down()
        wait_for(lambda: api.metric("readmit_model_alias_check_failures_total") >= 2, 30)
        assert requests.get(f"{api.url}/ready", timeout=5).status_code == 200
        assert requests.post(f"{api.url}/predict", json=example, timeout=10).status_code == 200
        assert api.metric("readmit_model_load_failures_total") == 0
        assert "alias check failed" in api.log_text()
    finally:
        api.close()
        proxy.down()


def test_sigterm_drains_then_stops(
    mlflow_server: str, api_model: dict[str, Any], tmp_path: Path, example: dict[str, Any]
) -> None:
    """Draining: still serving, not ready, each response closes its connection; after the drain,
    uvicorn's graceful shutdown (the signal is re-raised at the end, as uvicorn does)."""
    api = start_api(
        tmp_path / "api.log",
        MLFLOW_TRACKING_URI=mlflow_server,
        READMIT_MODEL_NAME=API_MODEL,
        READMIT_SHUTDOWN_DRAIN_S="3",
    )
    try:
        api.wait_ready()
        with requests.Session() as kept_alive:
            before = kept_alive.post(f"{api.url}/predict", json=example, timeout=10)
            assert before.headers.get("connection") != "close"
            api.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            wait_for(lambda: requests.get(f"{api.url}/ready", timeout=5).status_code == 503, 5)
            ready = requests.get(f"{api.url}/ready", timeout=5)
            assert ready.json() == {"status": "not ready", "reason": "shutting down"}
            during = kept_alive.post(f"{api.url}/predict", json=example, timeout=10)
            assert during.status_code == 200
            assert during.headers["connection"] == "close"
        assert api.proc.wait(timeout=20) == -signal.SIGTERM
        assert time.monotonic() - signalled >= 3
        log = api.log_text()
        assert "draining before shutdown" in log
        assert "Application shutdown complete" in log
    finally:
        api.close()
