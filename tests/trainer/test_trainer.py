"""readmit-train against a real ``mlflow server`` process and a local sqlite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.servers import client, run_trainer, use_mlflow

from readmit_core.schema import SCHEMA_VERSION

NAME = "diabetes-readmission"


def check_result(result: dict[str, Any]) -> None:
    assert result["model_name"] == NAME
    for part in ("validation", "test"):
        metrics = result[part]
        assert set(metrics) == {"roc_auc", "pr_auc", "brier", "ece"}
        assert 0.55 < metrics["roc_auc"] < 1.0, metrics
        assert 0.0 < metrics["brier"] < 0.25
        assert 0.0 <= metrics["ece"] < 0.1
    assert 0.0 < result["threshold"] < 1.0


def test_sqlite_store_first_version_takes_the_alias(sqlite_registry: dict[str, Any]) -> None:
    result = sqlite_registry["result"]
    check_result(result)
    assert (result["version"], result["alias_moved"], result["previous_version"]) == (
        "1",
        True,
        None,
    )


def test_the_registry_holds_no_patient_record(
    sqlite_registry: dict[str, Any], tmp_path: Path
) -> None:
    """MLflow's input example is the schema's made-up encounter, not rows of the training data."""
    import json

    import mlflow

    from readmit_core.schema import example_encounter

    use_mlflow(sqlite_registry["uri"])
    model = sqlite_registry["result"]["model_name"]
    files = Path(mlflow.artifacts.download_artifacts(f"models:/{model}/1", dst_path=str(tmp_path)))
    example = json.loads((files / "input_example.json").read_text())
    assert example["columns"] == list(example_encounter())
    assert example["data"] == [list(example_encounter().values())]


@pytest.fixture(scope="module")
def server_runs(mlflow_server: str, data_path: Path) -> dict[str, dict[str, Any]]:
    """Champion on 8,000 encounters, then a 2,000-encounter challenger, then the same forced.
    They are compared on the challenger's test part: 2,000 encounters leave ~300 there (1,000
    left ~150, where the weaker model won by chance)."""
    small = ("--sample", "2000", "--seed", "2", "--candidates", "logistic_regression")
    return {
        "champion": run_trainer(data_path, mlflow_server, "--sample", "8000", "--seed", "1"),
        "challenger": run_trainer(data_path, mlflow_server, *small),
        "forced": run_trainer(data_path, mlflow_server, *small, "--force"),
    }


def test_server_registers_a_version_and_sets_the_alias(server_runs, mlflow_server: str) -> None:
    champion = server_runs["champion"]
    check_result(champion)
    assert champion["alias_moved"] is True
    c = client(mlflow_server)
    version = c.get_model_version(NAME, champion["version"])
    assert version.tags["threshold"] == str(champion["threshold"])
    assert version.tags["schema_version"] == SCHEMA_VERSION
    run = c.get_run(champion["run_id"])
    for key in (
        "val_roc_auc",
        "test_roc_auc",
        "val_pr_auc",
        "test_brier",
        "val_log_loss",
        "test_precision_at_threshold",
        "test_recall_at_threshold",
        "threshold",
    ):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in c.list_artifacts(champion["run_id"])}
    assert {"model_card.md", "roc_curve.png", "calibration.png", "summary.json"} <= artifacts
    # The model's files: its own requirements, not the checkout's uv.lock (the trainer ran here).
    from mlflow.artifacts import list_artifacts

    use_mlflow(mlflow_server)
    files = {a.path for a in list_artifacts(artifact_uri=f"models:/{NAME}/{champion['version']}")}
    assert {"MLmodel", "requirements.txt", "artifacts"} <= files
    assert not files & {"uv.lock", "pyproject.toml"}, files


def test_worse_challenger_does_not_move_the_alias(server_runs, mlflow_server: str) -> None:
    champion, challenger = server_runs["champion"], server_runs["challenger"]
    assert challenger["alias_moved"] is False
    assert challenger["previous_version"] == champion["version"]
    assert challenger["champion_test_roc_auc"] > challenger["test"]["roc_auc"]
    assert int(challenger["version"]) == int(champion["version"]) + 1  # registered all the same


def test_force_moves_the_alias(server_runs, mlflow_server: str) -> None:
    forced = server_runs["forced"]
    assert forced["alias_moved"] is True
    assert (
        client(mlflow_server).get_model_version_by_alias(NAME, "production").version
        == (forced["version"])
    )


def test_registered_model_loads_over_http_with_the_skinny_loader(
    server_runs,
    mlflow_server: str,
    encounters,
) -> None:
    """What the api does: models:/name@alias over HTTP into a ReadmissionModel."""

    from readmit_core.artifact import load_from_mlflow
    from readmit_core.data import to_records

    use_mlflow(mlflow_server)
    model = load_from_mlflow(f"models:/{NAME}@production")
    risk = model.predict_records(to_records(encounters.head(5)))
    assert risk.shape == (5,)
    assert ((risk > 0) & (risk < 1)).all()
    assert model.threshold == pytest.approx(server_runs["forced"]["threshold"])


def test_the_alias_moves_off_a_pickled_champion(data_path: Path, tmp_path: Path) -> None:
    """After an upgrade the production version may be in the old pickled format, which the api
    refuses: the next training run takes the alias without --force, and nothing is unpickled."""
    from support.models import hostile_pickle

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    marker = tmp_path / "unpickled"
    c = client(uri)
    c.create_registered_model(NAME)
    run = c.create_run(c.create_experiment("old", artifact_location=(tmp_path / "a").as_uri()))
    c.log_artifacts(run.info.run_id, str(hostile_pickle(tmp_path / "old", marker)), "model")
    old = c.create_model_version(NAME, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    c.set_registered_model_alias(NAME, "production", old.version)
    result = run_trainer(data_path, uri, "--sample", "1000", "--candidates", "logistic_regression")
    assert result["alias_moved"] is True, result
    assert "cannot be served" in result["alias_reason"]
    assert result["previous_version"] == str(old.version)
    assert str(c.get_model_version_by_alias(NAME, "production").version) == result["version"]
    assert not marker.exists()


def test_cli_rejects_bad_options(data_path: Path) -> None:
    import subprocess
    import sys

    bin_ = Path(sys.executable).parent / "readmit-train"
    out = subprocess.run(
        [str(bin_), "--data", str(data_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert out.returncode == 2
    assert "no tracking URI" in out.stderr
    out = subprocess.run(
        [str(bin_), "--tracking-uri", "sqlite:///x.db", "--candidates", "svm"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "unknown candidates: svm" in out.stderr


def test_cross_validation_is_fixed_and_reports_mean_and_spread(encounters) -> None:
    """The CV of `make bench`, on a subsample: same folds and figures on every run, every row
    held out once, the four metrics as mean ± sd."""
    from readmit_core.schema import PATIENT_ID_COLUMN
    from readmit_trainer.crossval import cross_validate

    rows = encounters.sample(3000, random_state=4).reset_index(drop=True)
    y, patients = rows["target"].to_numpy(), rows[PATIENT_ID_COLUMN].to_numpy()
    first = cross_validate(rows, y, patients, ["logistic_regression"], 3, 0)
    again = cross_validate(rows, y, patients, ["logistic_regression"], 3, 0)
    assert first.pop("seconds") > 0
    again.pop("seconds")
    assert again == first
    assert sum(f["rows"] for f in first["per_fold"]) == len(rows)
    assert 0.55 < first["roc_auc"]["mean"] < 0.8
    assert first["roc_auc"]["sd"] > 0
    assert 0 <= first["ece"]["mean"] < 0.05
    assert set(first) >= {"roc_auc", "pr_auc", "brier", "ece", "folds", "seed", "by_group"}
    for column, groups in first["by_group"].items():  # every row in one group per column
        assert sum(g["rows"] for g in groups) == len(rows), column
        assert all(0 < g["predicted"] < 1 for g in groups)
    # The model card's section: the mean ± sd table, then a row per group of each column.
    from readmit_trainer.evaluation import GROUPED_BY, _cv_section

    card = _cv_section(first)
    assert f"| roc_auc | {first['roc_auc']['mean']:.4f} | {first['roc_auc']['sd']:.4f} |" in card
    for column in GROUPED_BY:
        assert f"| {column} = {first['by_group'][column][0]['value']} |" in card, column
    assert "not run" in _cv_section(None)


def test_calibration_by_group_finds_the_group_it_is_off_for() -> None:
    """One group's risks 5 points too high shows as that group's ECE; missing values are a
    group of their own, small groups pool into one, not scored while under the minimum."""
    import numpy as np
    import pandas as pd

    from readmit_trainer.evaluation import (
        GROUPED_BY,
        MIN_GROUP,
        MISSING,
        POOLED,
        by_group,
        group_table,
    )

    rng = np.random.default_rng(3)
    n = 40_000
    risk = rng.uniform(0.0, 0.4, n)
    y = (rng.random(n) < risk).astype(int)
    payer = rng.choice(np.array(["MC", "HM", None], dtype=object), n, p=[0.6, 0.3, 0.1])
    payer[: MIN_GROUP // 2] = "SP"  # too few: pooled
    shifted = risk + np.where(payer == "HM", 0.05, 0.0)
    frame = pd.DataFrame(dict.fromkeys(GROUPED_BY, "x"), index=range(n)).assign(payer_code=payer)
    groups = {g["value"]: g for g in by_group(frame, y, shifted)["payer_code"]}
    assert set(groups) == {"MC", "HM", MISSING, POOLED}
    assert groups[POOLED]["rows"] == MIN_GROUP // 2
    assert (groups[POOLED]["ece"], groups[POOLED]["roc_auc"]) == (None, None)  # too few
    assert abs(groups["HM"]["ece"] - 0.05) < 0.01
    assert groups["MC"]["ece"] < 0.01
    assert groups["HM"]["predicted"] - groups["HM"]["observed"] > 0.04
    assert "| payer_code = HM |" in group_table(by_group(frame, y, shifted))


def test_expected_calibration_error() -> None:
    import numpy as np

    from readmit_trainer.evaluation import expected_calibration_error

    rng = np.random.default_rng(0)
    risk = rng.uniform(0.0, 0.4, 200_000)
    y = (rng.random(risk.size) < risk).astype(int)
    assert expected_calibration_error(y, risk) < 0.005  # calibrated
    assert abs(expected_calibration_error(y, risk + 0.05) - 0.05) < 0.005  # 5 points too high


def test_chance_calibration_error_is_what_a_calibrated_model_shows() -> None:
    """On few rows even exact risks show an ECE: the chance level predicts its mean."""
    import numpy as np

    from readmit_trainer.evaluation import chance_calibration_error, expected_calibration_error

    rng = np.random.default_rng(5)
    for n in (2_000, 20_000):
        risk = rng.beta(2, 14, n)  # ~11 %, like readmission
        drawn = [
            expected_calibration_error((rng.random(n) < risk).astype(int), risk) for _ in range(200)
        ]
        assert np.mean(drawn) == pytest.approx(chance_calibration_error(risk), rel=0.1)
