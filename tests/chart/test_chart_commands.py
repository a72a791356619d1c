"""The subcharts' own container commands, run here as real processes: the MLflow server exactly as
the mlflow Deployment starts it (its authentication and host check included), the training Job's
init container and arguments against it, the api with its read-only login, and Locust's master
and worker as their Deployments start them. Only paths, ports and Service addresses are
rewritten; the packages are the images' own."""

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
from support.charts import HELM, standalone
from support.project import ROOT, require
from support.servers import free_port, start_api, stop

VENV_BIN = Path(sys.executable).parent
SERVICE = "http://readmit-mlflow:5000"  # what the chart's Job calls the server
AUTH_DIR = "/var/run/secrets/readmit-mlflow"  # where the pods mount the registry's logins
SECRET_KEYS = ("admin-password", "trainer-password", "api-password", "flask-secret-key")
PASSWORDS = {name: f"{name}-0123456789abcdef" for name in SECRET_KEYS}
MODEL = "diabetes-readmission"


def rendered_pod(template: str, *sets: str, chart: str = "mlflow") -> dict:
    require(HELM.exists(), "helm is not built: run `make tools`")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            str(HELM),
            "template",
            "readmit",
            str(standalone(chart, Path(tmp))),
            "-n",
            "lab",
            "--kube-version",
            "1.35.0",
            "--show-only",
            f"templates/{template}",
        ]
        for s in sets:
            args += ["--set", s]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)["spec"]["template"]["spec"]


def container_env(container: dict, home: Path) -> dict[str, str]:
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    return {**os.environ, **env, "HOME": str(home)}


def answers(url: str, host: str, login: tuple[str, str] | None = None) -> int:
    return requests.get(url, headers={"Host": host}, auth=login, timeout=5).status_code


ADMIN = ("admin", PASSWORDS["admin-password"])
TRAINER = ("readmit-trainer", PASSWORDS["trainer-password"])
READER = ("readmit-api", PASSWORDS["api-password"])


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mlflow-auth Secret's files, as the kubelet mounts them."""
    directory = tmp_path_factory.mktemp("mlflow-auth")
    for name, value in PASSWORDS.items():
        (directory / name).write_text(value)
    return directory


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, secrets: Path) -> Iterator[int]:
    """The server as the Deployment runs it, its volume, Secret and port moved here."""
    (container,) = rendered_pod("deployment.yaml")["containers"]
    store = tmp_path_factory.mktemp("mlflow-volume")
    port = free_port()
    moved = {
        "/mlflow/": f"{store}/",
        "--port=5000": f"--port={port}",
        "--host=0.0.0.0": "--host=127.0.0.1",
        AUTH_DIR: str(secrets),
    }
    command = list(container["command"])
    for old, new in moved.items():
        command = [a.replace(old, new) for a in command]
    assert command[0] == "readmit-mlflow-server"
    command[0] = str(VENV_BIN / "readmit-mlflow-server")
    log = store / "server.log"
    proc = subprocess.Popen(
        command,
        env=container_env(container, store),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # the kubelet's request: Host is the pod's IP and port
    url = f"http://127.0.0.1:{port}{container['readinessProbe']['httpGet']['path']}"
    # the server is up once its users are: the trainer may read the model's experiment
    ready = (
        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name={MODEL}"
    )
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if (
                    answers(url, "10.1.2.3:5000") == 200
                    and answers(ready, "localhost", TRAINER) == 200
                ):
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"the chart's mlflow command did not come up: {log.read_text()[-2000:]}")
        yield port
    finally:
        stop(proc)


def test_the_host_check_lets_the_service_names_in_and_no_one_else(server: int) -> None:
    url = f"http://127.0.0.1:{server}/api/2.0/mlflow/experiments/search?max_results=1"
    for host in (
        "readmit-mlflow:5000",
        "readmit-mlflow.lab:5000",
        "readmit-mlflow.lab.svc.cluster.local:5000",
        "localhost:5000",
    ):
        assert answers(url, host, ADMIN) == 200, host  # the api, the Job, a port-forward
    for host in ("10.1.2.3:5000", "attacker.example", "readmit-mlflow.other:5000"):
        assert answers(url, host, ADMIN) == 403, host


def test_no_login_no_registry(server: int) -> None:
    """Without a login nothing but /health answers: no reading, registering or moving an alias."""
    base = f"http://127.0.0.1:{server}"
    assert requests.get(f"{base}/health", timeout=5).status_code == 200
    calls = [
        ("GET", "/api/2.0/mlflow/registered-models/search", None),
        ("POST", "/api/2.0/mlflow/model-versions/create", {"name": MODEL, "source": "/x"}),
        (
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": MODEL, "alias": "production", "version": "1"},
        ),
        ("POST", "/api/2.0/mlflow/users/create", {"username": "me", "password": "x" * 20}),
        ("GET", "/", None),
    ]
    for method, path, body in calls:
        r = requests.request(method, base + path, json=body, timeout=5)
        assert r.status_code == 401, (method, path)
    wrong = requests.get(
        f"{base}/api/2.0/mlflow/registered-models/search",
        timeout=5,
        auth=("readmit-trainer", "guess"),
    )
    assert wrong.status_code == 401


