"""The training recipe, one function for the registered model and for each CV fold: encode with
diagnosis rates fitted on the fitting rows, pick a candidate on validation, set the threshold
there, then refit the pick on fitting + validation rows (more data; nothing left to choose)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from readmit_core.diagnosis_rates import RATE_FEATURES, DiagnosisRates, out_of_fold
from readmit_core.features import FEATURE_NAMES, diagnosis_codes, encode_frame
from readmit_core.model import ReadmissionModel
from readmit_trainer.candidates import Fitted, refit, select, to_scorer
from readmit_trainer.evaluation import max_f1_threshold, metrics
from readmit_trainer.progress import progress

if TYPE_CHECKING:
    import pandas as pd

RATE_COLUMNS = [FEATURE_NAMES.index(name) for name in RATE_FEATURES]


def _fit_rates(
    codes: list[np.ndarray], y: np.ndarray, fit: np.ndarray, patients: np.ndarray, seed: int
) -> tuple[DiagnosisRates, np.ndarray]:
    """Rates fitted on the ``fit`` rows (indices), and those rows' own rates out of fold, so the
    model learns how far a rate it did not see generalises."""
    fit_codes = [c[fit] for c in codes]
    own = out_of_fold(fit_codes, y[fit], patients[fit], seed)
    return DiagnosisRates.fit(fit_codes, y[fit]), own


@dataclass(frozen=True)
class Recipe:
    model: ReadmissionModel  # refit on fitting + validation rows; threshold from validation
    features: np.ndarray  # every row encoded with the model's rates (score held-out rows here)
    chosen: Fitted  # the pick, as fitted on the fitting rows only
    candidates: list[Fitted]
    validation: dict[str, Any]  # the pick's metrics on validation, before the refit


def fit_recipe(
    frame: pd.DataFrame,
    y: np.ndarray,
    patients: np.ndarray,
    fit: np.ndarray,
    val: np.ndarray,
    candidates: list[str],
    seed: int,
) -> Recipe:
    """``fit`` and ``val``: row indices. Rows in neither are never seen (score them after)."""
    codes = [np.asarray(c, dtype=object) for c in diagnosis_codes(frame)]
    rates, own = _fit_rates(codes, y, fit, patients, seed)
    X = encode_frame(frame, rates)
    X[np.ix_(fit, RATE_COLUMNS)] = own
    chosen, fitted = select(candidates, X[fit], y[fit], X[val], y[val], seed)
    progress(f"selected {chosen.algorithm} (validation ROC AUC {chosen.val_roc_auc:.4f})")
    picked = ReadmissionModel(
        to_scorer(chosen.algorithm, chosen.estimator), 0.5, chosen.algorithm, rates
    )
    val_risk = picked.predict_proba(X[val])
    threshold = max_f1_threshold(y[val], val_risk)
    both = np.concatenate([fit, val])
    # The refit's rates: only those columns change (the rest of the encoding is not redone).
    rates_all, own = _fit_rates(codes, y, both, patients, seed)
    X_all = X.copy()
    X_all[:, RATE_COLUMNS] = rates_all.rows(codes)
    X_all[np.ix_(both, RATE_COLUMNS)] = own
    progress(f"refitting {chosen.algorithm} on training + validation ({len(both)} rows)")
    estimator = refit(chosen, X_all[both], y[both], len(fit), seed)
    model = ReadmissionModel(
        to_scorer(chosen.algorithm, estimator), threshold, chosen.algorithm, rates_all
    )
    return Recipe(model, X_all, chosen, fitted, metrics(y[val], val_risk, threshold))
