"""The oblivious-tree scorer (readmit_core.scoring.catboost) against CatBoost itself, the blend
built on it, and what they refuse.

No data set and no servers: CatBoost is fitted here, the trainer's way
(``candidates.blend.fit_catboost``), on synthetic encoded rows whose label hangs on a combination of
two categories, so the model splits on combination counters, single counters, one-hot binary
categories and float borders; they are scored on other rows with unseen and missing values.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from catboost import Pool
from support.models import flat_rates
from support.project import require

from readmit_core import artifact
from readmit_core.features import CATEGORICAL_FEATURES, CATEGORY_SIZES, FEATURE_NAMES
from readmit_core.model import ReadmissionModel
from readmit_core.scoring import BlendScorer, CatBoostScorer, LightGBMScorer, ScorerError
from readmit_core.scoring.catboost import ObliviousModelError, ObliviousTrees
from readmit_trainer.candidates.blend import fit_catboost
from readmit_trainer.candidates.catboost_export import CAT_FEATURES, export, frame

COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
CODES = np.array([250.83, 428.0, 414.01, 1057.1, 2878.1, 786.5, 599.0, 276.0])


def _rows(rng: np.random.Generator, n: int, codes: np.ndarray) -> np.ndarray:
    x = rng.poisson(3.0, size=(n, len(FEATURE_NAMES))).astype(float)
    for name, size in zip(CATEGORICAL_FEATURES, CATEGORY_SIZES, strict=True):
        x[:, COLUMN[name]] = rng.integers(0, size, n)
    for d in ("diag_1", "diag_2", "diag_3"):
        x[:, COLUMN[f"{d}_value"]] = rng.choice(codes, n)
    missing = rng.random(n) < 0.1
    x[missing, COLUMN["admission_source_id"]] = np.nan
    x[rng.random(n) < 0.05, COLUMN["diag_2_value"]] = np.nan
    return x


def _label(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    both = (x[:, COLUMN["admission_source_id"]] % 3 == 1) & (x[:, COLUMN["diag_1_value"]] < 500)
    signal = (
        1.5 * both + 0.8 * (x[:, COLUMN["change"]] == 1) + 0.2 * x[:, COLUMN["time_in_hospital"]]
    )
    return (signal + rng.logistic(size=len(x)) > 2.0).astype(int)


@pytest.fixture(scope="module")
def fitted() -> tuple[object, np.ndarray, np.ndarray, np.ndarray]:
    """(CatBoostClassifier, fitting rows, their labels, other rows), early-stopped on a
    validation part as the trainer does (its rows stay out of the counters)."""
    rng = np.random.default_rng(7)
    x, xv = _rows(rng, 3000, CODES), _rows(rng, 800, CODES)
    y, yv = _label(rng, x), _label(rng, xv)
    fit = fit_catboost(x, y, 80, seed=0, validation=(xv, yv))
    other = _rows(rng, 1500, np.append(CODES, [996.81, 1070.0]))  # two codes never seen
    other[:40, COLUMN["admission_source_id"]] = 99.0  # a code the schema does not have
    return fit.model, x, y, other


def _catboost_log_odds(model: object, x: np.ndarray) -> np.ndarray:
    return model.predict(
        Pool(frame(x), cat_features=CAT_FEATURES),  # type: ignore[attr-defined]
        prediction_type="RawFormulaVal",
    )


def test_scores_equal_catboost(fitted: tuple) -> None:
    model, x, y, other = fitted
    data = export(model, x, y)
    kinds = {test[0] for test in data["binary"]}
    assert kinds == {"float", "onehot", "ctr"}, kinds  # every kind of test is exercised
    assert any(len(t["elements"]) > 1 for t in data["tables"])  # and a combination's counter
    assert {c["type"] for c in data["ctrs"]} == {"Borders", "Counter"}
    trees = ObliviousTrees(data)
    require(trees.compiled is not None, "the compiled scorer is not installed (make install)")
    for rows in (x, other):
        expected = _catboost_log_odds(model, rows)
        np.testing.assert_allclose(trees.raw(rows), expected, rtol=0, atol=1e-9)  # compiled
        np.testing.assert_allclose(trees.raw_numpy(rows), expected, rtol=0, atol=1e-9)
        np.testing.assert_allclose(trees.raw(rows[:1]), expected[:1], rtol=0, atol=1e-9)


def test_contributions_add_up_to_the_log_odds(fitted: tuple) -> None:
    model, x, y, other = fitted
    trees = ObliviousTrees(export(model, x, y))
    base, contributions = trees.contributions(other)
    assert contributions.shape == (len(other), len(FEATURE_NAMES))
    np.testing.assert_allclose(base + contributions.sum(axis=1), trees.raw(other), atol=1e-9)
    require(trees.compiled is not None, "the compiled scorer is not installed (make install)")
    numpy_base, numpy_contributions = trees.contributions_numpy(other)
    assert numpy_base == base
    np.testing.assert_allclose(contributions, numpy_contributions, rtol=0, atol=1e-12)
    # Columns CatBoost never reads (the fitted rates, the diagnosis groups) explain nothing;
    # the four the label hangs on explain the most.
    unread = [COLUMN[n] for n in FEATURE_NAMES if n.endswith(("_rate", "_group", "rate_max"))]
    assert not contributions[:, unread].any()
    strongest = np.abs(contributions).mean(axis=0).argsort()[::-1][:4]
    drivers = ("admission_source_id", "diag_1_value", "change", "time_in_hospital")
    assert sorted(FEATURE_NAMES[i] for i in strongest) == sorted(drivers)


def _blend(fitted: tuple) -> BlendScorer:
    import lightgbm as lgb

    model, x, y, _ = fitted
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, y),
        num_boost_round=20,
    )
    catboost = CatBoostScorer(export(model, x, y))
    return BlendScorer([LightGBMScorer(booster.model_to_string()), catboost], [0.5, 0.5])


def test_blend_averages_log_odds_and_survives_the_artifact(fitted: tuple) -> None:
    blend, other = _blend(fitted), fitted[3]
    parts = [p.log_odds(other) for p in blend.parts]
    np.testing.assert_allclose(blend.log_odds(other), 0.5 * parts[0] + 0.5 * parts[1])
    base, contributions = blend.contributions(other)
    np.testing.assert_allclose(base + contributions.sum(axis=1), blend.log_odds(other), atol=1e-9)
    with tempfile.TemporaryDirectory() as tmp:
        artifact.save(ReadmissionModel(blend, 0.3, "lightgbm_catboost", flat_rates()), Path(tmp))
        assert sorted(p.name for p in Path(tmp).iterdir()) == [
            "booster.txt",
            "catboost.json",
            "readmit_model.json",
        ]
        loaded = artifact.load(Path(tmp))
    np.testing.assert_array_equal(loaded.predict_proba(other), blend.risk(other))


def _broken(data: dict, change: str) -> dict:
    data = {
        **data,
        "trees": [dict(t) for t in data["trees"]],
        "ctrs": [dict(c) for c in data["ctrs"]],
    }
    if change == "leaves":
        data["trees"][0]["leaf_values"] = data["trees"][0]["leaf_values"][:-1]
    elif change == "split":
        data["trees"][0]["splits"] = [len(data["binary"])]
    elif change == "ctr type":
        data["ctrs"][0]["type"] = "Buckets"
    elif change == "table":
        data["ctrs"][0]["table"] = len(data["tables"])
    elif change == "no trees":
        del data["trees"]
    return data


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("leaves", "needs"),
        ("split", "unknown test"),
        ("ctr type", "Buckets"),
        ("table", "unknown table"),
        ("no trees", "trees"),
    ],
)
def test_refuses_a_broken_model(fitted: tuple, change: str, said: str) -> None:
    model, x, y, _ = fitted
    with pytest.raises(ObliviousModelError, match=said):
        ObliviousTrees(_broken(export(model, x, y), change))


@pytest.mark.parametrize("weights", [[0.5], [0.7, 0.7], [1.5, -0.5], [float("nan"), 1.0]])
def test_blend_refuses_bad_weights(fitted: tuple, weights: list[float]) -> None:
    blend = _blend(fitted)
    with pytest.raises(ScorerError, match="weight"):
        BlendScorer(blend.parts, weights)
