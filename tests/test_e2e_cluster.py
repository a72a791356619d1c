"""The umbrella chart's life cycle in a real Kubernetes control plane (make e2e, which starts
the cluster with `CLUSTER_NODE=kwok make cluster-up`).

The API server, controller-manager and scheduler are the real v1.35 binaries; the node is kwok,
which marks pods Running and Job pods Succeeded without running a container (the images run in
test_e2e_containers.py and, on a real node, test_e2e_node.py). The monitoring CRDs are the real
ones of the Prometheus operator release kube-prometheus-stack 88.5.3 ships, so the API server
validates the chart's ServiceMonitors and PrometheusRule against their schemas. Each environment
is installed with `--wait`, upgraded, rolled back and uninstalled; production first, since both
claim the same NodePorts.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, copy_chart, require

pytestmark = pytest.mark.e2e

K8S_BIN = ROOT / ".tools" / f"k8s-{os.environ.get('K8S_VERSION', 'v1.35.4')}" / "bin"
HELM = ROOT / ".tools" / "bin" / "helm"
CLUSTER = Path(os.environ.get("CLUSTER_DIR", ROOT / ".local" / "cluster"))
KUBECONFIG = CLUSTER / "kubeconfig"
CRDS = ROOT / ".tools" / "prometheus-operator-crds"
RELEASE = "readmit"
LAB = ("values/lab.yaml", "values/e2e.yaml")
PRODUCTION = ("values/production.yaml",)
# Data set claim and the registry's volume: the StorageClass MicroK8s' hostpath addon provides.
STORAGE = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: microk8s-hostpath}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
"""


def run(
    *args: str | Path, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                         timeout=timeout, check=False)  # fmt: skip
    if check and out.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args[:4]))} ...: exit {out.returncode}\n"
                    f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")  # fmt: skip
    return out


