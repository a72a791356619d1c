"""Candidate models, each tuned on the validation set only: one module per candidate, each with
its ``NAME``, ``fit`` (on the fitting rows, settings chosen on validation), ``refit`` (those
settings on more rows) and ``to_scorer`` (the fitted estimator as the scorer data that is
measured and served). Adding a candidate is one module and a line in ``CANDIDATES``."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from readmit_core.scoring import Scorer
from readmit_trainer.candidates import blend, lightgbm, logistic
from readmit_trainer.candidates.fitted import Fitted
from readmit_trainer.progress import progress

__all__ = ["CANDIDATES", "Candidate", "Fitted", "refit", "select", "to_scorer"]


class Candidate(Protocol):
    NAME: str

    def fit(
        self, X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, seed: int
    ) -> Fitted: ...

    def refit(
        self, params: dict[str, Any], X: np.ndarray, y: np.ndarray, fitted_rows: int, seed: int
    ) -> Any: ...

    def to_scorer(self, estimator: Any) -> Scorer: ...


CANDIDATES: dict[str, Candidate] = {m.NAME: m for m in (logistic, lightgbm, blend)}


def refit(chosen: Fitted, X: np.ndarray, y: np.ndarray, fitted_rows: int, seed: int) -> Any:
    """The chosen candidate's settings fitted again on more rows (training + validation)."""
    return CANDIDATES[chosen.algorithm].refit(chosen.params, X, y, fitted_rows, seed)


def to_scorer(algorithm: str, estimator: Any) -> Scorer:
    return CANDIDATES[algorithm].to_scorer(estimator)


def select(
    names: list[str], X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, seed: int
) -> tuple[Fitted, list[Fitted]]:
    """Fit each named candidate; the best on validation ROC AUC, and all of them."""
    fitted = []
    for name in names:
        progress(f"training {name}")
        fitted.append(CANDIDATES[name].fit(X, y, Xv, yv, seed))
    return max(fitted, key=lambda f: f.val_roc_auc), fitted
