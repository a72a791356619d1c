"""The e2e node as its tests reach it: the NodePorts on 127.0.0.1, the lab's api pods (each
one asked from inside, as the Service would not pick it), their processes on the node, the
project's scripts as a user runs them."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from support.kube import CLUSTER, RELEASE, kubectl
from support.project import ROOT

NODE_PORT = "http://127.0.0.1:{port}"
NS = "readmit"  # the lab's namespace
MLFLOW = f"{RELEASE}-mlflow.{NS}.svc.cluster.local:5000"  # the lab's registry, in the cluster
API_PODS = "app.kubernetes.io/name=api,app.kubernetes.io/instance=" + RELEASE


def run_script(name: str, *args: str, env: dict[str, str], timeout: float):
    """scripts/NAME.sh as a user runs it, from the project's root."""
    command = ["bash", f"scripts/{name}.sh", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def api_pods() -> list[dict[str, Any]]:
    return json.loads(kubectl("-n", NS, "get", "pods", "-l", API_PODS, "-o", "json"))["items"]


def pod_get(pod: str, path: str) -> str:
    """GET a path of one api pod from inside it (the Service would pick any pod); /metrics is
    on its own port."""
    port = 9464 if path == "/metrics" else 8000
    code = (
        "import urllib.request as u; "
        f"print(u.urlopen('http://127.0.0.1:{port}{path}').read().decode())"
    )
    return kubectl("-n", NS, "exec", pod, "--", "python", "-c", code)


def pod_metric(pod: str, name: str) -> float:
    for line in pod_get(pod, "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def ready_pods() -> list[str]:
    return [
        p["metadata"]["name"]
        for p in api_pods()
        if "deletionTimestamp" not in p["metadata"]
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    ]


def task_pid(container_id: str) -> int:
    """The container's process, as the node's containerd knows it."""
    socket_path = CLUSTER / "containerd" / "containerd.sock"
    out = subprocess.run(
        ["ctr", "--address", str(socket_path), "-n", "k8s.io", "tasks", "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(int(line.split()[1]) for line in out.splitlines() if line.startswith(container_id))
