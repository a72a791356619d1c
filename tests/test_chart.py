"""The Helm umbrella chart: lint, unit tests, rendering for every values file, Kubernetes schemas,
security scans, alert rules, and cross-checks against the services' real routes and metrics."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import copy_chart, require

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"
HELM_UNITTEST = TOOLS / "bin" / "helm-unittest"
SCAN = TOOLS / "scan" / "bin"
KUBE_VERSIONS = ("1.25.0", "1.35.0")  # the oldest and newest Kubernetes the chart supports
SUBCHARTS = ("api", "ui", "locust", "mlflow")
# The environments; e2e.yaml is an overlay on the lab for the e2e tests, images.generated.yaml
# the digests scripts/build-images.sh records.
VALUES = (
    "default",
    *sorted(
        p.stem
        for p in (ROOT / "values").glob("*.yaml")
        if p.stem not in ("e2e", "images.generated")
    ),
)
CRD_REQUIRED = {"ServiceMonitor": ("selector", "endpoints"), "PrometheusRule": ("groups",)}


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False,
                         cwd=cwd)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def helm() -> Path:
    require(HELM.exists(), "helm is not built: run `make tools`")
    return HELM


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_chart(tmp_path_factory.mktemp("chart") / "readmit")


@cache
def _render(chart: Path, values: str, kube: str, *sets: str) -> tuple[dict[str, Any], ...]:
    args: list[str | Path] = [HELM, "template", "readmit", chart, "-n", "readmit",
                              "--kube-version", kube]  # fmt: skip
    if values != "default":
        args += ["-f", ROOT / "values" / f"{values}.yaml"]
    for s in sets:
        args += ["--set", s]
    return tuple(d for d in yaml.safe_load_all(run(*args)) if d)


def render(chart: Path, values: str, kube: str = KUBE_VERSIONS[0], *sets: str) -> list[dict]:
    return list(_render(chart, values, kube, *sets))


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]) for d in docs
            if d["kind"] in ("Deployment", "Job")]  # fmt: skip


@pytest.mark.parametrize("values", VALUES)
def test_umbrella_lints_strictly(helm: Path, chart: Path, values: str) -> None:
    extra = [] if values == "default" else ["-f", ROOT / "values" / f"{values}.yaml"]
    run(helm, "lint", "--strict", chart, "--kube-version", KUBE_VERSIONS[0], *extra)


@pytest.mark.parametrize("sub", SUBCHARTS)
def test_subchart_lints_strictly(helm: Path, sub: str) -> None:
    run(helm, "lint", "--strict", ROOT / "charts" / sub, "--kube-version", KUBE_VERSIONS[0])


def test_unit_tests(helm: Path) -> None:
    require(HELM_UNITTEST.exists(), "helm-unittest is not built: run `make tools`")
    for args in (
        ["--strict", *(f"charts/{s}" for s in SUBCHARTS)],
        ["--strict", "--with-subchart=false", "-f", "tests/helm/*_test.yaml", "."],
    ):
        out = run(HELM_UNITTEST, *args)
        (tests,) = [line for line in out.splitlines() if line.startswith("Tests:")]
        assert re.fullmatch(r"Tests:\s+\d+ passed, \d+ total", tests.strip()), out
    # every template of every chart is named by a suite
    for chart_dir, suites in [(ROOT / "charts" / s, f"charts/{s}/tests/*_test.yaml")
                              for s in SUBCHARTS] + [(ROOT, "tests/helm/*_test.yaml")]:  # fmt: skip
        covered = {t for f in ROOT.glob(suites) for t in yaml.safe_load(f.read_text())["templates"]}
        templates = {f"templates/{t.name}" for t in (chart_dir / "templates").iterdir()
                     if t.suffix in (".yaml", ".txt")}  # fmt: skip
        assert templates <= covered, (chart_dir.name, sorted(templates - covered))


def test_chart_lock_is_in_sync_with_chart_yaml() -> None:
    """The digest `helm dependency build` checks: sha256 of Go's JSON of [requirements, lock]."""
    deps = yaml.safe_load((ROOT / "Chart.yaml").read_text())["dependencies"]
    lock = yaml.safe_load((ROOT / "Chart.lock").read_text())
    fields = ("name", "version", "repository", "condition", "tags", "enabled", "import-values",
              "alias")  # fmt: skip
    req = [{k: d.get(k, "") for k in fields if k in ("name", "repository") or d.get(k)}
           for d in deps]  # fmt: skip
    locked = [{"name": d["name"], "version": d["version"], "repository": d.get("repository", "")}
              for d in deps]  # fmt: skip
    data = json.dumps([req, locked], separators=(",", ":")).encode()
    assert lock["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert [{k: d[k] for k in ("name", "version", "repository")} for d in lock["dependencies"]] == (
        locked
    )
    kps = next(d for d in deps if d["name"] == "kube-prometheus-stack")
    assert kps["version"] == "88.5.3"
    assert kps["condition"] == "kube-prometheus-stack.enabled"


