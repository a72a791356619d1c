"""The lab installed on the real node as a user installs it (deploy.sh refusing production first,
while the monitoring CRDs are missing), then used as a user would: curl on the api's NodePort,
Chromium on the ui's, Locust in the cluster behind its login, the commands NOTES.txt prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from support.browser import UI_USER, open_page, shows_a_risk
from support.kube import HELM, K8S_BIN, KUBECONFIG, RELEASE, kubectl, secret_value, wait_until
from support.node import NODE_PORT, api_pods, pod_get, run_script
from support.project import ROOT
from support.swarm import locust_login

pytestmark = pytest.mark.e2e


def image_keys(values: Any) -> list[str]:
    """Every image a values tree names as {registry, repository, tag}."""
    if not isinstance(values, dict):
        return []
    found = [
        f"{v['registry']}/{v['repository']}:{v['tag']}"
        for k, v in values.items()
        if k == "image" and isinstance(v, dict)
    ]
    return found + [i for k, v in values.items() if k != "image" for i in image_keys(v)]


def test_the_e2e_values_name_exactly_the_monitoring_images_pushed(
    monitoring_images: list[str],
) -> None:
    e2e = yaml.safe_load((ROOT / "values/e2e.yaml").read_text())
    named = image_keys(e2e["kube-prometheus-stack"]) + image_keys(e2e["metrics-adapter"])
    assert sorted(named) == sorted(monitoring_images)
    assert len(monitoring_images) == 6


def test_production_without_the_monitoring_crds_names_the_addon(real_node: Path) -> None:
    """First: the CRDs are not in the cluster yet (the lab's install brings them)."""
    env = {
        **os.environ,
        "MICROK8S": "",
        "HELM": str(HELM),
        "READMIT_IMAGE_TAGS": "1",
        "KUBECTL": f"{K8S_BIN / 'kubectl'} --kubeconfig {real_node}",
    }
    out = run_script("deploy", "production", env=env, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "microk8s enable observability" in out.stderr
    assert "+ " not in out.stdout  # stopped before Helm ran


def test_the_training_job_trained_and_the_api_loaded_its_model(lab: str) -> None:
    logs = kubectl("-n", lab, "logs", f"job/{RELEASE}-mlflow-train-1")
    assert "alias 'production' moved" in logs, logs[-2000:]
    # `helm --wait` saw the pod Ready; kube-proxy programs the NodePort on its own sync (a CI
    # run once found it refused right after the install)
    url = NODE_PORT.format(port=30080) + "/ready"
    wait_until(lambda: requests.get(url, timeout=5).ok, 30, "the api's NodePort")
    ready = requests.get(url, timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["model"]["version"] == "1"


def test_the_pods_run_the_images_by_the_digests_pushed(lab: str, images: Path) -> None:
    """A tag can be pushed again; the pods run the exact images build-images.sh pushed: the
    registry's digests, recorded and passed to Helm (as deploy.sh does)."""
    recorded = yaml.safe_load(images.read_text())
    for chart, image in (("api", "readmit-api"), ("mlflow", "readmit-trainer")):
        digest = recorded[chart]["image"]["digest"]
        head = requests.head(
            f"http://127.0.0.1:32000/v2/{image}/manifests/{digest}",
            timeout=10,
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        assert head.status_code == 200, (image, digest)
    ours = "app.kubernetes.io/name in (api,ui,locust,mlflow)"  # not the monitoring stack's
    for pod in json.loads(kubectl("-n", lab, "get", "pods", "-l", ours, "-o", "json"))["items"]:
        images = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
        for status in pod["status"].get("containerStatuses", []):
            image = images[status["name"]]  # the status may show the image's id instead
            repo = image.split("@")[0].rsplit("/", 1)[1]
            chart = {"readmit-trainer": "mlflow"}.get(repo, repo.removeprefix("readmit-"))
            digest = recorded[chart]["image"]["digest"]
            assert image.endswith(f"@{digest}"), (pod["metadata"]["name"], image)
            assert status["imageID"].endswith(digest), (pod["metadata"]["name"], status)


def test_curl_the_api_nodeport_with_the_generated_key(lab: str) -> None:
    key = secret_value(lab, f"{RELEASE}-api-keys", "operator")
    body = (ROOT / "scripts/example-encounter.json").read_text()
    url = NODE_PORT.format(port=30080)
    headers = {"content-type": "application/json"}
    anonymous = requests.post(f"{url}/predict", data=body, headers=headers, timeout=10)
    assert anonymous.status_code == 401
    answer = requests.post(
        f"{url}/predict",
        data=body,
        timeout=10,
        headers={**headers, "Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    assert 0 < answer.json()["readmission_risk"] < 1
    # the NodePort has no /metrics: those are on a port only Prometheus is let reach
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 404
    assert "readmit_predictions_total" in pod_get(api_pods()[0]["metadata"]["name"], "/metrics")


def test_the_ui_nodeport_shows_a_risk_in_chromium(lab: str, browser) -> None:
    """Behind the lab login the chart generated (only its hash is in the page's pod)."""
    password = secret_value(lab, f"{RELEASE}-ui-login", "password")
    page = open_page(browser, NODE_PORT.format(port=30081), login=None)
    assert page.get_by_text("30-day readmission risk").count() == 0
    page.close()
    shows_a_risk(browser, NODE_PORT.format(port=30081), "ui-node.png", (UI_USER, password))
    mounted = kubectl(
        "-n", lab, "exec", f"deploy/{RELEASE}-ui", "--", "ls", "/var/run/secrets/readmit-ui"
    ).split()
    assert mounted == ["cookie-secret", "password-hash"]


def test_locust_in_the_cluster_asks_for_a_login_then_runs_a_load_with_no_failures(
    lab: str,
) -> None:
    web = NODE_PORT.format(port=30009)
    run = {"user_count": 10, "spawn_rate": 10, "run_time": "20s"}
    stranger = requests.post(f"{web}/swarm", data=run, allow_redirects=False, timeout=10)
    assert stranger.status_code == 302  # to the login page; nothing started
    operator = locust_login(lab)
    elsewhere = operator.post(
        f"{web}/swarm", data={**run, "host": "http://10.250.0.1:6443"}, timeout=10
    )
    assert elsewhere.status_code == 400  # another host: refused (the key would have gone there)
    started = operator.post(f"{web}/swarm", data=run, timeout=10)
    assert started.json()["success"], started.text
    stats: dict = {}
    for _ in range(90):
        stats = operator.get(f"{web}/stats/requests", timeout=5).json()
        if stats["state"] == "stopped":
            break
        time.sleep(1)
    total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
    assert stats["state"] == "stopped", stats["state"]
    assert stats["worker_count"] == 2
    assert total["num_requests"] > 50, total
    assert total["num_failures"] == 0, stats.get("errors")
    # the exporter, as Prometheus would scrape it inside the cluster
    scrape = (
        "import urllib.request as u; "
        "print(u.urlopen('http://127.0.0.1:9646/metrics').read().decode())"
    )
    metrics = kubectl(
        "-n", lab, "exec", f"deploy/{RELEASE}-locust-master", "--", "python", "-c", scrape
    )
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("locust_requests_total")
    )
    assert counted >= total["num_requests"]


def test_the_notes_commands_work_as_printed(lab: str, tmp_path: Path) -> None:
    """NOTES.txt's URLs answer, and its key and curl commands run as printed (NODE = 127.0.0.1)."""
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    notes = subprocess.run(
        [str(HELM), "get", "notes", RELEASE, "-n", lab],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    urls = dict(re.findall(r"^\s+(api|ui|Locust|Prometheus)\s+http://NODE:(\d+)", notes, re.M))
    assert urls == {"api": "30080", "ui": "30081", "Locust": "30009", "Prometheus": "30090"}
    assert "Grafana" not in notes  # off here
    for name, port in urls.items():
        path = {"api": "/docs", "Prometheus": "/-/ready"}.get(name, "/")
        assert requests.get(NODE_PORT.format(port=port) + path, timeout=10).status_code == 200
    lines = notes.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("KEY=$(kubectl"))
    block = "\n".join(lines[start : start + 3]).replace("NODE", "127.0.0.1")
    bin_dir = tmp_path / "bin"  # `kubectl` as the notes name it
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(K8S_BIN / "kubectl")
    path = {**env, "PATH": f"{bin_dir}:{env['PATH']}"}
    out = subprocess.run(
        ["bash", "-ec", block],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=path,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r'"readmission_risk":\s*0\.\d+', out.stdout), out.stdout
    # the logins it prints: each command gives a password that opens its door
    passwords = [
        subprocess.run(
            ["bash", "-ec", line.strip()], capture_output=True, text=True, env=path, check=True
        ).stdout.strip()
        for line in lines
        if "base64 -d; echo" in line
    ]
    assert len(passwords) == 3  # the ui's, Locust's, MLflow's
    assert passwords[0] == secret_value(lab, f"{RELEASE}-ui-login", "password")
    web = NODE_PORT.format(port=30009)
    session = requests.Session()
    session.post(
        f"{web}/login_submit", data={"username": "admin", "password": passwords[1]}, timeout=10
    )
    assert session.get(f"{web}/stats/requests", timeout=10).status_code == 200
    # the autoscaler they name (the lab scales the api): its line shows the api's HPA
    (hpa_line,) = [line.strip() for line in lines if " get hpa " in line]
    hpa = subprocess.run(
        ["bash", "-ec", hpa_line], capture_output=True, text=True, env=path, check=True
    ).stdout
    assert f"{RELEASE}-api" in hpa, hpa
