"""MLflow pyfunc flavour of ``ReadmissionModel`` (needs mlflow-skinny and pandas)."""

from __future__ import annotations

import warnings

import mlflow.pyfunc

from readmit_core.model import ReadmissionModel


class ReadmissionPyfunc(mlflow.pyfunc.PythonModel):
    """Wraps the model so ``mlflow.pyfunc.load_model(...).predict(frame)`` returns risks."""

    def __init__(self, model: ReadmissionModel) -> None:
        self.model = model

    # No type hints on the inputs: MLflow would derive a second signature from them.
    def predict(self, context, model_input, params=None):
        return self.model.predict_frame(model_input)


def load_readmission_model(model_uri: str) -> ReadmissionModel:
    """Load a logged model (registry URI, run URI or local directory) as a ReadmissionModel."""
    with warnings.catch_warnings():
        # MLflow asks for type hints on predict(); ours has none on purpose (see above).
        warnings.filterwarnings("ignore", message="Add type hints", category=UserWarning)
        wrapper = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    if not isinstance(wrapper, ReadmissionPyfunc):
        raise TypeError(f"{model_uri} is not a readmit model (got {type(wrapper).__name__})")
    wrapper.model.check_compatible()
    return wrapper.model
