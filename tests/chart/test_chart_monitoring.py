"""Dashboards and alert rules: they use only metrics the real services export, are well formed,
and the alerts pass promtool and their unit tests."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import requests
import yaml
from support.charts import render, run
from support.project import ROOT, require


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (ours all start readmit_ or locust_)."""
    return set(re.findall(r"\b((?:readmit|locust)_[a-z_]+)\b", expr))


def dashboard_exprs() -> dict[str, list[str]]:
    return {
        p.name: [
            t["expr"] for panel in json.loads(p.read_text())["panels"] for t in panel["targets"]
        ]
        for p in sorted((ROOT / "dashboards").glob("*.json"))
    }


def lab_prometheus_rule(chart: Path) -> dict:
    (rule,) = [d for d in render(chart, "lab") if d["kind"] == "PrometheusRule"]
    return rule


def alert_exprs(chart: Path) -> list[str]:
    return [r["expr"] for g in lab_prometheus_rule(chart)["spec"]["groups"] for r in g["rules"]]


def test_dashboards_and_alerts_use_only_metrics_the_services_export(
    chart: Path, api, example
) -> None:
    """Names from the real api's /metrics and a real Locust runner's exporter (in its own process:
    locust monkey-patches the standard library on import)."""

    # The drift window's live series exist once it holds READMIT_DRIFT_MIN_ENCOUNTERS (100).
    batch = {"encounters": [example] * 100}
    requests.post(f"{api.url}/predict/batch", json=batch, timeout=30).raise_for_status()
    exported = set(
        re.findall(r"^(\w+)[ {]", requests.get(api.metrics_url, timeout=5).text, re.MULTILINE)
    )
    locust_metrics = run(
        sys.executable,
        "-c",
        (
            "from locust.env import Environment\n"
            "from prometheus_client import CollectorRegistry, generate_latest\n"
            "from readmit_locust.exporter import LocustCollector\n"
            "env = Environment(user_classes=[]); env.create_local_runner()\n"
            "registry = CollectorRegistry(); registry.register(LocustCollector(env))\n"
            "print(generate_latest(registry).decode())\n"
        ),
    )
    exported |= set(re.findall(r"^(\w+)[ {]", locust_metrics, re.MULTILINE))
    used = set().union(*map(metric_names, alert_exprs(chart)))
    # kube-state-metrics': the e2e fires ReadmitApiAutoscalingBlind from the real one
    used -= {"kube_horizontalpodautoscaler_status_condition"}
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
            # durations are seconds; the rate of a duration's _sum (time spent serving per
            # second: requests in flight) is a count
            if re.search(r"(duration|response_time)_seconds(_bucket)?\{", exprs):
                assert unit == "s", (path.name, p["title"])
            if re.search(r"\)\s*/\s*sum\(", exprs):
                assert unit == "percentunit", (path.name, p["title"])


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
    assert "SUCCESS: 9 rules found" in out
    run(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
