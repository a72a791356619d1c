"""The local stack: real processes on loopback, no Kubernetes needed.

``up`` starts what is not already running, waits until each part is ready, makes sure a production
model is registered (training one on first run) and prints the URLs; a second ``up`` is safe.
``down`` stops exactly what ``up`` started (pid files under .local/run). Logs: .local/logs/.
Prometheus (Debian's ``prometheus``) scrapes the api and the Locust exporters with the alert rules
the chart ships, rendered from the chart by Helm (never copied). READMIT_STATE_DIR moves .local/.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("READMIT_STATE_DIR", ROOT / ".local")).resolve()
RUN, LOGS, PROM = STATE / "run", STATE / "logs", STATE / "prometheus"
BIN = Path(sys.executable).parent
API_BIN = ROOT / ".venv-api" / "bin"
HELM = ROOT / ".tools" / "bin" / "helm"
MODEL_NAME = os.environ.get("READMIT_MODEL_NAME", "diabetes-readmission")
MODEL_ALIAS = os.environ.get("READMIT_MODEL_ALIAS", "production")
# Scrape job names as in the cluster (the Services of release "readmit"), so the chart's alert
# rules, which select job="readmit-api", work unchanged.
API_JOB, LOCUST_JOB = "readmit-api", "readmit-locust-master"


UI_LOGIN = STATE / "ui-login.json"  # the page's login: generated once, readable by you only


def ui_login() -> dict[str, str]:
    """The page's lab login (readmit_ui.signin): user, password and its bcrypt hash; the page
    is given the hash only."""
    if UI_LOGIN.exists():
        return json.loads(UI_LOGIN.read_text())
    import bcrypt

    password = secrets.token_urlsafe(18)
    login = {"user": "clinician", "password": password,
             "hash": bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}  # fmt: skip
    STATE.mkdir(parents=True, exist_ok=True)
    fd = os.open(UI_LOGIN, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(login, out)
    return login


@dataclass(frozen=True)
class Service:
    name: str
    port_env: str  # the variable that moves it to another port
    port: int
    health_path: str
    ready_timeout_s: float
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def services() -> list[Service]:
    """Everything `up` starts, in start order (each may need the ones before it)."""
    mlflow_port = int(os.environ.get("MLFLOW_PORT", "5000"))
    api_port = int(os.environ.get("READMIT_API_PORT", "8000"))
    ui_port = int(os.environ.get("READMIT_UI_PORT", "8501"))
    locust_port = int(os.environ.get("LOCUST_WEB_PORT", "8089"))
    prometheus_port = int(os.environ.get("PROMETHEUS_PORT", "9090"))
    metrics_port = api_metrics_port()
    store = STATE / "mlflow"
    tracking = f"http://127.0.0.1:{mlflow_port}"
    api = f"http://127.0.0.1:{api_port}"
    login = ui_login()
    return [
        Service(
            "mlflow", "MLFLOW_PORT", mlflow_port, "/health", 180,
            (str(BIN / "mlflow"), "server", "--backend-store-uri",
             f"sqlite:///{store / 'mlflow.db'}", "--artifacts-destination",
             str(store / "artifacts"), "--serve-artifacts", "--host", "127.0.0.1", "--port",
             str(mlflow_port), "--workers", "1"),
            (("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"),),
        ),
        # The api from its own venv: the packages its image has (mlflow-skinny).
        Service(
            "api", "READMIT_API_PORT", api_port, "/ready", 120,
            (str(API_BIN / "readmit-api"), "--host", "127.0.0.1", "--port", str(api_port)),
            (("MLFLOW_TRACKING_URI", tracking), ("READMIT_MODEL_NAME", MODEL_NAME),
             ("READMIT_MODEL_ALIAS", MODEL_ALIAS), ("READMIT_METRICS_PORT", str(metrics_port))),
        ),
        Service(
            "ui", "READMIT_UI_PORT", ui_port, "/_stcore/health", 60, (str(BIN / "readmit-ui"),),
            (("READMIT_API_URL", api), ("READMIT_UI_PORT", str(ui_port)),
             ("READMIT_UI_ADDRESS", "127.0.0.1"), ("READMIT_UI_AUTH", "password"),
             ("READMIT_UI_LOGIN_USER", login["user"]),
             ("READMIT_UI_LOGIN_PASSWORD_HASH", login["hash"])),
        ),
        # Locust's web UI (master + 2 workers), idle until a run is started there.
        Service(
            "locust", "LOCUST_WEB_PORT", locust_port, "/", 90,
            (str(BIN / "readmit-loadtest"), "--web", "--web-port", str(locust_port),
             "--host", api, "--workers", "2"),
            (("READMIT_LOCUST_METRICS_ADDR", "127.0.0.1"),
             ("READMIT_LOCUST_METRICS_PORT", str(exporter_ports()[0]))),
        ),
        Service(
            "prometheus", "PROMETHEUS_PORT", prometheus_port, "/-/ready", 60,
            (shutil.which("prometheus") or "prometheus", f"--config.file={PROM / 'prometheus.yml'}",
             f"--storage.tsdb.path={PROM / 'data'}", "--storage.tsdb.retention.time=2d",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"),
        ),
    ]  # fmt: skip


def api_metrics_port() -> int:
    """The api's /metrics (its own port, as in the cluster)."""
    return int(os.environ.get("READMIT_API_METRICS_PORT", "9464"))


def exporter_ports() -> tuple[int, int]:
    """The Locust exporters: the stack's master (web UI) and `make loadtest`'s headless master."""
    return (int(os.environ.get("LOCUST_METRICS_PORT", "9646")),
            int(os.environ.get("LOADTEST_METRICS_PORT", "9647")))  # fmt: skip


