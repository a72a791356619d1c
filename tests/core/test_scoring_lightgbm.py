"""The NumPy tree scorer (readmit_core.scoring.lightgbm) against LightGBM itself, and what it
refuses.

No data set and no servers: boosters are fitted here on synthetic rows built to reach every
decision rule (numerical with NaN as missing, missing type None and Zero, categorical splits with
NaN, negative, fractional and unseen codes; trees up to 64 leaves).
"""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np
import pytest
from support.project import require

from readmit_core.scoring.lightgbm import TreeEnsemble, TreeModelError

N_FEATURES = 6  # 0-2 numerical, 3-5 categorical


def _rows(rng: np.random.Generator, n: int, nan_share: float) -> np.ndarray:
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.integers(0, 5, n).astype(float),
            rng.exponential(size=n),
            rng.integers(0, 40, n),
            rng.integers(0, 3, n),
            rng.integers(0, 90, n),
        ]
    ).astype(float)
    x[rng.random(x.shape) < nan_share] = np.nan
    return x


def _booster(nan_share: float, seed: int, **params: object) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = _rows(rng, 4000, nan_share)
    signal = np.nan_to_num(x[:, 0]) + (np.nan_to_num(x[:, 3]) % 7 == 2) - 0.3 * np.isnan(x[:, 2])
    y = (signal + rng.normal(scale=1.0, size=len(x)) > 0.8).astype(int)
    data = lgb.Dataset(x, y, categorical_feature=[3, 4, 5], free_raw_data=False)
    settings = {
        "objective": "binary",
        "verbose": -1,
        "min_data_per_group": 5,
        "cat_smooth": 1.0,
        "num_threads": 1,
        "deterministic": True,
        **params,
    }
    return lgb.train(settings, data, num_boost_round=60), x


def _hostile_rows(rng: np.random.Generator) -> np.ndarray:
    x = _rows(rng, 3000, 0.15)
    odd = np.array([-1.0, -0.5, 0.0, -0.0, 1e-40, 0.7, 2.5, 89.0, 255.0, 1e9, np.inf, -np.inf])
    cells = rng.random(x.shape) < 0.1
    x[cells] = rng.choice(odd, int(cells.sum()))
    return x


@pytest.mark.parametrize(
    ("nan_share", "params"),
    [
        (0.1, {"num_leaves": 15}),  # NaN seen in training: missing type NaN
        (0.0, {"num_leaves": 31}),  # no NaN in training: missing type None (NaN counts as 0)
        (0.1, {"num_leaves": 63, "zero_as_missing": True}),  # missing type Zero
        (0.1, {"num_leaves": 7, "max_cat_to_onehot": 64}),  # one-vs-rest categorical splits
    ],
)
def test_scores_equal_lightgbm(nan_share: float, params: dict[str, object]) -> None:
    booster, x = _booster(nan_share, seed=len(params) + int(nan_share * 10), **params)
    ours = TreeEnsemble(booster.model_to_string(), N_FEATURES)
    probe = np.vstack([x, _hostile_rows(np.random.default_rng(5))])
    expected = booster.predict(probe, num_threads=1)
    assert len(np.unique(np.round(expected, 6))) > 50  # the trees really split these rows
    np.testing.assert_allclose(ours.risk(probe), expected, rtol=0, atol=1e-12)
    raw = booster.predict(probe, raw_score=True, num_threads=1)
    np.testing.assert_allclose(ours.raw(probe), raw, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.risk(probe[:1]), expected[:1], rtol=0, atol=1e-12)
    # both scorers: the compiled one (raw above) and NumPy's, on the same hostile rows
    require(ours.compiled is not None, "the compiled scorer is not installed (make install)")
    np.testing.assert_allclose(ours.raw_numpy(probe), raw, rtol=0, atol=1e-10)


