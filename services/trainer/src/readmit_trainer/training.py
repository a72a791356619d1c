"""One training run as plain functions: data in, a ``TrainResult`` out (no MLflow, no CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from readmit_core import drift
from readmit_core.data import DataError, load_encounters, patient_split, schema_violations
from readmit_core.explain import importance
from readmit_core.schema import FIELD_NAMES, PATIENT_ID_COLUMN, SCHEMA_VERSION, example_encounter
from readmit_trainer.crossval import cross_validate
from readmit_trainer.evaluation import metrics
from readmit_trainer.progress import progress
from readmit_trainer.recipe import fit_recipe

if TYPE_CHECKING:
    from readmit_core.model import ReadmissionModel

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class TrainOptions:
    data: str | None  # the UCI zip or csv; None: $READMIT_DATA, else download
    model_name: str
    candidates: str  # comma-separated names of readmit_trainer.candidates.CANDIDATES
    seed: int = 42
    sample: int | None = None  # encounters to subsample (quick runs)
    cv_folds: int = 0  # 0: no cross-validation


@dataclass(frozen=True)
class TrainResult:
    summary: dict[str, Any]  # what the model card, summary.json and MLflow's metrics show
    model: ReadmissionModel  # threshold set, info filled (metrics, importance, drift baseline)
    example: pd.DataFrame  # MLflow's input example: the schema's example encounter
    holdout: tuple[pd.DataFrame, np.ndarray]  # the test part (encounters, y): champion vs this
    test: tuple[np.ndarray, np.ndarray]  # (y, risk): the plots


def train(options: TrainOptions) -> TrainResult:
    """Load, split by patient, (cross-validate,) run the recipe (``readmit_trainer.recipe``:
    candidates picked and the threshold set on validation, then refit on training + validation),
    score the test part once."""
    progress("loading the data set")
    frame = load_encounters(options.data)
    bad = schema_violations(frame)
    if bad:
        raise DataError(f"the data violates the encounter schema: {bad}")
    if options.sample and options.sample < len(frame):
        frame = frame.sample(n=options.sample, random_state=options.seed).reset_index(drop=True)
    patients, y = frame[PATIENT_ID_COLUMN].to_numpy(), frame["target"].to_numpy()
    part = patient_split(patients)
    rows = {name: np.flatnonzero(part == i) for i, name in enumerate(PARTS)}
    progress(
        f"{len(frame)} encounters, {frame[PATIENT_ID_COLUMN].nunique()} patients; "
        + " / ".join(f"{name} {len(r)}" for name, r in rows.items())
    )

    names = options.candidates.split(",")
    cv = None
    if options.cv_folds:
        progress(f"{options.cv_folds}-fold patient-grouped cross-validation")
        cv = cross_validate(frame, y, patients, names, options.cv_folds, options.seed)
        progress(f"cross-validated ROC AUC {cv['roc_auc']['mean']:.4f} ± {cv['roc_auc']['sd']:.4f}")
    recipe = fit_recipe(frame, y, patients, rows["train"], rows["validation"], names, options.seed)
    # The scorer as saved: the numbers measured here are the ones the api will serve.
    model, X = recipe.model, recipe.features
    Xs, ys = X[rows["test"]], y[rows["test"]]
    test_risk = model.predict_proba(Xs)  # scored once, after every choice is made
    test = metrics(ys, test_risk, model.threshold)
    summary = {
        "model_name": options.model_name,
        "algorithm": model.algorithm,
        "params": recipe.chosen.params,
        "threshold": model.threshold,
        "schema_version": SCHEMA_VERSION,
        "rows": len(frame),
        "split": {name: len(r) for name, r in rows.items()},
        "candidates": {f.algorithm: f.val_roc_auc for f in recipe.candidates},
        "validation": recipe.validation,
        "test": test,
        "cv": cv,
    }
    model.info = {k: summary[k] for k in ("params", "split", "validation", "test", "rows", "cv")}
    model.info["trained_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    # Global importance on the test part (the one the model never saw): each field's mean
    # absolute share of the log-odds.
    model.info["importance"] = {k: round(v, 5) for k, v in importance(model, Xs).items()}
    # What the api's drift metrics compare live traffic with: the validation encounters' inputs
    # and the share flagged there (by the pick, before the refit saw them).
    model.info["drift_baseline"] = drift.baseline(
        X[rows["validation"]], recipe.validation["flagged_share"]
    )
    # The schema's made-up example, not training rows: the registry holds no patient's record.
    example = pd.DataFrame([example_encounter()], columns=list(FIELD_NAMES))
    return TrainResult(summary, model, example, (frame.iloc[rows["test"]], ys), (ys, test_risk))
