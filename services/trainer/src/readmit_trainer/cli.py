"""``readmit-train``: train on the real data set, register in MLflow, move the alias if better.

The last line of stdout is one JSON object (model_name, version, alias_moved, threshold,
validation and test metrics); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from readmit_core.data import DataError
from readmit_core.settings import MODEL_ALIAS, MODEL_NAME
from readmit_trainer.candidates import CANDIDATES
from readmit_trainer.evaluation import HEADLINE
from readmit_trainer.settings import TrainerSettings
from readmit_trainer.training import TrainOptions, TrainResult, train

if TYPE_CHECKING:
    from readmit_trainer.publish import Published


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="readmit-train", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        default=None,
        help="UCI zip or diabetic_data.csv (default: $READMIT_DATA, else download)",
    )
    p.add_argument(
        "--tracking-uri",
        default=TrainerSettings().mlflow_tracking_uri,
        help="MLflow tracking URI, e.g. http://127.0.0.1:5000 or sqlite:///mlflow.db "
        "(default: $MLFLOW_TRACKING_URI)",
    )
    p.add_argument("--model-name", default=MODEL_NAME)
    p.add_argument("--alias", default=MODEL_ALIAS)
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


def output(
    options: TrainOptions, alias: str, result: TrainResult, published: Published
) -> dict[str, Any]:
    """The JSON line the CLI prints (tests, the chart's Job and `make bench` read it)."""
    summary, decision, champion = result.summary, published.decision, published.champion
    return {
        "model_name": options.model_name,
        "version": published.version,
        "alias": alias,
        "alias_moved": decision.move,
        "alias_reason": decision.reason,
        "previous_version": published.holder,
        "champion_test_roc_auc": champion.roc_auc if champion else None,
        "run_id": published.run_id,
        "algorithm": summary["algorithm"],
        "threshold": result.model.threshold,
        "validation": {k: summary["validation"][k] for k in HEADLINE},
        "test": {k: summary["test"][k] for k in HEADLINE},
        "cv": summary["cv"],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    np.random.seed(args.seed)
    options = TrainOptions(
        data=args.data,
        model_name=args.model_name,
        candidates=args.candidates,
        seed=args.seed,
        sample=args.sample,
        cv_folds=args.cv_folds,
    )
    try:
        result = train(options)
    except DataError as exc:
        sys.exit(f"readmit-train: {exc}")
    from readmit_trainer import publish  # imports mlflow: not for --help or a data error

    # MLflow's client reads its password from the environment only: a Secret's file goes there.
    settings = TrainerSettings()
    if settings.mlflow_tracking_password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.reveal(settings.mlflow_tracking_password)
    publish.set_tracking(args.tracking_uri)
    published = publish.publish(
        result, args.model_name, args.alias, args.force, {"sample": args.sample, "seed": args.seed}
    )
    sys.stdout.write(json.dumps(output(options, args.alias, result, published)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
