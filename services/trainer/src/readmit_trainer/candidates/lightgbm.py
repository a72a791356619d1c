"""Gradient-boosted trees with LightGBM's native categorical splits; served as ``LightGBMScorer``
(its own text model, scored without LightGBM)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from readmit_core.features import CATEGORICAL_INDICES
from readmit_core.scoring import LightGBMScorer
from readmit_trainer.candidates.fitted import Fitted
from readmit_trainer.progress import progress

NAME = "lightgbm"

# Regularised trees with smoothed categorical splits (medical specialty has 72 levels), small
# enough to serve: the api scores every split cell of every tree per row. A second setting (63
# leaves, depth 6, learning rate 0.02) won 3 of 5 CV folds' validation, for a CV ROC AUC of
# 0.6827 against 0.6824 without it, but its ~1,300 refit trees of up to 62 splits (10x the cells)
# made single-record p50 at c=1 1.68 ms in `make bench-api` (goal <= 1 ms).
LIGHTGBM_GRID: tuple[dict[str, Any], ...] = (
    {
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 100,
        "colsample_bytree": 0.5,
        "reg_lambda": 5.0,
        "cat_smooth": 50.0,
        "min_data_per_group": 200,
    },
)


def _lightgbm_model(params: dict[str, Any], seed: int) -> Any:
    import lightgbm as lgb

    return lgb.LGBMClassifier(
        random_state=seed, n_jobs=2, deterministic=True, force_col_wise=True, verbose=-1, **params
    )


def fit(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, seed: int) -> Fitted:
    """Gradient-boosted trees with native categorical splits; rounds by early stopping."""
    import lightgbm as lgb

    # Small subsamples cannot fill the default leaf and category minimums.
    scale = min(1.0, len(y) / 50_000)
    best: Fitted | None = None
    for params in LIGHTGBM_GRID:
        p = dict(params)
        p["min_child_samples"] = max(5, int(p["min_child_samples"] * scale))
        p["min_data_per_group"] = max(5, int(p["min_data_per_group"] * scale))
        model = _lightgbm_model({**p, "n_estimators": 5000}, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eval_set's deprecation notice in lightgbm 4.7
            model.fit(
                X,
                y,
                eval_set=[(Xv, yv)],
                eval_metric="auc",
                categorical_feature=list(CATEGORICAL_INDICES),
                callbacks=[lgb.early_stopping(200, verbose=False)],
            )
        auc = float(roc_auc_score(yv, model.predict_proba(Xv)[:, 1]))
        p["n_estimators"] = int(model.best_iteration_ or model.n_estimators)
        progress(f"lightgbm {p}: validation ROC AUC {auc:.4f}")
        if best is None or auc > best.val_roc_auc:
            best = Fitted(NAME, p, model, auc)
    assert best is not None
    return best


def refit(params: dict[str, Any], X: np.ndarray, y: np.ndarray, fitted_rows: int, seed: int) -> Any:
    """``fit``'s settings on more rows, with rounds in proportion to the rows (early stopping
    found the count for ``fitted_rows``)."""
    rounds = max(1, round(params["n_estimators"] * len(y) / fitted_rows))
    model = _lightgbm_model({**params, "n_estimators": rounds}, seed)
    model.fit(X, y, categorical_feature=list(CATEGORICAL_INDICES))
    return model


def to_scorer(estimator: Any) -> LightGBMScorer:
    best = getattr(estimator, "best_iteration_", None) or -1
    return LightGBMScorer(estimator.booster_.model_to_string(num_iteration=best))
