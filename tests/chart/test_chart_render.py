"""The rendered manifests: Kubernetes' schemas, pinned images, probes on real routes, Services and
URLs that meet their pods under any release name, NodePorts, and clear errors for bad values."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from support.charts import KUBE_VERSIONS, VALUES, pod_specs, render
from support.project import ROOT

CRD_REQUIRED = {"ServiceMonitor": ("selector", "endpoints"), "PrometheusRule": ("groups",)}


# The metrics adapter's: the API group it serves, and who may read what (cluster-wide).
CLUSTER_SCOPED = ("APIService", "ClusterRole", "ClusterRoleBinding")


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUES)
def test_rendered_manifests_match_the_kubernetes_schemas(
    chart: Path, values: str, kube: str
) -> None:
    """Strict: an unknown field fails. Operator kinds must at least have their required fields."""
    import kubernetes_validate as kv

    docs = render(chart, values, kube)
    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], name
        elif name == "readmit-metrics-adapter-ca":  # reads the aggregation layer's client CA
            assert doc["metadata"]["namespace"] == "kube-system"
        else:
            assert doc["metadata"]["namespace"] == "readmit", name
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
        if name == "readmit-metrics-adapter":  # upstream's image, as the monitoring stack's
            (c,) = pod["containers"]
            assert c["image"] == "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0"
            continue
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
            pool = (
                [s["metadata"]["labels"] for s in services]
                if d["kind"] == "ServiceMonitor"
                else pod_labels
            )
            assert any(wanted <= labels.items() for labels in pool), d["metadata"]["name"]


def test_lab_keeps_the_original_nodeports(chart: Path) -> None:
    docs = render(chart, "lab")
    ports = {
        d["metadata"]["name"]: p["nodePort"]
        for d in docs
        if d["kind"] == "Service"
        for p in d["spec"]["ports"]
        if "nodePort" in p
    }
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
        # a provider needs its client: id, secret and the registered redirect URI
        ("ui.auth.oidc.issuer=https://sso.example/realms/c", "/auth/oidc/clientId"),
        ("ui.auth.oidc.redirectUri=https://readmit.example/callback", "/auth/oidc/redirectUri"),
        ("ui.auth.sessionHours=0", "/auth/sessionHours"),
        ("api.autoscaling.metric=memory", "/autoscaling/metric"),
        ("api.autoscaling.targetRequestsPerSecond=0", "/autoscaling/targetRequestsPerSecond"),
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
    docs = render(chart, "lab", KUBE_VERSIONS[0], release=release)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    pods = [t["metadata"]["labels"] for _, t in pod_specs(docs)]
    for d in docs:
        assert len(d["metadata"]["name"]) <= 63, d["metadata"]["name"]
    found = urls_and_peers(docs)
    callers = {who for who, _, _ in found}
    assert {
        f"{release}-ui",
        f"{release}-api",
        f"{release}-locust-master",
        f"{release}-locust-worker",
        f"{release}-mlflow-train-1",
    } <= callers, found
    for who, host, port in found:
        if host in ("localhost", "127"):
            continue
        assert host in services, (who, host)
        assert port in [p["port"] for p in services[host]["spec"]["ports"]], (who, host, port)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for policy in policies:  # each selects pods of the release
        assert any(selects(policy["spec"]["podSelector"], labels) for labels in pods), policy
    for labels in pods:  # and every pod is denied all but what its edges open
        assert selects(policy_named(docs, f"{release}-deny-all")["spec"]["podSelector"], labels)
    # every URL a pod calls is an edge opened at both ends, on that port
    roles = pod_roles(docs, release)
    callers = {name: t["metadata"]["labels"] for name, t in pod_specs(docs)}
    # the master's --host is its workers' target: they call it, and have the edge
    callers[f"{release}-locust-master"] = callers[f"{release}-locust-worker"]
    open_edges = edges(docs, roles, release)
    for who, host, port in found:
        if host in ("localhost", "127"):
            continue
        target = services[host]["spec"]["selector"]
        to = next(r for r, labels in roles.items() if target.items() <= labels.items())
        source = next(r for r, labels in roles.items() if selects_labels(labels, callers[who]))
        assert (source, to, port) in open_edges["egress"], (who, host, port)
        assert (source, to, port) in open_edges["ingress"], (who, host, port)


# The lab's edges, each opened at its ends: (from, to, port); "locust" is Locust's master,
# "workers" its workers; a side outside the release by name.
LAB_EDGES = {
    ("ui", "api", 8000),
    ("workers", "api", 8000),
    ("nodeport", "api", 8000),
    ("prometheus", "api", 9464),
    ("api", "mlflow", 5000),
    ("trainer", "mlflow", 5000),
    ("nodeport", "ui", 8501),
    ("workers", "locust", 5557),
    ("nodeport", "locust", 8089),
    ("prometheus", "locust", 9646),
    ("locust", "internet", 443),
    ("workers", "internet", 443),
    ("trainer", "internet", 443),
    ("all", "dns", 53),
    ("apiserver", "adapter", 6443),
    ("adapter", "prometheus", 9090),
    ("adapter", "kube-api", 16443),
}


def test_the_labs_pods_reach_only_their_peers(chart: Path) -> None:
    """Exactly these edges and no other: MLflow only from the api and the training Job, the api
    from the ui, Locust's workers, Prometheus (metrics port) and the NodePort's clients, Locust's
    master from its workers, Prometheus and its NodePort, the metrics adapter from the API
    server (off the pod network) only, and it to Prometheus and the API server; out of the
    release only DNS and, to download the data set, HTTPS to the internet (not the cluster's
    private ranges)."""
    docs = render(chart, "lab")
    found = edges(docs, pod_roles(docs))
    assert found["ingress"] | found["egress"] == LAB_EDGES
    internet = policy_named(docs, "readmit-trainer-to-internet")["spec"]["egress"][0]["to"]
    assert internet[0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        internet[0]["ipBlock"]["except"]
    )
    clients = policy_named(docs, "readmit-api-from-nodeport")["spec"]["ingress"][0]["from"]
    assert clients == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.1.0.0/16"]}}]


def test_production_reaches_its_external_registry_and_no_mlflow(chart: Path) -> None:
    docs = render(chart, "production")
    found = edges(docs, pod_roles(docs))
    assert ("api", "registry", 443) in found["egress"]
    assert ("ui", "idp", 443) in found["egress"]  # the hospital's SSO, for the sign-in
    assert not {e for e in found["ingress"] | found["egress"] if "mlflow" in e}
    monitoring = policy_named(docs, "readmit-api-from-prometheus")["spec"]["ingress"][0]["from"]
    observability = {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}
    assert {"namespaceSelector": observability} in monitoring


def policy_named(docs: list[dict], name: str) -> dict:
    return next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name)


def selects_labels(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def selects(selector: dict, labels: dict) -> bool:
    """A NetworkPolicy podSelector (matchLabels and In expressions) against a pod's labels."""
    if not selects_labels(selector.get("matchLabels", {}), labels):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def pod_roles(docs: list[dict], release: str = "readmit") -> dict[str, dict]:
    """Each of the release's pod roles (api, ui, locust-master, ...) by the labels an edge's own
    policy selects it with: the name an edge policy gives it."""
    roles = {}
    for d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        name, spec = d["metadata"]["name"], d["spec"]
        labels = spec["podSelector"].get("matchLabels", {})
        for kind, word in (("Ingress", "-from-"), ("Egress", "-to-")):
            if (
                spec["policyTypes"] == [kind]
                and word in name
                and "matchExpressions" not in spec["podSelector"]
            ):
                role = name.removeprefix(f"{release}-").split(word)[0]
                roles[role] = labels
    return roles


