"""Micro-batching in-process: requests of one loop turn share one model call, split back right,
each scored by the model its rows were encoded for."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from readmit_api.batcher import MicroBatcher


def scaling(calls: list[tuple[str, int]]):
    """A "model" is a factor: rows x factor; a negative row fails the call."""

    def predict(rows: np.ndarray, model: object) -> np.ndarray:
        assert isinstance(model, tuple)
        calls.append((model[0], len(rows)))
        if (rows < 0).any():
            raise RuntimeError("boom")
        return rows[:, 0] * model[1]

    return predict


DOUBLE, TRIPLE = ("double", 2), ("triple", 3)


def test_requests_arriving_together_share_one_call() -> None:
    calls: list[tuple[str, int]] = []
    batcher = MicroBatcher(scaling(calls))

    async def scenario() -> list[np.ndarray]:
        together = [batcher.predict(np.array([[i], [i + 0.5]]), DOUBLE) for i in range(10)]
        first = await asyncio.gather(*together)
        alone = await batcher.predict(np.array([[7.0]]), DOUBLE)
        return [*first, alone]

    results = asyncio.run(scenario())
    assert calls == [("double", 20), ("double", 1)]  # ten requests in one call, then one alone
    for i, risks in enumerate(results[:10]):
        assert risks.tolist() == [2 * i, 2 * i + 1]
    assert results[10].tolist() == [14.0]


def test_rows_of_two_models_in_one_turn_are_scored_each_by_its_own() -> None:
    calls: list[tuple[str, int]] = []
    batcher = MicroBatcher(scaling(calls))

    async def scenario() -> list[np.ndarray]:
        models = [DOUBLE, TRIPLE, DOUBLE, TRIPLE, DOUBLE]
        return await asyncio.gather(
            *(batcher.predict(np.array([[float(i)]]), m) for i, m in enumerate(models))
        )

    results = asyncio.run(scenario())
    assert sorted(calls) == [("double", 3), ("triple", 2)]
    assert [r.tolist() for r in results] == [[0.0], [3.0], [4.0], [9.0], [8.0]]


def test_a_full_batch_is_scored_without_waiting_for_the_turn_to_end() -> None:
    calls: list[tuple[str, int]] = []
    batcher = MicroBatcher(scaling(calls), max_rows=4)

    async def scenario() -> None:
        await asyncio.gather(*(batcher.predict(np.ones((2, 1)), DOUBLE) for _ in range(5)))

    asyncio.run(scenario())
    assert [n for _, n in calls] == [4, 4, 2]


def test_a_failing_call_fails_only_its_requests() -> None:
    calls: list[tuple[str, int]] = []
    batcher = MicroBatcher(scaling(calls))

    async def scenario() -> np.ndarray:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.predict(np.array([[-1.0]]), DOUBLE)
        return await batcher.predict(np.array([[3.0]]), DOUBLE)

    assert asyncio.run(scenario()).tolist() == [6.0]
