"""The chart's own images on a real node (make e2e; `CLUSTER_NODE=real make cluster-up` first).

containerd, runc and the CNI plugins run the pods; a kubelet, kube-proxy (Services and NodePorts)
and CoreDNS (Service names) make the one node; the images are pushed to the cluster's registry on
127.0.0.1:32000 (as MicroK8s' registry addon) and deployed by the digests build-images.sh
records. The lab is installed as a user installs it, plus values/e2e.yaml, and then used as a
user would: curl on the api's NodePort, Chromium on the ui's, Locust in the cluster, and the
commands NOTES.txt prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ROOT, copy_chart, require, shows_a_risk
from pods import wait_until
from test_e2e_cluster import (
    HELM,
    K8S_BIN,
    KUBECONFIG,
    LAB,
    RELEASE,
    helm,
    install_crds_and_storage_class,
    kubectl,
    make_claims,
    not_ready,
    secret_value,
    values_args,
)

pytestmark = pytest.mark.e2e

CLUSTER = KUBECONFIG.parent
NODE_PORT = "http://127.0.0.1:{port}"
NS = "readmit"


@pytest.fixture(scope="module")
def real_node() -> Path:
    require(KUBECONFIG.exists(), "no cluster: run `CLUSTER_NODE=real make cluster-up`")
    require((CLUSTER / "sysctls.json").exists(), "the cluster has no real node (CLUSTER_NODE=real)")
    return KUBECONFIG


@pytest.fixture(scope="module")
def images(real_node: Path) -> Path:
    """The four images pushed to the node's registry; their digests, as deploy.sh passes them."""
    values = CLUSTER / "images.generated.yaml"
    out = subprocess.run(["scripts/build-images.sh"], cwd=ROOT, capture_output=True, text=True,
                         timeout=1800, check=False,
                         env={**os.environ, "PUSH": "1", "REGISTRY": "localhost:32000",
                              "IMAGES_VALUES": str(values)})  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return values


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_chart(tmp_path_factory.mktemp("chart") / "readmit")