def edges(
    docs: list[dict], roles: dict[str, dict], release: str = "readmit"
) -> dict[str, set[tuple[str, str, int]]]:
    """(from, to, port) of every ingress and egress rule; a side that is not one of the release's
    pods is named as its policy names it."""

    def role_of(peer: dict) -> str | None:
        selector = peer.get("podSelector", {}).get("matchLabels")
        if selector is None or "namespaceSelector" in peer:
            return None
        return next((r for r, labels in roles.items() if labels == selector), None)

    found: dict[str, set[tuple[str, str, int]]] = {"ingress": set(), "egress": set()}
    for d in docs:
        if d["kind"] != "NetworkPolicy" or d["spec"]["policyTypes"] == ["Ingress", "Egress"]:
            continue
        name, spec = d["metadata"]["name"].removeprefix(f"{release}-"), d["spec"]
        for rule in spec.get("ingress", []):
            here, there = name.split("-from-")
            peers = {role_of(p) for p in rule["from"]}
            source = peers.pop() if peers != {None} else there
            found["ingress"] |= {(source, here, p["port"]) for p in rule["ports"]}
        for rule in spec.get("egress", []):
            if name == "to-dns":
                found["egress"].add(("all", "dns", 53))
                continue
            here, there = name.split("-to-")
            peers = {role_of(p) for p in rule.get("to", [{}])}
            target = peers.pop() if peers != {None} else there
            found["egress"] |= {(here, target, p["port"]) for p in rule["ports"]}
    return found


def test_a_release_name_too_long_for_the_names_is_refused(helm: Path, chart: Path) -> None:
    name = "st-elsewhere-general-readmission-pilot-12"
    out = subprocess.run(
        [helm, "template", name, chart, "--kube-version", KUBE_VERSIONS[0]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert f'release name "{name}" has 41 characters; at most 40' in out.stderr, out.stderr
