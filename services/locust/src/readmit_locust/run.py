"""``readmit-loadtest``: a Locust master and N worker processes against the api.

Headless by default (bounded by --run-time; CSV and HTML reports; exit code 1 when any request
failed), or ``--web`` for Locust's web UI, idle until a run is started there.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from readmit_locust.settings import LocustSettings

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOCUST = Path(sys.executable).parent / "locust"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="readmit-loadtest", description=__doc__.splitlines()[0])
    p.add_argument(
        "--host",
        default=LocustSettings().api_url,
        help="api base URL (default: $READMIT_API_URL or http://127.0.0.1:8000)",
    )
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--spawn-rate", type=float, default=10)
    p.add_argument("--run-time", default="30s")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--report-dir",
        type=Path,
        default=Path("build/loadtest"),
        help="where the CSV and HTML reports go",
    )
    p.add_argument("--web", action="store_true", help="serve Locust's web UI instead")
    p.add_argument("--web-port", type=int, default=8089)
    p.add_argument("--bind", default="127.0.0.1", help="address of the master's ports")
    return p.parse_args(argv)


def master_command(args: argparse.Namespace, port: int) -> list[str]:
    cmd = [
        str(LOCUST),
        "-f",
        str(LOCUSTFILE),
        "--master",
        "--master-bind-host",
        args.bind,
        "--master-bind-port",
        str(port),
        "--host",
        args.host,
        "--expect-workers",
        str(args.workers),
    ]
    if args.web:
        web = [*cmd, "--web-host", args.bind, "--web-port", str(args.web_port)]
        # a login when a password is configured (the chart's; a local stack on loopback has none)
        return [*web, "--web-login"] if LocustSettings().locust_web_password else web
    prefix = args.report_dir / "run"
    return [
        *cmd,
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--expect-workers-max-wait",
        "120",
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--exit-code-on-error",
        "1",
        "--only-summary",
    ]


def summary(report_dir: Path) -> str:
    with (report_dir / "run_stats.csv").open() as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return (
        f"load test: {total['Request Count']} requests, {total['Failure Count']} failures, "
        f"{float(total['Requests/s']):.1f} req/s, p50 {total['50%']} ms, "
        f"p95 {total['95%']} ms, p99 {total['99%']} ms"
    )


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Master and workers run in their own process groups (Ctrl-C goes to this runner only), so a
    # SIGTERM to the runner (`make down`, a container stop) must be passed on: handled as Ctrl-C.
    signal.signal(signal.SIGTERM, _stop)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    # master and workers agree on the one api a run may target and the key may go to
    env = {**os.environ, "READMIT_API_URL": args.host}
    master = subprocess.Popen(master_command(args, port), start_new_session=True, env=env)
    workers = [
        subprocess.Popen(
            [
                str(LOCUST),
                "-f",
                str(LOCUSTFILE),
                "--worker",
                "--master-host",
                args.bind,
                "--master-port",
                str(port),
            ],
            start_new_session=True,
            env=env,
        )
        for _ in range(args.workers)
    ]
    try:
        rc = master.wait()
    except KeyboardInterrupt:
        os.killpg(master.pid, signal.SIGTERM)
        rc = master.wait()
    finally:
        for w in workers:  # they quit when the master does; make sure of it
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
    if not args.web and (args.report_dir / "run_stats.csv").exists():
        print(summary(args.report_dir), flush=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
