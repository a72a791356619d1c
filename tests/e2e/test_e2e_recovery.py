"""Disaster recovery: the lab's registry backed up, a new install restored from it; and a
training Job that cannot reach MLflow failing in bounded time, saying why."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from support.kube import (
    K8S_BIN,
    KUBECONFIG,
    RELEASE,
    helm,
    kubectl,
    make_claims,
    secret_value,
    values_args,
    wait_until,
)
from support.node import NODE_PORT, run_script
from support.project import ARTIFACTS, ROOT

pytestmark = pytest.mark.e2e

DR = "readmit-dr"
DR_API = NODE_PORT.format(port=30085)
MODEL = "diabetes-readmission"
WAIT_JOBS = ("--wait", "--wait-for-jobs", "--timeout", "10m")


def sets(*assignments: str) -> list[str]:
    return [a for kv in assignments for a in ("--set", kv)]


def script(name: str, namespace: str, *args: str) -> float:
    """scripts/NAME.sh as a user runs it (kubectl of this cluster); the seconds it took."""
    env = {
        **os.environ,
        "KUBECTL": f"{K8S_BIN / 'kubectl'} --kubeconfig {KUBECONFIG}",
        "READMIT_NAMESPACE": namespace,
    }
    started = time.monotonic()
    out = run_script(name, *args, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return time.monotonic() - started


def risk_of(url: str, namespace: str) -> tuple[float, str]:
    """The risk the api at ``url`` gives the example encounter, and the version it serves."""
    key = secret_value(namespace, f"{RELEASE}-api-keys", "operator")
    body = (ROOT / "scripts/example-encounter.json").read_text()
    headers = {"content-type": "application/json", "Authorization": f"Bearer {key}"}
    answer = requests.post(f"{url}/predict", data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    ready = requests.get(f"{url}/ready", timeout=10).json()
    return answer.json()["readmission_risk"], ready["model"]["version"]


def registry_get(namespace: str, path: str) -> dict[str, Any]:
    """GET one path of the release's MLflow, from inside its pod, as its admin."""
    password = secret_value(namespace, f"{RELEASE}-mlflow-auth", "admin-password")
    code = (
        "import base64, sys, urllib.request as u\n"
        "token = base64.b64encode(('admin:' + sys.argv[2]).encode()).decode()\n"
        "ask = u.Request('http://127.0.0.1:5000' + sys.argv[1],"
        " headers={'Authorization': 'Basic ' + token})\n"
        "print(u.urlopen(ask, timeout=10).read().decode())\n"
    )
    python = ("python", "-c", code, path, password)
    pod = f"deploy/{RELEASE}-mlflow"
    return json.loads(kubectl("-n", namespace, "exec", pod, "-c", "mlflow", "--", *python))


