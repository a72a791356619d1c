"""The chart's own images on a real node (make e2e, which starts the cluster first).

containerd, runc and the CNI plugins run the pods; a kubelet, kube-proxy (Services and NodePorts),
CoreDNS (Service names) and kube-network-policies (the NetworkPolicies) make the one node; the
images are pushed to the cluster's registry on 127.0.0.1:32000 (as MicroK8s' registry addon) and
deployed by the digests build-images.sh records. The lab is installed as a user installs it, plus
values/e2e.yaml, and then used as a user would (curl on the api's NodePort, Chromium on the
ui's, Locust in the cluster behind its login, the commands NOTES.txt prints) and as an attacker
would (a pod of another namespace, the ui's and Locust's pods, no login); then faults under a
steady load, the api scaling on it, production's life cycle against the lab's MLflow with a
read-only login, and a new install restored from the lab's backup.

The fixtures here are the package's: one node, one lab release, one steady load, shared by every
file, which run as one story in CHAPTERS' order (each picks up the cluster where the one before
left it).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.charts import copy_chart
from support.kube import (
    CLUSTER,
    HELM,
    KUBECONFIG,
    LAB,
    RELEASE,
    helm,
    install_storage_class,
    kubectl,
    make_claims,
    not_ready,
    port_forward,
    prometheus_volume,
    values_args,
    wait_until,
)
from support.node import NODE_PORT, NS
from support.project import ARTIFACTS, ROOT, require
from support.swarm import FAULTS, USERS, Swarm, locust_login

CHAPTERS = (
    "test_e2e_lab",  # installed and used as a user would
    "test_e2e_monitoring",  # the bundled stack watches it, its alerts fire
    "test_e2e_network",  # who reaches whom
    "test_e2e_faults",  # two api pods under a steady load: restarts, kills, MLflow gone
    "test_e2e_scaling",  # the HPA on the api's own load, under the same load
    "test_e2e_production",  # production's values beside the lab
    "test_e2e_recovery",  # a new install restored from the lab's backup
)
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The e2e files in CHAPTERS' order, each file's tests in their own order."""
    ours = [i for i, item in enumerate(items) if item.path.parent == HERE]
    story = sorted((items[i] for i in ours), key=lambda item: CHAPTERS.index(item.path.stem))
    for i, item in zip(ours, story, strict=True):
        items[i] = item


@pytest.fixture(scope="package")
def real_node() -> Path:
    require(KUBECONFIG.exists(), "no cluster: run `make cluster-up`")
    require(HELM.exists(), "helm is not built: run `make tools`")
    return KUBECONFIG


@pytest.fixture(scope="package")
def images(real_node: Path) -> Path:
    """The four images pushed to the node's registry; their digests, as deploy.sh passes them."""
    values = CLUSTER / "images.generated.yaml"
    out = subprocess.run(
        ["scripts/build-images.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={
            **os.environ,
            "PUSH": "1",
            "REGISTRY": "localhost:32000",
            "IMAGES_VALUES": str(values),
        },
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return values


@pytest.fixture(scope="package")
def monitoring_images(real_node: Path) -> list[str]:
    """kube-prometheus-stack's components and prometheus-adapter, built from the Go module
    proxy (cached), pushed to the node's registry: the images values/e2e.yaml names."""
    out = subprocess.run(
        ["scripts/cluster/build-monitoring.sh", "--push", "localhost:32000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout.split()


@pytest.fixture(scope="package")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart with the real kube-prometheus-stack 88.5.3 in its charts/ (not committed)."""
    return copy_chart(tmp_path_factory.mktemp("chart") / "readmit", real_stack=True)


@pytest.fixture(scope="package")
def lab(images: Path, monitoring_images: list[str], chart: Path, data_path: Path) -> str:
    """The lab release installed with `--wait`: real pods, a real training run, a ready api, and
    the bundled monitoring stack (its CRDs from the chart) with its Prometheus and Alertmanager."""
    install_storage_class()
    kubectl("create", "namespace", NS)
    volumes = make_claims(NS, data_path, "readmit", backups=True)
    prometheus_volume(NS, volumes / "prometheus")
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    started = time.monotonic()
    out = subprocess.run(
        [
            str(HELM),
            "install",
            RELEASE,
            str(chart),
            "-n",
            NS,
            *values_args(LAB),
            "-f",
            str(images),
            "--wait",
            "--wait-for-jobs",
            "--timeout",
            "15m",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1000,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(f"helm install: {out.stderr.strip()}\n{not_ready(NS)}")
    installed = time.monotonic() - started
    # Helm does not wait for what the operator makes of the Prometheus and Alertmanager objects
    for statefulset in ("prometheus-kps-prometheus", "alertmanager-kps-alertmanager"):
        wait_until(
            lambda s=statefulset: s in kubectl("-n", NS, "get", "statefulsets", "-o", "name"),
            120,
            statefulset,
        )
        kubectl("-n", NS, "rollout", "status", f"statefulset/{statefulset}", "--timeout=300s")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "lab-install.txt").write_text(
        f"helm install --wait --wait-for-jobs: {installed:.0f} s; Prometheus and Alertmanager "
        f"ready {time.monotonic() - started:.0f} s after it began\n"
    )
    return NS


@pytest.fixture(scope="package")
def alertmanager(lab: str) -> Iterator[str]:
    """Alertmanager's API on 127.0.0.1 through `kubectl port-forward` (as its operator would look:
    only the stack's Prometheus may reach its pods, and its Service has no NodePort)."""
    with port_forward(lab, "svc/kps-alertmanager", 9093) as port:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/-/ready", timeout=3).ok, 60, "Alertmanager's API")
        yield url


@pytest.fixture(scope="package")
def under_load(lab: str, chart: Path) -> Iterator[Swarm]:
    """Two api replicas (no autoscaling) with the budget and a 5 s alias check, then a steady
    Locust load."""
    helm(
        "upgrade",
        RELEASE,
        chart,
        "-n",
        lab,
        "--reuse-values",
        "--set",
        "api.autoscaling.enabled=false",
        "--set",
        "api.replicaCount=2",
        "--set",
        "api.podDisruptionBudget.enabled=true",
        "--set",
        "api.mlflow.reloadIntervalSeconds=5",
        "--set",
        "mlflow.train.enabled=false",
        "--wait",
        "--timeout",
        "5m",
    )
    FAULTS.parent.mkdir(exist_ok=True)
    FAULTS.write_text(f"faults under a steady load of {USERS} Locust users, 2 api replicas\n")
    swarm = Swarm(NODE_PORT.format(port=30009), locust_login(lab))
    swarm.start()
    yield swarm
    swarm.session.post(f"{swarm.url}/stop", timeout=10)
