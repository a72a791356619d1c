"""Locust in the cluster, driven through its master's web API on the NodePort, logged in as
NOTES.txt says: the steady load the faults and the scaling are measured under."""

from __future__ import annotations

import time
from typing import Any

import requests

from support.kube import RELEASE, secret_value, wait_until
from support.node import NODE_PORT
from support.project import ARTIFACTS

USERS = 10  # Locust users: each has at most one request in flight
SETTLE_S = 4  # Locust's workers report their stats every 3 s
FAULTS = ARTIFACTS / "faults.txt"


def locust_login(lab: str) -> requests.Session:
    """A session on Locust's web UI (NodePort 30009), logged in as NOTES.txt says."""
    session = requests.Session()
    password = secret_value(lab, f"{RELEASE}-locust-web", "password")
    web = NODE_PORT.format(port=30009)
    session.post(
        f"{web}/login_submit", data={"username": "admin", "password": password}, timeout=10
    )
    return session


class Swarm:
    """The in-cluster Locust, driven through its master's web API on the NodePort (logged in)."""

    def __init__(self, url: str, session: requests.Session) -> None:
        self.url = url
        self.session = session

    def start(self) -> None:
        self.swarm(USERS)
        wait_until(lambda: self.totals()[0] > 20, 60, "a steady load")

    def swarm(self, users: int) -> None:
        """Start the load with ``users``, or change the running one's (added or stopped at
        once)."""
        run = {"user_count": users, "spawn_rate": users}
        changed = self.session.post(f"{self.url}/swarm", data=run, timeout=10)
        assert changed.json()["success"], changed.text

    def reset(self) -> None:
        self.session.post(f"{self.url}/stats/reset", timeout=10).raise_for_status()

    def totals(self) -> tuple[int, int, list[dict[str, Any]]]:
        """Requests and failures since the last reset, and the errors (after SETTLE_S: exact)."""
        stats = self.session.get(f"{self.url}/stats/requests", timeout=10).json()
        total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
        return total["num_requests"], total["num_failures"], stats.get("errors", [])

    def measure(self, fault: str) -> tuple[int, int, list[dict[str, Any]]]:
        time.sleep(SETTLE_S)
        requested, failed, errors = self.totals()
        with FAULTS.open("a") as out:
            out.write(f"{fault}: {requested} requests, {failed} failed\n")
            out.writelines(f"  {e['occurrences']} x {e['error'][:160]}\n" for e in errors)
        return requested, failed, errors
