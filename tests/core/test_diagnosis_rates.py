"""The encoding's fitted part: ICD-9 readmission rates (no server, no data set)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from readmit_core.diagnosis_rates import (
    MIN_ENCOUNTERS,
    RATE_FEATURES,
    SMOOTHING,
    TABLES,
    DiagnosisRates,
    RatesError,
    out_of_fold,
)

# Four encounters, each MIN_ENCOUNTERS times (a table's entry needs that many): codes per
# position (diag_1, diag_2, diag_3) and readmitted or not.
TIMES = MIN_ENCOUNTERS
FOUR = [["250.01", "250.83", "428", None], ["428", None, "250", "V57"], [None, None, "428", "8"]]
CODES = [column * TIMES for column in FOUR]
Y = np.tile([1, 0, 1, 0], TIMES)


def smoothed(positives: float, count: float, prior: float) -> float:
    return (positives + SMOOTHING * prior) / (count + SMOOTHING)


def test_rates_are_smoothed_toward_the_prior_per_code_category_and_anywhere() -> None:
    rates = DiagnosisRates.fit(CODES, Y)
    assert rates.prior == 0.5
    t = TIMES
    assert rates.tables["diag_1_code"]["250.01"] == pytest.approx(smoothed(t, t, 0.5))
    # "250.01" and "250.83" are one category; a missing code has its own rate
    assert rates.tables["diag_1_category"]["250"] == pytest.approx(smoothed(t, 2 * t, 0.5))
    assert rates.tables["diag_2_code"]["?"] == pytest.approx(smoothed(0, t, 0.5))
    # anywhere: 428 is in encounter 3 (diag_1), 1 (diag_2) and 3 again (diag_3)
    assert rates.tables["anywhere"]["428"] == pytest.approx(smoothed(3 * t, 3 * t, 0.5))
    assert set(rates.tables) == set(TABLES)


def test_a_code_seen_by_few_encounters_has_no_rate_of_its_own() -> None:
    """A rate of one encounter's code would be that patient's label, in the registry for anyone
    to read: below MIN_ENCOUNTERS a code takes its category's rate, a category the prior."""
    few = 2 * TIMES - 2
    codes = [
        [*CODES[0], *["250.99"] * (TIMES - 1), *["777.1"] * (TIMES - 1)],
        [*CODES[1], *[None] * few],
        [*CODES[2], *[None] * few],
    ]
    y = np.concatenate([Y, np.ones(2 * TIMES - 2)])
    rates = DiagnosisRates.fit(codes, y)
    assert "250.99" not in rates.tables["diag_1_code"]  # seen TIMES - 1 times
    assert "777" not in rates.tables["diag_1_category"]
    assert "777" not in rates.tables["anywhere"]
    assert min(len(v) for v in rates.tables.values()) > 0
    row = rates.row(("250.99", None, None))
    assert row[0] == row[1] == rates.tables["diag_1_category"]["250"]  # its category's
    assert rates.row(("777.1", None, None))[:2] == [rates.prior, rates.prior]


def test_unseen_codes_take_the_prior_and_one_row_equals_the_vector_path() -> None:
    rates = DiagnosisRates.fit(CODES, np.tile([1, 1, 0, 0], TIMES))
    encounters = [("999", None, "250.5"), ("428", "V57", None), (None, None, None)]
    by_position = [list(column) for column in zip(*encounters, strict=True)]
    matrix = rates.rows(by_position)
    assert matrix.shape == (3, len(RATE_FEATURES))
    for encounter, row in zip(encounters, matrix, strict=True):
        assert rates.row(encounter) == pytest.approx(row.tolist(), abs=1e-15)
    assert matrix[0, 0] == rates.prior  # diag_1 code 999 never seen
    assert matrix[0, 1] == rates.prior  # nor its category
    anywhere = [rates.tables["anywhere"].get(c, rates.prior) for c in ("999", "?", "250")]
    assert matrix[0, -3:].tolist() == pytest.approx(
        [max(anywhere), np.mean(anywhere), min(anywhere)]
    )


def test_out_of_fold_rates_never_count_the_patients_own_labels() -> None:
    """A code only one patient has: the rate that patient's rows get is the prior of the
    other folds, however often the patient was readmitted."""
    rng = np.random.default_rng(0)
    n = 400
    patients = rng.integers(0, 100, n)
    patients[: 2 * TIMES] = 7  # enough encounters for the code to have a rate of its own
    y = (rng.random(n) < 0.2).astype(int)
    codes = [[rng.choice(["428", "250", "276"]) for _ in range(n)], [None] * n, [None] * n]
    for i in np.flatnonzero(patients == 7):
        codes[0][i], y[i] = "999", 1
    oof = out_of_fold(codes, y, patients, seed=0)
    mine = patients == 7
    others = y[~mine].mean()
    assert np.all(np.abs(oof[mine, 0] - others) < 0.05)  # a fold's prior, not the code's 1.0
    full = DiagnosisRates.fit(codes, y).tables["diag_1_code"]["999"]
    assert full > others + 0.05  # what an in-fold rate would have leaked
    assert np.array_equal(out_of_fold(codes, y, patients, seed=0), oof)  # seeded


def test_saved_rates_round_trip_and_bad_ones_are_refused() -> None:
    rates = DiagnosisRates.fit(CODES, Y)
    assert DiagnosisRates.from_data(json.loads(json.dumps(rates.to_data()))) == rates
    good = rates.to_data()
    for bad in (
        {**good, "tables": {k: v for k, v in good["tables"].items() if k != "anywhere"}},
        {**good, "tables": {**good["tables"], "anywhere": {"428": 1.5}}},
        {**good, "tables": {**good["tables"], "anywhere": {"428": "0.1"}}},
        {**good, "prior": "x"},
        {"tables": good["tables"]},
        [],
    ):
        with pytest.raises(RatesError):
            DiagnosisRates.from_data(bad)
