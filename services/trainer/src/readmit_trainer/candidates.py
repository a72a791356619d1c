"""Candidate models, each tuned on the validation set only."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from readmit_core.features import CATEGORICAL_INDICES, CATEGORY_SIZES, NUMERIC_FEATURES
from readmit_trainer.progress import progress


@dataclass
class Fitted:
    algorithm: str
    params: dict[str, Any]
    estimator: Any
    val_roc_auc: float


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


def logistic_regression(
    X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, seed: int
) -> Fitted:
    """L2 logistic regression; C picked on validation."""
    best: Fitted | None = None
    for c in (0.01, 0.1, 1.0):
        model = _logistic_pipeline(c, seed)
        model.fit(X, y)
        auc = float(roc_auc_score(yv, model.predict_proba(Xv)[:, 1]))
        progress(f"logistic regression C={c}: validation ROC AUC {auc:.4f}")
        if best is None or auc > best.val_roc_auc:
            best = Fitted("logistic_regression", {"C": c}, model, auc)
    assert best is not None
    return best


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


def lightgbm(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, seed: int) -> Fitted:
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
            best = Fitted("lightgbm", p, model, auc)
    assert best is not None
    return best


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


def fit_catboost(X: np.ndarray, y: np.ndarray, iterations: int, seed: int,
              validation: tuple[np.ndarray, np.ndarray] | None = None) -> CatBoostFit:  # fmt: skip
    from catboost import CatBoostClassifier, Pool

    from readmit_trainer.catboost_export import CAT_FEATURES, frame

    stopping: dict[str, Any] = {}
    if validation is not None:  # early stopping; the validation rows stay out of the counters
        stopping = {"eval_metric": "AUC", "od_type": "Iter", "od_wait": 200,
                    "counter_calc_method": "SkipTest"}  # fmt: skip
    model = CatBoostClassifier(iterations=iterations, random_seed=seed, thread_count=2,
                               verbose=False, allow_writing_files=False, **CATBOOST_PARAMS,
                               **stopping)  # fmt: skip
    evaluation = None
    if validation is not None:
        evaluation = Pool(frame(validation[0]), validation[1], cat_features=CAT_FEATURES)
    model.fit(Pool(frame(X), y, cat_features=CAT_FEATURES), eval_set=evaluation,
              use_best_model=validation is not None)  # fmt: skip
    return CatBoostFit(model, X, y)


def lightgbm_catboost(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
                      seed: int) -> Fitted:  # fmt: skip
    """The LightGBM candidate and CatBoost (rounds by early stopping), averaged in log-odds."""
    from readmit_trainer.catboost_export import CAT_FEATURES, frame

    trees = lightgbm(X, y, Xv, yv, seed)
    progress(f"catboost {CATBOOST_PARAMS}: fitting (minutes on the full data)")
    fit = fit_catboost(X, y, 5000, seed, (Xv, yv))
    from catboost import Pool

    catboost = fit.model.predict(Pool(frame(Xv), cat_features=CAT_FEATURES),
                                 prediction_type="RawFormulaVal")  # fmt: skip
    log_odds = (BLEND_WEIGHTS[0] * trees.estimator.predict(Xv, raw_score=True)
                + BLEND_WEIGHTS[1] * catboost)  # fmt: skip
    auc = float(roc_auc_score(yv, log_odds))
    params = {"lightgbm": trees.params, "weights": list(BLEND_WEIGHTS),
              "catboost": {**CATBOOST_PARAMS, "iterations": fit.model.tree_count_}}  # fmt: skip
    progress(f"lightgbm + catboost {params['catboost']}: validation ROC AUC {auc:.4f}")
    return Fitted("lightgbm_catboost", params, (trees.estimator, fit), auc)


CANDIDATES = {
    "logistic_regression": logistic_regression,
    "lightgbm": lightgbm,
    "lightgbm_catboost": lightgbm_catboost,
}


def _refit_lightgbm(params: dict[str, Any], X: np.ndarray, y: np.ndarray, fitted_rows: int,
                    seed: int) -> Any:  # fmt: skip
    rounds = max(1, round(params["n_estimators"] * len(y) / fitted_rows))
    model = _lightgbm_model({**params, "n_estimators": rounds}, seed)
    model.fit(X, y, categorical_feature=list(CATEGORICAL_INDICES))
    return model


def refit(chosen: Fitted, X: np.ndarray, y: np.ndarray, fitted_rows: int, seed: int) -> Any:
    """The chosen candidate's settings fitted again on more rows (training + validation): trees
    get rounds in proportion to the rows (early stopping found the count for ``fitted_rows``)."""
    if chosen.algorithm == "logistic_regression":
        model = _logistic_pipeline(chosen.params["C"], seed)
        model.fit(X, y)
        return model
    if chosen.algorithm == "lightgbm":
        return _refit_lightgbm(chosen.params, X, y, fitted_rows, seed)
    trees = _refit_lightgbm(chosen.params["lightgbm"], X, y, fitted_rows, seed)
    rounds = max(1, round(chosen.params["catboost"]["iterations"] * len(y) / fitted_rows))
    progress(f"catboost: refitting {rounds} rounds")
    return trees, fit_catboost(X, y, rounds, seed)


def select(names: list[str], X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray,
           seed: int) -> tuple[Fitted, list[Fitted]]:  # fmt: skip
    """Fit each named candidate; the best on validation ROC AUC, and all of them."""
    fitted = []
    for name in names:
        progress(f"training {name}")
        fitted.append(CANDIDATES[name](X, y, Xv, yv, seed))
    return max(fitted, key=lambda f: f.val_roc_auc), fitted
