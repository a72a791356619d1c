"""The model-from-code file MLflow logs with each version (see readmit_core.pyfunc)."""

from mlflow.models import set_model

from readmit_core.pyfunc import ReadmissionPyfunc

set_model(ReadmissionPyfunc())
