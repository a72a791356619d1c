"""The bundled monitoring stack watches the release: its Prometheus (NodePort 30090) scrapes
every api pod, loads every rule, answers every dashboard query; its alerts fire into
Alertmanager."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from support.charts import container_env, dashboard_query_report, render
from support.kube import RELEASE, kubectl, objects_of, secret_value, wait_until
from support.node import NODE_PORT, NS, api_pods
from support.project import ARTIFACTS, ROOT
from support.prometheus import PROMETHEUS, alert_state, alertmanager_lists, fires_into, prom, query
from support.swarm import locust_login

pytestmark = pytest.mark.e2e


def example_encounter() -> dict[str, Any]:
    return json.loads((ROOT / "scripts/example-encounter.json").read_text())


def api_post(lab: str, path: str, body: dict[str, Any]) -> requests.Response:
    """A request to the api's NodePort with the operator's key, as a user sends it."""
    key = secret_value(lab, f"{RELEASE}-api-keys", "operator")
    return requests.post(
        NODE_PORT.format(port=30080) + path,
        json=body,
        timeout=60,
        headers={"Authorization": f"Bearer {key}"},
    )


def targets(pool: str) -> list[dict[str, Any]]:
    return [
        t
        for t in prom("targets", state="active")["activeTargets"]
        if t["scrapePool"].startswith(pool)
    ]


def test_prometheus_scrapes_every_api_pod_locust_and_kube_state_metrics(lab: str) -> None:
    """The operator turned the chart's ServiceMonitors into scrape jobs: a target per api pod (its
    metrics port) and Locust's exporter, and the stack's kube-state-metrics, all up."""
    pools = {
        "api": f"serviceMonitor/{NS}/{RELEASE}-api/",
        "locust": f"serviceMonitor/{NS}/{RELEASE}-locust/",
        "kube-state-metrics": f"serviceMonitor/{NS}/{RELEASE}-kube-state-metrics/",
    }
    pods = {f"{p['status']['podIP']}:9464" for p in api_pods()}

    def all_up() -> bool:
        found = {name: targets(pool) for name, pool in pools.items()}
        return (
            {t["labels"]["instance"] for t in found["api"]} == pods
            and all(found.values())
            and all(t["health"] == "up" for ts in found.values() for t in ts)
        )

    took = wait_until(all_up, 180, "every target up", interval=3)
    report = [
        f"{t['health']:4}  {t['scrapePool']}  {t['labels']['instance']}"
        for t in prom("targets", state="active")["activeTargets"]
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "prometheus-targets.txt").write_text(
        f"all of the release's targets up {took:.0f} s after the install\n"
        + "\n".join(report)
        + "\n"
    )
    assert {t["labels"]["job"] for t in targets(pools["api"])} == {f"{RELEASE}-api"}


def test_the_release_record_with_the_bundled_stack_fits_in_its_secret(lab: str) -> None:
    """Helm keeps each revision (the chart with its subcharts, values and manifest, gzipped) in one
    Secret, which may hold 1 MiB: the bundled stack is most of it."""
    record = json.loads(
        kubectl("-n", lab, "get", "secret", f"sh.helm.release.v1.{RELEASE}.v1", "-o", "json")
    )["data"]["release"]
    size = len(base64.b64decode(record))
    with (ARTIFACTS / "lab-install.txt").open("a") as out:
        out.write(f"release record (Secret sh.helm.release.v1.{RELEASE}.v1): {size} bytes\n")
    assert size < 1024 * 1024 * 0.75, size  # room for the chart to grow


def test_through_its_nodeport_prometheus_is_read_and_never_changed(lab: str) -> None:
    """The NodePort (30090, as the original deployment publishes it) answers queries without a
    login; nothing there deletes or snapshots series, takes pushed samples, reloads or stops it."""
    refused = {}
    for path in (
        "/api/v1/admin/tsdb/delete_series?match[]=up",
        "/api/v1/admin/tsdb/snapshot",
        "/api/v1/admin/tsdb/clean_tombstones",
        "/api/v1/write",
        "/api/v1/otlp/v1/metrics",
        "/-/reload",
        "/-/quit",
    ):
        answer = requests.post(PROMETHEUS + path, timeout=10)
        refused[path] = f"{answer.status_code} {answer.text.strip()[:80]}"
    # the admin API answers 500 "admin APIs disabled"; the rest 403 or 404 (not enabled)
    assert all(
        r.startswith(("403", "404")) or "admin APIs disabled" in r for r in refused.values()
    ), refused
    time.sleep(2)
    assert requests.get(f"{PROMETHEUS}/-/ready", timeout=10).ok  # still up
    assert query(f'up{{job="{RELEASE}-api"}}')  # its series still there


def test_every_rule_of_the_chart_loaded_and_prometheus_has_an_alertmanager(lab: str) -> None:
    (rule,) = (
        d
        for d in objects_of(NS, RELEASE)
        if d["kind"] == "PrometheusRule" and d["metadata"]["name"] == f"{RELEASE}-api"
    )
    chart_rules = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}

    def loaded() -> dict[str, dict[str, Any]]:
        groups = prom("rules")["groups"]
        return {r["name"]: r for g in groups if g["name"] == "readmit-api" for r in g["rules"]}

    def evaluated() -> bool:  # a rule's health is "unknown" until its group first ran
        rules = loaded()
        return set(rules) == chart_rules and all(r["health"] != "unknown" for r in rules.values())

    wait_until(evaluated, 120, "the chart's rules loaded and evaluated", interval=2)
    for name, r in loaded().items():
        assert r["health"] == "ok", (name, r.get("lastError"))
    assert len(chart_rules) == 9  # the lab scales the api: ReadmitApiAutoscalingBlind too
    managers = prom("alertmanagers")["activeAlertmanagers"]
    assert [m["url"] for m in managers if ":9093/" in m["url"]], managers


def test_every_dashboard_query_answers_in_the_cluster_after_real_traffic(
    lab: str, chart: Path
) -> None:
    """Both dashboards, as the bundled Grafana would ask the in-cluster Prometheus: each query of
    each panel (its rate interval four scrape intervals of the stack's data source, as Grafana
    makes it) has data after requests on the api's NodePort and a Locust run in the cluster."""
    (source,) = (
        d
        for d in render(chart, "lab")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kps-grafana-datasource"
    )
    scrape = yaml.safe_load(source["data"]["datasource.yaml"])["datasources"][0]["jsonData"]
    rate_interval = f"{4 * int(scrape['timeInterval'].removesuffix('s'))}s"
    encounter = example_encounter()
    for path, body in (
        ("/predict", encounter),
        ("/predict/batch", {"encounters": [encounter] * 5}),
        ("/predict?explain=true", encounter),
    ):
        assert api_post(lab, path, body).ok, path
    web = NODE_PORT.format(port=30009)
    operator = locust_login(lab)
    started = operator.post(
        f"{web}/swarm", data={"user_count": 10, "spawn_rate": 10, "run_time": "60s"}, timeout=10
    )
    assert started.json()["success"], started.text
    try:
        wait_until(
            lambda: any(float(r["value"][1]) > 0 for r in query("locust_users")),
            120,
            "Locust's users in Prometheus",
            interval=3,
        )
        time.sleep(35)  # scrapes enough for the rates
        jobs = prom("label/job/values", **{"match[]": "readmit_http_requests_total"})
        assert jobs == [f"{RELEASE}-api"]  # what the dashboards' job variable lists
        report, empty = dashboard_query_report(query, rate_interval)
    finally:
        operator.get(f"{web}/stop", timeout=10)
    (ARTIFACTS / "dashboard-queries-node.txt").write_text("\n".join(report) + "\n")
    assert len(report) >= 20
    assert not empty, empty


