"""One training run as plain functions: data in, a ``TrainResult`` out (no MLflow, no CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from readmit_core import drift
from readmit_core.data import DataError, load_encounters, patient_split, schema_violations
from readmit_core.explain import importance
from readmit_core.features import encode_frame
from readmit_core.model import ReadmissionModel
from readmit_core.schema import FIELD_NAMES, PATIENT_ID_COLUMN, SCHEMA_VERSION
from readmit_trainer.candidates import select
from readmit_trainer.crossval import cross_validate
from readmit_trainer.evaluation import max_f1_threshold, metrics
from readmit_trainer.export import to_scorer
from readmit_trainer.progress import progress

if TYPE_CHECKING:
    import pandas as pd

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
    example: pd.DataFrame  # two encounters: MLflow's input example
    validation: tuple[np.ndarray, np.ndarray]  # (X, y): where a champion is judged
    test: tuple[np.ndarray, np.ndarray]  # (y, risk): the plots


def train(options: TrainOptions) -> TrainResult:
    """Load, split by patient, (cross-validate,) fit the candidates, pick on validation, set the
    threshold there, score the test part once."""
    progress("loading the data set")
    frame = load_encounters(options.data)
    bad = schema_violations(frame)
    if bad:
        raise DataError(f"the data violates the encounter schema: {bad}")
    if options.sample and options.sample < len(frame):
        frame = frame.sample(n=options.sample, random_state=options.seed).reset_index(drop=True)
    part = patient_split(frame[PATIENT_ID_COLUMN].to_numpy())
    X, y = encode_frame(frame), frame["target"].to_numpy()
    sets = {name: (X[part == i], y[part == i]) for i, name in enumerate(PARTS)}
    (Xt, yt), (Xv, yv), (Xs, ys) = sets.values()
    progress(
        f"{len(frame)} encounters, {frame[PATIENT_ID_COLUMN].nunique()} patients; "
        f"train {len(yt)} / validation {len(yv)} / test {len(ys)}"
    )

    names = options.candidates.split(",")
    cv = None
    if options.cv_folds:
        progress(f"{options.cv_folds}-fold patient-grouped cross-validation")
        patients = frame[PATIENT_ID_COLUMN].to_numpy()
        cv = cross_validate(X, y, patients, names, options.cv_folds, options.seed)
        progress("cross-validated ROC AUC "
                 f"{cv['roc_auc']['mean']:.4f} ± {cv['roc_auc']['sd']:.4f}")  # fmt: skip
    best, fitted = select(names, Xt, yt, Xv, yv, options.seed)
    progress(f"selected {best.algorithm} (validation ROC AUC {best.val_roc_auc:.4f})")

    # The scorer as saved: the numbers measured here are the ones the api will serve.
    model = ReadmissionModel(to_scorer(best.algorithm, best.estimator), 0.5, best.algorithm)
    val_risk = model.predict_proba(Xv)
    model.threshold = max_f1_threshold(yv, val_risk)
    validation = metrics(yv, val_risk, model.threshold)
    test_risk = model.predict_proba(Xs)  # scored once, after every choice is made
    test = metrics(ys, test_risk, model.threshold)
    summary = {
        "model_name": options.model_name,
        "algorithm": best.algorithm,
        "params": best.params,
        "threshold": model.threshold,
        "schema_version": SCHEMA_VERSION,
        "rows": len(frame),
        "split": {name: len(sets[name][1]) for name in PARTS},
        "candidates": {f.algorithm: f.val_roc_auc for f in fitted},
        "validation": validation,
        "test": test,
        "cv": cv,
    }
    model.info = {k: summary[k] for k in ("params", "split", "validation", "test", "rows", "cv")}
    model.info["trained_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    # Global importance on validation: each field's mean absolute share of the log-odds.
    model.info["importance"] = {k: round(v, 5) for k, v in importance(model, Xv).items()}
    # What the api's drift metrics compare live traffic with: this model's own validation data.
    model.info["drift_baseline"] = drift.baseline(Xv, validation["flagged_share"])
    return TrainResult(summary, model, frame[list(FIELD_NAMES)].head(2), (Xv, yv), (ys, test_risk))
