"""The e2e tests' hands on the cluster: kubectl and helm against its kubeconfig, the lab's volumes
and CRDs, and what a failed install waited for."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.project import ROOT
from support.servers import free_port

K8S_BIN = ROOT / ".tools" / f"k8s-{os.environ.get('K8S_VERSION', 'v1.35.4')}" / "bin"
HELM = ROOT / ".tools" / "bin" / "helm"
CLUSTER = Path(os.environ.get("CLUSTER_DIR", ROOT / ".local" / "cluster"))
KUBECONFIG = CLUSTER / "kubeconfig"
RELEASE = "readmit"
LAB = ("values/lab.yaml", "values/e2e.yaml")
PRODUCTION = ("values/production.yaml",)
# The StorageClass MicroK8s' hostpath addon provides (the test's own volumes are static).
STORAGE = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: microk8s-hostpath}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
"""


def run(
    *args: str | Path, check: bool = True, timeout: float = 600, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    out = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        input=stdin,
    )
    if check and out.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args[:4]))} ...: exit {out.returncode}\n"
            f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


def kubectl(*args: str, stdin: str | None = None) -> str:
    out = run(K8S_BIN / "kubectl", *args, stdin=stdin, check=False, timeout=300)
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout


def helm(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(HELM, *args, check=check)


def values_args(files: tuple[str, ...]) -> list[str]:
    return [a for f in files for a in ("-f", str(ROOT / f))]


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.3) -> float:
    """Poll ``check()`` until it is truthy; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout} s")


def secret_value(namespace: str, name: str, key: str) -> str:
    data = json.loads(kubectl("-n", namespace, "get", "secret", name, "-o", "json"))["data"]
    return base64.b64decode(data[key]).decode()


def objects_of(namespace: str, release: str) -> list[dict[str, Any]]:
    import yaml

    manifest = helm("get", "manifest", release, "-n", namespace).stdout
    return [d for d in yaml.safe_load_all(manifest) if d]


def assert_all_exist(namespace: str, docs: list[dict[str, Any]]) -> None:
    """Every object the release rendered is in the server (each named on failure)."""
    missing = []
    for d in docs:
        kind = d["kind"] + ("." + d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else "")
        out = run(
            K8S_BIN / "kubectl",
            "-n",
            namespace,
            "get",
            kind,
            d["metadata"]["name"],
            "-o",
            "name",
            check=False,
        )
        if out.returncode != 0:
            missing.append(f"{d['kind']}/{d['metadata']['name']}: {out.stderr.strip()}")
    assert not missing, missing


def not_ready(namespace: str) -> str:
    """The pods and Jobs that are not done yet, and the namespace's warnings: what a failed
    `--wait` waited for, named with the reason."""
    lines = []
    for pod in json.loads(kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]:
        conditions = {c["type"]: c for c in pod["status"].get("conditions", [])}
        ready = conditions.get("Ready", {})
        if ready.get("status") != "True" and pod["status"].get("phase") != "Succeeded":
            lines.append(
                f"Pod/{pod['metadata']['name']}: {pod['status'].get('phase')} "
                f"{ready.get('reason', '')} {ready.get('message', '')}"
            )
    for job in json.loads(kubectl("-n", namespace, "get", "jobs", "-o", "json"))["items"]:
        if not job["status"].get("succeeded"):
            lines.append(f"Job/{job['metadata']['name']}: {job['status']}")
    events = kubectl("-n", namespace, "get", "events", "--field-selector", "type=Warning")
    return "\n".join(lines) + "\n" + events[-3000:]


def install(
    chart: Path, namespace: str, files: tuple[str, ...], *extra: str, timeout: str = "10m"
) -> None:
    out = helm(
        "upgrade",
        "--install",
        RELEASE,
        chart,
        "-n",
        namespace,
        "--create-namespace",
        *values_args(files),
        *extra,
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        timeout,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(
            f"helm upgrade --install in {namespace}: {out.stderr.strip()}\n{not_ready(namespace)}"
        )


def uninstall_leaves_only_the_kept_volume(namespace: str, release: str) -> None:
    docs = objects_of(namespace, release)
    helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "2m")
    left = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in docs
        if run(
            K8S_BIN / "kubectl",
            "-n",
            namespace,
            "get",
            d["kind"],
            d["metadata"]["name"],
            check=False,
        ).returncode
        == 0
    ]
    kept = (
        ["PersistentVolumeClaim/readmit-mlflow"]
        if any(d["kind"] == "PersistentVolumeClaim" for d in docs)
        else []
    )
    assert left == kept
    assert "servicemonitors.monitoring.coreos.com" in kubectl("get", "crd", "-o", "name")


def install_storage_class() -> None:
    """The StorageClass MicroK8s' hostpath addon provides (the volumes are made by the test)."""
    kubectl("apply", "-f", "-", stdin=STORAGE)


