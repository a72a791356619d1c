"""Request bodies for the load test: real encounters from the data set, through the schema."""

from __future__ import annotations

from typing import Any

from readmit_core.data import load_encounters, to_records
from readmit_core.encounter import Encounter, encounter_record


def real_encounters(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` encounters of the UCI data set (READMIT_DATA, or downloaded), each validated."""
    frame = load_encounters()  # READMIT_DATA, or the download (readmit_core.settings)
    sample = frame.sample(n=min(count, len(frame)), random_state=seed)
    return [encounter_record(Encounter.model_validate(r)) for r in to_records(sample)]


def check_prediction(body: Any) -> str | None:
    """Why a /predict result is wrong, or None when it is right."""
    if not isinstance(body, dict):
        return "not a JSON object"
    risk = body.get("readmission_risk")
    if not isinstance(risk, float | int) or not 0.0 <= risk <= 1.0:
        return "readmission_risk missing or outside [0, 1]"
    if body.get("risk_band") not in ("low", "medium", "high"):
        return "risk_band is not low, medium or high"
    if not isinstance(body.get("readmitted_within_30_days"), bool):
        return "readmitted_within_30_days is not a boolean"
    return None


def status_problem(response: Any) -> str:
    """A failed response's reason: its status, or the connection error when none came back."""
    if response.status_code:
        return f"status {response.status_code}"
    return f"no response: {type(response.error).__name__}: {response.error}"[:300]
