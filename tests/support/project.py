"""Where the project and its neighbours are, and how a missing tool is reported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STRICT = os.environ.get("READMIT_STRICT") == "1"
ARTIFACTS = ROOT / "test-artifacts"  # the reports and screenshots the tests leave for a reader
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "dataset_diabetes.zip"

# The real kube-prometheus-stack, the version Chart.lock pins (beside the project, never committed).
KPS_CHART = ROOT.parent / "shared" / "charts" / "kube-prometheus-stack-88.5.3.tgz"


def require(condition: bool, reason: str) -> None:
    """Skip when a laptop lacks a tool or the data; under READMIT_STRICT=1, fail instead."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"READMIT_STRICT=1: {reason}")
    pytest.skip(reason)
