"""The served model: raw encounter fields in, probability of readmission within 30 days out.

One object carries the scorer (which sees the ``readmit_core.features`` matrix), the decision
threshold chosen on validation, the diagnosis rates fitted with it and the encoding it was trained
with, so the api and MLflow's pyfunc run exactly what the trainer measured.
``readmit_core.artifact`` saves and loads it as data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from readmit_core.features import FEATURE_NAMES, encode_frame, encode_records
from readmit_core.schema import FIELDS, SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

    from readmit_core.diagnosis_rates import DiagnosisRates
    from readmit_core.scoring import Scorer


class IncompatibleModelError(RuntimeError):
    """The model was trained with another encoding than this package provides."""


@dataclass
class ReadmissionModel:
    scorer: Scorer  # risk(X) for X from readmit_core.features
    threshold: float  # risk at or above which the encounter is flagged
    algorithm: str  # e.g. "lightgbm", "logistic_regression"
    rates: DiagnosisRates  # the encoding's fitted part (training rows' ICD-9 readmission rates)
    feature_names: tuple[str, ...] = FEATURE_NAMES
    schema_version: str = SCHEMA_VERSION
    info: dict[str, Any] = field(default_factory=dict)  # training metrics, data, params

    def check_compatible(self) -> None:
        if tuple(self.feature_names) != FEATURE_NAMES or self.schema_version != SCHEMA_VERSION:
            raise IncompatibleModelError(
                f"model encoding (schema {self.schema_version}, {len(self.feature_names)} "
                f"features) differs from this package's (schema {SCHEMA_VERSION}, "
                f"{len(FEATURE_NAMES)} features)"
            )

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Risk for each row of an encoded feature matrix."""
        return self.scorer.risk(features)

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Validated records -> this model's feature matrix (the api's path: no DataFrame)."""
        return encode_records(records, self.rates)

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """A DataFrame in the data set's column format -> this model's feature matrix. Optional
        fields may be absent (all missing), as in the api."""
        absent = [f.name for f in FIELDS if f.nullable and f.name not in frame.columns]
        return encode_frame(frame.assign(**dict.fromkeys(absent)) if absent else frame, self.rates)

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Risk for validated records."""
        return self.predict_proba(self.encode_records(records))

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Risk for a DataFrame in the data set's column format."""
        return self.predict_proba(self.encode_frame(frame))
