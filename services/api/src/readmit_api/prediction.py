"""From a request body to the response: validate, encode, score (micro-batched), describe."""

from __future__ import annotations

from typing import Any

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
        risks = await self.batcher.predict(rows, loaded)
        self.drift.observe(bin_rows(rows), risks >= loaded.model.threshold)
        result = self._risk(float(risks[0]), loaded.model.threshold)
        if explain_top:
            result["explanation"] = explain(loaded.model, rows, [record], explain_top)[0]
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
        risks = await self.batcher.predict(rows, loaded)
        t = loaded.model.threshold
        self.drift.observe(bin_rows(rows), risks >= t)
        predictions = [self._risk(float(r), t) for r in risks]
        if explain_top:
            reasons = explain(loaded.model, rows, records, explain_top)
            for prediction, reason in zip(predictions, reasons, strict=True):
                prediction["explanation"] = reason
        return {"count": n, "threshold": t, "model": loaded.ref(), "predictions": predictions}

    def _risk(self, risk: float, threshold: float) -> dict[str, Any]:
        flagged = risk >= threshold
        band = "high" if risk >= max(self.high_risk, threshold) else "medium" if flagged else "low"
        metrics.PREDICTION_RISK.observe(risk)
        (metrics.FLAGGED if flagged else metrics.NOT_FLAGGED).inc()
        return {"readmission_risk": risk, "readmitted_within_30_days": flagged, "risk_band": band}
