"""How often each ICD-9 code was followed by a readmission: the encoding's one fitted part.

The ~750 codes as categories overfit, and their numeric value only orders them. A smoothed
readmission rate per code (Micci-Barreca 2001: the code's rate shrunk toward the overall rate by
``SMOOTHING`` pseudo-encounters) carries what the training data know of each: per diagnosis
position for the full code and for its 3-character category, and for the category in any of the
three positions (the highest, mean and lowest of the three rates).

The tables are fitted on training rows only and saved with the model as data. The training rows'
own values come out of fold (``out_of_fold``): a row's rate never counts its own label. A code or
category seen in fewer than ``MIN_ENCOUNTERS`` training encounters has no entry: a code seen once
would give away that one patient's label to whoever reads the registry. Such a code takes its
category's rate, and a category without one the prior.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DIAGNOSES = ("diag_1", "diag_2", "diag_3")
SMOOTHING = 50.0  # pseudo-encounters at the overall rate: a code seen 50 times is half its own
MIN_ENCOUNTERS = 10  # a table's entry sums at least this many encounters' labels
MISSING = "?"  # the data set's mark for a missing code, the key of its own rate
OOF_FOLDS = 5

# Feature names, in the order ``DiagnosisRates.rows`` returns them.
POSITION_FEATURES = tuple(f"{d}_{level}_rate" for d in DIAGNOSES for level in ("code", "category"))
ANYWHERE_FEATURES = ("diagnoses_rate_max", "diagnoses_rate_mean", "diagnoses_rate_min")
RATE_FEATURES = POSITION_FEATURES + ANYWHERE_FEATURES
# Table names: per position and level, then the categories in any position.
TABLES = (*(f"{d}_{level}" for d in DIAGNOSES for level in ("code", "category")), "anywhere")

Codes = Sequence[Sequence[str | None]]  # per diagnosis position, one code (or None) per row


class RatesError(ValueError):
    """The saved tables are not valid rates."""


def category(code: str | None) -> str:
    """The code's 3-character category ("250.83" -> "250", "V57.1" -> "V57")."""
    return MISSING if code is None else code.split(".", 1)[0]


def _keys(codes: Codes) -> list[np.ndarray]:
    """Per table of ``TABLES`` but the last, the rows' keys; then the three categories."""
    keys = []
    for column in codes:
        keys.append(np.array([MISSING if c is None else c for c in column], dtype=object))
        keys.append(np.array([category(c) for c in column], dtype=object))
    return keys


def _rates(keys: np.ndarray, y: np.ndarray, prior: float) -> dict[str, float]:
    import pandas as pd  # fitting is the trainer's (the api never fits, nor installs pandas)

    inverse, uniques = pd.factorize(keys)  # hashing: ~20x np.unique's sort of strings
    counts = np.bincount(inverse, minlength=len(uniques))
    positives = np.bincount(inverse, weights=y, minlength=len(uniques))
    rates = (positives + SMOOTHING * prior) / (counts + SMOOTHING)
    kept = counts >= MIN_ENCOUNTERS
    return dict(zip(uniques[kept].tolist(), rates[kept].tolist(), strict=True))


@dataclass(frozen=True)
class DiagnosisRates:
    prior: float  # the training rows' readmission rate: any code they never showed
    tables: dict[str, dict[str, float]]  # ``TABLES`` name -> key -> smoothed rate

    @classmethod
    def fit(cls, codes: Codes, y: np.ndarray) -> DiagnosisRates:
        y = np.asarray(y, dtype=np.float64)
        prior = float(y.mean())
        keys = _keys(codes)
        # the per-position tables pair with the keys; "anywhere", the last, is built below
        tables = {name: _rates(k, y, prior) for name, k in zip(TABLES, keys, strict=False)}
        anywhere = np.concatenate(keys[1::2])  # a row counts once per position holding the code
        tables["anywhere"] = _rates(anywhere, np.tile(y, len(DIAGNOSES)), prior)
        return cls(prior, tables)

    def rows(self, codes: Codes) -> np.ndarray:
        """(rows, ``RATE_FEATURES``) for the codes."""
        keys = _keys(codes)
        n = len(keys[0])
        out = np.empty((n, len(RATE_FEATURES)))
        # per position: the category's rate (else the prior), then the code's (else the category's)
        for j in range(0, len(POSITION_FEATURES), 2):
            codes_, categories = self.tables[TABLES[j]], self.tables[TABLES[j + 1]]
            out[:, j + 1] = [categories.get(key, self.prior) for key in keys[j + 1]]
            out[:, j] = [
                codes_.get(key, rate) for key, rate in zip(keys[j], out[:, j + 1], strict=True)
            ]
        anywhere = self.tables["anywhere"]
        per_position = np.array(
            [[anywhere.get(key, self.prior) for key in k] for k in keys[1::2]]
        ).reshape(len(DIAGNOSES), n)
        npos = len(POSITION_FEATURES)
        out[:, npos], out[:, npos + 1], out[:, npos + 2] = (
            per_position.max(axis=0),
            per_position.mean(axis=0),
            per_position.min(axis=0),
        )
        return out

    def row(self, codes: Sequence[str | None]) -> list[float]:
        """``rows`` for one encounter's three codes (the api's path: dict lookups only)."""
        tables, prior = self.tables, self.prior
        out = []
        anywhere = []
        for d, code in zip(DIAGNOSES, codes, strict=True):
            cat = category(code)
            cat_rate = tables[f"{d}_category"].get(cat, prior)
            out.append(tables[f"{d}_code"].get(MISSING if code is None else code, cat_rate))
            out.append(cat_rate)
            anywhere.append(tables["anywhere"].get(cat, prior))
        return [*out, max(anywhere), sum(anywhere) / len(anywhere), min(anywhere)]

    def to_data(self) -> dict[str, Any]:
        return {"prior": self.prior, "smoothing": SMOOTHING, "tables": self.tables}

    @classmethod
    def from_data(cls, data: Any) -> DiagnosisRates:
        """Checked: every table named, every rate a probability."""
        try:
            prior, tables = float(data["prior"]), data["tables"]
            ok = 0.0 <= prior <= 1.0 and isinstance(tables, dict) and set(tables) == set(TABLES)
            ok = ok and all(
                isinstance(t, dict)
                and all(
                    isinstance(k, str) and type(v) in (int, float) and 0.0 <= v <= 1.0
                    for k, v in t.items()
                )
                for t in tables.values()
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise RatesError("diagnosis rates must name every table with rates in [0, 1]")
        return cls(prior, {name: {k: float(v) for k, v in t.items()} for name, t in tables.items()})


def out_of_fold(codes: Codes, y: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """``rows`` for training rows, each from tables fitted on the other folds' patients (a
    patient's own encounters never inform its rates)."""
    from sklearn.model_selection import GroupKFold

    columns = [np.asarray(c, dtype=object) for c in codes]
    out = np.empty((len(y), len(RATE_FEATURES)))
    splitter = GroupKFold(n_splits=OOF_FOLDS, shuffle=True, random_state=seed)
    for fit, apply in splitter.split(out, y, groups=groups):
        rates = DiagnosisRates.fit([c[fit] for c in columns], y[fit])
        out[apply] = rates.rows([c[apply] for c in columns])
    return out
