"""The bundled Prometheus (NodePort 30090, as the original deployment publishes it) and
Alertmanager, as the e2e tests ask them."""

from __future__ import annotations

import time
from typing import Any

import requests

from support.kube import wait_until
from support.node import NODE_PORT

PROMETHEUS = NODE_PORT.format(port=30090)


def prom(path: str, **params: str) -> Any:
    """The in-cluster Prometheus' HTTP API, as the original deployment publishes it."""
    answer = requests.get(f"{PROMETHEUS}/api/v1/{path}", params=params, timeout=10)
    answer.raise_for_status()
    return answer.json()["data"]


def query(expr: str) -> list[dict[str, Any]]:
    return prom("query", query=expr)["result"]


def alert_state(name: str) -> str | None:
    states = {a["state"] for a in prom("alerts")["alerts"] if a["labels"]["alertname"] == name}
    return "firing" if "firing" in states else next(iter(states), None)


def alertmanager_lists(url: str, name: str) -> bool:
    """Alertmanager's own API lists the alert as active."""
    alerts = requests.get(f"{url}/api/v2/alerts", timeout=10).json()
    return any(
        a["labels"]["alertname"] == name and a["status"]["state"] == "active" for a in alerts
    )


def fires_into(alertmanager: str, name: str, since: float) -> float:
    """Wait until the alert fires in Prometheus and Alertmanager lists it; the seconds from
    ``since`` to its firing."""
    wait_until(lambda: alert_state(name) == "firing", 300, f"{name} firing", interval=2)
    fired = time.monotonic() - since
    wait_until(lambda: alertmanager_lists(alertmanager, name), 120, f"Alertmanager lists {name}")
    return fired
