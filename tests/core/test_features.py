"""The fast encoding path equals the pandas path, and the served model uses it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.project import require
from support.servers import use_mlflow

from readmit_core.data import to_records
from readmit_core.diagnosis_rates import DiagnosisRates
from readmit_core.encounter import Encounter, encounter_record
from readmit_core.features import (
    CATEGORICAL_FEATURES,
    DIAGNOSIS_GROUPS,
    FEATURE_FACTORS,
    FEATURE_NAMES,
    diagnosis_codes,
    encode_frame,
    encode_records,
    icd9_features,
)
from readmit_core.schema import FIELDS


@pytest.mark.parametrize(
    ("code", "group"),
    [
        ("428", "circulatory"),
        ("785", "circulatory"),
        ("486", "respiratory"),
        ("786", "respiratory"),
        ("562", "digestive"),
        ("250.83", "diabetes"),
        ("250", "diabetes"),
        ("996", "injury"),
        ("715", "musculoskeletal"),
        ("599", "genitourinary"),
        ("788", "genitourinary"),
        ("174", "neoplasms"),
        ("276", "other"),
        ("V57", "other"),
        ("E909", "other"),
        ("8", "other"),
    ],
)
def test_diagnosis_groups_of_strack_et_al(code: str, group: str) -> None:
    assert DIAGNOSIS_GROUPS[int(icd9_features(code)[1])] == group


def test_icd9_values() -> None:
    assert icd9_features("250.83")[0] == 250.83
    assert icd9_features("V57")[0] == 1057.0
    assert icd9_features("E909")[0] == 2909.0
    assert all(math.isnan(v) for v in icd9_features(None))


def fitted_rates(frame: pd.DataFrame) -> DiagnosisRates:
    return DiagnosisRates.fit(diagnosis_codes(frame), frame["target"].to_numpy())


def test_fast_encoding_equals_pandas_encoding(encounters) -> None:
    rows = encounters.sample(1000, random_state=0)
    rates = fitted_rates(encounters.sample(5000, random_state=1))  # some codes unseen by them
    records = [encounter_record(Encounter.model_validate(r)) for r in to_records(rows)]
    fast, slow = encode_records(records, rates), encode_frame(rows, rates)
    assert fast.shape == slow.shape == (1000, len(FEATURE_NAMES))
    assert np.array_equal(fast, slow, equal_nan=True)
    # from records turned back into a frame (None for missing), as pyfunc receives them
    assert np.array_equal(encode_frame(pd.DataFrame(records), rates), fast, equal_nan=True)


def test_missing_values_encode_as_nan_not_as_a_category(encounters) -> None:
    record = {**to_records(encounters.iloc[1:2])[0], "medical_specialty": None, "diag_2": None}
    rates = fitted_rates(encounters.head(2000))
    row = dict(zip(FEATURE_NAMES, encode_records([record], rates)[0], strict=True))
    assert row["diag_2_code_rate"] == rates.tables["diag_2_code"]["?"]  # missing has its rate
    assert math.isnan(row["medical_specialty"])
    assert math.isnan(row["diag_2_value"])
    assert math.isnan(row["diag_2_group"])
    # a category is NaN exactly when the encounter leaves it out (weight, mostly)
    for c in CATEGORICAL_FEATURES:
        if c in record:
            assert math.isnan(row[c]) == (record[c] is None), c


def test_registered_model_pyfunc_equals_both_encodings(
    sqlite_registry,
    encounters,
) -> None:
    """The logged artifact, loaded as MLflow loads it: 1,000 real rows, 1e-9 apart. The pyfunc
    (the record path since schema 3) given the data set's own frame, NaN for missing, equals the
    trainer's vectorised encode_frame path and the api's records."""
    import mlflow

    from readmit_core.artifact import load_from_mlflow

    use_mlflow(sqlite_registry["uri"])
    uri = "models:/diabetes-readmission@production"
    rows = encounters.sample(1000, random_state=11)
    records = [encounter_record(Encounter.model_validate(r)) for r in to_records(rows)]
    pyfunc = mlflow.pyfunc.load_model(uri)
    pyfunc_risk = np.asarray(pyfunc.predict(rows[[f.name for f in FIELDS]]))
    model = load_from_mlflow(uri)
    fast_risk = model.predict_records(records)
    assert pyfunc_risk.shape == fast_risk.shape == (1000,)
    assert np.max(np.abs(pyfunc_risk - fast_risk)) <= 1e-9
    assert np.max(np.abs(pyfunc_risk - model.predict_frame(rows))) <= 1e-9
    assert np.max(np.abs(np.asarray(pyfunc.predict(pd.DataFrame(records))) - fast_risk)) <= 1e-9
    # the compiled scorer (the api's) and NumPy's agree on every part of the registered model
    x = model.encode_records(records)
    parts = getattr(model.scorer, "parts", [model.scorer])
    require(all(p.trees.compiled is not None for p in parts), "the compiled scorer is missing")
    for part in parts:
        assert np.max(np.abs(part.trees.raw(x) - part.trees.raw_numpy(x))) <= 1e-9, part.kind
    assert fast_risk.min() > 0.0
    assert fast_risk.max() < 1.0
    assert model.threshold == pytest.approx(sqlite_registry["result"]["threshold"])


def test_pyfunc_class_has_the_input_hint_mlflow_asks_for() -> None:
    """MLflow checks `predict`'s hints as our pyfunc class is defined: on every model load by
    `mlflow.pyfunc.load_model` (and in the trainer), it warned "Add type hints". A fresh
    interpreter: the class is defined while the warnings are recorded."""
    code = (
        "import mlflow.pyfunc, warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    import readmit_core.pyfunc\n"
        "print([str(w.message) for w in seen])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Add type hints" not in out.stdout, out.stdout


def test_saved_scorers_give_the_fitted_estimators_numbers(encounters, tmp_path: Path) -> None:
    """What is saved as data (LightGBM's text model; the pipeline's numbers) scores as the fitted
    sklearn/LightGBM objects do, and survives a save and load of the artifact."""
    from readmit_core import artifact
    from readmit_core.model import ReadmissionModel
    from readmit_trainer.candidates import lightgbm, logistic, to_scorer

    rows = encounters.sample(4000, random_state=2)
    rates = fitted_rates(rows.iloc[:3000])
    X, y = encode_frame(rows, rates), rows["target"].to_numpy()
    for candidate in (lightgbm, logistic):
        fitted = candidate.fit(X[:3000], y[:3000], X[3000:], y[3000:], 0)
        expected = fitted.estimator.predict_proba(X)[:, 1]
        model = ReadmissionModel(
            to_scorer(fitted.algorithm, fitted.estimator), 0.2, fitted.algorithm, rates
        )
        np.testing.assert_allclose(model.predict_proba(X), expected, rtol=0, atol=1e-12)
        artifact.save(model, tmp_path / fitted.algorithm)
        loaded = artifact.load(tmp_path / fitted.algorithm)
        np.testing.assert_allclose(loaded.predict_frame(rows), expected, rtol=0, atol=1e-12)
        assert (loaded.threshold, loaded.algorithm, loaded.rates) == (0.2, fitted.algorithm, rates)


def test_race_and_payer_are_accepted_but_never_read_by_the_model(encounters) -> None:
    """Schema 3: race and insurance stay in the schema (the by-group audit) and out of the
    features: changing or leaving them out gives the same row on both encoding paths."""
    from readmit_core.schema import FIELDS_BY_NAME, MODEL_INPUTS

    audit_only = {"race", "payer_code"}
    assert audit_only <= set(FIELDS_BY_NAME)
    assert not audit_only & {f.name for f in MODEL_INPUTS}
    assert not audit_only & set(FEATURE_NAMES)
    assert not audit_only & set(FEATURE_FACTORS)
    rates = fitted_rates(encounters.head(2000))
    base = to_records(encounters.iloc[:50])
    variants = [
        base,
        [{**r, "race": "AfricanAmerican", "payer_code": "SP"} for r in base],
        [{**r, "race": None, "payer_code": None} for r in base],
        [{k: v for k, v in r.items() if k not in audit_only} for r in base],
    ]
    rows = [np.array(encode_records(v, rates)) for v in variants]
    for other in rows[1:]:
        assert np.array_equal(rows[0], other, equal_nan=True)
    assert np.array_equal(encode_frame(pd.DataFrame(variants[3]), rates), rows[0], equal_nan=True)
