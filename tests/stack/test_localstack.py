"""`make up`, `make loadtest` and `make down` as a test, and the chart's dashboards and alerts
proven in the real Prometheus of that stack, scraping the real api and Locust under real load."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import requests
import yaml
from support.browser import shows_a_risk
from support.charts import HELM, dashboard_query_report, run, standalone
from support.project import ARTIFACTS, ROOT, require
from support.servers import API_BIN, free_port, stop, wait_http

PORT_VARS = (
    "MLFLOW_PORT",
    "READMIT_API_PORT",
    "READMIT_API_METRICS_PORT",
    "READMIT_UI_PORT",
    "LOCUST_WEB_PORT",
    "PROMETHEUS_PORT",
    "LOCUST_METRICS_PORT",
    "LOADTEST_METRICS_PORT",
)
STACK = ("mlflow", "api", "ui", "locust", "prometheus")
RATE_INTERVAL = "1m"  # what Grafana's $__rate_interval becomes at a 5 s scrape interval


@cache
def chart_alert_rules() -> tuple[dict, ...]:
    """The alert rules as the chart renders them (release "readmit", as the local stack's jobs);
    rendered once, looked up by several tests."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = standalone("api", Path(tmp))
        rules = "--show-only templates/prometheusrule.yaml --set prometheusRule.enabled=true"
        rendered = run(
            HELM, "template", "readmit", chart, "--kube-version", "1.35.0", *rules.split()
        )
    return tuple(yaml.safe_load(rendered)["spec"]["groups"][0]["rules"])


def alert_expr(name: str) -> str:
    return next(r["expr"] for r in chart_alert_rules() if r["alert"] == name)


@dataclass
class Stack:
    env: dict[str, str]
    state: Path
    first_up: str

    def port(self, var: str) -> int:
        return int(self.env[var])

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.port('PROMETHEUS_PORT')}"

    def make(self, *args: str, timeout: float = 600) -> str:
        out = subprocess.run(
            ["make", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out.stdout

    def pid(self, name: str) -> int:
        return int((self.state / "run" / f"{name}.pid").read_text())

    def query(self, expr: str) -> list[dict]:
        body = requests.get(
            f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10
        ).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict]:
        """Poll until the expression returns something (scrapes run every 5 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(1)
        raise AssertionError(f"{expr} returned nothing for {timeout} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, data_path: Path) -> Iterator[Stack]:
    require(
        shutil.which("prometheus") is not None,
        "prometheus is not installed (apt-get install prometheus)",
    )
    require(HELM.exists(), "helm is not built: run `make tools`")
    state = tmp_path_factory.mktemp("localstack")
    env = {
        **os.environ,
        **{var: str(free_port()) for var in PORT_VARS},
        "READMIT_STATE_DIR": str(state),
        "READMIT_DATA": str(data_path),
        "READMIT_TRAIN_ARGS": "--sample 3000",
    }
    s = Stack(env, state, "")
    try:
        s.first_up = s.make("up")
        yield s
    finally:
        subprocess.run(["make", "down"], cwd=ROOT, env=env, capture_output=True, check=False)


def test_up_starts_everything_prints_the_urls_and_is_safe_to_repeat(stack: Stack) -> None:
    for name in STACK:
        assert f"{name}: started" in stack.first_up
    for var in (
        "MLFLOW_PORT",
        "READMIT_API_PORT",
        "READMIT_UI_PORT",
        "LOCUST_WEB_PORT",
        "PROMETHEUS_PORT",
    ):
        assert f"http://127.0.0.1:{stack.port(var)}" in stack.first_up, var
    again = stack.make("up")
    for name in STACK:
        assert f"{name}: already running (pid {stack.pid(name)})" in again
    assert "started" not in again


def test_the_page_asks_for_the_login_up_generated(stack: Stack, browser) -> None:
    """`make up` writes the page's login for you only (0600) and gives the page its hash."""
    import bcrypt

    login, hashed = stack.state / "ui-login.json", stack.state / "ui-login.hash"
    assert f"the password is in {login}" in stack.first_up
    assert login.stat().st_mode & 0o777 == hashed.stat().st_mode & 0o777 == 0o600
    user, password = json.loads(login.read_text()).values()
    assert bcrypt.checkpw(password.encode(), hashed.read_bytes())
    assert password not in (stack.state / "logs" / "ui.log").read_text()
    shows_a_risk(
        browser,
        f"http://127.0.0.1:{stack.port('READMIT_UI_PORT')}",
        "ui-local.png",
        (user, password),
    )


def test_up_names_a_taken_port(stack: Stack, tmp_path: Path) -> None:
    env = {**stack.env, "READMIT_STATE_DIR": str(tmp_path)}  # a second stack on the same ports
    out = subprocess.run(
        ["make", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode != 0
    assert f"port {stack.port('MLFLOW_PORT')} is taken" in out.stderr
    assert "MLFLOW_PORT" in out.stderr


def test_prometheus_scrapes_the_api_and_locust_with_the_charts_rules(stack: Stack) -> None:
    api_port = stack.port("READMIT_API_METRICS_PORT")
    locust_port = stack.port("LOCUST_METRICS_PORT")
    stack.wait_for(f'up{{job="readmit-api",instance="127.0.0.1:{api_port}"}} == 1')
    stack.wait_for(f'up{{job="readmit-locust-master",instance="127.0.0.1:{locust_port}"}} == 1')
    groups = requests.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    chart_rules = {r["alert"]: r for r in chart_alert_rules()}
    assert set(loaded) == set(chart_rules)
    for name, rule in chart_rules.items():
        assert loaded[name]["labels"] == rule["labels"], name
        assert loaded[name]["annotations"]["summary"] == rule["annotations"]["summary"], name


def readme_curls() -> list[tuple[str, str]]:
    """(command, the comment lines after it) for each README curl against the local api."""
    lines = (ROOT / "README.md").read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("curl -s localhost:8000"):
            shown = []
            for comment in lines[i + 1 :]:
                if not comment.startswith("#"):
                    break
                shown.append(comment)
            found.append((line, " ".join(shown)))
    return found


def test_the_readmes_curl_examples_work(stack: Stack) -> None:
    curls = readme_curls()
    assert len(curls) >= 3
    for command, shown in curls:
        local = command.replace("localhost:8000", f"127.0.0.1:{stack.port('READMIT_API_PORT')}")
        out = subprocess.run(
            ["bash", "-c", local], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        body = json.loads(out)
        assert body, command
        for key in re.findall(r'"(\w+)":', shown):  # every key the README shows is really there
            assert f'"{key}":' in out, (command, key)


def test_every_dashboard_query_returns_data_under_real_load(stack: Stack) -> None:
    loadtest_port = stack.port("LOADTEST_METRICS_PORT")
    load = subprocess.Popen(
        [
            "make",
            "loadtest",
            f"LOADTEST_ARGS=--run-time 45s --users 20 --report-dir {stack.state / 'loadtest'}",
        ],
        cwd=ROOT,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # The headless master's users are scraped, then enough scrapes for 1 m rates.
        stack.wait_for(f'locust_users{{instance="127.0.0.1:{loadtest_port}"}} > 0', timeout=120)
        time.sleep(25)
        # Grafana's job variable: label_values(readmit_http_requests_total, job)
        jobs = requests.get(
            f"{stack.prometheus}/api/v1/label/job/values",
            timeout=10,
            params={"match[]": "readmit_http_requests_total"},
        )
        assert jobs.json()["data"] == ["readmit-api"]
        report, empty = dashboard_query_report(stack.query, RATE_INTERVAL, in_cluster=False)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "dashboard-queries.txt").write_text("\n".join(report) + "\n")
        print("\n".join(report))
        assert len(report) >= 20
        assert not empty, empty
    finally:
        out, _ = load.communicate(timeout=180)
    assert load.returncode == 0, out[-3000:]
    assert re.search(r"load test: \d+ requests, 0 failures", out), out[-2000:]


def test_every_alert_expression_evaluates(stack: Stack) -> None:
    groups = requests.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert not rule.get("lastError"), rule["name"]
        stack.query(rule["query"])  # no error
    # the stack is healthy: none of the page-worthy expressions holds
    for name in ("ReadmitApiDown", "ReadmitApiNoModelLoaded", "ReadmitApiErrorRatioHigh"):
        assert stack.query(alert_expr(name)) == [], name


def test_alerts_fire_live_api_down_then_no_model_and_errors(stack: Stack) -> None:
    """Destructive, so last: stop the api, then serve one that has no model to load."""
    os.killpg(stack.pid("api"), signal.SIGTERM)
    stack.wait_for(alert_expr("ReadmitApiDown"))

    port = stack.port("READMIT_API_PORT")
    env = {
        **stack.env,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{stack.port('MLFLOW_PORT')}",
        "READMIT_MODEL_ALIAS": "no-such-alias",
        "READMIT_LOAD_RETRY_MAX_S": "2",
        "READMIT_METRICS_PORT": str(stack.port("READMIT_API_METRICS_PORT")),
    }
    api = subprocess.Popen(
        [API_BIN, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, api)
        example = json.loads((ROOT / "scripts/example-encounter.json").read_text())

        def predict(n: int) -> set[int]:
            return {
                requests.post(
                    f"http://127.0.0.1:{port}/predict", json=example, timeout=5
                ).status_code
                for _ in range(n)
            }

        # rate() ignores a series' first sample: let one scrape see the 503 series, then fail more.
        assert predict(1) == {503}
        stack.wait_for('readmit_http_requests_total{job="readmit-api",status="503"}')
        assert predict(300) == {503}
        stack.wait_for(alert_expr("ReadmitApiNoModelLoaded"))
        stack.wait_for(alert_expr("ReadmitApiErrorRatioHigh"))
        assert stack.query(alert_expr("ReadmitApiDown")) == []
    finally:
        stop(api)


def read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # the process ended meanwhile
        return ""


def test_up_replaces_a_model_of_another_schema_version(stack: Stack) -> None:
    """After an upgrade of the code (schema 2 -> 3), `make up` trains a model the api can
    serve instead of starting an api that refuses the one there."""
    from mlflow import MlflowClient

    from readmit_core.schema import SCHEMA_VERSION

    uri = f"http://127.0.0.1:{stack.port('MLFLOW_PORT')}"
    client = MlflowClient(uri, uri)
    old = client.get_model_version_by_alias("diabetes-readmission", "production")
    client.set_model_version_tag("diabetes-readmission", old.version, "schema_version", "2")
    out = stack.make("up")
    assert f"version {old.version} is encoded for schema 2, this code for {SCHEMA_VERSION}" in out
    new = client.get_model_version_by_alias("diabetes-readmission", "production")
    assert int(new.version) > int(old.version)
    assert new.tags["schema_version"] == SCHEMA_VERSION


def test_down_stops_exactly_what_up_started(stack: Stack) -> None:
    pids = {name: stack.pid(name) for name in STACK if name != "api"}  # the api was replaced
    out = stack.make("down")
    for name, pid in pids.items():
        assert f"{name}: stopped (pid {pid})" in out
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list((stack.state / "run").glob("*.pid"))
    # the Locust master readmit-loadtest started is gone too (its workers follow it)
    web_port = f"--web-port\0{stack.port('LOCUST_WEB_PORT')}\0"
    stray = [p for p in Path("/proc").glob("[0-9]*/cmdline") if web_port in read_or_empty(p)]
    assert stray == [], stray
    for var in PORT_VARS[:6]:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{stack.port(var)}/", timeout=2)


def test_the_readmes_port_table_is_the_stacks_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    for var in PORT_VARS:
        monkeypatch.delenv(var, raising=False)
    localstack = runpy.run_path(str(ROOT / "scripts/localstack.py"))
    defaults = {s.port_env: s.port for s in localstack["services"]()}
    defaults["LOCUST_METRICS_PORT"] = localstack["exporter_ports"]()[0]
    defaults["READMIT_API_METRICS_PORT"] = localstack["api_metrics_port"]()
    readme = (ROOT / "README.md").read_text()
    table = re.findall(r"\| http://127\.0\.0\.1:(\d+)\S* \| `(\w+)` \|", readme)
    assert {var: int(port) for port, var in table} == defaults
