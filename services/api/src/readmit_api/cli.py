"""``readmit-api``: run the api with uvicorn (one worker; scale with replicas)."""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    # One native thread per pool: requests are served in parallel by micro-batching and by pod
    # replicas; OpenMP/BLAS pools on top oversubscribe the cores. Set before numpy loads.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    import uvicorn

    from readmit_api import logs
    from readmit_api.app import create_app
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
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=log_config,
        access_log=False,  # metrics count every request; logs stay free of per-request noise
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    DrainingServer(config, app.state.draining, settings.shutdown_drain_s).run()


if __name__ == "__main__":
    main()
