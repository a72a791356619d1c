"""Why a risk: the model's log-odds split into the encounter's fields ("factors").

Each scorer gives every feature's share of the log-odds (``Scorer.contributions``); features made
from one field count as that field (the ICD-9 value, diagnosis group and readmission rates of
``diag_1`` are all "Diagnosis 1 (ICD-9)"), features made from several are factors of their own
(``features.DERIVED_FACTORS``). The base value plus every factor equals the log-odds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from readmit_core.diagnosis_rates import RATE_FEATURES
from readmit_core.features import DERIVED_FACTORS, FEATURE_FACTORS, FEATURE_NAMES
from readmit_core.model import ReadmissionModel
from readmit_core.schema import FIELDS_BY_NAME

FACTORS: tuple[str, ...] = tuple(dict.fromkeys(FEATURE_FACTORS))
# features x factors: 1 where a feature belongs to a factor.
_GROUPING = np.array([[float(f == factor) for factor in FACTORS] for f in FEATURE_FACTORS])
# A derived factor shows one feature's value (no single field holds it).
_DERIVED_COLUMNS = {
    factor: FEATURE_NAMES.index(feature) for factor, (_, feature) in DERIVED_FACTORS.items()
}


def label(factor: str) -> str:
    derived = DERIVED_FACTORS.get(factor)
    return derived[0] if derived else FIELDS_BY_NAME[factor].label


def _shown(factor: str, value: float) -> str:
    """A derived value as read: a rate in per cent, a count as is."""
    return f"{value:.1%}" if DERIVED_FACTORS[factor][1] in RATE_FEATURES else f"{value:g}"


def factor_contributions(model: ReadmissionModel, features: np.ndarray) -> tuple[float, np.ndarray]:
    """(base log-odds, rows x ``FACTORS`` contributions in log-odds)."""
    base, per_feature = model.scorer.contributions(features)
    return base, per_feature @ _GROUPING


def explain(
    model: ReadmissionModel, features: np.ndarray, records: Sequence[Mapping[str, Any]], top: int
) -> list[dict[str, Any]]:
    """Per row: the base log-odds, the ``top`` factors by size (field, label, the encounter's
    value and its label, contribution), the rest summed, and the log-odds they add up to."""
    base, contributions = factor_contributions(model, features)
    out = []
    for row, record, values in zip(features, records, contributions, strict=True):
        order = np.argsort(-np.abs(values), kind="stable")
        factors = []
        for i in order[:top]:
            name = FACTORS[i]
            if name in _DERIVED_COLUMNS:
                value: Any = float(row[_DERIVED_COLUMNS[name]])
                shown = _shown(name, value)
            else:
                value = record[name]
                shown = FIELDS_BY_NAME[name].label_of(value) if value is not None else "missing"
            factors.append(
                {
                    "field": name,
                    "label": label(name),
                    "value": value,
                    "value_label": shown,
                    "contribution": float(values[i]),
                }
            )
        out.append(
            {
                "base_log_odds": float(base),
                "factors": factors,
                "other_factors": float(values[order[top:]].sum()),
                "log_odds": float(base + values.sum()),
            }
        )
    return out


def importance(model: ReadmissionModel, features: np.ndarray) -> dict[str, float]:
    """Global importance: each factor's mean absolute contribution over ``features`` (log-odds),
    largest first."""
    _, contributions = factor_contributions(model, features)
    means = np.abs(contributions).mean(axis=0)
    return {FACTORS[i]: float(means[i]) for i in np.argsort(-means, kind="stable")}
