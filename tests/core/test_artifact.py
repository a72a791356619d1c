"""The model artifact is data: what it refuses, and that refusing never runs what it carries."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.models import flat_rates, hostile_pickle

from readmit_core import artifact
from readmit_core.features import CATEGORY_SIZES, FEATURE_NAMES, NUMERIC_FEATURES
from readmit_core.model import ReadmissionModel
from readmit_core.scoring import LinearScorer


def linear_model() -> ReadmissionModel:
    n = len(NUMERIC_FEATURES)
    scorer = LinearScorer(
        [0.0] * n,
        [0.0] * n,
        [1.0] * n,
        [0.01] * n,
        [[0.1] * (size + 1) for size in CATEGORY_SIZES],
        -2.0,
    )
    return ReadmissionModel(scorer, 0.2, "logistic_regression", flat_rates(), info={"rows": 3})


def test_a_saved_model_loads_back_as_it_was(tmp_path: Path) -> None:
    model = linear_model()
    artifact.save(model, tmp_path)
    loaded = artifact.load(tmp_path)
    X = np.random.default_rng(0).integers(0, 3, (50, len(FEATURE_NAMES))).astype(float)
    X[::7, 0] = np.nan  # missing numbers take the median, missing codes their own weight
    X[::5, len(NUMERIC_FEATURES)] = np.nan
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert (loaded.threshold, loaded.algorithm, loaded.info) == (
        0.2,
        "logistic_regression",
        {"rows": 3},
    )


def test_the_pickled_format_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    directory = hostile_pickle(tmp_path / "model", marker)
    with pytest.raises(artifact.ArtifactError, match="pickled model format"):
        artifact.load(directory)
    assert not marker.exists()
    # the proof works: unpickling it would have created the file
    pickle.loads((directory / "python_model.pkl").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: m.update(format="readmit-model/0"), "format"),
        (lambda m: m.update(format="readmit-model/1"), "register it again"),  # no rates in it
        (lambda m: m["diagnosis_rates"]["tables"].pop("anywhere"), "diagnosis rates must"),
        (lambda m: m.pop("diagnosis_rates"), "does not describe a model"),
        (lambda m: m["scorer"].update(kind="pickle"), "unknown scorer kind"),
        (lambda m: m["scorer"].update(files=["../../etc/passwd"]), "bad file name"),
        (lambda m: m["scorer"]["params"].update(intercept="os.system"), "bad linear parameters"),
        (lambda m: m["scorer"]["params"]["medians"].pop(), "numeric parameters"),
        (lambda m: m.update(threshold=1.5), "not a probability"),
        (lambda m: m.pop("threshold"), "does not describe a model"),
    ],
)
def test_a_manifest_that_does_not_describe_a_model_is_refused(
    tmp_path: Path, change, reason: str
) -> None:
    path = artifact.save(linear_model(), tmp_path)
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(artifact.ArtifactError, match=reason):
        artifact.load(tmp_path)


def test_a_booster_that_is_not_a_lightgbm_model_is_refused(tmp_path: Path) -> None:
    path = artifact.save(linear_model(), tmp_path)
    manifest = json.loads(path.read_text())
    manifest["scorer"] = {"kind": "lightgbm", "params": {}, "files": ["booster.txt"]}
    path.write_text(json.dumps(manifest))
    (tmp_path / "booster.txt").write_text("import os; os.system('touch /tmp/x')\n")
    with pytest.raises(artifact.ArtifactError, match="not a LightGBM binary text model"):
        artifact.load(tmp_path)


def test_the_api_loads_a_model_without_heavy_imports(tmp_path: Path) -> None:
    """In the api's own environment (as its image installs it), building the app and loading a
    saved tree model imports neither mlflow, pandas, scikit-learn, SciPy nor LightGBM."""
    import lightgbm as lgb
    from support.servers import API_BIN

    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (500, len(FEATURE_NAMES))).astype(float)
    y = (x[:, 0] + rng.random(500) > 1.5).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4}, lgb.Dataset(x, y), 5
    )
    save_dir = tmp_path / "model"
    save_dir.mkdir()
    (save_dir / "booster.txt").write_text(booster.model_to_string())
    manifest = json.loads(artifact.save(linear_model(), save_dir).read_text())
    manifest["algorithm"] = "lightgbm"
    manifest["scorer"] = {"kind": "lightgbm", "params": {}, "files": ["booster.txt"]}
    (save_dir / artifact.MANIFEST).write_text(json.dumps(manifest))
    code = (
        "import sys, pathlib, numpy as np\n"
        "from readmit_api.app import create_app\n"
        "from readmit_api.settings import Settings\n"
        "from readmit_core import artifact\n"
        "from readmit_core.features import FEATURE_NAMES\n"
        "create_app(Settings())\n"
        f"model = artifact.load(pathlib.Path({str(save_dir)!r}))\n"
        "assert model.predict_proba(np.zeros((2, len(FEATURE_NAMES)))).shape == (2,)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [str(API_BIN.parent / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = {name.split(".")[0] for name in out.split()}
    assert "readmit_core" in loaded
    assert not loaded & {"mlflow", "pandas", "sklearn", "scipy", "lightgbm"}
