"""Who reaches whom: nothing leaves the machine, and the NetworkPolicies (enforced by the node's
kube-network-policies) let each component reach only what it needs; a stranger's pod reaches
none of the release, and a rotated key reaches the running api."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from support.kube import CLUSTER, RELEASE, kubectl, secret_value, wait_until
from support.node import MLFLOW, NODE_PORT, api_pods
from support.project import ARTIFACTS

pytestmark = pytest.mark.e2e


def test_a_pod_reaches_nothing_beyond_the_machine(lab: str) -> None:
    """The node's fence is in place (so this test sends nothing out either), and a Service IP
    nobody programmed is refused at once, not after the kernel's 2-minute connect timeout."""
    forward = subprocess.run(
        ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True
    ).stdout
    assert "pods reach nothing beyond this machine" in forward, forward
    code = (
        "import socket, time\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    socket.create_connection(('10.96.255.254', 80), timeout=10)\n"
        "except ConnectionRefusedError:\n"
        "    print('refused', time.monotonic() - start)\n"
    )
    out = kubectl("-n", lab, "exec", f"deploy/{RELEASE}-api", "--", "python", "-c", code).split()
    assert out[0] == "refused", out
    assert float(out[1]) < 1, out


# A pod's attempt to open a TCP connection: "open", "refused", or "timed out" (a policy dropped
# its first packet) within 3 s.
CONNECT = (
    "import socket, sys\n"
    "for target in sys.argv[1:]:\n"
    "    host, port = target.rsplit(':', 1)\n"
    "    try:\n"
    "        socket.create_connection((host, int(port)), timeout=3).close()\n"
    "        print(target, 'open')\n"
    "    except socket.timeout:\n"
    "        print(target, 'timed out')\n"
    "    except OSError as e:\n"
    "        print(target, type(e).__name__)\n"
)


def reach(namespace: str, workload: str, *targets: str) -> dict[str, str]:
    out = kubectl("-n", namespace, "exec", workload, "--", "python", "-c", CONNECT, *targets)
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_mlflow_is_reached_by_the_api_and_no_other_pod(lab: str) -> None:
    """MLflow accepts only the api and the training Job: from the ui's and Locust's pods its
    Service does not answer; from the api's it does."""
    assert reach(lab, f"deploy/{RELEASE}-api", MLFLOW) == {MLFLOW: "open"}
    for workload in ("ui", "locust-master", "locust-worker"):
        assert reach(lab, f"deploy/{RELEASE}-{workload}", MLFLOW) == {MLFLOW: "timed out"}, workload


def test_the_registry_changes_nothing_without_the_trainers_login(lab: str) -> None:
    """From inside the cluster, where the api reaches MLflow: setting the alias or registering a
    version without a login is 401, with the api's own (read-only) login 403."""
    password = secret_value(lab, f"{RELEASE}-mlflow-auth", "api-password")
    code = (
        "import base64, json, sys, urllib.request as u\n"
        "base = 'http://" + MLFLOW + "/api/2.0/mlflow/'\n"
        "calls = [('registered-models/alias', {'name': 'diabetes-readmission',"
        " 'alias': 'production', 'version': '1'}),"
        " ('model-versions/create', {'name': 'diabetes-readmission', 'source': '/x'})]\n"
        "for login in ('', sys.argv[1]):\n"
        "    for path, body in calls:\n"
        "        headers = {'Content-Type': 'application/json'}\n"
        "        if login:\n"
        "            token = base64.b64encode(login.encode()).decode()\n"
        "            headers['Authorization'] = 'Basic ' + token\n"
        "        ask = u.Request(base + path, json.dumps(body).encode(), headers)\n"
        "        try:\n"
        "            u.urlopen(ask, timeout=5)\n"
        "            print(200)\n"
        "        except u.HTTPError as e:\n"
        "            print(e.code)\n"
    )
    out = kubectl(
        "-n",
        lab,
        "exec",
        f"deploy/{RELEASE}-api",
        "--",
        "python",
        "-c",
        code,
        f"readmit-api:{password}",
    )
    assert out.split() == ["401", "401", "403", "403"]
    ready = requests.get(NODE_PORT.format(port=30080) + "/ready", timeout=10).json()
    assert ready["model"]["version"] == "1"  # untouched