def alert_rules() -> dict:
    """The api's PrometheusRule as the chart renders it (release "readmit"), as a rule file."""
    import yaml

    if not HELM.exists():
        sys.exit(f"prometheus: alert rules are rendered by Helm; {HELM} is missing: make tools")
    # The api chart alone needs its library (charts/common) in its charts/; update (not build)
    # also rewrites a stale Chart.lock; --skip-refresh keeps it offline.
    library = [str(HELM), "dependency", "update", "--skip-refresh", str(ROOT / "charts/api")]
    subprocess.run(library, capture_output=True, text=True, check=True)
    rendered = subprocess.run(
        [str(HELM), "template", "readmit", str(ROOT / "charts/api"), "--kube-version", "1.35.0",
         "--show-only", "templates/prometheusrule.yaml", "--set", "prometheusRule.enabled=true"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return yaml.safe_load(rendered)["spec"]


def write_prometheus_config(interval: str) -> None:
    import yaml

    PROM.mkdir(parents=True, exist_ok=True)
    (PROM / "rules.yml").write_text(yaml.safe_dump(alert_rules(), sort_keys=False))
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(PROM / "rules.yml")],
        "scrape_configs": [
            {"job_name": API_JOB, "static_configs": [
                {"targets": [f"127.0.0.1:{api_metrics_port()}"]}]},
            {"job_name": LOCUST_JOB, "static_configs": [
                {"targets": [f"127.0.0.1:{p}" for p in exporter_ports()]}]},
        ],
    }  # fmt: skip
    (PROM / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def pid_of(svc: Service) -> int | None:
    try:
        pid = int((RUN / f"{svc.name}.pid").read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def healthy(svc: Service) -> bool:
    try:
        with urllib.request.urlopen(svc.url + svc.health_path, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(svc: Service) -> None:
    running = pid_of(svc)
    if running is not None:
        print(f"{svc.name}: already running (pid {running})")
    else:
        if port_taken(svc.port):
            sys.exit(f"{svc.name}: port {svc.port} is taken by another process; free it or set "
                     f"{svc.port_env} to another port")  # fmt: skip
        RUN.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{svc.name}.log").open("ab")
        (STATE / "mlflow").mkdir(parents=True, exist_ok=True)  # before the server opens it
        proc = subprocess.Popen(
            svc.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its own process group: down stops its children too
            env={**os.environ, **dict(svc.env)},
        )
        (RUN / f"{svc.name}.pid").write_text(str(proc.pid))
        print(f"{svc.name}: started (pid {proc.pid}), log {LOGS / (svc.name + '.log')}")
    deadline = time.monotonic() + svc.ready_timeout_s
    while not healthy(svc):
        if pid_of(svc) is None or time.monotonic() > deadline:
            sys.exit(f"{svc.name}: not ready; see {LOGS / (svc.name + '.log')}")
        time.sleep(0.5)


def ensure_model(tracking_uri: str) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        v = MlflowClient(tracking_uri, tracking_uri).get_model_version_by_alias(
            MODEL_NAME, MODEL_ALIAS
        )
        print(f"model: {MODEL_NAME}@{MODEL_ALIAS} is version {v.version}")
        return
    except MlflowException:
        pass
    # READMIT_TRAIN_ARGS adds trainer options, e.g. "--sample 3000" for a quick first model.
    extra = shlex.split(os.environ.get("READMIT_TRAIN_ARGS", ""))
    print(f"model: no {MODEL_NAME}@{MODEL_ALIAS} yet; training it (~7 min on the full data)")
    subprocess.run(
        [str(BIN / "readmit-train"), "--tracking-uri", tracking_uri, "--model-name", MODEL_NAME,
         "--alias", MODEL_ALIAS, *extra],
        check=True,
    )  # fmt: skip


def up() -> None:
    mlflow, *rest = services()
    if shutil.which("prometheus") is None:
        sys.exit("prometheus: not installed; on Debian: sudo apt-get install prometheus")
    start(mlflow)
    ensure_model(mlflow.url)  # the api is ready only once there is a model to serve
    urls = {s.name: s.url for s in rest}
    write_prometheus_config(os.environ.get("PROMETHEUS_SCRAPE_INTERVAL", "5s"))
    for svc in rest:
        start(svc)
    print("\nreadmit local stack is up:")
    print(f"  MLflow UI and registry  {mlflow.url}")
    print(
        f"  api                     {urls['api']}  (docs: {urls['api']}/docs; metrics "
        f":{api_metrics_port()}/metrics)"
    )
    print(f"  ui (clinicians)         {urls['ui']}  (sign in: {ui_login()['user']}, password in "
          f"{UI_LOGIN})")  # fmt: skip
    print(f"  Locust web UI           {urls['locust']}  (metrics :{exporter_ports()[0]}/metrics)")
    print(f"  Prometheus              {urls['prometheus']}  (alerts: {urls['prometheus']}/alerts)")
    print(
        f"  try: curl -s {urls['api']}/predict -H 'content-type: application/json' "
        "-d @scripts/example-encounter.json"
    )
    print(f"Logs: {LOGS}   Stop: make down")


def down() -> None:
    for svc in reversed(services()):
        pid = pid_of(svc)
        pid_file = RUN / f"{svc.name}.pid"
        if pid is None:
            pid_file.unlink(missing_ok=True)
            continue
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            if pid_of(svc) is None:
                break
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
        print(f"{svc.name}: stopped (pid {pid})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    {"up": up, "down": down}[parser.parse_args().action]()


if __name__ == "__main__":
    main()
