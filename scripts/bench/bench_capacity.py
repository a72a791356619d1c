"""Capacity of one api pod: the load it sustains with p95 under the SLO, for the HPA's target.

One readmit-api process (one uvicorn worker, as in a pod) on CPU 0 only, as a pod with a 1-CPU
limit; the real Locust (readmit-loadtest: a master and 2 workers, the locustfile's payload mix of
single predictions, batches, /model and /health, its users' waits) on CPU 1, driven through its
web API. Users step up until p95 passes the SLO (or requests fail); each step is measured for
--seconds after a short ramp, its statistics reset. Reports
each step's req/s, p50/p95/p99, failures and the CPU each side used, the pod's capacity (the
highest req/s whose p95 met the SLO) and the target at 70 % of it (api.autoscaling's
targetRequestsPerSecond). Written to build/bench-capacity.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from bench_api import API_BIN, DEV_BIN, MODEL, ROOT, free_port, trained_registry, wait_ok

SLO_P95_MS = 100.0
SPAWN_RATE = 50  # users a second: the web UI's limit (locust.load.maxSpawnRate)
SETTLE_S = 3  # after the ramp: the users' first waits, the workers' stats reports
TARGET_SHARE = 0.7
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        todo.extend(int(c) for c in children)
    return total


def step(web: str, users: int, seconds: int, pids: dict[str, int]) -> dict[str, Any]:
    """``users`` on the running Locust (its web API): after a ramp, its stats over ``seconds``
    and the CPU each side used meanwhile."""
    spawn_rate = min(users, SPAWN_RATE)
    ask = {"user_count": users, "spawn_rate": spawn_rate}
    started = requests.post(f"{web}/swarm", data=ask, timeout=10).json()
    assert started["success"], started
    time.sleep(users / spawn_rate + SETTLE_S)
    requests.post(f"{web}/stats/reset", timeout=10).raise_for_status()
    before = {side: cpu_seconds(pid) for side, pid in pids.items()}
    started = time.monotonic()
    time.sleep(seconds)
    report = requests.get(f"{web}/stats/requests", timeout=10).json()
    wall = time.monotonic() - started
    cpu = {side: (cpu_seconds(pid) - before[side]) / wall for side, pid in pids.items()}
    total = next(s for s in report["stats"] if s["name"] == "Aggregated")
    return {
        "users": users,
        "rps": total["num_requests"] / wall,
        "p50": total["median_response_time"],
        "p95": total["response_time_percentile_0.95"],
        "p99": total["response_time_percentile_0.99"],
        "failures": total["num_failures"],
        "api_cpu": cpu["api"],
        "locust_cpu": cpu["locust"],
        # why requests failed, as Locust tells them ("503 ... POST /predict: 12")
        "errors": [
            f"{e['error']} ({e['method']} {e['name']}): {e['occurrences']}"
            for e in report["errors"]
        ],
    }


def report(steps: list[dict[str, Any]]) -> tuple[list[str], float | None]:
    met = [s for s in steps if s["p95"] <= SLO_P95_MS and not s["failures"]]
    capacity = max((s["rps"] for s in met), default=None)
    lines = [
        f"One api process on one CPU, Locust's payload mix from the other (SLO: p95 <= "
        f"{SLO_P95_MS:.0f} ms)\n",
        "| users | req/s | p50 ms | p95 ms | p99 ms | failed | api CPU | Locust CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        lines.append(
            f"| {s['users']:.0f} | {s['rps']:.0f} | {s['p50']:.0f} | {s['p95']:.0f} | "
            f"{s['p99']:.0f} | {s['failures']} | {s['api_cpu']:.0%} | {s['locust_cpu']:.0%} |"
        )
    for s in steps:
        if s["errors"]:
            lines.append(f"\nFailed at {s['users']} users: " + "; ".join(s["errors"]))
    if capacity is None:
        lines.append("\nNo step met the SLO.")
    else:
        lines.append(
            f"\nCapacity of one pod: {capacity:.0f} req/s with p95 <= {SLO_P95_MS:.0f} ms; "
            f"target at {TARGET_SHARE:.0%}: {capacity * TARGET_SHARE:.0f} req/s per pod."
        )
        last = steps[-1]
        if last["p95"] <= SLO_P95_MS and not last["failures"]:
            lines.append("The SLO held at the last step: the pod can carry more than this.")
    return lines, capacity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--users", default="10,25,50,100,150,200,300,400,500", help="the steps, in Locust users"
    )
    parser.add_argument("--seconds", type=int, default=20, help="measured per step")
    parser.add_argument("--sample", type=int, default=3000, help="train on a subsample")
    args = parser.parse_args()
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("needs taskset (util-linux) and 2 CPUs")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        api_port = free_port()
        api: subprocess.Popen[bytes] | None = None
        locust: subprocess.Popen[bytes] | None = None
        with trained_registry(tmp, None, args.sample) as registry_url:
            try:
                env = {
                    **os.environ,
                    "MLFLOW_TRACKING_URI": registry_url,
                    "READMIT_RELOAD_INTERVAL_S": "0",
                    "READMIT_METRICS_PORT": str(free_port()),
                }
                api = subprocess.Popen(
                    [
                        "taskset",
                        "-c",
                        "0",
                        str(API_BIN / "readmit-api"),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(api_port),
                    ],
                    stdout=(tmp / "api.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
                url = f"http://127.0.0.1:{api_port}"
                wait_ok(f"{url}/ready", 180)
                web_port = free_port()
                locust = subprocess.Popen(
                    [
                        "taskset",
                        "-c",
                        "1",
                        str(DEV_BIN / "readmit-loadtest"),
                        "--web",
                        "--web-port",
                        str(web_port),
                        "--host",
                        url,
                    ],
                    stdout=(tmp / "locust.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "READMIT_LOCUST_MAX_USERS": "1000"},
                    start_new_session=True,
                )
                web = f"http://127.0.0.1:{web_port}"
                wait_ok(web, 120)
                pids = {"api": api.pid, "locust": locust.pid}
                steps = []
                for users in (int(u) for u in args.users.split(",")):
                    s = step(web, users, args.seconds, pids)
                    steps.append(s)
                    print(
                        f"  {users:4d} users  {s['rps']:6.0f} req/s  p95 {s['p95']:6.0f} ms  "
                        f"failed {s['failures']}  api CPU {s['api_cpu']:.0%}  "
                        f"Locust CPU {s['locust_cpu']:.0%}",
                        flush=True,
                    )
                    if s["p95"] > SLO_P95_MS or s["failures"]:
                        break
                requests.get(f"{web}/stop", timeout=10)
            finally:
                for proc in (locust, api):
                    if proc and proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGTERM)
                        proc.wait(30)
    lines, capacity = report(steps)
    out = ROOT / "build" / "bench-capacity.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\n(written to {out.relative_to(ROOT)}; model {MODEL}, {args.seconds} s a step)")
    sys.exit(0 if capacity is not None else 1)


if __name__ == "__main__":
    main()
