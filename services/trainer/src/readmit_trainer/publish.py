"""MLflow I/O: logging a run, registering a version, judging the alias holder, moving the alias
(the rule itself is ``promotion.decide``)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
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
from readmit_core.features import FEATURE_NAMES
from readmit_core.model import IncompatibleModelError, ReadmissionModel
from readmit_core.schema import FIELDS, SCHEMA_VERSION
from readmit_core.settings import MODEL_NAME
from readmit_trainer.evaluation import HEADLINE, model_card, plots
from readmit_trainer.progress import progress
from readmit_trainer.promotion import Champion, Decision, decide
from readmit_trainer.training import TrainResult

EXPERIMENT = MODEL_NAME  # runs are logged under an experiment named like the model
# What a pyfunc serving environment needs besides the readmit-core package itself.
SERVING_REQUIREMENTS = ("mlflow-skinny", "numpy", "pandas", "pydantic")


def signature() -> ModelSignature:
    """Input columns from the encounter schema; output: the risk."""
    columns = [
        ColSpec("long" if f.is_integer else "string", f.name, required=not f.nullable)
        for f in FIELDS
    ]
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
    # MLflow would copy the uv.lock and pyproject.toml of the directory it runs in into the model:
    # a checkout's whole development lock, nothing in the image. The model names its own
    # requirements, so the same files are logged wherever it is trained.
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
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


def judge_champion(
    model_name: str, version_: str, encounters: pd.DataFrame, y: np.ndarray
) -> Champion:
    """The current alias holder, scored on this run's test part with its own encoding.

    The split is a fixed hash of the patient and every model is refit on training + validation,
    so the test part is the one neither model trained on (nor fitted its rates on).
    Files the api would refuse make it unservable; any other failure only unscorable.
    """
    try:
        champion = artifact.load_from_mlflow(f"models:/{model_name}/{version_}")
    except (artifact.ArtifactError, IncompatibleModelError) as exc:  # the api refuses it too
        progress(f"version {version_} cannot be served: {exc}")
        return Champion(version_, None, unservable=str(exc))
    except Exception as exc:  # e.g. the registry or its store failing: cannot compare
        progress(f"cannot score version {version_}: {exc}")
        return Champion(version_, None)
    return Champion(version_, float(roc_auc_score(y, champion.predict_frame(encounters))))


@dataclass(frozen=True)
class Published:
    version: str
    run_id: str
    holder: str | None  # the alias's version before this run
    champion: Champion | None  # how this run judged it
    decision: Decision


def publish(
    result: TrainResult, model_name: str, alias: str, force: bool, run_params: dict[str, Any]
) -> Published:
    """Log the run (params, metrics, model card, plots), register the model, judge the alias
    holder on this run's test part and move the alias as ``promotion.decide`` says."""
    summary, model = result.summary, result.model
    client = MlflowClient()
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        progress(f"logging run {run.info.run_id} to {mlflow.get_tracking_uri()}")
        mlflow.log_params(
            {
                "algorithm": summary["algorithm"],
                **run_params,
                "rows": summary["rows"],
                "schema_version": SCHEMA_VERSION,
                "features": len(FEATURE_NAMES),
                **{f"param_{k}": v for k, v in summary["params"].items()},
                **{f"n_{k}": v for k, v in summary["split"].items()},
            }
        )
        mlflow.log_metrics({f"val_{k}": v for k, v in summary["validation"].items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in summary["test"].items()})
        mlflow.log_metrics(
            {f"candidate_{k}_val_roc_auc": v for k, v in summary["candidates"].items()}
        )
        mlflow.log_metric("threshold", model.threshold)
        if summary["cv"]:
            cv = summary["cv"]
            mlflow.log_metrics({f"cv_{k}_{s}": cv[k][s] for k in HEADLINE for s in ("mean", "sd")})
        (out / "model_card.md").write_text(model_card(summary))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        files = [
            out / "model_card.md",
            out / "summary.json",
            *plots(*result.test, out, f"test set, {summary['algorithm']}"),
        ]
        progress("registering the model")
        version = log_and_register(model, model_name, result.example, files, out)

    holder = champion_version(client, model_name, alias)
    challenger_auc = summary["test"]["roc_auc"]
    champion = None
    if holder is not None and holder != version:
        champion = judge_champion(model_name, holder, *result.holdout)
    decision = decide(challenger_auc, champion, force)
    client.set_model_version_tag(model_name, version, "threshold", str(model.threshold))
    client.set_model_version_tag(model_name, version, "test_roc_auc", f"{challenger_auc:.6f}")
    client.set_model_version_tag(model_name, version, "schema_version", SCHEMA_VERSION)
    if decision.move:
        client.set_registered_model_alias(model_name, alias, version)
    moved = "moved" if decision.move else "kept"
    progress(f"version {version}: alias '{alias}' {moved} ({decision.reason})")
    return Published(version, run.info.run_id, holder, champion, decision)
