"""Logging to MLflow, registering a version, and judging the current alias holder."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.metrics import roc_auc_score

from readmit_core import artifact
from readmit_core.model import ReadmissionModel
from readmit_core.schema import FIELDS
from readmit_trainer.progress import progress
from readmit_trainer.promotion import Champion

EXPERIMENT = "diabetes-readmission"
# What a pyfunc serving environment needs besides the readmit-core package itself.
SERVING_REQUIREMENTS = ("mlflow-skinny", "numpy", "pandas", "pydantic")


def signature() -> ModelSignature:
    """Input columns from the encounter schema; output: the risk."""
    columns = [ColSpec("long" if f.is_integer else "string", f.name, required=not f.nullable)
               for f in FIELDS]  # fmt: skip
    return ModelSignature(
        inputs=Schema(columns),
        outputs=Schema([ColSpec("double", "readmission_risk")]),
    )


def set_tracking(uri: str) -> None:
    """Point MLflow at ``uri``; a sqlite store keeps its artifacts beside the database file."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(urlparse(uri).path)
            location = (db.parent / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)


def log_and_register(
    model: ReadmissionModel,
    model_name: str,
    example: pd.DataFrame,
    artifacts: list[Path],
    workdir: Path,
) -> str:
    """Log the model (data files + the pyfunc's code file, no pickle) and register it; returns
    the new version."""
    from readmit_core.pyfunc import ARTIFACT_KEY, CODE_PATH

    for path in artifacts:
        mlflow.log_artifact(str(path))
    data = workdir / ARTIFACT_KEY
    artifact.save(model, data)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(CODE_PATH),
        artifacts={ARTIFACT_KEY: str(data)},
        signature=signature(),
        input_example=example,
        registered_model_name=model_name,
        pip_requirements=[f"{p}=={version(p)}" for p in SERVING_REQUIREMENTS],
        metadata={
            "threshold": model.threshold,
            "algorithm": model.algorithm,
            "schema_version": model.schema_version,
        },
    )
    return str(info.registered_model_version)


def champion_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def judge_champion(model_name: str, version_: str, Xv: np.ndarray, yv: np.ndarray) -> Champion:
    """The current alias holder, scored on this run's validation set.

    The split is a fixed hash of the patient, so the champion never trained on these patients.
    Files the api would refuse make it unservable; any other failure only unscorable.
    """
    try:
        champion = artifact.load_from_mlflow(f"models:/{model_name}/{version_}")
    except artifact.ArtifactError as exc:
        progress(f"version {version_} cannot be served: {exc}")
        return Champion(version_, None, unservable=str(exc))
    except Exception as exc:  # e.g. the registry or its store failing: cannot compare
        progress(f"cannot score version {version_}: {exc}")
        return Champion(version_, None)
    return Champion(version_, float(roc_auc_score(yv, champion.predict_proba(Xv))))
