"""The rendered manifests: Kubernetes' schemas, pinned images, probes on real routes, Services and
URLs that meet their pods under any release name, NodePorts, and clear errors for bad values."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_tools import KUBE_VERSIONS, ROOT, VALUES, pod_specs, render

CRD_REQUIRED = {"ServiceMonitor": ("selector", "endpoints"), "PrometheusRule": ("groups",)}


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUES)
def test_rendered_manifests_match_the_kubernetes_schemas(chart: Path, values: str,
                                                         kube: str) -> None:  # fmt: skip
    """Strict: an unknown field fails. Operator kinds must at least have their required fields."""
    import kubernetes_validate as kv

    docs = render(chart, values, kube)
    for doc in docs:
        assert doc["metadata"]["namespace"] == "readmit", doc["metadata"]["name"]
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            for field in CRD_REQUIRED[doc["kind"]]:
                assert doc["spec"][field], (doc["kind"], field)
            continue
        kv.validate(doc, kube, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    if values != "default":
        assert {"ServiceMonitor", "PrometheusRule"} <= kinds


@pytest.mark.parametrize("values", VALUES)
def test_images_are_pinned_and_probes_hit_real_routes(chart: Path, values: str) -> None:
    from readmit_api.routes import router

    app_version = yaml.safe_load((ROOT / "Chart.yaml").read_text())["appVersion"]
    routes = {r.path for r in router.routes}
    specs = pod_specs(render(chart, values))
    assert specs
    for name, template in specs:
        pod = template["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            repo, _, tag = c["image"].rpartition(":")
            assert repo.startswith("localhost:32000/readmit-"), (name, c["image"])
            assert tag == app_version, (name, c["image"])
            if c["name"] == "api":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert c[probe]["httpGet"]["path"] in routes, (probe, c[probe])


@pytest.mark.parametrize("values", VALUES)
def test_every_service_selects_a_pod_template(chart: Path, values: str) -> None:
    docs = render(chart, values)
    pod_labels = [t["metadata"]["labels"] for _, t in pod_specs(docs)]
    services = [d for d in docs if d["kind"] == "Service"]
    assert services
    for svc in services:
        selector = svc["spec"]["selector"].items()
        assert any(selector <= labels.items() for labels in pod_labels), svc["metadata"]["name"]
    for d in docs:
        if d["kind"] in ("ServiceMonitor", "PodDisruptionBudget"):
            wanted = d["spec"]["selector"]["matchLabels"].items()
            pool = ([s["metadata"]["labels"] for s in services] if d["kind"] == "ServiceMonitor"
                    else pod_labels)  # fmt: skip
            assert any(wanted <= labels.items() for labels in pool), d["metadata"]["name"]


def test_lab_keeps_the_original_nodeports(chart: Path) -> None:
    docs = render(chart, "lab")
    ports = {d["metadata"]["name"]: p["nodePort"] for d in docs if d["kind"] == "Service"
             for p in d["spec"]["ports"] if "nodePort" in p}  # fmt: skip
    assert ports == {"readmit-api": 30080, "readmit-ui": 30081, "readmit-locust": 30009}
    kps = yaml.safe_load((ROOT / "values.yaml").read_text())["kube-prometheus-stack"]
    assert kps["prometheus"]["service"]["nodePort"] == 30090
    assert kps["grafana"]["service"]["nodePort"] == 30030


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("api.service.nodePort=80", "/service/nodePort"),
        ("ui.image.tag=latest", "/image/tag"),
        ("locust.workers=many", "/workers"),
        ("mlflow.train.sample=100", "/train/sample"),
        ("api.replicas=3", "'replicas'"),
        ("networkPolicy.enabled=yes", "/networkPolicy/enabled"),
        ("kube-prometheus-stack.grafana.service.nodePort=3000", "/grafana/service/nodePort"),
        ("ui.service.nodePort=30080", "NodePort 30080 is set for both api and ui"),
        # names and ports come from charts/common only: the others could not follow an override
        ("api.fullnameOverride=x", "additional properties 'fullnameOverride' not allowed"),
        ("ui.service.port=80", "additional properties 'port' not allowed"),
        ("mlflow.enabled=false", "api.mlflow.trackingUri is required when mlflow.enabled is false"),
    ],
)
def test_bad_values_get_a_clear_error(helm: Path, chart: Path, setting: str, message: str) -> None:
    args = [helm, "template", "r", chart, "--kube-version", KUBE_VERSIONS[0], "--set", setting]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    assert out.returncode != 0, setting
    assert message in out.stderr, out.stderr


def urls_and_peers(docs: list[dict]) -> list[tuple[str, str, int]]:
    """(who, Service name, port) for every in-cluster address a pod or ConfigMap names."""
    found = []
    for d in docs:
        texts = list((d.get("data") or {}).values()) if d["kind"] == "ConfigMap" else []
        if d["kind"] in ("Deployment", "Job"):
            pod = d["spec"]["template"]["spec"]
            for c in pod.get("initContainers", []) + pod["containers"]:
                texts += [*c.get("command", []), *c.get("args", [])]
                texts += [e["value"] for e in c.get("env", []) if "value" in e]
        who = d["metadata"]["name"]
        for text in texts:
            found += [(who, h, int(p)) for h, p in re.findall(r"https?://([a-z0-9-]+):(\d+)", text)]
            master = re.fullmatch(r"--master-host=(\S+)", text)
            if master:
                found.append((who, master[1], 5557))
    return found


@pytest.mark.parametrize("release", ["readmit", "st-elsewhere-general-readmission-pilot-1"])
def test_components_find_each_other_under_any_release_name(chart: Path, release: str) -> None:
    """The ui and Locust reach the api, the api and the training Job reach MLflow, the workers
    their master, and every NetworkPolicy selects its component's pods: by names and ports
    from one place (charts/common), never written into values."""
    docs = render(chart, "lab", KUBE_VERSIONS[0], "networkPolicy.enabled=true", release=release)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    pods = [t["metadata"]["labels"] for _, t in pod_specs(docs)]
    for d in docs:
        assert len(d["metadata"]["name"]) <= 63, d["metadata"]["name"]
    found = urls_and_peers(docs)
    callers = {who for who, _, _ in found}
    assert {f"{release}-ui", f"{release}-api", f"{release}-locust-master",
            f"{release}-locust-worker", f"{release}-mlflow-train-1"} <= callers, found  # fmt: skip
    for who, host, port in found:
        if host in ("localhost", "127"):
            continue
        assert host in services, (who, host)
        assert port in [p["port"] for p in services[host]["spec"]["ports"]], (who, host, port)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert len(policies) == 4
    for policy in policies:
        wanted = policy["spec"]["podSelector"]["matchLabels"].items()
        assert any(wanted <= labels.items() for labels in pods), policy["metadata"]["name"]
    for labels in pods:
        assert any(p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
                   for p in policies), labels  # fmt: skip


def test_a_release_name_too_long_for_the_names_is_refused(helm: Path, chart: Path) -> None:
    name = "st-elsewhere-general-readmission-pilot-12"
    out = subprocess.run([helm, "template", name, chart, "--kube-version", KUBE_VERSIONS[0]],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode != 0
    assert f'release name "{name}" has 41 characters; at most 40' in out.stderr, out.stderr
