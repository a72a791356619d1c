"""The LightGBM candidate and CatBoost averaged in log-odds; served as ``BlendScorer`` of a
``LightGBMScorer`` and a ``CatBoostScorer`` (CatBoost's trees recounted by value:
``catboost_export``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from readmit_core.scoring import BlendScorer, CatBoostScorer
from readmit_trainer.candidates import catboost_export, lightgbm
from readmit_trainer.candidates.catboost_export import CAT_FEATURES, frame
from readmit_trainer.candidates.fitted import Fitted
from readmit_trainer.progress import progress

NAME = "lightgbm_catboost"

# CatBoost's counter statistics of categories and of their combinations (up to four fields
# together) find what LightGBM's one-field splits miss; blended 50/50 in log-odds with the
# LightGBM candidate. Learning rate 0.1 (not 0.05): about half the fitting time for ~0.0005 ROC
# AUC less on two CV folds.
CATBOOST_PARAMS: dict[str, Any] = {"depth": 6, "learning_rate": 0.1, "max_ctr_complexity": 4}
BLEND_WEIGHTS = (0.5, 0.5)  # LightGBM, CatBoost


@dataclass(frozen=True)
class CatBoostFit:
    model: Any  # catboost.CatBoostClassifier
    features: np.ndarray  # the rows it was fitted on: its counter tables are counted there
    y: np.ndarray


def fit_catboost(
    X: np.ndarray,
    y: np.ndarray,
    iterations: int,
    seed: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> CatBoostFit:
    from catboost import CatBoostClassifier, Pool

    stopping: dict[str, Any] = {}
    if validation is not None:  # early stopping; the validation rows stay out of the counters
        stopping = {
            "eval_metric": "AUC",
            "od_type": "Iter",
            "od_wait": 200,
            "counter_calc_method": "SkipTest",
        }
    model = CatBoostClassifier(
        iterations=iterations,
        random_seed=seed,
        thread_count=2,
        verbose=False,
        allow_writing_files=False,
        **CATBOOST_PARAMS,
        **stopping,
    )
    evaluation = None
    if validation is not None:
        evaluation = Pool(frame(validation[0]), validation[1], cat_features=CAT_FEATURES)
    model.fit(
        Pool(frame(X), y, cat_features=CAT_FEATURES),
        eval_set=evaluation,
        use_best_model=validation is not None,
    )
    return CatBoostFit(model, X, y)


def fit(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, seed: int) -> Fitted:
    """The LightGBM candidate and CatBoost (rounds by early stopping), averaged in log-odds."""
    trees = lightgbm.fit(X, y, Xv, yv, seed)
    progress(f"catboost {CATBOOST_PARAMS}: fitting (minutes on the full data)")
    fit = fit_catboost(X, y, 5000, seed, (Xv, yv))
    from catboost import Pool

    catboost = fit.model.predict(
        Pool(frame(Xv), cat_features=CAT_FEATURES), prediction_type="RawFormulaVal"
    )
    log_odds = (
        BLEND_WEIGHTS[0] * trees.estimator.predict(Xv, raw_score=True) + BLEND_WEIGHTS[1] * catboost
    )
    auc = float(roc_auc_score(yv, log_odds))
    params = {
        "lightgbm": trees.params,
        "weights": list(BLEND_WEIGHTS),
        "catboost": {**CATBOOST_PARAMS, "iterations": fit.model.tree_count_},
    }
    progress(f"lightgbm + catboost {params['catboost']}: validation ROC AUC {auc:.4f}")
    return Fitted(NAME, params, (trees.estimator, fit), auc)


def refit(params: dict[str, Any], X: np.ndarray, y: np.ndarray, fitted_rows: int, seed: int) -> Any:
    """Both models on more rows, each with rounds in proportion to the rows."""
    trees = lightgbm.refit(params["lightgbm"], X, y, fitted_rows, seed)
    rounds = max(1, round(params["catboost"]["iterations"] * len(y) / fitted_rows))
    progress(f"catboost: refitting {rounds} rounds")
    return trees, fit_catboost(X, y, rounds, seed)


def to_scorer(estimator: Any) -> BlendScorer:
    trees, fit = estimator  # (LGBMClassifier, CatBoostFit)
    catboost = CatBoostScorer(catboost_export.export(fit.model, fit.features, fit.y))
    return BlendScorer([lightgbm.to_scorer(trees), catboost], list(BLEND_WEIGHTS))
