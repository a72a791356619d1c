"""The lab rendered with the real kube-prometheus-stack chart (88.5.3, the version Chart.lock pins,
from ../shared/charts; copied into a temporary chart, never committed): what the lab's values
make of it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from support.charts import HELM, KUBE_VERSIONS, container_env, copy_chart, render, run
from support.project import KPS_CHART, ROOT


@pytest.fixture(scope="module")
def real_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_chart(tmp_path_factory.mktemp("kps-chart") / "readmit", real_stack=True)


def test_grafanas_sidecars_read_configmaps_of_the_release_namespace_only(real_chart: Path) -> None:
    """The stack's default lets the sidecars list every namespace through a ClusterRole that
    may read every Secret in the cluster."""
    docs = render(real_chart, "lab")
    kinds = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    rbac = [d for d in docs if d["kind"] in kinds and "grafana" in d["metadata"]["name"]]
    assert {d["kind"] for d in rbac} == {"Role", "RoleBinding"}
    (binding,) = (d for d in rbac if d["kind"] == "RoleBinding")
    (role,) = (d for d in rbac if d["kind"] == "Role")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch", "list"]}
    ]
    (grafana,) = (
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-grafana")
    )
    sidecars = [
        c
        for c in grafana["spec"]["template"]["spec"]["containers"]
        if c["name"].startswith("grafana-sc-")
    ]
    assert sidecars
    for c in sidecars:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert "NAMESPACE" not in env, c["name"]  # its own namespace, the release's
        assert env["RESOURCE"] == "configmap", c["name"]


def dashboard_configmaps(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]


def test_the_dashboards_configmaps_carry_what_the_bundled_sidecar_selects(real_chart: Path) -> None:
    """The bundled Grafana (which cannot run here) loads a ConfigMap of its own namespace that
    has its sidecar's label, into the folder its annotation names; each is far below the 1 MiB
    an object may hold (and the 256 KiB `kubectl apply` can annotate)."""
    docs = render(real_chart, "lab")
    env = container_env(docs, "readmit-grafana", "grafana-sc-dashboard")
    assert "NAMESPACE" not in env  # the release's namespace
    maps = dashboard_configmaps(docs)
    assert len(maps) == len(list((ROOT / "dashboards").glob("*.json"))) == 2
    for cm in maps:
        assert cm["metadata"]["namespace"] == "readmit"
        assert cm["metadata"]["labels"][env["LABEL"]] == env["LABEL_VALUE"]
        assert cm["metadata"]["annotations"][env["FOLDER_ANNOTATION"]] == "readmit"
        assert len(json.dumps(cm["data"]).encode()) < 256 * 1024


def test_the_dashboards_data_source_variable_finds_the_stacks_prometheus(real_chart: Path) -> None:
    """Every panel asks the dashboard's data source variable, which lists the data sources of
    type prometheus: the bundled Grafana's is one (provisioned by its sidecar's label)."""
    docs = render(real_chart, "lab")
    env = container_env(docs, "readmit-grafana", "grafana-sc-datasources")
    labelled = [d for d in docs if d["kind"] == "ConfigMap"]
    (provisioned,) = (d for d in labelled if d["metadata"]["labels"].get(env["LABEL"]) == "1")
    assert env["LABEL_VALUE"] == "1"
    sources = yaml.safe_load(provisioned["data"]["datasource.yaml"])["datasources"]
    (prometheus,) = (s for s in sources if s["type"] == "prometheus")
    assert prometheus["url"].startswith("http://kps-prometheus.readmit:9090")
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == prometheus["type"]
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (
                path.name,
                panel["title"],
            )


def selects(selector: dict, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # what these charts use
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_production_is_found_by_a_stack_installed_as_microk8s_observability_addon() -> None:
    """MicroK8s' observability addon installs kube-prometheus-stack as the release
    kube-prom-stack in the namespace observability, its selectors as the chart makes them:
    Prometheus takes ServiceMonitors and rules labelled release=kube-prom-stack, from every
    namespace, and Grafana dashboards labelled grafana_dashboard=1 from every namespace.
    Production's objects carry those labels (the lab's own stack selects any: nil selectors)."""
    addon = [
        d
        for d in yaml.safe_load_all(
            run(
                HELM,
                "template",
                "kube-prom-stack",
                KPS_CHART,
                "-n",
                "observability",
                "--kube-version",
                KUBE_VERSIONS[-1],
            )
        )
        if d
    ]
    (prometheus,) = (d["spec"] for d in addon if d["kind"] == "Prometheus")
    production = render(copy_chart(Path(tempfile.mkdtemp()) / "readmit"), "production")
    for kind, selector in (("ServiceMonitor", "serviceMonitor"), ("PrometheusRule", "rule")):
        assert prometheus[f"{selector}Selector"] == {"matchLabels": {"release": "kube-prom-stack"}}
        assert prometheus[f"{selector}NamespaceSelector"] == {}  # every namespace
        objects = [d for d in production if d["kind"] == kind]
        assert objects, kind
        for d in objects:
            assert selects(prometheus[f"{selector}Selector"], d["metadata"]["labels"]), d[
                "metadata"
            ]["name"]
    (operator,) = (
        d
        for d in addon
        if d["kind"] == "Deployment"
        and d["metadata"]["name"] == "kube-prom-stack-kube-prome-operator"
    )
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--namespaces")], args  # it watches every one
    env = container_env(addon, "kube-prom-stack-grafana", "grafana-sc-dashboard")
    assert env["NAMESPACE"] == "ALL"
    maps = dashboard_configmaps(production)
    assert len(maps) == 2
    for cm in maps:
        assert cm["metadata"]["labels"][env["LABEL"]] == env["LABEL_VALUE"]
