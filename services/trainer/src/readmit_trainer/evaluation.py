"""Metrics, the decision threshold, plots and the model card."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

if TYPE_CHECKING:
    import pandas as pd


def max_f1_threshold(y: np.ndarray, risk: np.ndarray) -> float:
    """The risk cut-off that maximises F1 on (validation) data.

    Readmission is rare (11 %): a 0.5 cut-off flags almost nobody. Max F1 balances missed
    readmissions against false alarms without a cost model from the hospital.
    """
    precision, recall, thresholds = precision_recall_curve(y, risk)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


# The figures every report leads with: the CLI's JSON, the CV table, the model card's CV section.
HEADLINE = ("roc_auc", "pr_auc", "brier", "ece")


def _risk_bins(risk: np.ndarray, bins: int) -> list[np.ndarray]:
    """Row indices in ``bins`` equal-size groups of the rows sorted by risk (equal-size: the
    risks sit mostly below 0.3, where equal-width bins would leave most bins empty)."""
    return [g for g in np.array_split(np.argsort(risk, kind="stable"), bins) if len(g)]


def expected_calibration_error(y: np.ndarray, risk: np.ndarray, bins: int = 10) -> float:
    """Mean |predicted - observed| readmission rate over the risk bins, weighted by bin size."""
    groups = _risk_bins(risk, bins)
    return float(sum(len(g) * abs(risk[g].mean() - y[g].mean()) for g in groups) / len(risk))


def chance_calibration_error(risk: np.ndarray, bins: int = 10) -> float:
    """The ECE a perfectly calibrated model would still show on these rows by chance alone (the
    same bins): per bin, the expected |mean(y) - mean(risk)| when each y is drawn with its risk
    (normal approximation: sqrt(2/pi) x the standard deviation of the bin's observed rate).
    Read a group's ECE against it: 0.003 on 74,000 encounters, ~0.02 on 2,000."""
    spread = [np.sqrt(np.sum(risk[g] * (1 - risk[g]))) for g in _risk_bins(risk, bins)]
    return float(np.sqrt(2 / np.pi) * sum(spread) / len(risk))


# Who could be served unequally: calibration and ranking per group, from the CV's out-of-fold
# risks (every encounter scored by a model that never saw its patient).
GROUPED_BY = ("race", "gender", "age", "payer_code")
MIN_GROUP = 1000  # smaller groups pool into one; ECE and ROC AUC of fewer rows would be noise
POOLED, MISSING = "(smaller groups)", "(missing)"  # not values any column holds


def by_group(frame: pd.DataFrame, y: np.ndarray, risk: np.ndarray) -> dict[str, list[dict]]:
    """Per column of ``GROUPED_BY``, per value (missing as its own): encounters, observed and
    mean predicted readmission rate, ECE and ROC AUC (None under ``MIN_GROUP`` encounters or
    with one outcome only), largest group first."""
    out: dict[str, list[dict]] = {}
    for column in GROUPED_BY:
        values = frame[column].astype(object).where(frame[column].notna(), MISSING)
        values = values.where(values.map(values.value_counts()) >= MIN_GROUP, POOLED)
        groups = []
        for value in values.value_counts().index:
            rows = (values == value).to_numpy()
            yg, rg = y[rows], risk[rows]
            scored = len(yg) >= MIN_GROUP and 0 < yg.sum() < len(yg)
            groups.append(
                {
                    "value": str(value),
                    "rows": int(rows.sum()),
                    "observed": float(yg.mean()),
                    "predicted": float(rg.mean()),
                    "ece": expected_calibration_error(yg, rg) if scored else None,
                    "chance_ece": chance_calibration_error(rg) if scored else None,
                    "roc_auc": float(roc_auc_score(yg, rg)) if scored else None,
                }
            )
        out[column] = groups
    return out


def group_table(groups: dict[str, list[dict]]) -> str:
    """``by_group`` as one markdown table under its caption (the model card's and
    ``make bench``'s)."""
    lines = [
        f"Groups under {MIN_GROUP:,} encounters are pooled; ECE and ROC AUC from {MIN_GROUP:,} up.",
        "",
        "| group | encounters | observed | predicted | ECE | ECE by chance | ROC AUC |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for column, rows in groups.items():
        for g in rows:
            scores = (
                ["-"] * 3
                if g["ece"] is None
                else [f"{g['ece']:.4f}", f"{g['chance_ece']:.4f}", f"{g['roc_auc']:.3f}"]
            )
            lines.append(
                f"| {column} = {g['value']} | {g['rows']:,} | {g['observed']:.1%} | "
                f"{g['predicted']:.1%} | {' | '.join(scores)} |"
            )
    return "\n".join(lines)


def metrics(y: np.ndarray, risk: np.ndarray, threshold: float) -> dict[str, float]:
    flagged = risk >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    return {
        "roc_auc": float(roc_auc_score(y, risk)),
        "pr_auc": float(average_precision_score(y, risk)),
        "brier": float(brier_score_loss(y, risk)),
        "ece": expected_calibration_error(y, risk),
        "log_loss": float(log_loss(y, risk, labels=[0, 1])),
        "precision_at_threshold": tp / max(int(flagged.sum()), 1),
        "recall_at_threshold": tp / max(int(np.sum(y == 1)), 1),
        "flagged_share": float(flagged.mean()),
        "positive_rate": float(np.mean(y)),
    }


def plots(y: np.ndarray, risk: np.ndarray, out: Path, title: str) -> list[Path]:
    """ROC curve and calibration (reliability) plot of the test set, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    fpr, tpr, _ = roc_curve(y, risk)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"ROC AUC {roc_auc_score(y, risk):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC — {title}")
    ax.legend(loc="lower right")
    roc_path = out / "roc_curve.png"
    fig.savefig(roc_path, dpi=100, bbox_inches="tight")
    plt.close(fig)

    observed, predicted = calibration_curve(y, risk, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(predicted, observed, "o-", label="model")
    top = float(max(predicted.max(), observed.max()))
    ax.plot([0, top], [0, top], "--", color="grey", label="perfect")
    ax.set(
        xlabel="Predicted risk", ylabel="Observed readmission rate", title=f"Calibration — {title}"
    )
    ax.legend(loc="upper left")
    cal_path = out / "calibration.png"
    fig.savefig(cal_path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [roc_path, cal_path]


def _cv_section(cv: dict[str, Any] | None) -> str:
    if not cv:
        return "\nCross-validation: not run (`readmit-train --cv-folds 5`).\n"
    rows = "\n".join(f"| {k} | {cv[k]['mean']:.4f} | {cv[k]['sd']:.4f} |" for k in HEADLINE)
    return (
        f"\n{cv['folds']}-fold patient-grouped cross-validation of the whole recipe (fixed "
        f"folds, seed {cv['seed']}):\n\n| metric | mean | sd |\n|---|---|---|\n{rows}\n"
        f"\nBy group, over the out-of-fold risks. {group_table(cv['by_group'])}\n"
    )


def model_card(summary: dict[str, Any]) -> str:
    v, t = summary["validation"], summary["test"]
    rows = "\n".join(
        f"| {k} | {v[k]:.4f} | {t[k]:.4f} |"
        for k in (
            "roc_auc",
            "pr_auc",
            "brier",
            "ece",
            "log_loss",
            "precision_at_threshold",
            "recall_at_threshold",
            "flagged_share",
            "positive_rate",
        )
    )
    return f"""# Model card — {summary["model_name"]}

**Predicts** the probability that a diabetic patient is readmitted within 30 days of discharge,
from what is known about the encounter at discharge (the readmit encounter schema
v{summary["schema_version"]}).

- Algorithm: {summary["algorithm"]} ({summary["params"]})
- Decision threshold: {summary["threshold"]:.4f} (maximum F1 on the validation set)
- Data: UCI "Diabetes 130-US hospitals for years 1999-2008" (Strack et al. 2014, CC BY 4.0),
  encounters ending in death or hospice excluded; {summary["rows"]} encounters
  (train {summary["split"]["train"]}, validation {summary["split"]["validation"]},
  test {summary["split"]["test"]}), split by patient (no patient in two parts).
- Selection: candidates tuned and compared on validation only, the threshold set there; the
  pick then refit on train + validation (trees: rounds in proportion to the rows) and scored on
  test once. Validation figures are the pick's before the refit; test figures the served
  model's. A new version takes the serving alias only if it beats the holder on test.
- Inputs: the encounter's fields but race and `payer_code` (insurance), with ICD-9 codes also
  as readmission rates fitted on the training rows (saved with the model). Race and payer are
  not inputs (schema 3): a risk that steers follow-up must not rest on them; the
  cross-validation's table by group shows calibration per race and payer (and sex, age) here.

| metric | validation | test |
|---|---|---|
{rows}
{_cv_section(summary.get("cv"))}
## Limits
- US hospitals 1999-2008: practice, coding (ICD-9) and populations have changed since.
- Uses one encounter only; the patient's other encounters are not seen.
- A risk score to prioritise follow-up, not a diagnosis. Check calibration on local data before
  acting on the absolute numbers.
"""
