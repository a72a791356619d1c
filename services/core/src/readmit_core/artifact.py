"""The model artifact as data: one JSON manifest plus the scorer's text files.

``save`` writes what the trainer registers; ``load`` rebuilds a ``ReadmissionModel`` from it and
refuses anything else with a reason (``ArtifactError``). Nothing is unpickled and no file of the
artifact is run: whoever can write to the registry cannot run code where the model is loaded.
A version in the old pickled format (an MLflow ``python_model.pkl``) is refused as such.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from readmit_core.diagnosis_rates import DiagnosisRates, RatesError
from readmit_core.model import ReadmissionModel
from readmit_core.scoring import SCORERS, ScorerError

# 2: the diagnosis rates (the encoding's fitted part) joined the manifest.
FORMAT = "readmit-model/2"
MANIFEST = "readmit_model.json"
# Where the manifest sits in an MLflow model directory (the pyfunc's "readmit" artifact).
MLFLOW_SUBDIR = Path("artifacts") / "readmit"
MAX_FILE_BYTES = 64 * 1024 * 1024


class ArtifactError(ValueError):
    """Not a model this code will serve, and why."""


def save(model: ReadmissionModel, directory: Path) -> Path:
    """Write the manifest and the scorer's files into ``directory``; returns the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    params, files = model.scorer.to_data()
    for name, text in files.items():
        (directory / name).write_text(text)
    manifest = {
        "format": FORMAT,
        "algorithm": model.algorithm,
        "threshold": model.threshold,
        "schema_version": model.schema_version,
        "feature_names": list(model.feature_names),
        "diagnosis_rates": model.rates.to_data(),
        "info": model.info,
        "scorer": {"kind": model.scorer.kind, "params": params, "files": sorted(files)},
    }
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, default=str))
    return path


def find_manifest(directory: Path) -> Path:
    """The manifest of a saved artifact or of a downloaded MLflow model directory."""
    for candidate in (directory / MANIFEST, directory / MLFLOW_SUBDIR / MANIFEST):
        if candidate.is_file():
            return candidate
    if any(directory.rglob("*.pkl")):
        raise ArtifactError(
            "this version is in the pickled model format, which is never loaded (it could run "
            "code): register it again with this version's trainer"
        )
    raise ArtifactError(f"no {MANIFEST} in the model's files: not a readmit model")


def load(directory: Path) -> ReadmissionModel:
    """Rebuild the model from ``directory`` (a saved artifact or an MLflow model directory)."""
    path = find_manifest(directory)
    try:
        text = _read(path)
    except ScorerError as exc:
        raise ArtifactError(str(exc)) from None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ArtifactError(f"{MANIFEST} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        said = manifest.get("format") if isinstance(manifest, dict) else None
        raise ArtifactError(
            f"{MANIFEST} is not in the {FORMAT} format (it says {said!r}): "
            "register it again with this version's trainer"
        )
    try:
        scorer_spec = manifest["scorer"]
        kind, params, names = scorer_spec["kind"], scorer_spec["params"], scorer_spec["files"]
        threshold = float(manifest["threshold"])
        model = ReadmissionModel(
            scorer=_scorer(kind, params, names, path.parent),
            threshold=threshold,
            algorithm=str(manifest["algorithm"]),
            rates=DiagnosisRates.from_data(manifest["diagnosis_rates"]),
            feature_names=tuple(manifest["feature_names"]),
            schema_version=str(manifest["schema_version"]),
            info=dict(manifest.get("info") or {}),
        )
    except (KeyError, TypeError, ScorerError, RatesError) as exc:
        raise ArtifactError(f"{MANIFEST} does not describe a model: {exc}") from None
    if not 0.0 < threshold < 1.0:  # NaN fails it too
        raise ArtifactError(f"threshold {threshold} is not a probability")
    model.check_compatible()
    return model


def _scorer(kind: Any, params: Any, names: Any, directory: Path) -> Any:
    scorer_class = SCORERS.get(kind) if isinstance(kind, str) else None
    if scorer_class is None:
        raise ScorerError(f"unknown scorer kind {kind!r}")
    if not isinstance(params, dict) or not isinstance(names, list):
        raise ScorerError("scorer params must be an object and files a list")
    files = {}
    for name in names:
        # Plain names in the manifest's own directory only: no paths out of the artifact.
        if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
            raise ScorerError(f"bad file name {name!r}")
        files[name] = _read(directory / name)
    return scorer_class.from_data(params, files)


def _read(path: Path) -> str:
    if not path.is_file():
        raise ScorerError(f"{path.name} is missing")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ScorerError(f"{path.name} is over {MAX_FILE_BYTES} bytes")
    return path.read_text()


def load_from_mlflow(model_uri: str) -> ReadmissionModel:
    """Download a logged model's files (registry or run URI) and load them as data.

    Needs mlflow-skinny; the tracking/registry URIs are MLflow's (set_tracking_uri or env).
    """
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="readmit-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return load(Path(local))