@pytest.fixture(scope="module")
def restored(
    lab: str, chart: Path, images: Path, data_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The lab's registry backed up with scripts/backup.sh, and a new install, on a new and
    empty volume (all a deleted namespace leaves of a registry on hostpath-storage), restored
    from it with scripts/restore.sh."""
    risk, version = risk_of(NODE_PORT.format(port=30080), lab)
    backup = tmp_path_factory.mktemp("dr") / "registry.tar"
    backed_up = script("backup", lab, str(backup))
    kubectl("create", "namespace", DR)
    make_claims(DR, data_path, "dr")
    # mlflow, its Job and the api only; no --wait: the api is not Ready before the restore
    here = sets(
        "ui.enabled=false",
        "locust.enabled=false",
        "api.service.nodePort=30085",
        "api.resources.requests.cpu=50m",
        "api.mlflow.reloadIntervalSeconds=5",
        "mlflow.train.enabled=false",
    )
    helm(
        "install", RELEASE, chart, "-n", DR, *values_args(("values/e2e.yaml",)), "-f", images, *here
    )
    started = time.monotonic()
    script("restore", DR, str(backup))
    wait_until(lambda: requests.get(f"{DR_API}/ready", timeout=5).ok, 180, "the restored api Ready")
    timing = (
        f"backup of the lab's registry (serving version {version}): "
        f"{backup.stat().st_size / 1e6:.1f} MB in "
        f"{backed_up:.0f} s; restore into a new install until its api was Ready: "
        f"{time.monotonic() - started:.0f} s\n"
    )
    (ARTIFACTS / "restore.txt").write_text(timing)
    return {"risk": risk, "version": version, "backup": backup}


def test_a_new_install_restored_from_a_backup_serves_the_same_model_and_risk(
    restored: dict[str, Any],
) -> None:
    """The same version and the same risk to 1e-12; its run, metrics and card in MLflow."""
    risk, version = risk_of(DR_API, DR)
    assert version == restored["version"]
    assert abs(risk - restored["risk"]) < 1e-12
    found = registry_get(DR, f"/api/2.0/mlflow/model-versions/get?name={MODEL}&version={version}")
    run = registry_get(DR, f"/api/2.0/mlflow/runs/get?run_id={found['model_version']['run_id']}")
    assert {m["key"] for m in run["run"]["data"]["metrics"]} >= {"test_roc_auc", "threshold"}
    root = run["run"]["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
    files = registry_get(DR, f"/api/2.0/mlflow-artifacts/artifacts?path={root}")["files"]
    assert "model_card.md" in {f["path"] for f in files}


def test_training_after_a_restore_continues_the_version_numbers(
    restored: dict[str, Any], chart: Path
) -> None:
    search = f"/api/2.0/mlflow/model-versions/search?filter=name%3D%27{MODEL}%27"
    highest = max(int(v["version"]) for v in registry_get(DR, search)["model_versions"])
    train = sets("mlflow.train.enabled=true", "mlflow.train.force=true")
    helm("upgrade", RELEASE, chart, "-n", DR, "--reuse-values", *train, *WAIT_JOBS)
    logs = kubectl("-n", DR, "logs", f"job/{RELEASE}-mlflow-train-2")
    assert f"version {highest + 1}: alias 'production' moved (forced)" in logs, logs[-2000:]


def test_a_training_job_that_cannot_reach_mlflow_fails_in_bounded_time_saying_why(
    restored: dict[str, Any], chart: Path
) -> None:
    """MLflow scaled to 0 before the Job starts: the Job gives up after its wait, `helm upgrade
    --wait` fails naming it long before Helm's timeout, and the pod's status says why."""
    kubectl("-n", DR, "scale", f"deployment/{RELEASE}-mlflow", "--replicas=0")
    registry = "app.kubernetes.io/name=mlflow,app.kubernetes.io/component=registry"
    kubectl("-n", DR, "wait", "--for=delete", "pod", "-l", registry, "--timeout=60s")
    started = time.monotonic()
    stuck = sets(
        "mlflow.train.waitForMlflowSeconds=1",
        "mlflow.train.backoffLimit=0",
        "mlflow.train.activeDeadlineSeconds=120",
    )
    out = helm(
        "upgrade", RELEASE, chart, "-n", DR, "--reuse-values", *stuck, *WAIT_JOBS, check=False
    )
    took = time.monotonic() - started
    assert out.returncode != 0
    assert f"job is failed: {DR}/{RELEASE}-mlflow-train-3" in out.stderr, out.stderr
    assert took < 180
    pod = json.loads(
        kubectl("-n", DR, "get", "pods", "-l", "job-name=readmit-mlflow-train-3", "-o", "json")
    )["items"][0]
    (wait,) = pod["status"]["initContainerStatuses"]
    message = wait["state"]["terminated"]["message"]
    assert "did not let the trainer in within 1 s" in message, message
    with (ARTIFACTS / "restore.txt").open("a") as f:
        f.write(
            f"a training Job with MLflow at 0 replicas: helm upgrade --wait failed in "
            f"{took:.0f} s: {message.strip().splitlines()[-1]}\n"
        )
