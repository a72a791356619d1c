"""What a fitted model computes from the feature matrix, rebuilt from plain data.

A scorer is made from numbers and LightGBM's own text format, never from pickled objects, so a
model artifact can be read without running anything it carries; both are scored in NumPy.
``to_data`` gives what is saved (JSON-able parameters and named text files); ``from_data`` checks
and rebuilds it.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import numpy as np

from readmit_core.features import (
    CATEGORICAL_INDICES,
    CATEGORY_SIZES,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
)
from readmit_core.log_odds import to_risk
from readmit_core.oblivious import ObliviousModelError, ObliviousTrees
from readmit_core.trees import TreeEnsemble, TreeModelError


class ScorerError(ValueError):
    """The saved data does not describe a valid scorer."""


class Scorer(Protocol):
    kind: str

    def risk(self, features: np.ndarray) -> np.ndarray: ...

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        """(base, rows x features): each feature's share of the log-odds; they sum with the
        base to the row's log-odds."""
        ...

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]: ...


class BoosterScorer:
    """A LightGBM model from its text format (what ``Booster.model_to_string`` writes), scored
    in NumPy by ``readmit_core.trees``: serving needs neither LightGBM nor SciPy."""

    kind = "lightgbm"
    FILE = "booster.txt"

    def __init__(self, model_text: str) -> None:
        self.model_text = model_text
        try:
            self.trees = TreeEnsemble(model_text, len(FEATURE_NAMES))
        except TreeModelError as exc:
            raise ScorerError(f"not a LightGBM binary text model: {exc}") from None

    def risk(self, features: np.ndarray) -> np.ndarray:
        return self.trees.risk(features)

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        return self.trees.sigmoid * self.trees.raw(features)

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        return self.trees.contributions(features)

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        return {}, {self.FILE: self.model_text}

    @classmethod
    def from_data(cls, params: dict[str, Any], files: dict[str, str]) -> BoosterScorer:
        if cls.FILE not in files:
            raise ScorerError(f"{cls.FILE} is missing")
        return cls(files[cls.FILE])


class LinearScorer:
    """Logistic regression on median-imputed, standardised numbers and one-hot categories.

    Category codes run from -1 (missing) to size - 1; each categorical feature's weights are a
    table indexed by code + 1, and a code outside it weighs nothing (an unknown category).
    """

    kind = "linear"

    def __init__(self, medians: list[float], means: list[float], scales: list[float],
                 numeric_weights: list[float], category_weights: list[list[float]],
                 intercept: float) -> None:  # fmt: skip
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


class CatBoostScorer:
    """A CatBoost model as ``readmit_core.oblivious`` data (one JSON file), scored in NumPy:
    serving needs no CatBoost."""

    kind = "catboost"
    FILE = "catboost.json"

    def __init__(self, data: dict[str, Any], text: str | None = None) -> None:
        """``text``: ``data`` as read from the file, if it was (kept rather than the parsed
        dict, which a large model's counter tables make many times bigger)."""
        try:
            self.trees = ObliviousTrees(data)
        except ObliviousModelError as exc:
            raise ScorerError(str(exc)) from None
        self.text = json.dumps(data, separators=(",", ":")) if text is None else text

    def risk(self, features: np.ndarray) -> np.ndarray:
        return self.trees.risk(features)

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        return self.trees.raw(features)

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        return self.trees.contributions(features)

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        return {}, {self.FILE: self.text}

    @classmethod
    def from_data(cls, params: dict[str, Any], files: dict[str, str]) -> CatBoostScorer:
        if cls.FILE not in files:
            raise ScorerError(f"{cls.FILE} is missing")
        try:
            data = json.loads(files[cls.FILE])
        except ValueError as exc:
            raise ScorerError(f"{cls.FILE} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ScorerError(f"{cls.FILE} is not an object")
        return cls(data, files[cls.FILE])


PARTS: dict[str, type[BoosterScorer] | type[CatBoostScorer]] = {
    BoosterScorer.kind: BoosterScorer,
    CatBoostScorer.kind: CatBoostScorer,
}


class BlendScorer:
    """Tree models averaged in log-odds (weights summing to 1); their contributions and base
    values average the same way, so they still add up to the blend's log-odds."""

    kind = "blend"

    def __init__(self, parts: list[BoosterScorer | CatBoostScorer], weights: list[float]) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if not parts or w.shape != (len(parts),) or not np.isfinite(w).all() or (w < 0).any():
            raise ScorerError("a blend needs one non-negative weight per part")
        if abs(w.sum() - 1.0) > 1e-9:
            raise ScorerError(f"a blend's weights must sum to 1, not {w.sum()}")
        if len({p.kind for p in parts}) != len(parts):
            raise ScorerError("a blend's parts must be of different kinds (their files)")
        self.parts, self.weights = parts, w

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        return sum(w * p.log_odds(features) for p, w in zip(self.parts, self.weights, strict=True))

    def risk(self, features: np.ndarray) -> np.ndarray:
        return to_risk(self.log_odds(features))

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        base, out = 0.0, np.zeros((len(features), len(FEATURE_NAMES)))
        for part, w in zip(self.parts, self.weights, strict=True):
            part_base, part_out = part.contributions(features)
            base, out = base + w * part_base, out + w * part_out
        return base, out

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        specs, files = [], {}
        for part in self.parts:
            params, part_files = part.to_data()
            specs.append({"kind": part.kind, "params": params})
            files.update(part_files)
        return {"parts": specs, "weights": self.weights.tolist()}, files

    @classmethod
    def from_data(cls, params: dict[str, Any], files: dict[str, str]) -> BlendScorer:
        try:
            specs, weights = params["parts"], params["weights"]
            parts = [PARTS[spec["kind"]].from_data(spec["params"], files) for spec in specs]
        except (KeyError, TypeError) as exc:
            raise ScorerError(f"bad blend parameters: {exc!r}") from None
        return cls(parts, weights)


SCORERS: dict[str, Any] = {
    BoosterScorer.kind: BoosterScorer,
    LinearScorer.kind: LinearScorer,
    CatBoostScorer.kind: CatBoostScorer,
    BlendScorer.kind: BlendScorer,
}
