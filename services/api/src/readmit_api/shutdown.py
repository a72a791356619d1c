"""Graceful shutdown behind a load balancer: drain first, then stop.

When Kubernetes deletes a pod it sends SIGTERM while, in parallel, the pod leaves the Service's
endpoints; kube-proxy rewrites its rules a moment later. A server that stopped at once would
refuse the connections still routed to it and cut the clients' kept-alive connections between
two requests. So the first SIGTERM only starts a drain: ``/ready`` answers 503 and every response
says ``Connection: close`` (each client reconnects, through the updated rules, to another pod),
while requests are still served. After ``drain_s`` uvicorn's own graceful shutdown runs: it stops
accepting and lets in-flight requests finish. SIGINT (Ctrl-C), or a second SIGTERM, stops at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

log = logging.getLogger("readmit.shutdown")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, draining: threading.Event, drain_s: float) -> None:
        super().__init__(config)
        self.draining = draining
        self.drain_s = drain_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.drain_s <= 0 or self.draining.is_set():
            super().handle_exit(sig, frame)
            return
        self.draining.set()
        log.info("draining before shutdown", extra={"seconds": self.drain_s})
        # should_exit is polled by uvicorn's main loop: setting it from a timer thread is safe.
        timer = threading.Timer(self.drain_s, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()