@pytest.fixture(scope="module")
def lab(images: Path, chart: Path, data_path: Path) -> str:
    """The lab release installed with `--wait`: real pods, a real training run, a ready api."""
    install_crds_and_storage_class()
    kubectl("create", "namespace", NS)
    # hostPath volumes, in the cluster's directory (cluster-down removes them); they get no
    # fsGroup ownership, so the registry's belongs to the pods' user already
    store, data = CLUSTER / "volumes/mlflow", CLUSTER / "volumes/uci-data"
    for directory in (store, data):
        directory.mkdir(parents=True)
        directory.chmod(0o755)
    os.chown(store, 10001, 10001)
    shutil.copy(data_path, data / "dataset_diabetes.zip")
    make_claims(NS, store, data)
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    out = subprocess.run(
        [str(HELM), "install", RELEASE, str(chart), "-n", NS, *values_args(LAB),
         "-f", str(images), "--wait", "--wait-for-jobs", "--timeout", "15m"],
        capture_output=True, text=True, env=env, timeout=1000, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.fail(f"helm install: {out.stderr.strip()}\n{not_ready(NS)}")
    return NS


def test_the_training_job_trained_and_the_api_loaded_its_model(lab: str) -> None:
    logs = kubectl("-n", lab, "logs", f"job/{RELEASE}-mlflow-train-1")
    assert "alias 'production' moved" in logs, logs[-2000:]
    ready = requests.get(NODE_PORT.format(port=30080) + "/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["model"]["version"] == "1"


def test_curl_the_api_nodeport_with_the_generated_key(lab: str) -> None:
    key = secret_value(lab, f"{RELEASE}-api-keys", "api-key")
    body = (ROOT / "scripts/example-encounter.json").read_text()
    url = NODE_PORT.format(port=30080)
    headers = {"content-type": "application/json"}
    anonymous = requests.post(f"{url}/predict", data=body, headers=headers, timeout=10)
    assert anonymous.status_code == 401
    answer = requests.post(f"{url}/predict", data=body, timeout=10,
                           headers={**headers, "Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert 0 < answer.json()["readmission_risk"] < 1
    assert "readmit_predictions_total" in requests.get(f"{url}/metrics", timeout=10).text


def test_the_ui_nodeport_shows_a_risk_in_chromium(lab: str, browser) -> None:
    shows_a_risk(browser, NODE_PORT.format(port=30081), "ui-node.png")


def test_locust_in_the_cluster_runs_a_load_with_no_failures(lab: str) -> None:
    web = NODE_PORT.format(port=30009)
    run = {"user_count": 10, "spawn_rate": 10, "run_time": "20s"}
    started = requests.post(f"{web}/swarm", data=run, timeout=10)
    assert started.json()["success"], started.text
    stats: dict = {}
    for _ in range(90):
        stats = requests.get(f"{web}/stats/requests", timeout=5).json()
        if stats["state"] == "stopped":
            break
        subprocess.run(["sleep", "1"], check=True)
    total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
    assert stats["state"] == "stopped", stats["state"]
    assert stats["worker_count"] == 2
    assert total["num_requests"] > 50, total
    assert total["num_failures"] == 0, stats.get("errors")
    # the exporter, as Prometheus would scrape it inside the cluster
    scrape = ("import urllib.request as u; "
              "print(u.urlopen('http://127.0.0.1:9646/metrics').read().decode())")  # fmt: skip
    metrics = kubectl("-n", lab, "exec", f"deploy/{RELEASE}-locust-master", "--",
                      "python", "-c", scrape)  # fmt: skip
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("locust_requests_total"))  # fmt: skip
    assert counted >= total["num_requests"]


def test_the_notes_commands_work_as_printed(lab: str, tmp_path: Path) -> None:
    """NOTES.txt's URLs answer, and its key and curl commands run as printed (NODE = 127.0.0.1)."""
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    notes = subprocess.run([str(HELM), "get", "notes", RELEASE, "-n", lab], capture_output=True,
                           text=True, env=env, check=True).stdout  # fmt: skip
    urls = dict(re.findall(r"^\s+(api|ui|Locust)\s+http://NODE:(\d+)", notes, re.M))
    assert urls == {"api": "30080", "ui": "30081", "Locust": "30009"}, notes
    for name, port in urls.items():
        path = "/docs" if name == "api" else "/"
        assert requests.get(NODE_PORT.format(port=port) + path, timeout=10).status_code == 200
    lines = notes.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("KEY=$(kubectl"))
    block = "\n".join(lines[start : start + 3]).replace("NODE", "127.0.0.1")
    bin_dir = tmp_path / "bin"  # `kubectl` as the notes name it
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(K8S_BIN / "kubectl")
    out = subprocess.run(["bash", "-ec", block], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=False,
                         env={**env, "PATH": f"{bin_dir}:{env['PATH']}"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert re.search(r'"readmission_risk":\s*0\.\d+', out.stdout), out.stdout


def test_a_pod_reaches_nothing_beyond_the_machine(lab: str) -> None:
    """The node's fence is in place (so this test sends nothing out either), and a Service IP
    nobody programmed is refused at once, not after the kernel's 2-minute connect timeout."""
    forward = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    assert "pods reach nothing beyond this machine" in forward, forward
    code = ("import socket, time\n"
            "start = time.monotonic()\n"
            "try:\n"
            "    socket.create_connection(('10.96.255.254', 80), timeout=10)\n"
            "except ConnectionRefusedError:\n"
            "    print('refused', time.monotonic() - start)\n")  # fmt: skip
    out = kubectl("-n", lab, "exec", f"deploy/{RELEASE}-api", "--", "python", "-c", code).split()
    assert out[0] == "refused", out
    assert float(out[1]) < 1, out


# --- Faults under a steady load: 2 api replicas behind the PodDisruptionBudget ----------------

USERS = 10  # Locust users: each has at most one request in flight
SETTLE_S = 4  # Locust's workers report their stats every 3 s
API_PODS = "app.kubernetes.io/name=api,app.kubernetes.io/instance=" + RELEASE
FAULTS = ROOT / "test-artifacts" / "faults.txt"


class Swarm:
    """The in-cluster Locust, driven through its master's web API on the NodePort."""

    def __init__(self, url: str) -> None:
        self.url = url

    def start(self) -> None:
        run = {"user_count": USERS, "spawn_rate": USERS}
        started = requests.post(f"{self.url}/swarm", data=run, timeout=10)
        assert started.json()["success"], started.text
        wait_until(lambda: self.totals()[0] > 20, 60, "a steady load")

    def reset(self) -> None:
        requests.post(f"{self.url}/stats/reset", timeout=10).raise_for_status()

    def totals(self) -> tuple[int, int, list[dict[str, Any]]]:
        """Requests and failures since the last reset, and the errors (after SETTLE_S: exact)."""
        stats = requests.get(f"{self.url}/stats/requests", timeout=10).json()
        total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
        return total["num_requests"], total["num_failures"], stats.get("errors", [])

    def measure(self, fault: str) -> tuple[int, int, list[dict[str, Any]]]:
        time.sleep(SETTLE_S)
        requested, failed, errors = self.totals()
        with FAULTS.open("a") as out:
            out.write(f"{fault}: {requested} requests, {failed} failed\n")
            out.writelines(f"  {e['occurrences']} x {e['error'][:160]}\n" for e in errors)
        return requested, failed, errors


def api_pods() -> list[dict[str, Any]]:
    return json.loads(kubectl("-n", NS, "get", "pods", "-l", API_PODS, "-o", "json"))["items"]


def pod_get(pod: str, path: str) -> str:
    """GET a path of one api pod from inside it (the Service would pick any pod)."""
    code = ("import urllib.request as u; "
            f"print(u.urlopen('http://127.0.0.1:8000{path}').read().decode())")  # fmt: skip
    return kubectl("-n", NS, "exec", pod, "--", "python", "-c", code)


def pod_metric(pod: str, name: str) -> float:
    for line in pod_get(pod, "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def ready_pods() -> list[str]:
    return [p["metadata"]["name"] for p in api_pods()
            if "deletionTimestamp" not in p["metadata"]
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", []))]  # fmt: skip


@pytest.fixture(scope="module")
def under_load(lab: str, chart: Path) -> Swarm:
    """Two api replicas with the budget and a 5 s alias check, then a steady Locust load."""
    helm("upgrade", RELEASE, chart, "-n", lab, "--reuse-values",
         "--set", "api.replicaCount=2", "--set", "api.podDisruptionBudget.enabled=true",
         "--set", "api.mlflow.reloadIntervalSeconds=5", "--set", "mlflow.train.enabled=false",
         "--wait", "--timeout", "5m")  # fmt: skip
    FAULTS.parent.mkdir(exist_ok=True)
    FAULTS.write_text(f"faults under a steady load of {USERS} Locust users, 2 api replicas\n")
    swarm = Swarm(NODE_PORT.format(port=30009))
    swarm.start()
    yield swarm
    requests.post(f"{swarm.url}/stop", timeout=10)


def test_the_budget_allows_one_api_pod_down(under_load: Swarm) -> None:
    budget = json.loads(kubectl("-n", NS, "get", "pdb", f"{RELEASE}-api", "-o", "json"))
    assert budget["status"]["currentHealthy"] == 2
    assert budget["status"]["disruptionsAllowed"] == 1


def test_a_rolling_restart_fails_no_request(under_load: Swarm) -> None:
    before = set(ready_pods())
    under_load.reset()
    kubectl("-n", NS, "rollout", "restart", f"deployment/{RELEASE}-api")
    kubectl("-n", NS, "rollout", "status", f"deployment/{RELEASE}-api", "--timeout=300s")
    wait_until(lambda: len(api_pods()) == 2, 120, "the old pods gone")  # drained and stopped
    assert not before & set(ready_pods())
    requested, failed, errors = under_load.measure("rollout restart of the api")
    assert requested > 100
    assert failed == 0, errors


def test_a_killed_api_container_fails_at_most_the_requests_in_flight(under_load: Swarm) -> None:
    pod = ready_pods()[0]
    status = json.loads(kubectl("-n", NS, "get", "pod", pod, "-o", "json"))["status"]
    container = status["containerStatuses"][0]
    pid = task_pid(container["containerID"].split("://", 1)[1])
    under_load.reset()
    os.kill(pid, signal.SIGKILL)
    # how long the Service still lists the dead pod as ready: what the clients' retries must cover
    listed_s = wait_until(lambda: not endpoint_ready(pod), 30, "the dead pod out of the Service",
                          interval=0.05)  # fmt: skip
    with FAULTS.open("a") as out:
        out.write(f"dead pod listed ready in the Service for {listed_s:.2f} s after kill\n")
    wait_until(lambda: restarts(pod) > container["restartCount"], 60, "the kubelet's restart")
    kubectl("-n", NS, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=120s")
    requested, failed, errors = under_load.measure("kill -9 of one api container")
    assert failed <= USERS, errors  # each user has at most one request in flight
    # the connections refused before the Service dropped the dead pod were retried, not failed
    assert not [e for e in errors if "Max retries exceeded" in e["error"]], errors
    under_load.reset()
    time.sleep(15)
    requested, failed, errors = under_load.measure("the 15 s after that pod was Ready again")
    assert requested > 50
    assert failed == 0, errors


def endpoint_ready(pod: str) -> bool:
    """Whether the api Service's EndpointSlices list this pod as ready."""
    service = f"kubernetes.io/service-name={RELEASE}-api"
    slices = json.loads(kubectl("-n", NS, "get", "endpointslices", "-l", service, "-o", "json"))
    return any(e.get("conditions", {}).get("ready") and e.get("targetRef", {}).get("name") == pod
               for s in slices["items"] for e in s.get("endpoints") or [])  # fmt: skip


def task_pid(container_id: str) -> int:
    """The container's process, as the node's containerd knows it."""
    socket_path = CLUSTER / "containerd" / "containerd.sock"
    out = subprocess.run(["ctr", "--address", str(socket_path), "-n", "k8s.io", "tasks", "ls"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return next(int(line.split()[1]) for line in out.splitlines() if line.startswith(container_id))


def restarts(pod: str) -> int:
    status = json.loads(kubectl("-n", NS, "get", "pod", pod, "-o", "json"))["status"]
    return status["containerStatuses"][0]["restartCount"]


def test_the_api_serves_on_while_mlflow_is_gone(under_load: Swarm) -> None:
    pods = ready_pods()
    checks = {pod: pod_metric(pod, "readmit_model_alias_check_failures_total") for pod in pods}
    under_load.reset()
    mlflow = f"deployment/{RELEASE}-mlflow"
    kubectl("-n", NS, "scale", mlflow, "--replicas=0")
    registry = "app.kubernetes.io/name=mlflow,app.kubernetes.io/component=registry"
    kubectl("-n", NS, "wait", "--for=delete", "pod", "-l", registry, "--timeout=60s")
    for pod in pods:  # every pod notices, counts it, and stays Ready with its model
        wait_until(lambda p=pod: pod_metric(p, "readmit_model_alias_check_failures_total")
                   > checks[p], 60, f"{pod}'s failed alias checks")  # fmt: skip
        assert json.loads(pod_get(pod, "/ready"))["status"] == "ready"
    assert sorted(ready_pods()) == sorted(pods)
    kubectl("-n", NS, "scale", mlflow, "--replicas=1")
    kubectl("-n", NS, "rollout", "status", mlflow, "--timeout=180s")
    requested, failed, errors = under_load.measure("MLflow's pod gone, then back")
    assert requested > 100
    assert failed == 0, errors


def test_a_forced_new_version_is_swapped_in_with_no_failed_request(
    under_load: Swarm, chart: Path
) -> None:
    under_load.reset()
    helm("upgrade", RELEASE, chart, "-n", NS, "--reuse-values", "--set",
         "mlflow.train.enabled=true", "--set", "mlflow.train.force=true",
         "--wait", "--wait-for-jobs", "--timeout", "10m")  # fmt: skip
    revision = json.loads(helm("status", RELEASE, "-n", NS, "-o", "json").stdout)["version"]
    logs = kubectl("-n", NS, "logs", f"job/{RELEASE}-mlflow-train-{revision}")
    assert "alias 'production' moved (forced)" in logs, logs[-2000:]
    version = re.search(r"version (\d+): alias 'production' moved", logs)[1]
    assert version != "1"
    for pod in ready_pods():
        wait_until(lambda p=pod: json.loads(pod_get(p, "/ready"))["model"]["version"] == version,
                   60, f"{pod} serving version {version}")  # fmt: skip
    requested, failed, errors = under_load.measure(f"a forced new model version ({version})")
    assert requested > 100
    assert failed == 0, errors
