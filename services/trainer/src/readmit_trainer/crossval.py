"""Quality measured the robust way: the whole training recipe (candidates, selection on an inner
validation part, threshold) cross-validated over patient-grouped, stratified folds.

The folds are fixed (seeded): every run and every candidate change is compared on the same
patients. One fixed test part is a single draw (its 15 % of patients proved unusually hard);
the mean and spread over five held-out folds say more.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from readmit_core.data import patient_split
from readmit_trainer.evaluation import HEADLINE, by_group, metrics
from readmit_trainer.progress import progress
from readmit_trainer.recipe import fit_recipe

if TYPE_CHECKING:
    import pandas as pd

FOLDS_SEED = 20_260_101  # part of the benchmark's definition: the same folds every run


def cross_validate(
    frame: pd.DataFrame,
    y: np.ndarray,
    patients: np.ndarray,
    candidates: list[str],
    folds: int,
    seed: int,
) -> dict[str, Any]:
    """Per fold: the whole recipe (``readmit_trainer.recipe``) on the other folds' patients, their
    fixed hash split holding out 15 % for early stopping, selection and the threshold; score the
    held-out fold once; and per group (``evaluation.by_group``) over the out-of-fold risks."""
    started = time.monotonic()
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=FOLDS_SEED)
    per_fold: list[dict[str, Any]] = []
    risk = np.full(len(y), np.nan)  # out of fold: each row scored by the fold that held it out
    for k, (rest, held) in enumerate(splitter.split(y, y, groups=patients), start=1):
        inner = patient_split(patients[rest], (0.85, 0.15, 0.0))
        recipe = fit_recipe(
            frame, y, patients, rest[inner == 0], rest[inner == 1], candidates, seed
        )
        model = recipe.model
        risk[held] = model.predict_proba(recipe.features[held])
        scores = metrics(y[held], risk[held], model.threshold)
        per_fold.append({"algorithm": model.algorithm, "rows": len(held), **scores})
        progress(f"fold {k}/{folds}: {model.algorithm}, ROC AUC {scores['roc_auc']:.4f}")
    summary: dict[str, Any] = {
        "folds": folds,
        "seed": FOLDS_SEED,
        "per_fold": per_fold,
        "by_group": by_group(frame, y, risk),
        "seconds": round(time.monotonic() - started, 1),
    }
    for name in HEADLINE:
        values = np.array([f[name] for f in per_fold])
        summary[name] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1))}
    return summary