def kubectl(*args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    out = subprocess.run([str(K8S_BIN / "kubectl"), *args], input=stdin, capture_output=True,
                         text=True, env=env, timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout


def helm(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(HELM, *args, check=check)


def values_args(files: tuple[str, ...]) -> list[str]:
    return [a for f in files for a in ("-f", str(ROOT / f))]


def pv(name: str, size: str, path: str, claim: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size},
                     "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                     "storageClassName": "microk8s-hostpath", "hostPath": {"path": path},
                     "claimRef": {"name": claim, "namespace": namespace}}}  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Path:
    require(
        KUBECONFIG.exists(), f"no cluster at {CLUSTER}: run `CLUSTER_NODE=kwok make cluster-up`"
    )
    # production's api would wait forever on a real node for its external MLflow
    assert not (CLUSTER / "sysctls.json").exists(), "these tests want the kwok node"
    require(HELM.exists(), "helm is not built: run `make tools`")
    return KUBECONFIG


@pytest.fixture(scope="module")
def chart(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_chart(tmp_path_factory.mktemp("chart") / "readmit")


def secret_value(namespace: str, name: str, key: str) -> str:
    data = json.loads(kubectl("-n", namespace, "get", "secret", name, "-o", "json"))["data"]
    return base64.b64decode(data[key]).decode()


def objects_of(namespace: str, release: str) -> list[dict[str, Any]]:
    manifest = helm("get", "manifest", release, "-n", namespace).stdout
    return [d for d in yaml.safe_load_all(manifest) if d]


def assert_all_exist(namespace: str, docs: list[dict[str, Any]]) -> None:
    """Every object the release rendered is in the server (one get, each named on failure)."""
    missing = []
    for d in docs:
        kind = d["kind"] + ("." + d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else "")
        out = run(K8S_BIN / "kubectl", "-n", namespace, "get", kind, d["metadata"]["name"],
                  "-o", "name", check=False)  # fmt: skip
        if out.returncode != 0:
            missing.append(f"{d['kind']}/{d['metadata']['name']}: {out.stderr.strip()}")
    assert not missing, missing


def assert_jobs_complete(namespace: str, docs: list[dict[str, Any]]) -> None:
    jobs = [d["metadata"]["name"] for d in docs if d["kind"] == "Job"]
    for job in jobs:
        status = json.loads(kubectl("-n", namespace, "get", "job", job, "-o", "json"))["status"]
        assert status.get("succeeded") == 1, (job, status)


def not_ready(namespace: str) -> str:
    """The pods and Jobs that are not done yet, and the namespace's warnings: what a failed
    `--wait` waited for, named with the reason."""
    lines = []
    for pod in json.loads(kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]:
        conditions = {c["type"]: c for c in pod["status"].get("conditions", [])}
        ready = conditions.get("Ready", {})
        if ready.get("status") != "True" and pod["status"].get("phase") != "Succeeded":
            lines.append(f"Pod/{pod['metadata']['name']}: {pod['status'].get('phase')} "
                         f"{ready.get('reason', '')} {ready.get('message', '')}")  # fmt: skip
    for job in json.loads(kubectl("-n", namespace, "get", "jobs", "-o", "json"))["items"]:
        if not job["status"].get("succeeded"):
            lines.append(f"Job/{job['metadata']['name']}: {job['status']}")
    events = kubectl("-n", namespace, "get", "events", "--field-selector", "type=Warning")
    return "\n".join(lines) + "\n" + events[-3000:]


def install(chart: Path, namespace: str, files: tuple[str, ...], *extra: str) -> None:
    out = helm("upgrade", "--install", RELEASE, chart, "-n", namespace, "--create-namespace",
               *values_args(files), *extra, "--wait", "--wait-for-jobs", "--timeout", "5m",
               check=False)  # fmt: skip
    if out.returncode != 0:
        pytest.fail(f"helm upgrade --install in {namespace}: {out.stderr.strip()}\n"
                    f"{not_ready(namespace)}")  # fmt: skip


def uninstall_leaves_only_the_kept_volume(namespace: str, release: str) -> None:
    docs = objects_of(namespace, release)
    helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "2m")
    left = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
            if run(K8S_BIN / "kubectl", "-n", namespace, "get", d["kind"], d["metadata"]["name"],
                   check=False).returncode == 0]  # fmt: skip
    kept = ["PersistentVolumeClaim/readmit-mlflow"] if any(
        d["kind"] == "PersistentVolumeClaim" for d in docs) else []  # fmt: skip
    assert left == kept
    crds = kubectl("get", "crd", "-o", "name")
    assert "servicemonitors.monitoring.coreos.com" in crds  # Helm never deletes CRDs


