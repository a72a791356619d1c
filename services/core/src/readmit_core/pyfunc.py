"""MLflow pyfunc flavour of ``ReadmissionModel`` (needs mlflow-skinny and pandas).

Logged as a model from code (``pyfunc_model.py``), not a pickle: at load, MLflow runs that file of
this package, and ``load_context`` reads the artifact's data files with ``readmit_core.artifact``.
So ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work for users; the api itself never
goes through pyfunc (it reads the data files only).
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from readmit_core import artifact

ARTIFACT_KEY = "readmit"  # the pyfunc artifact holding the data files (artifact.MLFLOW_SUBDIR)
CODE_PATH = Path(__file__).with_name("pyfunc_model.py")


class ReadmissionPyfunc(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc.load_model(...).predict(frame)`` returns risks."""

    def load_context(self, context) -> None:
        self.model = artifact.load(Path(context.artifacts[ARTIFACT_KEY]))

    # A DataFrame hint is one MLflow neither validates nor infers a signature from (the logged
    # signature stays the only one); without any hint it warns on every load.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.model.predict_frame(model_input)
