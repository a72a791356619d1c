"""The chart's own images on a real node (make e2e; `CLUSTER_NODE=real make cluster-up` first).

containerd, runc and the CNI plugins run the pods; a kubelet, kube-proxy (Services and NodePorts)
and CoreDNS (Service names) make the one node; the images are pushed to the cluster's registry on
127.0.0.1:32000 (as MicroK8s' registry addon) and deployed by the digests build-images.sh
records. The lab is installed as a user installs it, plus values/e2e.yaml, and then used as a
user would: curl on the api's NodePort, Chromium on the ui's, Locust in the cluster, and the
commands NOTES.txt prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import ROOT, copy_chart, require, shows_a_risk
from test_e2e_cluster import (
    HELM,
    K8S_BIN,
    KUBECONFIG,
    LAB,
    RELEASE,
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
def lab(images: Path, data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
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
    chart = copy_chart(tmp_path_factory.mktemp("chart") / "readmit")
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
