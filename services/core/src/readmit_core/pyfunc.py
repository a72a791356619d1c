"""MLflow pyfunc flavour of ``ReadmissionModel`` (needs mlflow-skinny and pandas).

Logged as a model from code (``pyfunc_model.py``), not a pickle: at load, MLflow runs that file of
this package, and ``load_context`` reads the artifact's data files with ``readmit_core.artifact``.
So ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work for users; the api itself never
goes through pyfunc (it reads the data files only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from readmit_core import artifact
from readmit_core.schema import MODEL_INPUTS

ARTIFACT_KEY = "readmit"  # the pyfunc artifact holding the data files (artifact.MLFLOW_SUBDIR)
CODE_PATH = Path(__file__).with_name("pyfunc_model.py")
INPUT_NAMES = tuple(f.name for f in MODEL_INPUTS)


class ReadmissionPyfunc(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc.load_model(...).predict(frame)`` returns risks."""

    def load_context(self, context) -> None:
        self.model = artifact.load(Path(context.artifacts[ARTIFACT_KEY]))

    # A DataFrame hint is one MLflow neither validates nor infers a signature from (the logged
    # signature stays the only one); without any hint it warns on every load.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        # The api's record path, not encode_frame's per-column pandas maps: ~50x less per row
        # for a served request of one or a few rows, the same numbers (tests/core/test_features.py).
        return self.model.predict_records(frame_records(model_input))


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame's rows as the record path takes them: every model input, None for missing
    (NaN, or an optional column left out), native Python values."""
    columns = list(frame.columns)
    records = []
    # one conversion of the whole frame (Python ints, floats, strs): per-column access costs
    # ~50 µs a column, to_dict("records") ~6 ms for one row
    for values in frame.to_numpy(dtype=object).tolist():
        row = dict(zip(columns, values, strict=True))
        records.append({name: _value(row.get(name)) for name in INPUT_NAMES})
    return records


def _value(value: Any) -> Any:
    return None if value is None or value != value else value  # NaN != NaN
