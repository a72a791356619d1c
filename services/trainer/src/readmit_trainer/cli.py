"""``readmit-train``: train on the real data set, register in MLflow, move the alias if better.

The last line of stdout is one JSON object (model_name, version, alias_moved, threshold,
validation and test metrics); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from readmit_core import drift
from readmit_core.data import DataError, load_encounters, patient_split, schema_violations
from readmit_core.explain import importance
from readmit_core.features import FEATURE_NAMES, encode_frame
from readmit_core.model import ReadmissionModel
from readmit_core.schema import FIELD_NAMES, PATIENT_ID_COLUMN, SCHEMA_VERSION
from readmit_trainer.candidates import CANDIDATES, select
from readmit_trainer.crossval import cross_validate
from readmit_trainer.evaluation import max_f1_threshold, metrics, model_card, plots
from readmit_trainer.export import to_scorer
from readmit_trainer.progress import progress
from readmit_trainer.promotion import decide

PARTS = ("train", "validation", "test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="readmit-train", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        default=os.environ.get("READMIT_DATA"),
        help="UCI zip or diabetic_data.csv (default: $READMIT_DATA, else download)",
    )
    p.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI, e.g. http://127.0.0.1:5000 or sqlite:///mlflow.db "
        "(default: $MLFLOW_TRACKING_URI)",
    )
    p.add_argument("--model-name", default="diabetes-readmission")
    p.add_argument("--alias", default="production")
    p.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="train on a random subsample of N encounters (quick runs)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="move the alias even if the current holder scores better",
    )
    p.add_argument("--seed", type=int, default=42, help="subsample and model randomness")
    p.add_argument(
        "--cv-folds",
        type=int,
        default=0,
        metavar="K",
        help="also cross-validate the recipe over K patient-grouped folds (0: skip; make bench: 5)",
    )
    p.add_argument(
        "--candidates",
        default=",".join(CANDIDATES),
        help=f"comma-separated subset of {', '.join(CANDIDATES)}",
    )
    args = p.parse_args(argv)
    if not args.tracking_uri:
        p.error("no tracking URI: pass --tracking-uri or set MLFLOW_TRACKING_URI")
    unknown = set(args.candidates.split(",")) - set(CANDIDATES)
    if unknown:
        p.error(f"unknown candidates: {', '.join(sorted(unknown))}")
    if args.cv_folds and not 2 <= args.cv_folds <= 10:
        p.error("--cv-folds must be 0 or 2 to 10")
    if args.sample is not None and args.sample < 500:
        p.error("--sample must be at least 500 (each split needs positives)")
    return args


def train(args: argparse.Namespace) -> dict[str, Any]:
    progress("loading the data set")
    frame = load_encounters(args.data)
    bad = schema_violations(frame)
    if bad:
        raise SystemExit(f"the data violates the encounter schema: {bad}")
    if args.sample and args.sample < len(frame):
        frame = frame.sample(n=args.sample, random_state=args.seed).reset_index(drop=True)
    part = patient_split(frame[PATIENT_ID_COLUMN].to_numpy())
    X, y = encode_frame(frame), frame["target"].to_numpy()
    sets = {name: (X[part == i], y[part == i]) for i, name in enumerate(PARTS)}
    (Xt, yt), (Xv, yv), (Xs, ys) = sets.values()
    progress(
        f"{len(frame)} encounters, {frame[PATIENT_ID_COLUMN].nunique()} patients; "
        f"train {len(yt)} / validation {len(yv)} / test {len(ys)}"
    )

    names = args.candidates.split(",")
    cv = None
    if args.cv_folds:
        progress(f"{args.cv_folds}-fold patient-grouped cross-validation")
        patients = frame[PATIENT_ID_COLUMN].to_numpy()
        cv = cross_validate(X, y, patients, names, args.cv_folds, args.seed)
        progress("cross-validated ROC AUC "
                 f"{cv['roc_auc']['mean']:.4f} ± {cv['roc_auc']['sd']:.4f}")  # fmt: skip
    best, fitted = select(names, Xt, yt, Xv, yv, args.seed)
    progress(f"selected {best.algorithm} (validation ROC AUC {best.val_roc_auc:.4f})")

    # The scorer as saved: the numbers measured here are the ones the api will serve.
    model = ReadmissionModel(to_scorer(best.algorithm, best.estimator), 0.5, best.algorithm)
    val_risk = model.predict_proba(Xv)
    model.threshold = max_f1_threshold(yv, val_risk)
    validation = metrics(yv, val_risk, model.threshold)
    test_risk = model.predict_proba(Xs)  # scored once, after every choice is made
    test = metrics(ys, test_risk, model.threshold)
    summary = {
        "model_name": args.model_name,
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
    return {
        "summary": summary,
        "model": model,
        "frame": frame,
        "val": (Xv, yv),
        "test_risk": (ys, test_risk),
    }


def register(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    from readmit_trainer import registry

    summary, model = result["summary"], result["model"]
    registry.set_tracking(args.tracking_uri)
    client = MlflowClient()
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        progress(f"logging run {run.info.run_id} to {args.tracking_uri}")
        mlflow.log_params(
            {
                "algorithm": summary["algorithm"],
                "sample": args.sample,
                "seed": args.seed,
                "rows": summary["rows"],
                "schema_version": SCHEMA_VERSION,
                "features": len(FEATURE_NAMES),
                **{f"param_{k}": v for k, v in summary["params"].items()},
                **{f"n_{k}": v for k, v in summary["split"].items()},
            }
        )
        mlflow.log_metrics({f"val_{k}": v for k, v in summary["validation"].items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in summary["test"].items()})
        mlflow.log_metrics(
            {f"candidate_{k}_val_roc_auc": v for k, v in summary["candidates"].items()}
        )
        mlflow.log_metric("threshold", model.threshold)
        if summary["cv"]:
            cv = summary["cv"]
            mlflow.log_metrics({f"cv_{k}_{s}": cv[k][s] for k in ("roc_auc", "pr_auc", "brier",
                                "ece") for s in ("mean", "sd")})  # fmt: skip
        (out / "model_card.md").write_text(model_card(summary))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        ys, test_risk = result["test_risk"]
        files = [
            out / "model_card.md",
            out / "summary.json",
            *plots(ys, test_risk, out, f"test set, {summary['algorithm']}"),
        ]
        example = result["frame"][list(FIELD_NAMES)].head(2)
        progress("registering the model")
        version = registry.log_and_register(model, args.model_name, example, files, out)

    holder = registry.champion_version(client, args.model_name, args.alias)
    challenger_auc = summary["validation"]["roc_auc"]
    champion = None
    if holder is not None and holder != version:
        champion = registry.judge_champion(args.model_name, holder, *result["val"])
    decision = decide(challenger_auc, champion, args.force)
    client.set_model_version_tag(args.model_name, version, "threshold", str(model.threshold))
    client.set_model_version_tag(args.model_name, version, "val_roc_auc", f"{challenger_auc:.6f}")
    client.set_model_version_tag(args.model_name, version, "schema_version", SCHEMA_VERSION)
    if decision.move:
        client.set_registered_model_alias(args.model_name, args.alias, version)
    moved = "moved" if decision.move else "kept"
    progress(f"version {version}: alias '{args.alias}' {moved} ({decision.reason})")
    return {
        "model_name": args.model_name,
        "version": version,
        "alias": args.alias,
        "alias_moved": decision.move,
        "alias_reason": decision.reason,
        "previous_version": holder,
        "champion_val_roc_auc": champion.val_roc_auc if champion else None,
        "run_id": run.info.run_id,
        "algorithm": summary["algorithm"],
        "threshold": model.threshold,
        "validation": {k: summary["validation"][k] for k in ("roc_auc", "pr_auc", "brier", "ece")},
        "test": {k: summary["test"][k] for k in ("roc_auc", "pr_auc", "brier", "ece")},
        "cv": summary["cv"],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    np.random.seed(args.seed)
    try:
        trained = train(args)
    except DataError as exc:
        sys.exit(f"readmit-train: {exc}")
    result = register(args, trained)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
