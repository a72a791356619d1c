"""L2 logistic regression on one-hot categories and scaled numbers; served as ``LinearScorer``."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from readmit_core.features import CATEGORICAL_INDICES, CATEGORY_SIZES, NUMERIC_FEATURES
from readmit_core.scoring import LinearScorer
from readmit_trainer.candidates.fitted import Fitted
from readmit_trainer.progress import progress

NAME = "logistic_regression"


def _logistic_pipeline(c: float, seed: int) -> Any:
    """One-hot categories + scaled numbers -> L2 logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = list(range(len(NUMERIC_FEATURES)))
    # Codes are fixed by the schema, so the one-hot categories are too (missing -> -1).
    categories = [[-1.0, *map(float, range(n))] for n in CATEGORY_SIZES]
    return make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value=-1.0),
                        OneHotEncoder(categories=categories, handle_unknown="ignore"),
                    ),
                    list(CATEGORICAL_INDICES),
                ),
            ]
        ),
        LogisticRegression(C=c, max_iter=2000, random_state=seed),
    )


def fit(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, seed: int) -> Fitted:
    """L2 logistic regression; C picked on validation."""
    best: Fitted | None = None
    for c in (0.01, 0.1, 1.0):
        model = _logistic_pipeline(c, seed)
        model.fit(X, y)
        auc = float(roc_auc_score(yv, model.predict_proba(Xv)[:, 1]))
        progress(f"logistic regression C={c}: validation ROC AUC {auc:.4f}")
        if best is None or auc > best.val_roc_auc:
            best = Fitted(NAME, {"C": c}, model, auc)
    assert best is not None
    return best


def refit(params: dict[str, Any], X: np.ndarray, y: np.ndarray, fitted_rows: int, seed: int) -> Any:
    """The C ``fit`` chose, fitted on more rows."""
    model = _logistic_pipeline(params["C"], seed)
    model.fit(X, y)
    return model


def to_scorer(pipeline: Any) -> LinearScorer:
    """The numbers of ``fit``'s pipeline (imputer, scaler, one-hot, LR)."""
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
