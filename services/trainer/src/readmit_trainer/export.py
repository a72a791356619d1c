"""A fitted candidate -> its scorer as data (readmit_core.scorers): what is measured and served."""

from __future__ import annotations

from typing import Any

import numpy as np

from readmit_core.features import CATEGORY_SIZES, NUMERIC_FEATURES
from readmit_core.scorers import BlendScorer, BoosterScorer, CatBoostScorer, LinearScorer, Scorer
from readmit_trainer import catboost_export


def to_scorer(algorithm: str, estimator: Any) -> Scorer:
    if algorithm == "lightgbm":
        return _booster(estimator)
    if algorithm == "logistic_regression":
        return _linear(estimator)
    if algorithm == "lightgbm_catboost":
        from readmit_trainer.candidates import BLEND_WEIGHTS

        trees, fit = estimator  # (LGBMClassifier, candidates.CatBoostFit)
        catboost = CatBoostScorer(catboost_export.export(fit.model, fit.features, fit.y))
        return BlendScorer([_booster(trees), catboost], list(BLEND_WEIGHTS))
    raise ValueError(f"no scorer for {algorithm}")


def _booster(estimator: Any) -> BoosterScorer:
    best = getattr(estimator, "best_iteration_", None) or -1
    return BoosterScorer(estimator.booster_.model_to_string(num_iteration=best))


def _linear(pipeline: Any) -> LinearScorer:
    """The numbers of candidates.logistic_regression's pipeline (imputer, scaler, one-hot, LR)."""
    columns, regression = pipeline.steps[0][1], pipeline.steps[-1][1]
    numeric = columns.named_transformers_["num"]
    imputer, scaler = numeric.steps[0][1], numeric.steps[1][1]
    weights = np.asarray(regression.coef_[0], dtype=np.float64)
    n_num = len(NUMERIC_FEATURES)
    tables, start = [], n_num
    for size in CATEGORY_SIZES:  # one-hot columns per feature: codes -1 .. size - 1
        tables.append(weights[start : start + size + 1].tolist())
        start += size + 1
    if start != len(weights) or len(imputer.statistics_) != n_num:
        raise ValueError(f"unexpected pipeline shape: {len(weights)} weights")
    return LinearScorer(
        medians=imputer.statistics_.tolist(),
        means=scaler.mean_.tolist(),
        scales=scaler.scale_.tolist(),
        numeric_weights=weights[:n_num].tolist(),
        category_weights=tables,
        intercept=float(regression.intercept_[0]),
    )