def pv(name: str, size: str, path: str, claim: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "storageClassName": "microk8s-hostpath",
            "hostPath": {"path": path},
            "claimRef": {"name": claim, "namespace": namespace},
        },
    }


def make_claims(ns: str, data_path: Path, prefix: str, backups: bool = False) -> Path:
    """Host directories in the cluster's (cluster-down removes them) as volumes for the claims
    the lab names: MLflow's and, with ``backups``, its backups' (claimed by the chart), and the
    data set's (claimed here, as values/e2e.yaml expects, holding a copy of ``data_path``); all
    named ``prefix-...``. A hostPath gets no fsGroup ownership, so the registry's and the
    backups' directories belong to the pods' user (10001) already. Returns their parent."""
    volumes_dir = CLUSTER / "volumes"
    # (volume, size, claim, written by the pods)
    wanted = [
        ("mlflow", "5Gi", "readmit-mlflow", True),
        ("uci-data", "1Gi", "readmit-uci-data", False),
    ]
    if backups:
        wanted.append(("mlflow-backup", "10Gi", "readmit-mlflow-backup", True))
    volumes = []
    for name, size, claim, written in wanted:
        directory = volumes_dir / f"{prefix}-{name}"
        directory.mkdir(parents=True)
        directory.chmod(0o755)
        if written:
            os.chown(directory, 10001, 10001)
        volumes.append(pv(f"{prefix}-{name}", size, str(directory), claim, ns))
    shutil.copy(data_path, volumes_dir / f"{prefix}-uci-data" / "dataset_diabetes.zip")
    for volume in volumes:
        kubectl("apply", "-f", "-", stdin=json.dumps(volume))
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "readmit-uci-data", "namespace": ns},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "microk8s-hostpath",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(claim))
    return volumes_dir


def prometheus_volume(ns: str, path: Path) -> None:
    """A volume for the claim the operator's StatefulSet makes for the bundled Prometheus. The
    kubelet would create its subdirectory (prometheus-db) as root, and Prometheus (uid 1000,
    fsGroup 2000; a hostPath gets no fsGroup) could not write it: made beforehand, its own."""
    (path / "prometheus-db").mkdir(parents=True)
    for directory in (path, path / "prometheus-db"):
        os.chown(directory, 1000, 2000)
    claim = "prometheus-kps-prometheus-db-prometheus-kps-prometheus-0"
    kubectl("apply", "-f", "-", stdin=json.dumps(pv("kps-prometheus", "5Gi", str(path), claim, ns)))


def listening(port: int) -> bool:
    """Something on 127.0.0.1 accepts a connection on ``port``."""
    with socket.create_connection(("127.0.0.1", port), 3):
        return True


@contextmanager
def port_forward(namespace: str, target: str, remote: int) -> Iterator[int]:
    """``kubectl port-forward`` of ``target``'s port ``remote`` to a free local port, for the
    block's life: how an operator reaches what only its peers may (the kubelet's tunnel into
    the pod, outside the pod network's policies)."""
    port = free_port()
    kubectl_ = [str(K8S_BIN / "kubectl"), f"--kubeconfig={KUBECONFIG}", "-n", namespace]
    forward = subprocess.Popen(
        [*kubectl_, "port-forward", target, f"{port}:{remote}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: listening(port), 60, "the port-forward")
        yield port
    finally:
        forward.terminate()
        forward.wait(timeout=10)
