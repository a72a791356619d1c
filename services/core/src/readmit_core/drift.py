"""Input drift: a few key inputs binned the same way at training and in the api, compared by
the population stability index (PSI).

The trainer saves each input's share per bin on the validation set, and the flagged share at the
threshold, with the model (``model.info["drift_baseline"]``): a new version brings its own
baseline. The api bins the live encounters the same way (``bin_rows``) over a sliding window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from readmit_core.features import DIAGNOSIS_GROUPS, FEATURE_NAMES
from readmit_core.schema import AGE_BRACKETS, FIELDS_BY_NAME

MISSING = "missing"
_SMOOTHING = 1e-4  # an empty bin counts as this share: PSI stays finite


@dataclass(frozen=True)
class DriftInput:
    name: str  # the metric's "input" label
    feature: str  # its column in FEATURE_NAMES
    bins: tuple[str, ...]  # labels of codes 0..n-1; one more bin, "missing", for NaN
    cap: int | None = None  # counts: the last bin holds cap and above

    def bin_of(self, column: np.ndarray) -> np.ndarray:
        missing = np.isnan(column)
        codes = np.nan_to_num(column, nan=0.0)
        if self.feature == "age_years":  # bracket midpoints 5, 15, ..., 95
            codes = np.round((codes - 5.0) / 10.0)
        if self.cap is not None:
            codes = np.minimum(codes, self.cap)
        codes = np.clip(codes, 0, len(self.bins) - 1).astype(np.int64)
        return np.where(missing, len(self.bins), codes)

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.bins, MISSING)


def _choices(name: str) -> tuple[str, ...]:
    return tuple(str(c) for c in FIELDS_BY_NAME[name].choices)


INPUTS: tuple[DriftInput, ...] = (
    DriftInput("age", "age_years", AGE_BRACKETS),
    DriftInput("admission_type", "admission_type_id", _choices("admission_type_id")),
    DriftInput("prior_inpatient", "number_inpatient", ("0", "1", "2", "3+"), cap=3),
    DriftInput("a1c_result", "A1Cresult", _choices("A1Cresult")),
    DriftInput("primary_diagnosis", "diag_1_group", DIAGNOSIS_GROUPS),
)
_COLUMNS = [FEATURE_NAMES.index(i.feature) for i in INPUTS]


def bin_rows(features: np.ndarray) -> np.ndarray:
    """Encoded feature rows -> each input's bin (rows x INPUTS), small ints."""
    return np.column_stack([
        i.bin_of(features[:, c]) for i, c in zip(INPUTS, _COLUMNS, strict=True)
    ]).astype(np.int8)  # fmt: skip


def shares(bins: np.ndarray) -> dict[str, list[float]]:
    """Per input, the share of rows in each bin (``labels`` order)."""
    out = {}
    for j, spec in enumerate(INPUTS):
        counts = np.bincount(bins[:, j].astype(np.int64), minlength=len(spec.labels))
        out[spec.name] = (counts / max(len(bins), 1)).tolist()
    return out


def baseline(features: np.ndarray, flagged_share: float) -> dict[str, Any]:
    """What the trainer saves with the model (validation rows)."""
    return {"flagged_share": flagged_share, "rows": len(features),
            "shares": shares(bin_rows(features))}  # fmt: skip


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected).
    Rules of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _SMOOTHING), max(a, _SMOOTHING)
        total += (a - e) * math.log(a / e)
    return total


def valid_baseline(data: Any) -> Mapping[str, Any] | None:
    """The baseline if it has every input with the right number of bins (else None: an older
    model, or another encoding)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("shares"), Mapping):
        return None
    for spec in INPUTS:
        values = data["shares"].get(spec.name)
        if not isinstance(values, list) or len(values) != len(spec.labels):
            return None
    return data