def test_the_stack_runs_in_a_few_hundred_mebibytes(lab: str) -> None:
    """The stack's own pods (their pod cgroups: container=""), by the kubelet's cAdvisor numbers
    as its Prometheus scrapes them."""
    expr = (
        f'sum by (pod) (container_memory_working_set_bytes{{namespace="{NS}",container="",'
        'pod=~"prometheus-kps-.*|alertmanager-kps-.*|kps-operator-.*|readmit-kube-state-.*"})'
    )
    wait_until(lambda: len(query(expr)) == 4, 120, "the stack's memory", interval=3)
    mib = {r["metric"]["pod"]: float(r["value"][1]) / 2**20 for r in query(expr)}
    lines = [f"{v:6.0f} MiB  {pod}" for pod, v in sorted(mib.items())]
    (ARTIFACTS / "monitoring-memory.txt").write_text(
        f"{sum(mib.values()):6.0f} MiB  the stack (Grafana off)\n" + "\n".join(lines) + "\n"
    )
    assert sum(mib.values()) < 512, mib


def test_the_dashboards_configmaps_in_the_cluster_are_what_the_bundled_sidecar_selects(
    lab: str, chart: Path
) -> None:
    """Grafana cannot run here: its sidecar's settings, as the real chart renders them for the lab
    (Grafana on), against the ConfigMaps the release made in the cluster."""
    env = container_env(render(chart, "lab"), f"{RELEASE}-grafana", "grafana-sc-dashboard")
    assert "NAMESPACE" not in env  # it watches its own: the release's
    selected = json.loads(
        kubectl(
            "-n",
            lab,
            "get",
            "configmaps",
            "-l",
            f"{env['LABEL']}={env['LABEL_VALUE']}",
            "-o",
            "json",
        )
    )["items"]
    names = sorted(cm["metadata"]["name"] for cm in selected)
    assert names == [f"{RELEASE}-dashboard-inference-api", f"{RELEASE}-dashboard-load-test"]
    for cm in selected:
        assert cm["metadata"]["annotations"][env["FOLDER_ANNOTATION"]] == "readmit"
        (dashboard,) = cm["data"].values()
        assert json.loads(dashboard)["panels"]


