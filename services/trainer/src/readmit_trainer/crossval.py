"""Quality measured the robust way: the whole training recipe (candidates, selection on an inner
validation part, threshold) cross-validated over patient-grouped, stratified folds.

The folds are fixed (seeded): every run and every candidate change is compared on the same
patients. One fixed test part is a single draw (its 15 % of patients proved unusually hard);
the mean and spread over five held-out folds say more.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from readmit_core.data import patient_split
from readmit_core.model import ReadmissionModel
from readmit_trainer.candidates import select
from readmit_trainer.evaluation import HEADLINE, max_f1_threshold, metrics
from readmit_trainer.export import to_scorer
from readmit_trainer.progress import progress

FOLDS_SEED = 20_260_101  # part of the benchmark's definition: the same folds every run


def cross_validate(X: np.ndarray, y: np.ndarray, patients: np.ndarray, candidates: list[str],
                   folds: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """Per fold: fit on the other folds' patients (their fixed hash split holds out 15 % for
    early stopping, selection and the threshold), score the held-out fold once."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=FOLDS_SEED)
    per_fold: list[dict[str, Any]] = []
    for k, (rest, held) in enumerate(splitter.split(X, y, groups=patients), start=1):
        inner = patient_split(patients[rest], (0.85, 0.15, 0.0))
        fit, val = rest[inner == 0], rest[inner == 1]
        best, _ = select(candidates, X[fit], y[fit], X[val], y[val], seed)
        model = ReadmissionModel(to_scorer(best.algorithm, best.estimator), 0.5, best.algorithm)
        threshold = max_f1_threshold(y[val], model.predict_proba(X[val]))
        scores = metrics(y[held], model.predict_proba(X[held]), threshold)
        per_fold.append({"algorithm": best.algorithm, "rows": len(held), **scores})
        progress(f"fold {k}/{folds}: {best.algorithm}, ROC AUC {scores['roc_auc']:.4f}")
    summary: dict[str, Any] = {"folds": folds, "seed": FOLDS_SEED, "per_fold": per_fold}
    for name in HEADLINE:
        values = np.array([f[name] for f in per_fold])
        summary[name] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1))}
    return summary
