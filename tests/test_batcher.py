"""Micro-batching in-process: queued requests share one model call; results are split right."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from readmit_api.batcher import MicroBatcher


def test_requests_queued_during_a_call_share_the_next_call() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def predict(rows: np.ndarray) -> tuple[np.ndarray, object]:
        calls.append(len(rows))
        gate.wait(5)  # hold the first call until everything else is queued
        return rows[:, 0] * 2, "model-a"

    batcher = MicroBatcher(predict)

    async def scenario() -> list[tuple[np.ndarray, object]]:
        first = asyncio.ensure_future(batcher.predict(np.array([[0.0]])))
        await asyncio.sleep(0.05)
        rest = [
            asyncio.ensure_future(batcher.predict(np.array([[i], [i + 0.5]]))) for i in range(1, 11)
        ]
        await asyncio.sleep(0.05)
        gate.set()
        return [await first, *[await r for r in rest]]

    try:
        results = asyncio.run(scenario())
    finally:
        batcher.close()
    assert calls == [1, 20]  # one call alone, then all ten queued requests in one call
    assert results[0][0].tolist() == [0.0]
    for i, (risks, tag) in enumerate(results[1:], start=1):
        assert risks.tolist() == [2 * i, 2 * i + 1]
        assert tag == "model-a"


def test_a_failing_call_fails_only_its_requests() -> None:
    def predict(rows: np.ndarray) -> tuple[np.ndarray, object]:
        if rows[0, 0] < 0:
            raise RuntimeError("boom")
        return rows[:, 0], None

    batcher = MicroBatcher(predict)

    async def scenario() -> tuple[BaseException | None, np.ndarray]:
        try:
            await batcher.predict(np.array([[-1.0]]))
            failed = None
        except RuntimeError as exc:
            failed = exc
        ok, _ = await batcher.predict(np.array([[3.0]]))
        return failed, ok

    try:
        failed, ok = asyncio.run(scenario())
    finally:
        batcher.close()
    assert isinstance(failed, RuntimeError)
    assert ok.tolist() == [3.0]
