"""From a request body to the response: parse, validate, encode, score (micro-batched),
describe.

A large batch is handled whole in one worker thread, one such batch at a time: its parsing,
validation and scoring (~0.1-0.3 s for 1,000 encounters) would otherwise hold the event loop,
and every other request and probe with it. The GIL still passes between the two threads every
few milliseconds. Small bodies stay on the loop, where they share the micro-batcher's calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from readmit_api import audit, json_body, metrics, validation
from readmit_api.batcher import MicroBatcher
from readmit_api.drift_metrics import DriftWindow
from readmit_api.errors import ApiError
from readmit_api.model_store import LoadedModel, ModelStore
from readmit_core.drift import bin_rows
from readmit_core.explain import explain
from readmit_core.scoring.log_odds import to_risk

RETRY_AFTER_S = "5"


@dataclass(frozen=True)
class Decoded:
    """A request body's validated encounter records, and what its protocol keeps for the
    answer (an inference request's id and outputs, say)."""

    records: list[dict[str, Any]]
    context: Any = None


@dataclass(frozen=True)
class Scored:
    loaded: LoadedModel  # the model that answered
    decoded: Decoded
    risks: np.ndarray
    predictions: list[dict[str, Any]]  # /predict's per-encounter answers, in order


# Bodies up to this size (about 25 encounters) are scored on the event loop, larger ones in the
# worker thread: under a millisecond of work either side of the line.
INLINE_BODY_BYTES = 32 * 1024


class Predictor:
    def __init__(
        self, store: ModelStore, max_batch: int, high_risk: float, drift: DriftWindow
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.high_risk = high_risk
        self.drift = drift
        self.batcher = MicroBatcher(lambda rows, loaded: loaded.model.predict_proba(rows))
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="large-batch")

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def require_model(self) -> LoadedModel:
        loaded = self.store.current
        if loaded is None:
            raise ApiError(503, self.store.not_ready_reason, {"Retry-After": RETRY_AFTER_S})
        return loaded

    async def one(self, body: bytes, caller: audit.Caller, explain_top: int = 0) -> dict[str, Any]:
        """``explain_top`` > 0 adds that many factors (readmit_core.explain); the answer leaves
        an audit record (``readmit_api.audit``)."""
        loaded = self.require_model()  # this request's model, even if another is loaded meanwhile
        record = validation.record(json_body.parse(body, 1))
        rows = loaded.model.encode_records([record])
        risks, reasons = await self._score(loaded, rows, [record], explain_top)
        self.drift.observe(bin_rows(rows), risks >= loaded.model.threshold)
        result = self._risk(float(risks[0]), loaded.model.threshold)
        if reasons:
            result["explanation"] = reasons[0]
        model = loaded.ref()
        audit.record(caller, [record], [result], model, bool(explain_top))
        return {**result, "threshold": loaded.model.threshold, "model": model}

    async def many(self, body: bytes, caller: audit.Caller, explain_top: int = 0) -> dict[str, Any]:
        def decode() -> Decoded:
            parsed = json_body.parse(body, self.max_batch)
            return Decoded(validation.records(parsed, self.max_batch))

        scored = await self.batch(decode, len(body), caller, explain_top)
        return {
            "count": len(scored.predictions),
            "threshold": scored.loaded.model.threshold,
            "model": scored.loaded.ref(),
            "predictions": scored.predictions,
        }

    async def batch(
        self, decode: Callable[[], Decoded], size: int, caller: audit.Caller, explain_top: int = 0
    ) -> Scored:
        """Encounters of any protocol (``decode`` turns its body into validated records), scored
        and audited: in the worker thread when the body is over ``INLINE_BODY_BYTES`` (decoding
        too), else on the loop through the micro-batcher."""
        loaded = self.require_model()
        if size > INLINE_BODY_BYTES:
            loop = asyncio.get_running_loop()
            decoded, rows, risks, reasons = await loop.run_in_executor(
                self._worker, self._score_large, loaded, decode, explain_top
            )
        else:
            decoded = decode()
            rows = loaded.model.encode_records(decoded.records)
            risks, reasons = await self._score(loaded, rows, decoded.records, explain_top)
        t = loaded.model.threshold
        self.drift.observe(bin_rows(rows), risks >= t)  # on the loop: the window is not shared
        predictions = [self._risk(float(r), t) for r in risks]
        if reasons:
            for prediction, reason in zip(predictions, reasons, strict=True):
                prediction["explanation"] = reason
        audit.record(caller, decoded.records, predictions, loaded.ref(), bool(explain_top))
        return Scored(loaded, decoded, risks, predictions)

    def _score_large(
        self, loaded: LoadedModel, decode: Callable[[], Decoded], explain_top: int
    ) -> tuple[Decoded, np.ndarray, np.ndarray, list[dict[str, Any]] | None]:
        """A large body, in the worker thread: decoded, validated, encoded and scored there."""
        decoded = decode()
        rows = loaded.model.encode_records(decoded.records)
        if explain_top:
            return decoded, rows, *self._explained(loaded, rows, decoded.records, explain_top)
        started = time.perf_counter()
        risks = loaded.model.predict_proba(rows)
        metrics.observe_inference(time.perf_counter() - started, len(rows))
        return decoded, rows, risks, None

    async def _score(
        self, loaded: LoadedModel, rows: np.ndarray, records: list[dict[str, Any]], explain_top: int
    ) -> tuple[np.ndarray, list[dict[str, Any]] | None]:
        """The rows' risks, and their explanations when asked for. An explanation holds its
        row's log-odds, so explained rows skip the batcher: the trees are walked once, not
        twice (once to score, once to explain)."""
        if not explain_top:
            return await self.batcher.predict(rows, loaded), None
        return self._explained(loaded, rows, records, explain_top)

    @staticmethod
    def _explained(
        loaded: LoadedModel, rows: np.ndarray, records: list[dict[str, Any]], top: int
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        started = time.perf_counter()
        reasons = explain(loaded.model, rows, records, top)
        metrics.observe_inference(time.perf_counter() - started, len(rows))
        return to_risk(np.array([r["log_odds"] for r in reasons])), reasons

    def _risk(self, risk: float, threshold: float) -> dict[str, Any]:
        flagged = risk >= threshold
        band = "high" if risk >= max(self.high_risk, threshold) else "medium" if flagged else "low"
        metrics.PREDICTION_RISK.observe(risk)
        (metrics.FLAGGED if flagged else metrics.NOT_FLAGGED).inc()
        return {"readmission_risk": risk, "readmitted_within_30_days": flagged, "risk_band": band}
