"""Locust master + 2 workers (real processes) against the real api, and its Prometheus exporter."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from support.servers import ApiProcess, free_port

LOADTEST = Path(sys.executable).parent / "readmit-loadtest"


def start_loadtest(
    host: str, report_dir: Path, run_time: str, metrics_port: int, data: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(LOADTEST),
            "--host",
            host,
            "--users",
            "10",
            "--spawn-rate",
            "10",
            "--run-time",
            run_time,
            "--workers",
            "2",
            "--report-dir",
            str(report_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "READMIT_DATA": str(data),
            "READMIT_LOCUST_METRICS_PORT": str(metrics_port),
            "READMIT_LOCUST_METRICS_ADDR": "127.0.0.1",
            "READMIT_LOCUST_ENCOUNTERS": "500",
            "READMIT_LOCUST_WAIT_MAX_S": "0.3",
        },
    )


def scrape(port: int) -> dict[str, float]:
    samples = {}
    for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def test_distributed_run_against_the_api(api: ApiProcess, tmp_path: Path, data_path: Path) -> None:
    predictions_before = api.metric(
        "readmit_http_requests_total", method="POST", route="/predict", status="200"
    )
    metrics_port = free_port()
    run = start_loadtest(api.url, tmp_path, "15s", metrics_port, data_path)
    try:
        # While it runs, the master exports the run's numbers.
        deadline, seen = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            try:
                seen = scrape(metrics_port)
                total = '{method="",name="Aggregated"}'
                if (
                    seen.get(f"locust_requests_total{total}", 0) > 20
                    and seen.get(f"locust_requests_per_second{total}", 0) > 0
                ):
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        out, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out[-3000:]
    assert seen["locust_users"] == 10
    assert seen["locust_workers"] == 2
    assert seen['locust_state{state="running"}'] == 1
    assert seen['locust_requests_total{method="POST",name="/predict"}'] > 0
    assert seen['locust_requests_per_second{method="",name="Aggregated"}'] > 0
    assert seen['locust_response_time_seconds{method="POST",name="/predict",quantile="0.95"}'] > 0
    assert "load test:" in out
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    assert {"/predict", "/predict/batch", "/model", "/health"} <= set(rows)
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert int(rows["Aggregated"]["Request Count"]) > 100
    assert (tmp_path / "run.html").stat().st_size > 0
    # the api saw the load
    after = api.metric("readmit_http_requests_total", method="POST", route="/predict", status="200")
    assert after - predictions_before >= int(rows["/predict"]["Request Count"])


def test_broken_endpoint_fails_the_run(mlflow_server: str, tmp_path: Path, data_path: Path) -> None:
    """MLflow's server has no /predict: every request fails, and so does the run."""
    run = start_loadtest(mlflow_server, tmp_path, "5s", free_port(), data_path)
    out, _ = run.communicate(timeout=180)
    assert run.returncode == 1, out[-3000:]
    with (tmp_path / "run_stats.csv").open() as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    assert int(total["Failure Count"]) > 0
