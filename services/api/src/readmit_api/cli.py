"""``readmit-api``: run the api with uvicorn (one worker; scale with replicas)."""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys

# Descriptors kept for what the process itself opens: the registry, model files, metrics, logs.
FD_RESERVE = 128


def main(argv: list[str] | None = None) -> None:
    # One native thread per pool: requests are served in parallel by micro-batching and by pod
    # replicas; OpenMP/BLAS pools on top oversubscribe the cores. Set before numpy loads.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    import uvicorn

    from readmit_api import audit, logs
    from readmit_api.app import create_app
    from readmit_api.auth import KeyConfigError
    from readmit_api.http_limits import HttpLimits, protocol
    from readmit_api.settings import Settings
    from readmit_api.shutdown import DrainingServer

    settings = Settings()
    parser = argparse.ArgumentParser(prog="readmit-api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.host, help="default: $READMIT_HOST or 0.0.0.0")
    parser.add_argument(
        "--port", type=int, default=settings.port, help="default: $READMIT_PORT or 8000"
    )
    args = parser.parse_args(argv)
    log_config = logs.configure(settings.log_level)
    audit.configure()
    try:
        app = create_app(settings)
    except KeyConfigError as exc:
        sys.exit(f"readmit-api: {exc}")
    # Never more connections than descriptors: at the limit the registry calls failed (Errno 24).
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    connections = settings.max_connections
    if soft != resource.RLIM_INFINITY:
        connections = max(1, min(connections, soft - FD_RESERVE))
    limits = HttpLimits(
        settings.max_header_bytes, settings.max_headers, settings.header_timeout_s, connections
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=protocol(limits),
        timeout_keep_alive=settings.keep_alive_s,
        log_config=log_config,
        access_log=False,  # metrics count every request; logs stay free of per-request noise
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    # One server, two sockets: the api's port, and /metrics on a port of its own that only
    # Prometheus is let reach (the chart's NetworkPolicy; counters read before and after one
    # request would say what was predicted for whom). One event loop behind both, so a scrape
    # fails when the api does.
    sockets = [config.bind_socket()]
    if settings.metrics_port:
        # A socket of its own, not a second uvicorn.Config: creating one configures logging
        # again, uvicorn's default way (an access log line a request: -25 % at 64 connections).
        sockets.append(
            socket.create_server(
                (args.host, settings.metrics_port),
                family=socket.AF_INET6 if ":" in args.host else socket.AF_INET,
            )
        )
    DrainingServer(config, app.state.draining, settings.shutdown_drain_s).run(sockets=sockets)


if __name__ == "__main__":
    main()
