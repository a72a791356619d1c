"""Model quality benchmark: train on the full data set (patient-grouped split) and check the gates.

Trains with the real ``readmit-train`` into a throw-away sqlite store, prints the metrics and
exits 1 when a gate is missed. Gates: test ROC AUC >= 0.68, PR AUC >= 0.24, Brier <= 0.094.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
GATES = {"roc_auc": (">=", 0.68), "pr_auc": (">=", 0.24), "brier": ("<=", 0.094)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        out = subprocess.run(
            [str(BIN / "readmit-train"), "--tracking-uri", f"sqlite:///{tmp}/mlflow.db"],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        seconds = time.monotonic() - started
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\nfull-data training: {seconds:.0f} s, algorithm {result['algorithm']}, "
        f"threshold {result['threshold']:.4f}"
    )
    print(f"{'metric':<10}{'validation':>12}{'test':>10}{'gate (test)':>14}")
    missed = []
    for metric, (op, bound) in GATES.items():
        val, test = result["validation"][metric], result["test"][metric]
        ok = test >= bound if op == ">=" else test <= bound
        print(
            f"{metric:<10}{val:>12.4f}{test:>10.4f}{op + ' ' + str(bound):>12}  "
            f"{'ok' if ok else 'MISSED'}"
        )
        if not ok:
            missed.append(metric)
    if missed:
        sys.exit(f"quality gate missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
