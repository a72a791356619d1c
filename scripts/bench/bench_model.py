"""Model quality benchmark: the real ``readmit-train`` on the full data set, with 5-fold
patient-grouped cross-validation of the whole recipe, into a throw-away sqlite store.

Prints the cross-validated mean ± sd (fixed folds) next to the fixed split's validation and test
figures, calibration and ROC AUC by group (race, sex, age, payer) and the training time; exits 1
when a gate is missed. The gates are on the CV mean: ROC AUC >= 0.685, PR AUC >= 0.24, Brier <=
0.0955; training the registered model <= 5 min (the run's time less the CV's, which repeats the
recipe once per fold). Arguments are passed on to readmit-train (`make bench TRAIN_ARGS=...`,
e.g. ``--candidates lightgbm``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from readmit_trainer.evaluation import group_table

BIN = Path(sys.executable).parent
GATES = {"roc_auc": (">=", 0.685), "pr_auc": (">=", 0.24), "brier": ("<=", 0.0955)}
METRICS = ("roc_auc", "pr_auc", "brier", "ece")
MAX_TRAINING_S = 300


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        out = subprocess.run(
            [
                str(BIN / "readmit-train"),
                "--tracking-uri",
                f"sqlite:///{tmp}/mlflow.db",
                "--cv-folds",
                "5",
                *sys.argv[1:],
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        seconds = time.monotonic() - started
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cv = result["cv"]
    training = seconds - cv["seconds"]
    print(
        f"\nfull-data run {seconds:.0f} s: {cv['folds']}-fold CV {cv['seconds']:.0f} s, "
        f"training and registering the model {training:.0f} s (<= {MAX_TRAINING_S}); "
        f"registered {result['algorithm']}, threshold {result['threshold']:.4f}\n"
    )
    print("| metric | CV mean ± sd | fixed validation | fixed test | gate (CV mean) | |")
    print("|---|---:|---:|---:|---:|---|")
    missed = []
    for metric in METRICS:
        mean, sd = cv[metric]["mean"], cv[metric]["sd"]
        val, test = result["validation"][metric], result["test"][metric]
        gate, status = "", ""
        if metric in GATES:
            op, bound = GATES[metric]
            ok = mean >= bound if op == ">=" else mean <= bound
            gate, status = f"{op} {bound}", "ok" if ok else "MISSED"
            if not ok:
                missed.append(metric)
        print(f"| {metric} | {mean:.4f} ± {sd:.4f} | {val:.4f} | {test:.4f} | {gate} | {status} |")
    print("\nper fold ROC AUC: " + ", ".join(f"{f['roc_auc']:.4f}" for f in cv["per_fold"]))
    print(f"\nby group, over the out-of-fold risks. {group_table(cv['by_group'])}")
    if training > MAX_TRAINING_S:
        missed.append("training time")
    if missed:
        sys.exit(f"quality gate missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
