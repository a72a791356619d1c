"""Logistic regression as plain numbers, scored in NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np

from readmit_core.features import CATEGORICAL_INDICES, CATEGORY_SIZES, NUMERIC_FEATURES
from readmit_core.scoring.log_odds import to_risk
from readmit_core.scoring.protocol import ScorerError


class LinearScorer:
    """Logistic regression on median-imputed, standardised numbers and one-hot categories.

    Category codes run from -1 (missing) to size - 1; each categorical feature's weights are a
    table indexed by code + 1, and a code outside it weighs nothing (an unknown category).
    """

    kind = "linear"

    def __init__(
        self,
        medians: list[float],
        means: list[float],
        scales: list[float],
        numeric_weights: list[float],
        category_weights: list[list[float]],
        intercept: float,
    ) -> None:
        n_num, sizes = len(NUMERIC_FEATURES), [n + 1 for n in CATEGORY_SIZES]
        arrays = [
            np.asarray(a, dtype=np.float64) for a in (medians, means, scales, numeric_weights)
        ]
        if any(a.shape != (n_num,) for a in arrays):
            raise ScorerError(f"numeric parameters must have {n_num} values each")
        if [len(w) for w in category_weights] != sizes:
            raise ScorerError(f"category weight tables must have {sizes} values")
        tables = [np.asarray(w, dtype=np.float64) for w in category_weights]
        if not all(np.isfinite(a).all() for a in (*arrays, *tables)) or not np.isfinite(intercept):
            raise ScorerError("linear parameters must be finite numbers")
        if (arrays[2] <= 0).any():
            raise ScorerError("scales must be positive")
        self.medians, self.means, self.scales, self.numeric_weights = arrays
        self.category_weights = tables
        self.intercept = float(intercept)
        self._numeric = np.arange(n_num)

    def risk(self, features: np.ndarray) -> np.ndarray:
        base, terms = self.contributions(features)
        return to_risk(base + terms.sum(axis=1))

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        """The intercept, and per feature its term of the logit: weight x standardised number
        (0 at the training mean), or the weight of the row's category (0 if unknown)."""
        terms = np.zeros(features.shape)
        numbers = features[:, self._numeric]
        numbers = np.where(np.isnan(numbers), self.medians, numbers)
        terms[:, self._numeric] = (numbers - self.means) / self.scales * self.numeric_weights
        for column, table in zip(CATEGORICAL_INDICES, self.category_weights, strict=True):
            codes = np.nan_to_num(features[:, column], nan=-1.0).astype(np.int64) + 1
            known = (codes >= 0) & (codes < len(table))
            terms[:, column] = np.where(known, table[np.clip(codes, 0, len(table) - 1)], 0.0)
        return self.intercept, terms

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        params = {
            "medians": self.medians.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "numeric_weights": self.numeric_weights.tolist(),
            "category_weights": [t.tolist() for t in self.category_weights],
            "intercept": self.intercept,
        }
        return params, {}

    @classmethod
    def from_data(cls, params: dict[str, Any], files: dict[str, str]) -> LinearScorer:
        try:
            return cls(**params)
        except (TypeError, ValueError) as exc:
            raise ScorerError(f"bad linear parameters: {exc}") from None
