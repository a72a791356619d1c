"""Faults under a steady load: 2 api replicas behind the PodDisruptionBudget (the package's
under_load) through a rolling restart, a killed container, MLflow gone and a forced new model
version."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from support.kube import RELEASE, helm, kubectl, wait_until
from support.node import NS, api_pods, pod_get, pod_metric, ready_pods, task_pid
from support.swarm import FAULTS, USERS, Swarm

pytestmark = pytest.mark.e2e


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
    listed_s = wait_until(
        lambda: not endpoint_ready(pod), 30, "the dead pod out of the Service", interval=0.05
    )
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
    return any(
        e.get("conditions", {}).get("ready") and e.get("targetRef", {}).get("name") == pod
        for s in slices["items"]
        for e in s.get("endpoints") or []
    )


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
        wait_until(
            lambda p=pod: pod_metric(p, "readmit_model_alias_check_failures_total") > checks[p],
            60,
            f"{pod}'s failed alias checks",
        )
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
    helm(
        "upgrade",
        RELEASE,
        chart,
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "mlflow.train.enabled=true",
        "--set",
        "mlflow.train.force=true",
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "10m",
    )
    revision = json.loads(helm("status", RELEASE, "-n", NS, "-o", "json").stdout)["version"]
    logs = kubectl("-n", NS, "logs", f"job/{RELEASE}-mlflow-train-{revision}")
    assert "alias 'production' moved (forced)" in logs, logs[-2000:]
    version = re.search(r"version (\d+): alias 'production' moved", logs)[1]
    assert version != "1"
    for pod in ready_pods():
        wait_until(
            lambda p=pod: json.loads(pod_get(p, "/ready"))["model"]["version"] == version,
            60,
            f"{pod} serving version {version}",
        )
    requested, failed, errors = under_load.measure(f"a forced new model version ({version})")
    assert requested > 100
    assert failed == 0, errors
