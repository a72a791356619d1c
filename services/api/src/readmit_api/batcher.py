"""Adaptive micro-batching: requests that arrive together share one model call.

Every request appends its encoded rows and schedules one flush for the end of the current event
loop turn; the flush scores everything queued by then in a single call. Alone, a request is
scored at once (no waiting window); under load, each turn of the loop gathers the requests whose
bodies arrived together, and the per-row cost falls (LightGBM booster: ~25 µs for one row, ~0.3
µs a row in a batch of 1,000).

The model runs on the event loop thread itself: a call costs tens of microseconds, less than
handing work to another thread, and one thread means no GIL ping-pong between the loop and an
inference thread (measured: p99 at 64 connections fell from ~270 ms with a worker thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from readmit_api import metrics


class MicroBatcher:
    def __init__(
        self, predict: Callable[[np.ndarray, object], np.ndarray], max_rows: int = 1024
    ) -> None:
        """``predict(rows, model) -> risks``. Rows are scored by the model they were encoded
        for (the encoding is the model's own): a swap mid-turn splits the call in two."""
        self._predict = predict
        self._max_rows = max_rows
        self._pending: list[tuple[np.ndarray, object, asyncio.Future[np.ndarray]]] = []
        self._rows = 0
        self._scheduled = False

    async def predict(self, rows: np.ndarray, model: object) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((rows, model, future))
        self._rows += len(rows)
        if self._rows >= self._max_rows:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        jobs, self._pending, self._rows = self._pending, [], 0
        by_model: dict[int, tuple[object, list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]]] = {}
        for rows, model, future in jobs:  # by identity: a model object is one loaded version
            by_model.setdefault(id(model), (model, []))[1].append((rows, future))
        for model, group in by_model.values():
            self._call(model, group)

    def _call(
        self, model: object, jobs: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]
    ) -> None:
        rows = jobs[0][0] if len(jobs) == 1 else np.concatenate([r for r, _ in jobs])
        started = time.perf_counter()
        try:
            risks = self._predict(rows, model)
        except Exception as exc:  # delivered to every request of this call
            for _, future in jobs:
                if not future.done():
                    future.set_exception(exc)
            return
        metrics.observe_inference(time.perf_counter() - started, len(rows))
        offset = 0
        for part, future in jobs:
            if not future.done():  # a client that went away cancelled its future
                future.set_result(risks[offset : offset + len(part)])
            offset += len(part)