@pytest.fixture(scope="module")
def trained(
    server: int, secrets: Path, data_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The training Job run against the server: its init container, then the trainer, with the
    trainer's login (its password from the Secret's file)."""
    here = f"http://127.0.0.1:{server}"
    pod = rendered_pod("train-job.yaml", "train.sample=3000", "train.data.existingClaim=uci")
    (wait,) = pod["initContainers"]
    wait_script = wait["command"][-1].replace(SERVICE, here).replace(AUTH_DIR, str(secrets))
    subprocess.run([sys.executable, "-c", wait_script], check=True, timeout=30)

    (train,) = pod["containers"]
    args = [
        a.replace(SERVICE, here).replace("/data/dataset_diabetes.zip", str(data_path))
        for a in train["args"]
    ]
    assert f"--tracking-uri={here}" in args
    env = {
        k: v.replace(AUTH_DIR, str(secrets))
        for k, v in container_env(train, tmp_path_factory.mktemp("home")).items()
    }
    assert env["MLFLOW_TRACKING_USERNAME"] == "readmit-trainer"
    train = [str(VENV_BIN / "readmit-train"), *args, "--candidates", "lightgbm"]
    out = subprocess.run(train, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["alias_moved"] is True
    return summary["version"]


def test_the_training_job_registers_the_model(server: int, trained: str) -> None:
    here = f"http://127.0.0.1:{server}"
    version = requests.get(
        f"{here}/api/2.0/mlflow/registered-models/alias",
        auth=READER,
        params={"name": MODEL, "alias": "production"},
        timeout=5,
    )
    assert version.json()["model_version"]["version"] == trained == "1"


def test_the_api_login_reads_the_model_and_can_change_nothing(
    server: int, trained: str, secrets: Path, tmp_path: Path
) -> None:
    """The api's login serves the model (its alias and files), and may not register a version,
    move or delete the alias, delete a version or the model, or write an artifact."""
    here = f"http://127.0.0.1:{server}"
    (api,) = rendered_pod("deployment.yaml", chart="api")["containers"]
    env = {
        e["name"]: e["value"].replace(AUTH_DIR, str(secrets))
        for e in api["env"]
        if e["name"].startswith(("MLFLOW_", "READMIT_MLFLOW"))
    }
    assert env["MLFLOW_TRACKING_USERNAME"] == "readmit-api"
    proc = start_api(tmp_path / "api.log", MLFLOW_TRACKING_URI=here, **env)
    try:
        proc.wait_ready()
        assert requests.get(f"{proc.url}/ready", timeout=5).json()["model"]["version"] == trained
    finally:
        proc.close()
    alias = {"name": MODEL, "alias": "production"}
    writes = [
        ("POST", "/api/2.0/mlflow/model-versions/create", {"name": MODEL, "source": "/x"}),
        ("POST", "/api/2.0/mlflow/registered-models/alias", {**alias, "version": trained}),
        ("DELETE", "/api/2.0/mlflow/registered-models/alias", alias),
        ("DELETE", "/api/2.0/mlflow/model-versions/delete", {"name": MODEL, "version": "1"}),
        ("DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": MODEL}),
        ("POST", "/api/2.0/mlflow/users/create", {"username": "me", "password": "x" * 20}),
    ]
    for method, path, body in writes:
        r = requests.request(method, here + path, json=body, auth=READER, timeout=5)
        assert r.status_code == 403, (method, path, r.text)
    put = requests.put(
        f"{here}/api/2.0/mlflow-artifacts/artifacts/1/evil.txt", data=b"x", auth=READER, timeout=5
    )
    assert put.status_code == 403
    held = requests.get(
        f"{here}/api/2.0/mlflow/registered-models/alias", params=alias, auth=READER, timeout=5
    )
    assert held.json()["model_version"]["version"] == trained  # untouched


def test_locust_master_and_worker_connect_as_the_chart_starts_them(
    api, data_path: Path, tmp_path: Path
) -> None:
    """Master and worker commands from the locust subchart; the worker reaches the master by the
    -master Service's name (here 127.0.0.1), and the master's exporter reports it."""
    # the image's /src/locustfile.py links to this file (never imported here: locust patches ssl)
    locustfile = ROOT / "services/locust/src/readmit_locust/locustfile.py"
    master_port, web_port, metrics_port = free_port(), free_port(), free_port()
    password = tmp_path / "web-password"
    password.write_text("web-password-0123456789")
    moved = {
        "/src/locustfile.py": str(locustfile),
        "=5557": f"={master_port}",
        "--web-port=8089": f"--web-port={web_port}",
        "http://readmit-api:8000": api.url,
        "=readmit-locust-master": "=127.0.0.1",
        "/var/run/secrets/readmit-locust/password": str(password),
    }
    procs = []
    try:
        for role in ("master", "worker"):
            (c,) = rendered_pod(f"{role}.yaml", chart="locust")["containers"]
            command = [*c["command"], *c["args"]]
            for old, new in moved.items():
                command = [a.replace(old, new) for a in command]
            assert command[0] == "locust"
            command[0] = str(VENV_BIN / "locust")
            env = {
                **container_env(c, tmp_path),
                "READMIT_DATA": str(data_path),
                "READMIT_LOCUST_METRICS_PORT": str(metrics_port),
                "READMIT_LOCUST_METRICS_ADDR": "127.0.0.1",
            }
            for old, new in moved.items():
                env = {k: v.replace(old, new) for k, v in env.items()}
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            procs.append(subprocess.Popen(command, env=env, start_new_session=True, **quiet))
        deadline = time.monotonic() + 120
        workers = ""
        while time.monotonic() < deadline:
            try:
                text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
                workers = next(
                    line for line in text.splitlines() if line.startswith("locust_workers ")
                )
                if workers == "locust_workers 1.0":
                    break
            except (requests.ConnectionError, StopIteration):
                pass
            time.sleep(0.5)
        assert workers == "locust_workers 1.0", workers
        # the web UI asks for its login first
        page = requests.get(f"http://127.0.0.1:{web_port}/", allow_redirects=False, timeout=5)
        assert page.status_code == 302
        assert page.headers["location"].startswith("/login")
    finally:
        for proc in reversed(procs):
            stop(proc)
