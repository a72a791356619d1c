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
from readmit_trainer.candidates import Fitted, refit, select
from readmit_trainer.evaluation import max_f1_threshold, metrics
from readmit_trainer.export import to_scorer
from readmit_trainer.progress import progress

if TYPE_CHECKING:
    import pandas as pd

RATE_COLUMNS = [FEATURE_NAMES.index(name) for name in RATE_FEATURES]


def encode_for_fit(frame: pd.DataFrame, y: np.ndarray, fit: np.ndarray, patients: np.ndarray,
                   seed: int) -> tuple[np.ndarray, DiagnosisRates]:  # fmt: skip
    """Every row's features with rates fitted on the ``fit`` rows (indices); the fit rows' own
    rates out of fold, so the model learns how far a rate it did not see generalises."""
    codes = [np.asarray(c, dtype=object)[fit] for c in diagnosis_codes(frame)]
    rates = DiagnosisRates.fit(codes, y[fit])
    X = encode_frame(frame, rates)
    X[np.ix_(fit, RATE_COLUMNS)] = out_of_fold(codes, y[fit], patients[fit], seed)
    return X, rates


@dataclass(frozen=True)
class Recipe:
    model: ReadmissionModel  # refit on fitting + validation rows; threshold from validation
    features: np.ndarray  # every row encoded with the model's rates (score held-out rows here)
    chosen: Fitted  # the pick, as fitted on the fitting rows only
    candidates: list[Fitted]
    validation: dict[str, Any]  # the pick's metrics on validation, before the refit


def fit_recipe(frame: pd.DataFrame, y: np.ndarray, patients: np.ndarray, fit: np.ndarray,
               val: np.ndarray, candidates: list[str], seed: int) -> Recipe:  # fmt: skip
    """``fit`` and ``val``: row indices. Rows in neither are never seen (score them after)."""
    X, rates = encode_for_fit(frame, y, fit, patients, seed)
    chosen, fitted = select(candidates, X[fit], y[fit], X[val], y[val], seed)
    progress(f"selected {chosen.algorithm} (validation ROC AUC {chosen.val_roc_auc:.4f})")
    picked = ReadmissionModel(to_scorer(chosen.algorithm, chosen.estimator), 0.5,
                              chosen.algorithm, rates)  # fmt: skip
    val_risk = picked.predict_proba(X[val])
    threshold = max_f1_threshold(y[val], val_risk)
    both = np.concatenate([fit, val])
    X_all, rates_all = encode_for_fit(frame, y, both, patients, seed)
    progress(f"refitting {chosen.algorithm} on training + validation ({len(both)} rows)")
    estimator = refit(chosen, X_all[both], y[both], len(fit), seed)
    model = ReadmissionModel(to_scorer(chosen.algorithm, estimator), threshold, chosen.algorithm,
                             rates_all)  # fmt: skip
    return Recipe(model, X_all, chosen, fitted, metrics(y[val], val_risk, threshold))