def test_a_constant_model_scores() -> None:
    """A booster of single-leaf trees (nothing to split on) is still a model."""
    x = np.zeros((200, N_FEATURES))
    y = np.r_[np.zeros(150), np.ones(50)]
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, y), 5)
    ours = TreeEnsemble(booster.model_to_string(), N_FEATURES)
    np.testing.assert_allclose(ours.risk(x[:3]), booster.predict(x[:3]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.raw_numpy(x[:3]), ours.raw(x[:3]), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def model_text() -> str:
    booster, _ = _booster(0.1, seed=1, num_leaves=7)
    return booster.model_to_string()


def _first_tree(text: str, key: str, value: str) -> str:
    return re.sub(rf"(Tree=0\n(?:.*\n)*?){key}=[^\n]*", rf"\g<1>{key}={value}", text, count=1)


def _first_tree_child(text: str, key: str, position: int, child: int) -> str:
    """Tree 0 with one child index of ``key`` (left_child/right_child) replaced."""
    values = re.search(rf"Tree=0\n(?:.*\n)*?{key}=([^\n]*)", text)
    assert values is not None
    children = values.group(1).split()
    children[position] = str(child)
    return _first_tree(text, key, " ".join(children))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: t.replace("objective=binary", "objective=regression"), "objective must be"),
        (lambda t: t.replace("max_feature_idx=5", "max_feature_idx=9"), "max_feature_idx"),
        (lambda t: t.partition("\nTree=0")[0], "no trees"),
        (lambda t: _first_tree(t, "is_linear", "1"), "linear trees"),
        (lambda t: _first_tree(t, "num_leaves", "65"), "leaves"),
        (lambda t: _first_tree(t, "leaf_value", "nan " * 7), "finite"),
        (lambda t: _first_tree(t, "leaf_value", "1 2"), "leaf_value has 2 values"),
        (lambda t: _first_tree(t, "split_feature", "0 0 0 0 0 99"), "out of range"),
        (lambda t: _first_tree(t, "threshold", "__import__('os') 1 1 1 1 1"), "threshold"),
        # The root's left child points back at the root: a cycle, not a tree.
        (lambda t: _first_tree_child(t, "left_child", 0, 0), "reached twice"),
        (lambda t: _first_tree_child(t, "left_child", 0, 99), "out of range"),
        (lambda t: _first_tree_child(t, "right_child", 0, -99), "out of range"),
    ],
)
def test_malformed_models_are_refused(model_text: str, edit, reason: str) -> None:
    TreeEnsemble(model_text, N_FEATURES)  # the unedited text is fine
    edited = edit(model_text)
    assert edited != model_text
    with pytest.raises(TreeModelError, match=reason):
        TreeEnsemble(edited, N_FEATURES)


@pytest.mark.parametrize(
    "params",
    [{"num_leaves": 15}, {"num_leaves": 63, "zero_as_missing": True}, {"sigmoid": 2.0}],
)
def test_contributions_add_up_to_the_log_odds(params: dict[str, object]) -> None:
    """Per row, the base value plus each feature's contribution is the log-odds of LightGBM's
    risk (its raw score times the sigmoid's scale), and a feature no tree splits on contributes
    nothing."""
    booster, x = _booster(0.1, seed=7, **params)
    ours = TreeEnsemble(booster.model_to_string(), N_FEATURES)
    probe = np.vstack([x[:500], _hostile_rows(np.random.default_rng(9))[:500]])
    base, contributions = ours.contributions(probe)
    raw = booster.predict(probe, raw_score=True, num_threads=1)
    log_odds = float(params.get("sigmoid", 1.0)) * raw  # type: ignore[arg-type]
    np.testing.assert_allclose(base + contributions.sum(axis=1), log_odds, rtol=0, atol=1e-9)
    used = booster.feature_importance("split") > 0
    assert (contributions[:, ~used] == 0).all()
    assert (np.abs(contributions[:, used]).sum(axis=0) > 0).all()
    # the compiled scorer's contributions (above) and NumPy's are the same numbers
    require(ours.compiled is not None, "the compiled scorer is not installed (make install)")
    numpy_base, numpy_contributions = ours.contributions_numpy(probe)
    assert numpy_base == base
    np.testing.assert_allclose(contributions, numpy_contributions, rtol=0, atol=1e-12)
