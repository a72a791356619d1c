"""Micro-batching in-process: requests of one loop turn share one model call, split back right."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from readmit_api.batcher import MicroBatcher, Result


def doubling(calls: list[int]):
    def predict(rows: np.ndarray) -> Result:
        calls.append(len(rows))
        if (rows < 0).any():
            raise RuntimeError("boom")
        return rows[:, 0] * 2, "model-a"

    return predict


def test_requests_arriving_together_share_one_call() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(doubling(calls))

    async def scenario() -> list[Result]:
        together = [batcher.predict(np.array([[i], [i + 0.5]])) for i in range(10)]
        first = await asyncio.gather(*together)
        alone = await batcher.predict(np.array([[7.0]]))
        return [*first, alone]

    results = asyncio.run(scenario())
    assert calls == [20, 1]  # ten requests in one call, then one alone, scored at once
    for i, (risks, tag) in enumerate(results[:10]):
        assert risks.tolist() == [2 * i, 2 * i + 1]
        assert tag == "model-a"
    assert results[10][0].tolist() == [14.0]


def test_a_full_batch_is_scored_without_waiting_for_the_turn_to_end() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(doubling(calls), max_rows=4)

    async def scenario() -> None:
        await asyncio.gather(*(batcher.predict(np.ones((2, 1))) for _ in range(5)))

    asyncio.run(scenario())
    assert calls == [4, 4, 2]


def test_a_failing_call_fails_only_its_requests() -> None:
    calls: list[int] = []
    batcher = MicroBatcher(doubling(calls))

    async def scenario() -> np.ndarray:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.predict(np.array([[-1.0]]))
        ok, _ = await batcher.predict(np.array([[3.0]]))
        return ok

    assert asyncio.run(scenario()).tolist() == [6.0]