def test_package_ships_the_chart_only(helm: Path, tmp_path: Path) -> None:
    """.helmignore keeps sources, tests, scripts, values/ and local state out of the package."""
    tree = tmp_path / "readmit"
    heavy = shutil.ignore_patterns(".venv*", ".tools", ".git", ".local", ".cache", "*.tgz",
                                   "__pycache__", "build", "test-artifacts")  # fmt: skip
    shutil.copytree(ROOT, tree, ignore=heavy)
    stand_in = ROOT / "tests/helm/kube-prometheus-stack"
    shutil.copytree(stand_in, tree / "charts/kube-prometheus-stack")
    run(helm, "package", tree, "-d", tmp_path)
    with tarfile.open(tmp_path / "readmit-0.1.0.tgz") as tgz:
        names = {n.split("/", 1)[1] for n in tgz.getnames()}
    top = {n.split("/")[0] for n in names}
    assert top == {"Chart.yaml", "Chart.lock", "values.yaml", "values.schema.json", "templates",
                   "charts", "dashboards"}, top  # fmt: skip
    subcharts = {n.split("/")[1] for n in names if n.startswith("charts/")}
    assert subcharts == {*SUBCHARTS, "kube-prometheus-stack"}  # the stand-in, added above
    assert not [n for n in names if "/tests/" in n or n.endswith("_test.yaml")]


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
    ],
)
def test_bad_values_get_a_clear_error(helm: Path, chart: Path, setting: str, message: str) -> None:
    args = [helm, "template", "r", chart, "--kube-version", KUBE_VERSIONS[0], "--set", setting]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    assert out.returncode != 0, setting
    assert message in out.stderr, out.stderr


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (ours all start readmit_ or locust_)."""
    return set(re.findall(r"\b((?:readmit|locust)_[a-z_]+)\b", expr))


def dashboard_exprs() -> dict[str, list[str]]:
    return {p.name: [t["expr"] for panel in json.loads(p.read_text())["panels"]
                     for t in panel["targets"]]
            for p in sorted((ROOT / "dashboards").glob("*.json"))}  # fmt: skip


def lab_prometheus_rule(chart: Path) -> dict:
    (rule,) = [d for d in render(chart, "lab") if d["kind"] == "PrometheusRule"]
    return rule


def alert_exprs(chart: Path) -> list[str]:
    return [r["expr"] for g in lab_prometheus_rule(chart)["spec"]["groups"] for r in g["rules"]]


def test_dashboards_and_alerts_use_only_metrics_the_services_export(chart: Path, api,
                                                                   example) -> None:  # fmt: skip
    """Names from the real api's /metrics and a real Locust runner's exporter (in its own process:
    locust monkey-patches the standard library on import)."""
    import sys

    # The drift window's series exist once the api has seen an encounter.
    requests.post(f"{api.url}/predict", json=example, timeout=10).raise_for_status()
    exported = set(re.findall(r"^(\w+)[ {]", requests.get(f"{api.url}/metrics", timeout=5).text,
                              re.MULTILINE))  # fmt: skip
    locust_metrics = run(sys.executable, "-c", (
        "from locust.env import Environment\n"
        "from prometheus_client import CollectorRegistry, generate_latest\n"
        "from readmit_locust.exporter import LocustCollector\n"
        "env = Environment(user_classes=[]); env.create_local_runner()\n"
        "registry = CollectorRegistry(); registry.register(LocustCollector(env))\n"
        "print(generate_latest(registry).decode())\n"))  # fmt: skip
    exported |= set(re.findall(r"^(\w+)[ {]", locust_metrics, re.MULTILINE))
    used = set().union(*map(metric_names, alert_exprs(chart)))
    for exprs in dashboard_exprs().values():
        used |= set().union(*map(metric_names, exprs))
    assert used, "no metric found in the dashboards and alerts"
    assert used <= exported, sorted(used - exported)
    assert {n for n in used if n.startswith("locust_")}, "the load-test dashboard uses Locust's"


def test_dashboards_are_well_formed() -> None:
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        d = json.loads(path.read_text())
        assert d["uid"].startswith("readmit-"), path.name
        assert d["title"], path.name
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", path.name
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for p in d["panels"]:
            assert p["title"], (path.name, p["id"])
            assert p["datasource"]["uid"] == "${datasource}", (path.name, p["title"])
            unit = p["fieldConfig"]["defaults"].get("unit")
            exprs = " ".join(t["expr"] for t in p["targets"])
            if "duration_seconds" in exprs or "response_time_seconds" in exprs:
                assert unit == "s", (path.name, p["title"])
            if re.search(r"\)\s*/\s*sum\(", exprs):
                assert unit == "percentunit", (path.name, p["title"])


# Skips for one values file only, each with its reason (the rest are in .checkov.yaml).
# CKV2_K8S_6 (pods without a NetworkPolicy) in the defaults and the lab: a single node whose
# browser reaches the NodePorts from the host and whose bundled Prometheus scrapes in-namespace;
# the production values turn NetworkPolicies on and pass it.
CHECKOV_SKIPS = {"default": {"CKV2_K8S_6"}, "lab": {"CKV2_K8S_6"}}


@pytest.mark.parametrize("values", VALUES)
def test_security_scan_of_the_rendered_chart(chart: Path, values: str, tmp_path: Path) -> None:
    require((SCAN / "checkov").exists(), "checkov is not installed: run `make tools`")
    manifest = tmp_path / f"{values}.yaml"
    manifest.write_text(yaml.safe_dump_all(render(chart, values)))
    # --skip-check replaces the config file's list rather than adding to it
    common = yaml.safe_load((ROOT / ".checkov.yaml").read_text())["skip-check"]
    skips = ",".join(sorted({*common, *CHECKOV_SKIPS.get(values, ())}))
    out = subprocess.run([SCAN / "checkov", "--config-file", ROOT / ".checkov.yaml", "-f",
                          manifest, "--skip-check", skips], capture_output=True, text=True,
                         check=False, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", out.stdout), out.stdout


def test_dockerfiles_pass_hadolint() -> None:
    require((SCAN / "hadolint").exists(), "hadolint is not installed: run `make tools`")
    run(SCAN / "hadolint", ROOT / "services/Dockerfile")


def test_alert_rules_pass_promtool_and_their_unit_tests(chart: Path, tmp_path: Path) -> None:
    """Each alert fires and does not fire as charts/api/tests/promtool/alerts_test.yaml says."""
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool is not installed (apt-get install prometheus)")
    rule = lab_prometheus_rule(chart)
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        assert r["annotations"]["description"], r["alert"]
    (tmp_path / "alerts.rules.yml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(ROOT / "charts/api/tests/promtool/alerts_test.yaml", tmp_path)
    out = run(promtool, "check", "rules", tmp_path / "alerts.rules.yml")
    assert "SUCCESS: 8 rules found" in out
    run(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)


def dry_run(script: str, *args: str) -> list[str]:
    out = run("bash", ROOT / "scripts" / script, *args, cwd=ROOT)
    return [line.removeprefix("+ ") for line in out.splitlines() if line.startswith("+ ")]


def test_deploy_script_runs_what_the_readme_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRY_RUN", "1")
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- deploy.sh lab -->\n```bash\n", 1)[1].split("```", 1)[0]
    assert dry_run("deploy.sh", "lab") == block.strip().splitlines()
    production = dry_run("deploy.sh", "production")
    addons = "dns registry hostpath-storage observability metrics-server"
    assert f"microk8s enable {addons}" in production
    assert production[-1].endswith("--values values/production.yaml --wait --timeout 15m")


def test_build_images_builds_every_image_the_chart_deploys(
    chart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRY_RUN", "1")
    monkeypatch.setenv("DOCKER", "docker")
    commands = dry_run("build-images.sh")
    pushed = {c.split()[-1] for c in commands if c.startswith("docker push")}
    deployed = {c["image"] for values in VALUES for _, t in pod_specs(render(chart, values))
                for c in t["spec"]["containers"]}  # fmt: skip
    assert deployed <= pushed
    # one image per final target of the one Dockerfile, each built from that target
    dockerfile = (ROOT / "services/Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, re.M))
    targets = stages - {"deps", "build", "runtime"}
    built = {re.search(r"--target (\w+)", c)[1] for c in commands if c.startswith("docker build")}
    assert built == targets == {"api", "ui", "locust", "trainer"}


def test_shell_scripts_pass_shellcheck() -> None:
    require((SCAN / "shellcheck").exists(), "shellcheck is not installed: run `make tools`")
    scripts = [*sorted(ROOT.glob("scripts/**/*.sh")), ROOT / ".ci/run"]
    run(SCAN / "shellcheck", "--shell=bash", *scripts)
