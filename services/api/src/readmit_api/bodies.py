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
    field: str = Field(
        examples=["number_inpatient"],
        description="the schema field, or a feature made from several",
    )
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


# --- The Open Inference Protocol's bodies (routes_oip.py), for the OpenAPI document ---------


class OipError(BaseModel):
    error: str = Field(examples=["input 'age' row 0: Input should be '[0-10)', ..."])


class OipLive(BaseModel):
    live: bool


class OipReady(BaseModel):
    ready: bool


class OipServer(BaseModel):
    name: str = Field(examples=["readmit-api"])
    version: str = Field(examples=["0.1.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data"]])


class OipTensorSpec(BaseModel):
    name: str = Field(examples=["age"])
    datatype: str = Field(examples=["BYTES"])
    shape: list[int] = Field(examples=[[-1]])


class OipModel(BaseModel):
    name: str = Field(examples=["diabetes-readmission"])
    versions: list[str] = Field(examples=[["3"]])
    platform: str = Field(examples=["readmit-lightgbm_catboost"])
    inputs: list[OipTensorSpec]
    outputs: list[OipTensorSpec]


class OipModelReady(BaseModel):
    name: str
    ready: bool


class OipOutput(BaseModel):
    name: str = Field(examples=["readmission_risk"])
    datatype: str = Field(examples=["FP64"])
    shape: list[int] = Field(examples=[[1]])
    data: list[Any] | None = Field(None, description="absent when sent as binary data")
    parameters: dict[str, Any] | None = Field(None, examples=[{"binary_data_size": 8}])


class OipResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] = Field(examples=[{"threshold": 0.144}])
    outputs: list[OipOutput]


# --- MLflow's scoring protocol's bodies (routes_mlflow.py) ----------------------------------


class MlflowError(BaseModel):
    error_code: str = Field(examples=["BAD_REQUEST"])
    message: str


class MlflowPredictions(BaseModel):
    predictions: list[float] = Field(examples=[[0.112, 0.231]])
