"""Request and response bodies of the routes (the encounter itself: ``readmit_core.encounter``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from readmit_core.encounter import Encounter
from readmit_core.schema import example_encounter

RiskBand = Literal["low", "medium", "high"]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    encounters: list[Encounter] = Field(  # type: ignore[valid-type]
        min_length=1, description="Encounters to score; at most READMIT_MAX_BATCH (413 beyond)"
    )


class ModelRef(BaseModel):
    name: str = Field(examples=["diabetes-readmission"])
    version: str = Field(examples=["3"])
    alias: str | None = Field(examples=["production"])


class Factor(BaseModel):
    field: str = Field(examples=["number_inpatient"],
                       description="the schema field, or a feature made from several")  # fmt: skip
    label: str = Field(examples=["Inpatient stays (prior year)"])
    value: Any = Field(examples=[3], description="the encounter's value")
    value_label: str = Field(examples=["3"], description="the value as the UI shows it")
    contribution: float = Field(
        examples=[0.41], description="log-odds this field adds (> 0 raises the risk)"
    )


class Explanation(BaseModel):
    base_log_odds: float = Field(description="the model's log-odds before any field is seen")
    factors: list[Factor] = Field(description="the largest contributions first (?top=, 5)")
    other_factors: float = Field(description="the remaining fields' contributions, summed")
    log_odds: float = Field(
        description="base + every contribution: the log-odds of readmission_risk"
    )


class Risk(BaseModel):
    readmission_risk: float = Field(
        ge=0, le=1, examples=[0.23], description="probability of readmission within 30 days"
    )
    readmitted_within_30_days: bool = Field(
        examples=[True], description="risk at or above the model's threshold"
    )
    risk_band: RiskBand = Field(
        examples=["medium"],
        description="low: below the threshold; medium: flagged; high: at or above the high-risk "
        "cut-off (READMIT_HIGH_RISK_BAND)",
    )
    explanation: Explanation | None = Field(None, description="with ?explain=true only")


class Prediction(Risk):
    threshold: float = Field(examples=[0.144], description="the model's decision threshold")
    model: ModelRef


class BatchPrediction(BaseModel):
    count: int = Field(examples=[2])
    threshold: float = Field(examples=[0.144])
    model: ModelRef
    predictions: list[Risk] = Field(description="in the order of the request's encounters")


class FieldError(BaseModel):
    field: str = Field(examples=["time_in_hospital"], description="which field")
    index: int | None = Field(
        None, examples=[None], description="which encounter of a batch (0-based)"
    )
    message: str = Field(examples=["Input should be less than or equal to 14"])
    type: str = Field(examples=["less_than_equal"])
    allowed: list[Any] | None = Field(None, description="the allowed values, for a category")


class ValidationProblem(BaseModel):
    detail: str = Field(examples=["1 invalid field"])
    errors: list[FieldError] = Field(description="the first 50 errors")
    more_errors: int = Field(0, examples=[0], description="errors beyond those listed")


class Problem(BaseModel):
    detail: str = Field(examples=["no model loaded yet"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    reason: str | None = None
    model: ModelRef | None = None


EXAMPLE_ENCOUNTER = example_encounter()
