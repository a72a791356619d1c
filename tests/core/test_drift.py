"""Drift binning and the population stability index (no servers, no data set)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.models import flat_rates

from readmit_core.drift import INPUTS, MISSING, bin_rows, psi, shares, valid_baseline
from readmit_core.features import encode_records
from readmit_core.schema import example_encounter


def test_bins_follow_the_encounters_values() -> None:
    old = {
        **example_encounter(),
        "age": "[90-100)",
        "number_inpatient": 7,
        "diag_1": None,
        "admission_type_id": None,
        "A1Cresult": ">8",
    }
    (row,) = bin_rows(encode_records([old], flat_rates()))
    labels = {spec.name: spec.labels[b] for spec, b in zip(INPUTS, row, strict=True)}
    assert labels == {
        "age": "[90-100)",
        "admission_type": MISSING,
        "prior_inpatient": "3+",
        "a1c_result": ">8",
        "primary_diagnosis": MISSING,
    }


def test_psi() -> None:
    base = [0.5, 0.3, 0.2]
    assert psi(base, base) == 0
    assert psi(base, [0.3, 0.3, 0.4]) == pytest.approx(
        0.2 * math.log(0.3 / 0.5) * -1 + 0.2 * math.log(0.4 / 0.2)
    )
    assert math.isfinite(psi(base, [1.0, 0.0, 0.0]))  # an empty bin is smoothed, not infinite


def test_shares_and_the_baseline_check() -> None:
    bins = bin_rows(encode_records([example_encounter()] * 3, flat_rates()))
    table = shares(bins)
    assert all(sum(v) == pytest.approx(1.0) for v in table.values())
    assert valid_baseline({"flagged_share": 0.2, "shares": table}) is not None
    assert valid_baseline({"shares": {**table, "age": [1.0]}}) is None  # another binning
    assert valid_baseline(None) is None
    assert np.issubdtype(bins.dtype, np.integer)