def test_the_api_down_fires_into_alertmanager_and_resolves_when_it_is_back(
    lab: str, alertmanager: str
) -> None:
    """ReadmitApiDown (e2e values: `for: 30s`, 2m by default) with the api scaled to 0: pending,
    then firing, then listed by Alertmanager; scaled back, it resolves."""
    deployment = f"deployment/{RELEASE}-api"
    timeline = []
    start = time.monotonic()
    kubectl("-n", lab, "scale", deployment, "--replicas=0")
    try:
        for state in ("pending", "firing"):
            wait_until(
                lambda s=state: alert_state("ReadmitApiDown") == s,
                240,
                f"ReadmitApiDown {state}",
                interval=2,
            )
            timeline.append(f"{time.monotonic() - start:5.0f} s  ReadmitApiDown {state}")
        wait_until(
            lambda: alertmanager_lists(alertmanager, "ReadmitApiDown"),
            120,
            "Alertmanager lists it",
            interval=2,
        )
        timeline.append(f"{time.monotonic() - start:5.0f} s  listed by Alertmanager")
    finally:
        kubectl("-n", lab, "scale", deployment, "--replicas=1")
    kubectl("-n", lab, "rollout", "status", deployment, "--timeout=300s")
    timeline.append(f"{time.monotonic() - start:5.0f} s  the api back, Ready")
    wait_until(
        lambda: alert_state("ReadmitApiDown") is None, 240, "ReadmitApiDown resolved", interval=2
    )
    timeline.append(f"{time.monotonic() - start:5.0f} s  resolved in Prometheus")
    wait_until(
        lambda: not alertmanager_lists(alertmanager, "ReadmitApiDown"),
        240,
        "Alertmanager resolved",
        interval=2,
    )
    timeline.append(f"{time.monotonic() - start:5.0f} s  no longer active in Alertmanager")
    (ARTIFACTS / "alerts.txt").write_text("api scaled to 0 at 0 s\n" + "\n".join(timeline) + "\n")


def test_a_shifted_input_fires_readmit_input_drift(lab: str, alertmanager: str) -> None:
    """The api's window (new since the last test's restart) filled with one kind of encounter:
    an input's population stability index leaves the served model's baseline, and
    ReadmitInputDrift (e2e values: 200 encounters, `for: 30s`) fires into Alertmanager."""
    shifted = {**example_encounter(), "number_inpatient": 12}  # the drift input prior_inpatient: 3+
    start = time.monotonic()
    answer = api_post(lab, "/predict/batch", {"encounters": [shifted] * 300})
    assert answer.status_code == 200, answer.text
    fired = fires_into(alertmanager, "ReadmitInputDrift", start)
    drifted = {r["metric"]["input"] for r in query("readmit_drift_psi > 0.25")}
    assert "prior_inpatient" in drifted, drifted
    with (ARTIFACTS / "alerts.txt").open("a") as out:
        out.write(
            f"ReadmitInputDrift firing {fired:.0f} s after 300 shifted encounters "
            f"(inputs drifted: {', '.join(sorted(drifted))})\n"
        )
