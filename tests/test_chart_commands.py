"""The subcharts' own container commands, run here as real processes: the MLflow server exactly as
the mlflow Deployment starts it (its host check included), the training Job's init container and
arguments against it, and Locust's master and worker as their Deployments start them. Only paths,
ports and Service addresses are rewritten; the packages are the images' own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from chart_tools import HELM, standalone
from conftest import require
from servers import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SERVICE = "http://readmit-mlflow:5000"  # what the chart's Job calls the server


def rendered_pod(template: str, *sets: str, chart: str = "mlflow") -> dict:
    require(HELM.exists(), "helm is not built: run `make tools`")
    with tempfile.TemporaryDirectory() as tmp:
        args = [str(HELM), "template", "readmit", str(standalone(chart, Path(tmp))), "-n", "lab",
                "--kube-version", "1.35.0", "--show-only", f"templates/{template}"]  # fmt: skip
        for s in sets:
            args += ["--set", s]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)["spec"]["template"]["spec"]


def container_env(container: dict, home: Path) -> dict[str, str]:
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    return {**os.environ, **env, "HOME": str(home)}


def answers(url: str, host: str) -> int:
    return requests.get(url, headers={"Host": host}, timeout=5).status_code


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The server as the Deployment runs it, its volume and port moved here."""
    (container,) = rendered_pod("deployment.yaml")["containers"]
    store = tmp_path_factory.mktemp("mlflow-volume")
    port = free_port()
    moved = {"/mlflow/": f"{store}/", "--port=5000": f"--port={port}",
             "--host=0.0.0.0": "--host=127.0.0.1"}  # fmt: skip
    command = list(container["command"])
    for old, new in moved.items():
        command = [a.replace(old, new) for a in command]
    assert command[:2] == ["mlflow", "server"]
    command[0] = str(VENV_BIN / "mlflow")
    log = store / "server.log"
    proc = subprocess.Popen(command, env=container_env(container, store), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    # the kubelet's request: Host is the pod's IP and port
    url = f"http://127.0.0.1:{port}{container['readinessProbe']['httpGet']['path']}"
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if answers(url, "10.1.2.3:5000") == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        else:
            pytest.fail(f"the chart's mlflow command did not come up: {log.read_text()[-2000:]}")
        yield port
    finally:
        stop(proc)


def test_the_host_check_lets_the_service_names_in_and_no_one_else(server: int) -> None:
    url = f"http://127.0.0.1:{server}/api/2.0/mlflow/experiments/search?max_results=1"
    for host in ("readmit-mlflow:5000", "readmit-mlflow.lab:5000",
                 "readmit-mlflow.lab.svc.cluster.local:5000", "localhost:5000"):  # fmt: skip
        assert answers(url, host) == 200, host  # the api, the Job, a port-forward
    for host in ("10.1.2.3:5000", "attacker.example", "readmit-mlflow.other:5000"):
        assert answers(url, host) == 403, host


def test_the_training_job_registers_the_model(server: int, data_path: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    here = f"http://127.0.0.1:{server}"
    pod = rendered_pod("train-job.yaml", "train.sample=3000", "train.data.existingClaim=uci")
    (wait,) = pod["initContainers"]
    wait_script = wait["command"][-1].replace(SERVICE, here)
    subprocess.run([sys.executable, "-c", wait_script], check=True, timeout=30)

    (train,) = pod["containers"]
    args = [a.replace(SERVICE, here).replace("/data/dataset_diabetes.zip", str(data_path))
            for a in train["args"]]  # fmt: skip
    assert f"--tracking-uri={here}" in args
    out = subprocess.run([str(VENV_BIN / "readmit-train"), *args], capture_output=True,
                         text=True, env=container_env(train, tmp_path), timeout=600,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["alias_moved"] is True

    from mlflow import MlflowClient

    client = MlflowClient(here, here)
    version = client.get_model_version_by_alias("diabetes-readmission", "production")
    assert version.version == "1"


def test_locust_master_and_worker_connect_as_the_chart_starts_them(
    api, data_path: Path, tmp_path: Path
) -> None:
    """Master and worker commands from the locust subchart; the worker reaches the master by the
    -master Service's name (here 127.0.0.1), and the master's exporter reports it."""
    # the image's /src/locustfile.py links to this file (never imported here: locust patches ssl)
    locustfile = ROOT / "services/locust/src/readmit_locust/locustfile.py"
    master_port, web_port, metrics_port = free_port(), free_port(), free_port()
    moved = {"/src/locustfile.py": str(locustfile), "=5557": f"={master_port}",
             "--web-port=8089": f"--web-port={web_port}", "http://readmit-api:8000": api.url,
             "=readmit-locust-master": "=127.0.0.1"}  # fmt: skip
    procs = []
    try:
        for role in ("master", "worker"):
            (c,) = rendered_pod(f"{role}.yaml", chart="locust")["containers"]
            command = [*c["command"], *c["args"]]
            for old, new in moved.items():
                command = [a.replace(old, new) for a in command]
            assert command[0] == "locust"
            command[0] = str(VENV_BIN / "locust")
            env = {**container_env(c, tmp_path), "READMIT_DATA": str(data_path),
                   "READMIT_LOCUST_METRICS_PORT": str(metrics_port),
                   "READMIT_LOCUST_METRICS_ADDR": "127.0.0.1"}  # fmt: skip
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            procs.append(subprocess.Popen(command, env=env, start_new_session=True, **quiet))
        deadline = time.monotonic() + 120
        workers = ""
        while time.monotonic() < deadline:
            try:
                text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
                workers = next(line for line in text.splitlines()
                               if line.startswith("locust_workers "))  # fmt: skip
                if workers == "locust_workers 1.0":
                    break
            except (requests.ConnectionError, StopIteration):
                pass
            time.sleep(0.5)
        assert workers == "locust_workers 1.0", workers
        assert requests.get(f"http://127.0.0.1:{web_port}/", timeout=5).status_code == 200
    finally:
        for proc in reversed(procs):
            stop(proc)
