"""Tree models of different libraries averaged in log-odds."""

from __future__ import annotations

from typing import Any

import numpy as np

from readmit_core.features import FEATURE_NAMES
from readmit_core.scoring.catboost import CatBoostScorer
from readmit_core.scoring.lightgbm import LightGBMScorer
from readmit_core.scoring.log_odds import to_risk
from readmit_core.scoring.protocol import ScorerError

PARTS: dict[str, type[LightGBMScorer] | type[CatBoostScorer]] = {
    LightGBMScorer.kind: LightGBMScorer,
    CatBoostScorer.kind: CatBoostScorer,
}


class BlendScorer:
    """Tree models averaged in log-odds (weights summing to 1); their contributions and base
    values average the same way, so they still add up to the blend's log-odds."""

    kind = "blend"

    def __init__(self, parts: list[LightGBMScorer | CatBoostScorer], weights: list[float]) -> None:
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
