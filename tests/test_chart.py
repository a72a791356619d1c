"""The Helm chart: lint, unit tests (helm-unittest), rendering, and cross-checks with the api."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import require

ROOT = Path(__file__).resolve().parents[1]
HELM = ROOT / ".tools" / "bin" / "helm"
HELM_UNITTEST = ROOT / ".tools" / "bin" / "helm-unittest"
KUBE_VERSIONS = ("1.25.0", "1.35.0")  # the oldest and newest Kubernetes the chart supports


def run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def helm() -> str:
    require(HELM.exists(), "helm is not built: run `make tools`")
    return str(HELM)


@pytest.mark.parametrize("chart", [".", "charts/api"])
def test_lint_strict(helm: str, chart: str) -> None:
    run(helm, "lint", "--strict", chart, "--kube-version", KUBE_VERSIONS[0])


def test_unit_tests(helm: str) -> None:
    require(HELM_UNITTEST.exists(), "helm-unittest is not built: run `make tools`")
    out = run(str(HELM_UNITTEST), "--strict", "charts/api")
    (tests,) = [line for line in out.splitlines() if line.startswith("Tests:")]
    assert "passed" in tests
    assert "failed" not in tests


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_renders_pinned_images_and_probes_the_apis_own_routes(helm: str, kube: str) -> None:
    from readmit_api.routes import router

    docs = list(yaml.safe_load_all(run(helm, "template", "readmit", ".", "-n", "lab",
                                       "--kube-version", kube)))  # fmt: skip
    deployments = [d for d in docs if d and d["kind"] == "Deployment"]
    assert deployments
    routes = {r.path for r in router.routes}
    for d in deployments:
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c["image"].startswith("localhost:32000/")
            assert not c["image"].endswith(":latest")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert c[probe]["httpGet"]["path"] in routes, (probe, c[probe])


def test_schema_errors_are_clear(helm: str) -> None:
    out = subprocess.run(
        [helm, "template", "r", ".", "--kube-version", KUBE_VERSIONS[0],
         "--set", "api.service.nodePort=80"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode != 0
    assert "/service/nodePort" in out.stderr


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_rendered_manifests_match_the_kubernetes_schemas(helm: str, kube: str) -> None:
    """Strict: unknown fields fail. CRD kinds (ServiceMonitor) must at least be well-formed."""
    import kubernetes_validate as kv

    rendered = run(helm, "template", "readmit", ".", "-n", "lab", "--kube-version", kube,
                   "--set", "api.serviceMonitor.enabled=true")  # fmt: skip
    kinds = []
    for doc in filter(None, yaml.safe_load_all(rendered)):
        kinds.append(doc["kind"])
        try:
            kv.validate(doc, kube, strict=True)
        except kv.SchemaNotFoundError:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["kind"]
            assert doc["spec"]["endpoints"]
            assert doc["spec"]["selector"]["matchLabels"]
    assert sorted(kinds) == ["ConfigMap", "Deployment", "Service", "ServiceMonitor"]


def test_alert_rules_pass_promtool_and_their_unit_tests(helm: str, tmp_path: Path) -> None:
    """Each alert fires and does not fire as charts/api/tests/promtool/alerts_test.yaml says."""
    import shutil

    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool is not installed (apt-get install prometheus)")
    rendered = run(helm, "template", "readmit", ".", "-n", "lab", "--kube-version",
                   KUBE_VERSIONS[0], "--set", "api.prometheusRule.enabled=true",
                   "-s", "charts/api/templates/prometheusrule.yaml")  # fmt: skip
    rule = yaml.safe_load(rendered)
    assert rule["kind"] == "PrometheusRule"
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        assert r["annotations"]["description"], r["alert"]
    (tmp_path / "alerts.rules.yml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(ROOT / "charts/api/tests/promtool/alerts_test.yaml", tmp_path)
    out = run(promtool, "check", "rules", str(tmp_path / "alerts.rules.yml"))
    assert "SUCCESS: 6 rules found" in out
    out = subprocess.run([promtool, "test", "rules", "alerts_test.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