def test_production_without_the_monitoring_crds_names_the_addon(cluster: Path) -> None:
    env = {**os.environ, "MICROK8S": "", "HELM": str(HELM),
           "KUBECTL": f"{K8S_BIN / 'kubectl'} --kubeconfig {cluster}"}  # fmt: skip
    out = subprocess.run(["bash", "scripts/deploy.sh", "production"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "microk8s enable observability" in out.stderr
    assert "+ " not in out.stdout  # stopped before Helm ran


@pytest.fixture(scope="module")
def monitoring_crds(cluster: Path) -> list[str]:
    return install_crds_and_storage_class()


def install_crds_and_storage_class() -> list[str]:
    """The real CRDs of prometheus-operator v0.93.1 (kube-prometheus-stack 88.5.3's appVersion),
    and the StorageClass MicroK8s' hostpath addon provides."""
    files = sorted(CRDS.glob("*.yaml"))
    require(len(files) == 10, f"no monitoring CRDs in {CRDS}: run `make cluster-tools`")
    # server-side: the CRDs are too large for client-side apply's annotation
    kubectl("apply", "--server-side", *(a for f in files for a in ("-f", str(f))))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    kubectl("apply", "-f", "-", stdin=STORAGE)
    return [f.name for f in files]


@pytest.fixture(scope="module")
def production(cluster: Path, monitoring_crds: list[str]) -> str:
    """The Secrets production expects to exist (made by whoever runs production)."""
    ns = "readmit-prod"
    kubectl("create", "namespace", ns)
    kubectl("-n", ns, "create", "secret", "generic", "readmit-api-keys",
            "--from-literal=api-key=prod-key-from-a-vault")  # fmt: skip
    kubectl("-n", ns, "create", "secret", "generic", "readmit-mlflow-credentials",
            "--from-literal=MLFLOW_TRACKING_USERNAME=readmit",
            "--from-literal=MLFLOW_TRACKING_PASSWORD=from-a-vault")  # fmt: skip
    return ns


def test_production_installs_upgrades_rolls_back_and_uninstalls(
    chart: Path, production: str
) -> None:
    install(chart, production, PRODUCTION)
    docs = objects_of(production, RELEASE)
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy"} <= kinds  # fmt: skip
    assert_all_exist(production, docs)
    install(chart, production, PRODUCTION, "--set", "api.maxBatch=500")
    assert "500" in kubectl("-n", production, "get", "configmap", "readmit-api", "-o",
                            "jsonpath={.data.READMIT_MAX_BATCH}")  # fmt: skip
    helm("rollback", RELEASE, "1", "-n", production, "--wait", "--timeout", "3m")
    assert "1000" in kubectl("-n", production, "get", "configmap", "readmit-api", "-o",
                             "jsonpath={.data.READMIT_MAX_BATCH}")  # fmt: skip
    assert secret_value(production, "readmit-api-keys", "api-key") == "prod-key-from-a-vault"
    uninstall_leaves_only_the_kept_volume(production, RELEASE)


@pytest.fixture(scope="module")
def lab(cluster: Path, monitoring_crds: list[str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The namespace with the claims the e2e values name: the data set and MLflow's volume."""
    ns = "readmit"
    kubectl("create", "namespace", ns)
    make_claims(ns, tmp_path_factory.mktemp("mlflow"), tmp_path_factory.mktemp("uci-data"))
    return ns


def make_claims(ns: str, store: Path, data: Path) -> None:
    """Volumes for the claims the lab names: MLflow's (claimed by the chart) and the data set's
    (claimed here, as values/e2e.yaml expects), both host directories."""
    for volume in (pv("readmit-mlflow", "5Gi", str(store), "readmit-mlflow", ns),
                   pv("readmit-uci-data", "1Gi", str(data), "readmit-uci-data", ns)):  # fmt: skip
        kubectl("apply", "-f", "-", stdin=json.dumps(volume))
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "readmit-uci-data", "namespace": ns},
             "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "microk8s-hostpath",
                      "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    kubectl("apply", "-f", "-", stdin=json.dumps(claim))


def test_lab_installs_keeps_its_secrets_rolls_back_and_uninstalls(chart: Path, lab: str) -> None:
    install(chart, lab, LAB)
    docs = objects_of(lab, RELEASE)
    assert_all_exist(lab, docs)
    assert_jobs_complete(lab, docs)
    assert kubectl("-n", lab, "get", "pvc", "readmit-mlflow", "-o",
                   "jsonpath={.status.phase}") == "Bound"  # fmt: skip
    key = secret_value(lab, "readmit-api-keys", "api-key")
    assert len(key) == 32

    # the bundled stack's switch adds the umbrella's Grafana Secret (the stand-in renders nothing)
    install(chart, lab, LAB, "--set", "kube-prometheus-stack.enabled=true")
    password = secret_value(lab, "readmit-grafana-admin", "admin-password")
    install(chart, lab, LAB, "--set", "kube-prometheus-stack.enabled=true")
    assert secret_value(lab, "readmit-grafana-admin", "admin-password") == password
    assert secret_value(lab, "readmit-api-keys", "api-key") == key
    assert_jobs_complete(lab, objects_of(lab, RELEASE))  # the upgrade's training Job

    helm("rollback", RELEASE, "1", "-n", lab, "--wait", "--timeout", "3m")
    history = json.loads(helm("history", RELEASE, "-n", lab, "-o", "json").stdout)
    assert [h["status"] for h in history][-1] == "deployed"
    assert history[-1]["description"] == "Rollback to 1"
    assert secret_value(lab, "readmit-api-keys", "api-key") == key
    assert_all_exist(lab, objects_of(lab, RELEASE))
    uninstall_leaves_only_the_kept_volume(lab, RELEASE)