def test_the_scheduled_backup_runs_beside_the_serving_registry(lab: str) -> None:
    """The lab's CronJob, run now: a whole backup on its volume while MLflow and the api serve,
    without a network of its own (the release's deny-all holds it)."""
    kubectl("-n", lab, "create", "job", "backup-now", f"--from=cronjob/{RELEASE}-mlflow-backup")
    kubectl("-n", lab, "wait", "--for=condition=complete", "job/backup-now", "--timeout=180s")
    logs = kubectl("-n", lab, "logs", "job/backup-now")
    assert "backed up to /backups/readmit-registry-" in logs, logs
    assert "models: diabetes-readmission" in logs, logs
    assert requests.get(NODE_PORT.format(port=30080) + "/ready", timeout=10).ok
    kept = list((CLUSTER / "volumes/readmit-mlflow-backup").glob("readmit-registry-*.tar"))
    assert len(kept) == 1
    (ARTIFACTS / "backup.txt").write_text(logs)


def test_a_pod_of_another_namespace_reaches_none_of_the_release(lab: str, images: Path) -> None:
    """Anyone in the cluster once reached every component: now a pod elsewhere gets nothing
    from the api (its port or metrics'), MLflow, Locust's master, Alertmanager (whose API
    would silence every alert) or the metrics adapter (only the API server may ask it)."""
    kubectl("create", "namespace", "stranger")
    digest = yaml.safe_load(images.read_text())["api"]["image"]["digest"]
    targets = [
        f"{RELEASE}-api.{lab}:8000",
        f"{RELEASE}-api-metrics.{lab}:9464",
        MLFLOW,
        f"{RELEASE}-locust-master.{lab}:5557",
        f"kps-alertmanager.{lab}:9093",
        f"{RELEASE}-metrics-adapter.{lab}:443",
    ]
    kubectl(
        "-n",
        "stranger",
        "run",
        "probe",
        f"--image=localhost:32000/readmit-api@{digest}",
        "--restart=Never",
        "--command",
        "--",
        "python",
        "-c",
        CONNECT,
        *targets,
    )

    def done() -> bool:
        phase = "jsonpath={.status.phase}"
        return kubectl("-n", "stranger", "get", "pod", "probe", "-o", phase) == "Succeeded"

    wait_until(done, 120, "the probe")
    logs = kubectl("-n", "stranger", "logs", "probe").splitlines()
    found = dict(line.split(" ", 1) for line in logs)
    assert found == dict.fromkeys(targets, "timed out"), found
    kubectl("delete", "namespace", "stranger", "--wait=false")


def test_a_key_added_to_the_secret_reaches_the_running_api(lab: str) -> None:
    """Rotation without an outage: a client's key added to the Secret is accepted by the same
    pods (the kubelet updates the mounted files, the api reads them again), and revoked alike."""
    url = NODE_PORT.format(port=30080) + "/model"
    pods = {p["metadata"]["uid"] for p in api_pods()}
    new = "rotation-key-0123456789abcdef"
    patch = json.dumps({"stringData": {"rotation": new}})
    kubectl("-n", lab, "patch", "secret", f"{RELEASE}-api-keys", "-p", patch)

    def answers(status: int) -> bool:
        asked = requests.get(url, headers={"Authorization": f"Bearer {new}"}, timeout=5)
        return asked.status_code == status

    took = wait_until(lambda: answers(200), 180, "the new key", interval=1)
    kubectl(
        "-n",
        lab,
        "patch",
        "secret",
        f"{RELEASE}-api-keys",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/data/rotation"}]',
    )
    wait_until(lambda: answers(401), 180, "the revoked key", interval=1)
    assert {p["metadata"]["uid"] for p in api_pods()} == pods  # no restart
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "key-rotation.txt").write_text(
        f"a key added to the Secret was accepted after {took:.1f} s\n"
    )
