"""From a request body to the response: validate, encode, score (micro-batched), describe."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import ValidationError

from readmit_api import metrics
from readmit_api.batcher import MicroBatcher
from readmit_api.bodies import BatchRequest
from readmit_api.drift import DriftWindow
from readmit_api.errors import ApiError, invalid_body
from readmit_api.model_store import LoadedModel, ModelStore
from readmit_core.drift import bin_rows
from readmit_core.encounter import Encounter, encounter_record
from readmit_core.explain import explain
from readmit_core.log_odds import to_risk

RETRY_AFTER_S = "5"


class Predictor:
    def __init__(self, store: ModelStore, max_batch: int, high_risk: float,
                 drift: DriftWindow) -> None:  # fmt: skip
        self.store = store
        self.max_batch = max_batch
        self.high_risk = high_risk
        self.drift = drift
        self.batcher = MicroBatcher(lambda rows, loaded: loaded.model.predict_proba(rows))

    def require_model(self) -> LoadedModel:
        loaded = self.store.current
        if loaded is None:
            raise ApiError(503, self.store.not_ready_reason, {"Retry-After": RETRY_AFTER_S})
        return loaded

    async def one(self, body: bytes, explain_top: int = 0) -> dict[str, Any]:
        """``explain_top`` > 0 adds that many factors (readmit_core.explain)."""
        loaded = self.require_model()  # this request's model, even if another is loaded meanwhile
        try:
            record = encounter_record(Encounter.model_validate_json(body))
        except ValidationError as exc:
            raise invalid_body(exc) from None
        rows = loaded.model.encode_records([record])
        risks, reasons = await self._score(loaded, rows, [record], explain_top)
        self.drift.observe(bin_rows(rows), risks >= loaded.model.threshold)
        result = self._risk(float(risks[0]), loaded.model.threshold)
        if reasons:
            result["explanation"] = reasons[0]
        return {**result, "threshold": loaded.model.threshold, "model": loaded.ref()}

    async def many(self, body: bytes, explain_top: int = 0) -> dict[str, Any]:
        loaded = self.require_model()
        try:
            request = BatchRequest.model_validate_json(body)
        except ValidationError as exc:
            raise invalid_body(exc) from None
        n = len(request.encounters)
        if n > self.max_batch:
            raise ApiError(413, f"{n} encounters: a batch holds at most {self.max_batch}")
        records = [encounter_record(e) for e in request.encounters]
        rows = loaded.model.encode_records(records)
        risks, reasons = await self._score(loaded, rows, records, explain_top)
        t = loaded.model.threshold
        self.drift.observe(bin_rows(rows), risks >= t)
        predictions = [self._risk(float(r), t) for r in risks]
        if reasons:
            for prediction, reason in zip(predictions, reasons, strict=True):
                prediction["explanation"] = reason
        return {"count": n, "threshold": t, "model": loaded.ref(), "predictions": predictions}

    async def _score(self, loaded: LoadedModel, rows: np.ndarray,
                     records: list[dict[str, Any]], explain_top: int
                     ) -> tuple[np.ndarray, list[dict[str, Any]] | None]:  # fmt: skip
        """The rows' risks, and their explanations when asked for. An explanation holds its
        row's log-odds, so explained rows skip the batcher: the trees are walked once, not
        twice (once to score, once to explain)."""
        if not explain_top:
            return await self.batcher.predict(rows, loaded), None
        started = time.perf_counter()
        reasons = explain(loaded.model, rows, records, explain_top)
        metrics.observe_inference(time.perf_counter() - started, len(rows))
        log_odds = np.array([r["log_odds"] for r in reasons])
        return to_risk(log_odds), reasons

    def _risk(self, risk: float, threshold: float) -> dict[str, Any]:
        flagged = risk >= threshold
        band = "high" if risk >= max(self.high_risk, threshold) else "medium" if flagged else "low"
        metrics.PREDICTION_RISK.observe(risk)
        (metrics.FLAGGED if flagged else metrics.NOT_FLAGGED).inc()
        return {"readmission_risk": risk, "readmitted_within_30_days": flagged, "risk_band": band}
