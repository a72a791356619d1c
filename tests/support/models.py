"""Models made by hand for the tests: no data set, no training."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


def flat_rates(prior: float = 0.1) -> Any:
    """Diagnosis rates that know no code: every rate is the prior (for models made by hand)."""
    from readmit_core.diagnosis_rates import TABLES, DiagnosisRates

    return DiagnosisRates(prior, {name: {} for name in TABLES})


class Touch:
    """Unpickling this creates a file: the proof that something ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


def hostile_pickle(directory: Path, marker: Path) -> Path:
    """An MLflow pyfunc directory in the old pickled format, whose pickle would touch ``marker``."""
    directory.mkdir(parents=True)
    (directory / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
        "    python_model: python_model.pkl\n"
    )
    (directory / "python_model.pkl").write_bytes(pickle.dumps(Touch(marker)))
    return directory
