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
    bins: tuple[str, ...]  # labels of codes 0..n-1 (the last holds everything above, e.g. "3+")
    scale: float = 1.0  # code = round(value * scale + offset): age midpoints 5..95 -> 0..9
    offset: float = 0.0

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.bins, MISSING)  # NaN: one more bin


def _choices(name: str) -> tuple[str, ...]:
    return tuple(str(c) for c in FIELDS_BY_NAME[name].choices)


INPUTS: tuple[DriftInput, ...] = (
    DriftInput("age", "age_years", AGE_BRACKETS, scale=0.1, offset=-0.5),
    DriftInput("admission_type", "admission_type_id", _choices("admission_type_id")),
    DriftInput("prior_inpatient", "number_inpatient", ("0", "1", "2", "3+")),
    DriftInput("a1c_result", "A1Cresult", _choices("A1Cresult")),
    DriftInput("primary_diagnosis", "diag_1_group", DIAGNOSIS_GROUPS),
)
# All inputs at once, as arrays: a handful of NumPy calls per request, whatever the row count.
_COLUMNS = np.array([FEATURE_NAMES.index(i.feature) for i in INPUTS])
_SCALE = np.array([i.scale for i in INPUTS])
_OFFSET = np.array([i.offset for i in INPUTS])
_TOP = np.array([len(i.bins) - 1 for i in INPUTS], dtype=np.float64)


def bin_rows(features: np.ndarray) -> np.ndarray:
    """Encoded feature rows -> each input's bin (rows x INPUTS), small ints."""
    values = features[:, _COLUMNS] * _SCALE + _OFFSET
    missing = np.isnan(values)  # NaN stays NaN through the arithmetic
    codes = np.minimum(np.maximum(np.rint(values), 0.0), _TOP)
    return np.where(missing, _TOP + 1, codes).astype(np.int8)


def shares(bins: np.ndarray) -> dict[str, list[float]]:
    """Per input, the share of rows in each bin (``labels`` order)."""
    out = {}
    for j, spec in enumerate(INPUTS):
        counts = np.bincount(bins[:, j].astype(np.int64), minlength=len(spec.labels))
        out[spec.name] = (counts / max(len(bins), 1)).tolist()
    return out


def baseline(features: np.ndarray, flagged_share: float) -> dict[str, Any]:
    """What the trainer saves with the model (validation rows)."""
    return {
        "flagged_share": flagged_share,
        "rows": len(features),
        "shares": shares(bin_rows(features)),
    }


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
