"""Limits on what a client may hold before a request reaches the application.

uvicorn's httptools protocol buffers a request's headers without bound, waits forever for a
connection to send them, and accepts connections until the process runs out of descriptors:
measured on this api, three requests with 200 MiB of headers took 570 MB, and 22,000 idle
connections broke its outgoing calls to the registry (``Errno 24``). This subclass (passed to
uvicorn as its ``http`` protocol) adds, per connection:

- request line and headers together at most ``max_header_bytes``, at most ``max_headers``
  headers: else 431, and the connection is closed;
- the headers complete within ``header_timeout_s`` of the connection or of the request's first
  byte: else the connection is closed (408 if part of a request had come);
- at most ``max_connections`` open at once, so descriptors stay bounded: past it, the
  connection that has waited longest without asking anything is closed to make room (a flood
  of idle connections cannot keep a probe or a client out), and when every connection is busy
  with a request the new one is answered 503 with ``Retry-After`` and closed.
Idle keep-alive connections are uvicorn's own ``timeout_keep_alive``. The header deadlines are
checked by one sweep a server every SWEEP_S, not a timer per request: at ~1,500 requests a second
a timer each left thousands of cancelled handles in the loop's heap (measured: ~15 % of the
throughput at 64 connections).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from readmit_api import metrics

SWEEP_S = 0.5


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    max_connections: int
    retry_after_s: int = 1


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]
    # The server's connections that wait for a request, the longest waiting first.
    waiting: ClassVar[OrderedDict[LimitedHttpToolsProtocol, None]]
    # The connections whose request headers are under way, with their deadline, soonest first;
    # and whether the sweep that enforces them is scheduled.
    deadlines: ClassVar[OrderedDict[LimitedHttpToolsProtocol, float]]
    sweeping: ClassVar[list[bool]]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._in_headers = True
        self._header_blocks = 0  # requests whose headers were complete, on this connection
        self._refused = False
        if len(self.connections) > self.limits.max_connections:
            if self.waiting:  # make room: the longest idle connection goes
                oldest, _ = self.waiting.popitem(last=False)
                metrics.HTTP_REFUSED.labels("idle_evicted").inc()
                oldest.transport.close()
            else:
                self._refuse(
                    503,
                    "too many connections: retry shortly",
                    "too_many_connections",
                    retry_after=True,
                )
                return
        self.waiting[self] = None
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadlines.pop(self, None)
        self.waiting.pop(self, None)
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.waiting[self] = None  # idle again, until the next request or keep-alive's end

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self.waiting.pop(self, None)  # asking something: not idle
        if not self._in_headers:
            super().data_received(data)
            return
        if self not in self.deadlines:  # the first byte of a request on a kept-alive connection
            self._start_header_deadline()
        room = self.limits.max_header_bytes - self._header_bytes
        head = data[:room] if len(data) > room else data
        self._header_bytes += len(head)
        blocks = self._header_blocks
        super().data_received(head)
        if len(head) == len(data) or self._refused or self.transport.is_closing():
            return
        if self._header_blocks == blocks:  # the budget is spent and the headers are not complete
            self._refuse(431, "request headers too large", "headers_too_large")
            return
        super().data_received(data[len(head) :])

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_blocks += 1
        self.deadlines.pop(self, None)
        if len(self.headers) > self.limits.max_headers:
            self._refuse(431, "too many request headers", "too_many_headers")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        # the next request's headers (pipelined, or after the keep-alive pause) start afresh
        self._in_headers, self._header_bytes = True, 0

    def _start_header_deadline(self) -> None:
        self.deadlines[self] = self.loop.time() + self.limits.header_timeout_s
        if not self.sweeping[0]:
            self.sweeping[0] = True
            self.loop.call_later(SWEEP_S, self._sweep, self.loop)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections past their header deadline (they are first in ``deadlines``)."""
        now = loop.time()
        while cls.deadlines:
            late, deadline = next(iter(cls.deadlines.items()))
            if deadline > now:
                break
            del cls.deadlines[late]
            late._header_timeout()
        cls.sweeping[0] = bool(cls.deadlines)
        if cls.sweeping[0]:
            loop.call_later(SWEEP_S, cls._sweep, loop)

    def _header_timeout(self) -> None:
        if not self._in_headers or self.transport.is_closing():
            return
        if self._header_bytes:
            self._refuse(408, "request headers not received in time", "header_timeout")
        else:  # nothing was asked: nothing to answer
            metrics.HTTP_REFUSED.labels("idle_timeout").inc()
            self.transport.close()

    def _refuse(self, status: int, detail: str, reason: str, retry_after: bool = False) -> None:
        """Answer without the application, and close: the request is not read any further."""
        self._refused = True
        self.deadlines.pop(self, None)
        metrics.HTTP_REFUSED.labels(reason).inc()
        body = orjson.dumps({"detail": detail})
        head: list[Any] = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if retry_after:
            head.append(b"retry-after: %d\r\n" % self.limits.retry_after_s)
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()


def protocol(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=``, with these limits (one per server)."""
    return type(
        "LimitedHttpTools",
        (LimitedHttpToolsProtocol,),
        {
            "limits": limits,
            "waiting": OrderedDict(),
            "deadlines": OrderedDict(),
            "sweeping": [False],
        },
    )
