"""Feature encoding: encounter fields -> the model's numeric input matrix.

Two paths give identical numbers:

* ``encode_records`` — from validated records (dicts keyed by column name), with precomputed
  lookups and no DataFrame: what the api runs per request (~10 µs a record).
* ``encode_frame`` — vectorised over a pandas DataFrame in the data set's format: what the
  trainer runs over the whole data set.

Categories become their index in the schema's ``choices`` (missing -> NaN): fixed by the schema.
ICD-9 codes become a numeric value, the diagnosis group of Strack et al. (2014) and readmission
rates fitted on the training rows (``readmit_core.diagnosis_rates``, saved with the model): the
one fitted part, so both paths take the model's ``DiagnosisRates``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from readmit_core.diagnosis_rates import ANYWHERE_FEATURES, DIAGNOSES, RATE_FEATURES
from readmit_core.schema import AGE_BRACKETS, MEDICATIONS, MODEL_INPUTS, Kind

if TYPE_CHECKING:
    import pandas as pd

    from readmit_core.diagnosis_rates import DiagnosisRates

NAN = math.nan

# Diagnosis groups of Strack et al. 2014, Table 2; everything else (V and E codes too) is "other".
DIAGNOSIS_GROUPS = (
    "circulatory",
    "respiratory",
    "digestive",
    "diabetes",
    "injury",
    "musculoskeletal",
    "genitourinary",
    "neoplasms",
    "other",
)
_GROUP_RANGES = (
    ("circulatory", 390, 459, 785),
    ("respiratory", 460, 519, 786),
    ("digestive", 520, 579, 787),
    ("injury", 800, 999, None),
    ("musculoskeletal", 710, 739, None),
    ("genitourinary", 580, 629, 788),
    ("neoplasms", 140, 239, None),
)
_CATEGORIES = tuple(f for f in MODEL_INPUTS if f.kind is Kind.CATEGORY and f.name != "age")
COUNT_FEATURES = tuple(f.name for f in MODEL_INPUTS if f.kind is Kind.INTEGER)
_VISITS = ("number_outpatient", "number_emergency", "number_inpatient")

NUMERIC_FEATURES: tuple[str, ...] = (
    *COUNT_FEATURES,
    "age_years",  # midpoint of the bracket
    "total_visits",  # outpatient + emergency + inpatient visits in the prior year
    "med_changes",  # medications whose dose went up or down
    "meds_prescribed",  # medications prescribed at all
    *(f"{d}_value" for d in DIAGNOSES),  # the ICD-9 code as a number (V +1000, E +2000)
    *RATE_FEATURES,  # fitted readmission rates of the codes
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    *(f.name for f in _CATEGORIES),
    *(f"{d}_group" for d in DIAGNOSES),
)
FEATURE_NAMES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
# Factors made from several fields, as a clinician would name them: (label, the feature whose
# value the factor shows).
DERIVED_FACTORS: dict[str, tuple[str, str]] = {
    "total_visits": ("Prior-year visits, all kinds", "total_visits"),
    "med_changes": ("Medications changed in dose", "med_changes"),
    "meds_prescribed": ("Diabetes medications prescribed", "meds_prescribed"),
    "diagnoses_together": ("Diagnoses' readmission rates (highest)", "diagnoses_rate_max"),
}


def _factor(feature: str) -> str:
    if feature == "age_years":
        return "age"
    if feature in ANYWHERE_FEATURES:
        return "diagnoses_together"
    if feature.startswith("diag_"):  # diag_1_value, diag_1_group, diag_1_code_rate...
        return feature[: len("diag_1")]
    return feature


# The factor (schema field, or derived factor) each feature explains as: e.g. the ICD-9 value,
# the diagnosis group and the rates of diag_1 are all "diag_1".
FEATURE_FACTORS: tuple[str, ...] = tuple(_factor(name) for name in FEATURE_NAMES)
CATEGORICAL_INDICES: tuple[int, ...] = tuple(
    FEATURE_NAMES.index(name) for name in CATEGORICAL_FEATURES
)
# How many codes each categorical feature can take (for one-hot encoders).
CATEGORY_SIZES: tuple[int, ...] = (
    *(len(f.choices) for f in _CATEGORIES),
    *(len(DIAGNOSIS_GROUPS),) * len(DIAGNOSES),
)

_CODES: dict[str, dict[Any, float]] = {
    f.name: {value: float(i) for i, value in enumerate(f.choices)} for f in _CATEGORIES
}
# Per categorical field: (name, value -> code with None -> NaN), for the record path.
_CATEGORY_LOOKUPS = tuple((f.name, {**_CODES[f.name], None: NAN}) for f in _CATEGORIES)
_AGE_YEARS = {bracket: 5.0 + 10.0 * i for i, bracket in enumerate(AGE_BRACKETS)}
_CHANGED = frozenset(("Up", "Down"))


@lru_cache(maxsize=4096)
def icd9_features(code: str | None) -> tuple[float, float]:
    """(numeric value, diagnosis group code) of an ICD-9 code; (NaN, NaN) when missing."""
    if code is None:
        return NAN, NAN
    if code[0] in "VE":
        value = (1000.0 if code[0] == "V" else 2000.0) + float(code[1:])
        return value, float(DIAGNOSIS_GROUPS.index("other"))
    value = float(code)
    if math.floor(value) == 250:
        group = "diabetes"
    else:
        whole = int(value)
        group = next(
            (g for g, lo, hi, extra in _GROUP_RANGES if lo <= whole <= hi or whole == extra),
            "other",
        )
    return value, float(DIAGNOSIS_GROUPS.index(group))


def encode_record(record: Mapping[str, Any], rates: DiagnosisRates) -> list[float]:
    """One validated record -> its feature row (in ``FEATURE_NAMES`` order)."""
    counts = [float(record[name]) for name in COUNT_FEATURES]
    icd9 = [record[d] for d in DIAGNOSES]
    diagnoses = [icd9_features(c) for c in icd9]
    doses = [record[m] for m in MEDICATIONS]
    return [
        *counts,
        _AGE_YEARS.get(record["age"], NAN),
        float(sum(record[v] for v in _VISITS)),
        float(sum(d in _CHANGED for d in doses)),
        float(sum(d != "No" for d in doses)),
        *(value for value, _ in diagnoses),
        *rates.row(icd9),
        # unknown -> NaN as in encode_frame (the api's records are validated: never unknown)
        *[codes.get(record[name], NAN) for name, codes in _CATEGORY_LOOKUPS],
        *(group for _, group in diagnoses),
    ]


def encode_records(records: Sequence[Mapping[str, Any]], rates: DiagnosisRates) -> np.ndarray:
    """Validated records -> the (n, n_features) float64 input matrix, no DataFrame involved."""
    return np.array([encode_record(r, rates) for r in records], dtype=np.float64).reshape(
        len(records), len(FEATURE_NAMES)
    )


def diagnosis_codes(frame: pd.DataFrame) -> list[list[str | None]]:
    """The frame's ICD-9 codes per diagnosis position (None for missing)."""
    return [frame[d].astype(object).where(frame[d].notna(), None).tolist() for d in DIAGNOSES]


