"""Inference benchmark: readmit-api against the servers a user would pick instead, side by side.

One run, one worker each, on loopback: single-record requests of real encounters at concurrency
1, 8 and 64 (wrk, a load generator in C, one thread), servers alternating at each point after a
warm-up. The peers: MLServer's native LightGBM runtime (the blend's LightGBM part, sent already
encoded features: it validates and encodes nothing), `mlflow models serve` of the same registered
version, and a trivial FastAPI endpoint in the same uvicorn setup (the HTTP ceiling). readmit-api
is measured on /predict, on the Open Inference Protocol's infer and on MLflow's /invocations.
Reports req/s, p50, p99, errors, RSS, start-up to ready, the 1,000-record batch latency, and
checks the goals. The tables are printed and written to build/bench-api.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from readmit_trainer.registry_server import local_command

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEV_BIN = ROOT / ".venv" / "bin"
API_BIN = ROOT / ".venv-api" / "bin"
MODEL = "diabetes-readmission"
# the registry's model as MLflow serves it, one worker ("{port}": each server's own)
MLFLOW_SERVE = "models serve --env-manager local -w 1 -h 127.0.0.1 -p {port}"
# The peer, in a venv of the benchmark's own (kept per user and version, like the built tools).
# MLServer 1.7.1's default parallel_workers: 1 crashes with uvloop 0.23; 0 is also its fastest.
MLSERVER = ("mlserver==1.7.1", "mlserver-lightgbm==1.7.1", "uvloop==0.21.0")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "readmit"
MLSERVER_VENV = CACHE / "bench-mlserver-1.7.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, timeout: float = 60) -> bytes:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def wait_ok(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            http("GET", url, timeout=2)
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


@contextmanager
def trained_registry(tmp: Path, store: str | None, sample: int | None) -> Iterator[str]:
    """A throwaway MLflow server on loopback with the model trained into it (on ``sample``
    rows, or all), or serving ``store``, a registry that holds it already; yields its URL and
    stops it on leaving."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backend = store or tmp / "mlflow.db"
    registry = subprocess.Popen(
        local_command(DEV_BIN / "mlflow", backend, tmp / "artifacts", port),
        stdout=(tmp / "registry.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ok(f"{url}/health", 180)
        if not store:
            print("training the model ...", flush=True)
            train = [str(DEV_BIN / "readmit-train"), "--tracking-uri", url]
            if sample:
                train += ["--sample", str(sample)]
            subprocess.run(train, check=True, stdout=subprocess.DEVNULL)
        yield url
    finally:
        os.killpg(registry.pid, signal.SIGTERM)
        registry.wait(30)


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(
                next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS"))
            )
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
        todo.extend(int(c) for c in children)
    return total / 1024


@dataclass
class Server:
    name: str
    command: list[str]
    ready_path: str
    path: str
    body_file: Path
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/health"  # alive (model loaded or not)
    port: int = field(default_factory=free_port)
    route_of: str | None = None  # another route of that server's process (not started again)
    proc: subprocess.Popen[bytes] | None = None
    ready_s: float = 0.0
    health_s: float = 0.0  # process start -> first /health 200 (alive, model or not)
    results: dict[int, dict[str, float]] = field(default_factory=dict)
    batch: tuple[str, Path] | None = None  # the 1,000-record batch's route and body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, logs: Path) -> None:
        if self.route_of:
            return
        cmd = [c.replace("{port}", str(self.port)) for c in self.command]
        started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdout=(logs / f"{self.name}.log").open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        wait_ok(self.url + self.health_path, 180)
        self.health_s = time.monotonic() - started
        wait_ok(self.url + self.ready_path, 180)
        self.ready_s = time.monotonic() - started

    def stop(self) -> None:
        if self.route_of:
            return
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


def wrk(server: Server, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "post_bodies.lua"),
            server.url + server.path,
            "--",
            str(server.body_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "errors": r["socket_errors"] + r["non_2xx"],
        "requests": r["requests"],
    }


def batch_latency(url: str, body: bytes, repeats: int = 20) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        http("POST", url, body)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="per measured point")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--sample", type=int, default=None, help="train on a subsample (quicker)")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help=f"serve {MODEL}@production from this registry instead of training "
        "one (e.g. the local stack's, after make train)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    levels = [int(c) for c in args.concurrency.split(",")]
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

    mlserver_venv()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        servers: list[Server] = []
        with trained_registry(tmp, args.tracking_uri, args.sample) as registry_url:
            try:
                servers = prepare_servers(tmp, registry_url)
                for s in servers:
                    print(f"starting {s.name} ...", flush=True)
                    s.start(tmp)
                for s in servers:
                    wrk(s, 8, args.warmup)
                for c in levels:
                    for s in servers:  # alternating, so drift on a noisy machine hits all alike
                        s.results[c] = wrk(s, c, args.seconds)
                        r = s.results[c]
                        print(
                            f"  c={c:<3} {s.name:<16} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f}"
                            f" ms  p99 {r['p99_ms']:8.2f} ms  errors {r['errors']:.0f}",
                            flush=True,
                        )
                explain = explain_cost(servers[0], args.seconds)
                rss = {s.name: rss_mib(s.proc.pid) for s in servers if s.proc}
                batches = measure_batches(servers)
                calls = model_calls(servers[0])
                for s in servers:
                    s.stop()
                costs = in_process()
            finally:
                for s in servers:
                    s.stop()
    report(servers, levels, rss, batches, calls, explain, costs)


def timed(fn: Any, arg: Any, repeats: int) -> float:
    """Mean ms of ``fn(arg)`` after one warm-up call."""
    fn(arg)
    started = time.perf_counter()
    for _ in range(repeats):
        fn(arg)
    return (time.perf_counter() - started) / repeats * 1000


def in_process() -> list[str]:
    """With the servers stopped: each part's scorers, compiled and NumPy, on one row and on
    1,000, and the pyfunc's predict of one row (what mlflow models serve runs per request)."""
    import mlflow.pyfunc

    from readmit_core.artifact import load_from_mlflow
    from readmit_core.data import load_encounters
    from readmit_core.schema import FIELDS

    model = load_from_mlflow(f"models:/{MODEL}@production")
    frame = load_encounters().sample(1000, random_state=1)
    x = model.encode_frame(frame)
    lines = ["| scorer, in-process | one row ms | 1,000 rows ms |", "|---|---:|---:|"]
    for part in getattr(model.scorer, "parts", [model.scorer]):
        for name, fn in (("compiled", part.trees.raw), ("NumPy", part.trees.raw_numpy)):
            lines.append(
                f"| {part.kind}, {name} | {timed(fn, x[:1], 500):.3f} | {timed(fn, x, 10):.1f} |"
            )
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@production")
    one = frame[[f.name for f in FIELDS]].iloc[:1].copy()
    inner = pyfunc.unwrap_python_model()
    lines.append(
        f"\nThe pyfunc, one row: `predict` {timed(pyfunc.predict, one, 50):.2f} ms with "
        f"MLflow's schema check, {timed(lambda f: inner.predict(None, f), one, 50):.2f} "
        "ms the model's own."
    )
    return lines


def mlserver_venv() -> None:
    """The peer's venv, made once per user and MLServer version (pip from PyPI)."""
    if (MLSERVER_VENV / ".installed").exists():
        return
    print(f"installing {' '.join(MLSERVER)} into {MLSERVER_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(MLSERVER_VENV)], check=True)
    subprocess.run(
        [str(MLSERVER_VENV / "bin" / "pip"), "install", "--quiet", *MLSERVER], check=True
    )
    (MLSERVER_VENV / ".installed").touch()


def write_lines(path: Path, bodies: list[Any]) -> Path:
    path.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
    return path


def oip_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    from readmit_api.oip import INPUTS

    names = [n for n in INPUTS if any(r.get(n) is not None for r in records)]
    return {
        "inputs": [
            {
                "name": n,
                "datatype": INPUTS[n],
                "shape": [len(records)],
                "data": ["" if r.get(n) is None else r[n] for r in records],
            }
            for n in names
        ]
    }


def mlserver_body(features: Any) -> dict[str, Any]:
    """V2 infer of already-encoded rows; MLServer's JSON takes null, not NaN, for a missing
    value."""
    data = [None if v != v else v for v in features.ravel().tolist()]
    return {
        "inputs": [
            {"name": "features", "datatype": "FP64", "shape": list(features.shape), "data": data}
        ]
    }


def prepare_servers(tmp: Path, registry_url: str) -> list[Server]:
    for src in ("core", "api"):
        sys.path.insert(0, str(ROOT / "services" / src / "src"))
    import mlflow

    from readmit_core.artifact import load_from_mlflow
    from readmit_core.data import load_encounters, to_records

    records = to_records(load_encounters().sample(2000, random_state=0))
    mlflow.set_tracking_uri(registry_url)
    model = load_from_mlflow(f"models:/{MODEL}@production")
    part = model.scorer.parts[0] if hasattr(model.scorer, "parts") else model.scorer
    if part.kind != "lightgbm":
        sys.exit("the registered model has no LightGBM part for MLServer's LightGBM runtime")
    peer = tmp / "mlserver"
    peer.mkdir()
    (peer / "model.txt").write_text(part.model_text)
    (peer / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "lightgbm-part",
                "implementation": "mlserver_lightgbm.LightGBMModel",
                "parameters": {"uri": "./model.txt", "version": "1"},
            }
        )
    )
    features = model.encode_records(records)
    batch = records[:1000]
    (tmp / "batches").mkdir()
    batches = {
        "readmit-api": ("/predict/batch", {"encounters": batch}),
        "readmit-api OIP": (f"/v2/models/{MODEL}/infer", oip_body(batch)),
        "readmit-api /invocations": ("/invocations", {"dataframe_records": batch}),
        "mlserver-lightgbm": ("/v2/models/lightgbm-part/infer", mlserver_body(features[:1000])),
        "mlflow-serve": ("/invocations", {"dataframe_records": batch}),
    }
    files = {name: tmp / "batches" / f"{i}.json" for i, name in enumerate(batches)}
    for name, (_, body) in batches.items():
        files[name].write_text(json.dumps(body))
    registry = {"MLFLOW_TRACKING_URI": registry_url}
    mls_port = free_port()
    (peer / "settings.json").write_text(
        json.dumps(
            {
                "parallel_workers": 0,
                "host": "127.0.0.1",
                "http_port": mls_port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "debug": False,
            }
        )
    )
    ours = Server(
        "readmit-api",
        [str(API_BIN / "readmit-api"), "--host", "127.0.0.1", "--port", "{port}"],
        "/ready",
        "/predict",
        write_lines(tmp / "ours.jsonl", records),
        {**registry, "READMIT_RELOAD_INTERVAL_S": "0", "READMIT_METRICS_PORT": str(METRICS_PORT)},
    )
    servers = [
        ours,
        dataclasses.replace(
            ours,
            name="readmit-api OIP",
            path=batches["readmit-api OIP"][0],
            body_file=write_lines(tmp / "oip.jsonl", [oip_body([r]) for r in records]),
            route_of=ours.name,
            results={},
        ),
        dataclasses.replace(
            ours,
            name="readmit-api /invocations",
            path="/invocations",
            body_file=write_lines(
                tmp / "invocations.jsonl", [{"dataframe_records": [r]} for r in records]
            ),
            route_of=ours.name,
            results={},
        ),
        Server(
            "mlserver-lightgbm",
            [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(peer)],
            "/v2/health/ready",
            batches["mlserver-lightgbm"][0],
            write_lines(
                tmp / "mlserver.jsonl",
                [mlserver_body(features[i : i + 1]) for i in range(len(records))],
            ),
            health_path="/v2/health/live",
            port=mls_port,
        ),
        Server(
            "mlflow-serve",
            [str(DEV_BIN / "mlflow"), *MLFLOW_SERVE.split(), "-m", f"models:/{MODEL}@production"],
            "/health",
            "/invocations",
            write_lines(tmp / "mlflow.jsonl", [{"dataframe_records": [r]} for r in records]),
            # it execs `uvicorn` by name
            {**registry, "PATH": f"{DEV_BIN}:{os.environ['PATH']}"},
        ),
        Server(
            "fastapi-trivial",
            [
                str(API_BIN / "python"),
                "-m",
                "uvicorn",
                "--app-dir",
                str(HERE),
                "trivial_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            "/health",
            "/ping",
            write_lines(tmp / "trivial.jsonl", records),
        ),
    ]
    for s in servers:
        s.batch = (batches[s.name][0], files[s.name]) if s.name in batches else None
    return servers


EXPLAIN_ROUNDS = 5
METRICS_PORT = free_port()  # readmit-api's /metrics


def explain_cost(ours: Server, seconds: int) -> tuple[float, float, list[float]]:
    """c=1 p50 ms without and with ?explain=true on the same process, in interleaved short
    rounds (one back-to-back pair moved with the machine: 0.99 vs 1.84 ms plain in one run):
    the medians, and each round's difference."""
    explained = dataclasses.replace(ours, path="/predict?explain=true")
    step = max(1, seconds // EXPLAIN_ROUNDS)  # the same 2 x seconds in all
    pairs = [
        (wrk(ours, 1, step)["p50_ms"], wrk(explained, 1, step)["p50_ms"])
        for _ in range(EXPLAIN_ROUNDS)
    ]
    plain, with_explain = (statistics.median(p) for p in zip(*pairs, strict=True))
    return plain, with_explain, [b - a for a, b in pairs]


def measure_batches(servers: list[Server]) -> dict[str, tuple[float, float]]:
    """The 1,000-record batch's p50 and max, server after server (each alone on the machine)."""
    return {
        s.name: batch_latency(s.url + s.batch[0], s.batch[1].read_bytes())
        for s in servers
        if s.batch
    }


def model_calls(ours: Server) -> float:
    """Mean encounters per model call over the whole run (micro-batching at work)."""
    text = http("GET", f"http://127.0.0.1:{METRICS_PORT}/metrics").decode()
    values = {
        ln.split()[0]: float(ln.split()[1])
        for ln in text.splitlines()
        if ln.startswith("readmit_batch_size_")
    }
    return values["readmit_batch_size_sum"] / max(values["readmit_batch_size_count"], 1)


def report(
    servers: list[Server],
    levels: list[int],
    rss: dict[str, float],
    batches: dict[str, tuple[float, float]],
    rows_per_call: float,
    explain: tuple[float, float, list[float]],
    costs: list[str],
) -> None:
    by = {s.name: s for s in servers}
    process = {s.name: by[s.route_of] if s.route_of else s for s in servers}
    lines = [
        "| server (req/s) | "
        + " | ".join(f"c={c}" for c in levels)
        + " | 1,000-record batch p50 ms | ready s |",
        "|---|" + "---:|" * (len(levels) + 2),
    ]
    for s in servers:
        b = batches.get(s.name)
        lines.append(
            f"| {s.name} | "
            + " | ".join(f"{s.results[c]['rps']:.0f}" for c in levels)
            + f" | {f'{b[0]:.1f}' if b else '-'} | {process[s.name].ready_s:.1f} |"
        )
    lines += [
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        for s in servers:
            r = s.results[c]
            lines.append(
                f"| {s.name} | {c} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['errors']:.0f} |"
            )
    lines += [
        "",
        "| server | start-up to health s | to ready s | RSS MiB | "
        "1,000-record batch p50 / max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in servers:
        b = batches.get(s.name)
        batch = f"{b[0]:.1f} / {b[1]:.1f}" if b else "-"
        if not s.route_of:
            lines.append(
                f"| {s.name} | {s.health_s:.1f} | {s.ready_s:.1f} | "
                f"{rss.get(s.name, 0):.0f} | {batch} |"
            )
    lines.append(
        f"\nreadmit-api: {rows_per_call:.1f} encounters per model call on average (micro-batching)."
    )
    rounds = ", ".join(f"{d:+.2f}" for d in explain[2])
    lines.append(
        f"readmit-api at c=1, p50 (median of {len(explain[2])} interleaved rounds): "
        f"{explain[0]:.2f} ms, {explain[1]:.2f} ms with ?explain=true; the rounds' "
        f"differences {rounds} ms."
    )
    lines += ["", *costs]
    ours, peer, trivial = by["readmit-api"], by["mlserver-lightgbm"], by["fastapi-trivial"]
    top, low = max(levels), min(levels)
    goals = [
        (
            f"c={c} req/s >= MLServer LightGBM's",
            ours.results[c]["rps"],
            peer.results[c]["rps"],
            ">=",
        )
        for c in levels
    ]
    goals += [
        (
            "1,000-record batch p50 ms <= MLServer LightGBM's",
            batches[ours.name][0],
            batches[peer.name][0],
            "<=",
        ),
        (
            f"c={top} req/s >= 50 % of the trivial endpoint's",
            ours.results[top]["rps"],
            0.5 * trivial.results[top]["rps"],
            ">=",
        ),
        (f"c={top} p99 ms <= 100", ours.results[top]["p99_ms"], 100.0, "<="),
        (f"c={low} p50 ms <= 1", ours.results[low]["p50_ms"], 1.0, "<="),
        ("?explain=true adds ms p50 at c=1 <= 0.5", statistics.median(explain[2]), 0.5, "<="),
        ("start-up to /health s <= 1", ours.health_s, 1.0, "<="),
        ("start-up to ready s <= 3", ours.ready_s, 3.0, "<="),
        ("RSS MiB <= 300", rss[ours.name], 300.0, "<="),
    ]
    for route in ("readmit-api OIP", "readmit-api /invocations"):
        goals += [
            (
                f"{route} c={c} req/s >= 90 % of /predict's",
                by[route].results[c]["rps"],
                0.9 * ours.results[c]["rps"],
                ">=",
            )
            for c in levels
        ]
    errors = sum(
        r["errors"] for s in servers if process[s.name] is ours for r in s.results.values()
    )
    goals.append(("no errors (readmit-api, every route)", errors, 0.0, "<="))
    lines += ["", "| goal | measured | bound | |", "|---|---:|---:|---|"]
    missed = []
    for name, value, bound, op in goals:
        ok = value >= bound if op == ">=" else value <= bound
        lines.append(f"| {name} | {value:.2f} | {bound:.2f} | {'ok' if ok else 'MISSED'} |")
        if not ok:
            missed.append(name)
    text = "\n".join(lines)
    print("\n" + text)
    out = ROOT / "build" / "bench-api.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")
    if missed:
        sys.exit(f"goals missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
