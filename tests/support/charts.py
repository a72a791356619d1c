"""What the chart tests share: the tools, the values files, rendering, and a subchart on its own."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from support.project import KPS_CHART, ROOT, require

TOOLS = ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"
HELM_UNITTEST = TOOLS / "bin" / "helm-unittest"
SCAN = TOOLS / "scan" / "bin"
KUBE_VERSIONS = ("1.25.0", "1.35.0")  # the oldest and newest Kubernetes the chart supports
SUBCHARTS = ("api", "ui", "locust", "mlflow", "metrics-adapter")
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


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    out = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@cache
def _render(chart: Path, values: str, kube: str, release: str, *sets: str) -> tuple[dict, ...]:
    args: list[str | Path] = [
        HELM,
        "template",
        release,
        chart,
        "-n",
        "readmit",
        "--kube-version",
        kube,
    ]
    if values != "default":
        args += ["-f", ROOT / "values" / f"{values}.yaml"]
    for s in sets:
        args += ["--set", s]
    return tuple(d for d in yaml.safe_load_all(run(*args)) if d)


def render(
    chart: Path, values: str, kube: str = KUBE_VERSIONS[0], *sets: str, release: str = "readmit"
) -> list[dict[str, Any]]:
    return list(_render(chart, values, kube, release, *sets))


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]


def standalone(sub: str, dst: Path) -> Path:
    """A subchart as a user lints it on its own: with its library in its charts/ directory, where
    `helm dependency build charts/SUB` puts it (as a tgz; the directory is the same chart)."""
    chart = dst / sub
    shutil.copytree(ROOT / "charts" / sub, chart, ignore=shutil.ignore_patterns("charts"))
    shutil.copytree(ROOT / "charts" / "common", chart / "charts" / "common")
    return chart


def dashboard_queries(rate_interval: str) -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL) for every target of every panel, its variables substituted as
    Grafana would: the api's job (the one its job variable lists) and ``$__rate_interval``
    (four scrape intervals of the data source)."""
    found = []
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        d = json.loads(path.read_text())
        for panel in d["panels"]:
            for target in panel["targets"]:
                expr = (
                    target["expr"]
                    .replace("$__rate_interval", rate_interval)
                    .replace("$job", "readmit-api")
                )
                assert "$" not in expr, (path.name, panel["title"], expr)
                found.append((d["title"], panel["title"], expr))
    return found


def dashboard_query_report(
    query: Callable[[str], list[dict[str, Any]]], rate_interval: str, in_cluster: bool = True
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Every dashboard query asked of a Prometheus (``query`` returns its instant vector): a line
    per query with its series count, and those that show an empty panel (no series, or only NaN,
    e.g. a quantile of nothing). Out of a cluster, kube-state-metrics' series (kube_*) cannot
    exist: their queries are reported, not judged."""
    report, empty = [], []
    for dashboard, panel, expr in dashboard_queries(rate_interval):
        result = query(expr)
        judged = in_cluster or "kube_" not in expr
        note = "" if judged else "  (kube-state-metrics: in a cluster only)"
        report.append(f"{len(result):3d} series  {dashboard} / {panel}: {expr}{note}")
        if judged and not [r for r in result if r["value"][1] != "NaN"]:
            empty.append((dashboard, panel, expr))
    return report, empty


def container_env(docs: list[dict], deployment: str, container: str) -> dict[str, str | None]:
    """A rendered Deployment's container's environment, by name."""
    (d,) = (d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == deployment)
    (c,) = (c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == container)
    return {e["name"]: e.get("value") for e in c.get("env", [])}


CHART_FILES = (
    "Chart.yaml",
    "Chart.lock",
    "values.yaml",
    "values.schema.json",
    ".helmignore",
    "templates",
    "charts",
    "dashboards",
)


def copy_chart(dst: Path, real_stack: bool = False) -> Path:
    """The chart at ``dst`` with kube-prometheus-stack in its charts/ (Helm refuses a chart whose
    dependency is missing, even a disabled one): the real chart (the e2e tier, and the renders
    of what it makes of our values: test_chart_kps), or a test-only stand-in
    (tests/chart/helm/kube-prometheus-stack) where a render concerns our own templates only, which
    keeps the fast tier fast."""
    dst.mkdir(parents=True)
    for name in CHART_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("*.tgz"))
        else:
            shutil.copy(src, dst / name)
    if real_stack:
        require(KPS_CHART.is_file(), f"the kube-prometheus-stack chart is not at {KPS_CHART}")
        shutil.copy(KPS_CHART, dst / "charts")
    else:
        shutil.copytree(
            ROOT / "tests/chart/helm/kube-prometheus-stack", dst / "charts/kube-prometheus-stack"
        )
    return dst