def encode_frame(frame: pd.DataFrame, rates: DiagnosisRates) -> np.ndarray:
    """A DataFrame with the schema's columns (missing values as NaN/None) -> the input matrix."""
    import pandas as pd

    out = np.empty((len(frame), len(FEATURE_NAMES)), dtype=np.float64)
    column = {name: i for i, name in enumerate(FEATURE_NAMES)}
    for name in COUNT_FEATURES:
        out[:, column[name]] = frame[name].to_numpy(dtype=np.float64)
    out[:, column["age_years"]] = frame["age"].map(_AGE_YEARS).to_numpy(dtype=np.float64)
    out[:, column["total_visits"]] = frame[list(_VISITS)].to_numpy(dtype=np.float64).sum(axis=1)
    doses = frame[list(MEDICATIONS)]
    out[:, column["med_changes"]] = doses.isin(_CHANGED).sum(axis=1).to_numpy(dtype=np.float64)
    out[:, column["meds_prescribed"]] = (doses != "No").sum(axis=1).to_numpy(dtype=np.float64)
    codes = diagnosis_codes(frame)
    rate_columns = [column[name] for name in RATE_FEATURES]
    out[:, rate_columns] = rates.rows(codes)
    for d, column_codes in zip(DIAGNOSES, codes, strict=True):
        pairs = [icd9_features(c) for c in column_codes]
        out[:, column[f"{d}_value"]] = np.fromiter((p[0] for p in pairs), np.float64, len(pairs))
        out[:, column[f"{d}_group"]] = np.fromiter((p[1] for p in pairs), np.float64, len(pairs))
    for f in _CATEGORIES:
        out[:, column[f.name]] = (
            pd.Series(frame[f.name].to_numpy(dtype=object))
            .map(_CODES[f.name])
            .to_numpy(dtype=np.float64, na_value=NAN)
        )
    return out
