"""LightGBM's binary model, read from its text format and scored in NumPy (no LightGBM needed).

The text format (``Booster.model_to_string``) is parsed as data and checked: a binary objective,
no linear trees, every tree a real tree (each node reached once from the root), indices in
range, finite leaf values. Scoring follows LightGBM's decision rules (``tree.h``):

* numerical split: go left when ``x <= threshold``; a missing value takes the node's default
  direction when the feature's missing type is NaN (or Zero, which also sends 0 there), else it
  counts as 0.0;
* categorical split: NaN or a negative value goes right; otherwise ``int(x)`` goes left when its
  bit is set in the node's bitset.

All trees at once, without walking them (the QuickScorer idea, Lucchese et al. 2015): number each
tree's leaves left to right; a node whose test fails removes the leaves of its left subtree; the
leaf reached is the leftmost one left. One comparison per node and a bitwise AND per tree, as
whole-array operations, instead of a loop over trees and depths.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from readmit_core.features import FEATURE_NAMES
from readmit_core.scoring import compiled
from readmit_core.scoring.log_odds import to_risk
from readmit_core.scoring.protocol import ScorerError

MAX_LEAVES = 64  # one bit per leaf in a uint64
MAX_TREES = 100_000
_CATEGORICAL, _DEFAULT_LEFT = 1, 2  # decision_type bits; bits 2-3 are the missing type
_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2
_ZERO = 1e-35  # LightGBM's kZeroThreshold
_LARGEST = float(np.finfo(np.float64).max)  # what infinities count as (LightGBM writes x <= inf)
_CELLS_PER_CHUNK = 1 << 20  # rows x nodes scored at once: bounds the temporary arrays (~8 MB)


class TreeModelError(ValueError):
    """The text is not a LightGBM binary model this scorer reads."""


@dataclass
class _Tree:
    features: np.ndarray  # per internal node
    thresholds: np.ndarray
    decisions: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_values: np.ndarray
    leaf_weights: np.ndarray  # sum of hessians per leaf: what node values are averaged with
    categories: list[np.ndarray]  # per categorical node, via threshold -> cat_boundaries

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_values)


def parse(text: str, n_features: int) -> tuple[list[_Tree], float]:
    """The trees and the sigmoid scale of a LightGBM binary model's text."""
    header, _, body = text.partition("\nTree=")
    keys = _pairs(header.splitlines())
    objective = keys.get("objective", "").split()
    if not objective or objective[0] != "binary":
        raise TreeModelError(f"objective must be binary, not {keys.get('objective')!r}")
    sigmoid = dict(p.split(":", 1) for p in objective[1:] if ":" in p).get("sigmoid", "1")
    scale = _number(sigmoid, "sigmoid")
    if keys.get("num_class", "1") != "1" or keys.get("num_tree_per_iteration", "1") != "1":
        raise TreeModelError("one tree per iteration (binary) expected")
    if "average_output" in keys:
        raise TreeModelError("random-forest (average_output) models are not supported")
    if keys.get("max_feature_idx") != str(n_features - 1):
        raise TreeModelError(
            f"the model expects max_feature_idx {keys.get('max_feature_idx')}, "
            f"the encoding has {n_features} features"
        )
    trees_text = body.partition("\nend of trees")[0]
    blocks = [b for b in ("Tree=" + trees_text).split("\n\n") if b.strip()] if body else []
    if not blocks:
        raise TreeModelError("no trees")
    if len(blocks) > MAX_TREES:
        raise TreeModelError(f"more than {MAX_TREES} trees")
    trees = [_tree(_pairs(b.strip().splitlines()), n_features, i) for i, b in enumerate(blocks)]
    return trees, scale


def _pairs(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TreeModelError(f"{what} is not a number: {text[:40]!r}") from None
    if not math.isfinite(value):
        raise TreeModelError(f"{what} is not finite")
    return value


def _array(keys: dict[str, str], key: str, dtype: type, size: int, where: str) -> np.ndarray:
    try:
        values = np.array(keys.get(key, "").split(), dtype=dtype)
    except (ValueError, OverflowError):
        raise TreeModelError(f"{where}: {key} is not a list of numbers") from None
    if values.shape != (size,):
        raise TreeModelError(f"{where}: {key} has {values.size} values, {size} expected")
    return values


def _tree(keys: dict[str, str], n_features: int, index: int) -> _Tree:
    where = f"tree {index}"
    if keys.get("is_linear", "0") != "0":
        raise TreeModelError(f"{where}: linear trees are not supported")
    try:
        n_leaves = int(keys.get("num_leaves", ""))
        n_cat = int(keys.get("num_cat", "0"))
    except ValueError:
        raise TreeModelError(f"{where}: num_leaves/num_cat are not numbers") from None
    if not 1 <= n_leaves <= MAX_LEAVES or n_cat < 0:
        raise TreeModelError(f"{where}: {n_leaves} leaves (1 to {MAX_LEAVES} supported)")
    leaf_values = _array(keys, "leaf_value", np.float64, n_leaves, where)
    if not np.isfinite(leaf_values).all():
        raise TreeModelError(f"{where}: leaf values must be finite")
    n = n_leaves - 1
    weights = _array(keys, "leaf_weight", np.float64, n_leaves, where) if n else np.ones(1)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise TreeModelError(f"{where}: leaf weights must be finite and not negative")
    tree = _Tree(
        features=_array(keys, "split_feature", np.int64, n, where),
        thresholds=_array(keys, "threshold", np.float64, n, where),
        decisions=_array(keys, "decision_type", np.int64, n, where),
        left=_array(keys, "left_child", np.int64, n, where),
        right=_array(keys, "right_child", np.int64, n, where),
        leaf_values=leaf_values,
        leaf_weights=weights if weights.sum() > 0 else np.ones(n_leaves),
        categories=[],
    )
    if n and not ((tree.features >= 0) & (tree.features < n_features)).all():
        raise TreeModelError(f"{where}: a split feature is out of range")
    if n and not ((tree.decisions >= 0) & (tree.decisions < 16)).all():
        raise TreeModelError(f"{where}: unknown decision type")
    if np.isnan(tree.thresholds).any():
        raise TreeModelError(f"{where}: a threshold is NaN")
    categorical = (tree.decisions & _CATEGORICAL) != 0
    if n_cat != int(categorical.sum()):
        raise TreeModelError(
            f"{where}: num_cat {n_cat} but {int(categorical.sum())} categorical splits"
        )
    if n_cat:
        bounds = _array(keys, "cat_boundaries", np.int64, n_cat + 1, where)
        words = keys.get("cat_threshold", "").split()
        bits = _array(keys, "cat_threshold", np.uint32, len(words), where)
        if bounds[0] != 0 or bounds[-1] != len(bits) or (np.diff(bounds) < 0).any():
            raise TreeModelError(f"{where}: cat_boundaries do not fit cat_threshold")
        for node in np.flatnonzero(categorical):
            k = int(tree.thresholds[node])
            if tree.thresholds[node] != k or not 0 <= k < n_cat:
                raise TreeModelError(f"{where}: categorical split {node} has no bitset")
            words_k = bits[bounds[k] : bounds[k + 1]]
            # Bit c of word c // 32: the categories that go left.
            tree.categories.append(
                np.flatnonzero(np.unpackbits(words_k.view(np.uint8), bitorder="little"))
            )
    return tree


def _leaf_order(tree: _Tree, where: str) -> tuple[list[int], list[list[int]]]:
    """Leaves left to right, and for each internal node the positions of its left subtree's
    leaves; checks that every node is reached exactly once from the root."""
    n = tree.n_leaves - 1
    if n == 0:
        return [0], []
    order: list[int] = []
    left_leaves: list[list[int]] = [[] for _ in range(n)]
    seen_nodes, stack = [False] * n, [(0, False)]
    first: dict[int, int] = {}  # node -> position of its subtree's leftmost leaf
    while stack:
        child, done = stack.pop()
        if child < 0:  # a leaf, ~index
            leaf = ~child
            if leaf >= tree.n_leaves or leaf in order:
                raise TreeModelError(f"{where}: leaf {leaf} is out of range or reached twice")
            order.append(leaf)
            continue
        if child >= n:
            raise TreeModelError(f"{where}: node {child} is out of range")
        if done:
            left, right = int(tree.left[child]), int(tree.right[child])
            start = first[left] if left >= 0 else order.index(~left)
            middle = first[right] if right >= 0 else order.index(~right)
            first[child] = start
            left_leaves[child] = list(range(start, middle))
            continue
        if seen_nodes[child]:
            raise TreeModelError(f"{where}: node {child} is reached twice")
        seen_nodes[child] = True
        stack += [(child, True), (int(tree.right[child]), False), (int(tree.left[child]), False)]
    if not all(seen_nodes) or len(order) != tree.n_leaves:
        raise TreeModelError(f"{where}: not every node is reached from the root")
    return order, left_leaves


def _paths(tree: _Tree) -> tuple[float, list[list[tuple[int, float]]], list[tuple[float, float]]]:
    """The root's value; per leaf, the (split feature, change of value) along its path; per
    node, the change of value to its left and to its right child.

    A node's value is the mean of its leaves' values weighted by their hessian sums (what the
    training data reaching it would score); the changes along a path sum to the leaf's value
    minus the root's, so a row's contributions plus the base value are its log-odds exactly.
    """
    values: dict[int, float] = {}

    def visit(child: int) -> tuple[float, float]:  # (weight, value); depth <= MAX_LEAVES
        if child < 0:
            return float(tree.leaf_weights[~child]), float(tree.leaf_values[~child])
        (wl, vl), (wr, vr) = visit(int(tree.left[child])), visit(int(tree.right[child]))
        weight = wl + wr
        values[child] = (wl * vl + wr * vr) / weight if weight > 0 else (vl + vr) / 2
        return weight, values[child]

    def value(child: int) -> float:
        return float(tree.leaf_values[~child]) if child < 0 else values[child]

    paths: list[list[tuple[int, float]]] = [[] for _ in range(tree.n_leaves)]
    changes = [(0.0, 0.0)] * (tree.n_leaves - 1)

    def walk(node: int, path: list[tuple[int, float]]) -> None:
        left, right = int(tree.left[node]), int(tree.right[node])
        changes[node] = (value(left) - values[node], value(right) - values[node])
        for child, change in zip((left, right), changes[node], strict=True):
            step = [*path, (int(tree.features[node]), change)]
            if child < 0:
                paths[~child] = step
            else:
                walk(child, step)

    if tree.n_leaves == 1:
        return float(tree.leaf_values[0]), paths, changes
    visit(0)
    walk(0, [])
    return values[0], paths, changes


def as_matrix(features: np.ndarray, n_features: int) -> np.ndarray:
    """``features`` as a C-ordered float64 matrix of ``n_features`` columns (else ValueError)."""
    features = np.ascontiguousarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != n_features:
        raise ValueError(f"expected rows of {n_features} features")
    return features


class TreeEnsemble:
    """A parsed LightGBM binary model; ``risk(X)`` equals ``Booster.predict(X)``.

    Splits are kept as flat arrays of "cells", numerical and categorical apart, tree after tree
    (every tree has at least one cell of each kind: a padding cell removes no leaf), so a row's
    leaf masks reduce per tree with one ``bitwise_and.reduceat``.
    """

    def __init__(self, text: str, n_features: int) -> None:
        trees, self.sigmoid = parse(text, n_features)
        self.n_features, self.n_trees = n_features, len(trees)
        width = max(t.n_leaves for t in trees)
        self.dtype = next(d for d in (np.uint16, np.uint32, np.uint64) if np.iinfo(d).bits >= width)
        self.full = self.dtype(np.iinfo(self.dtype).max)
        self.leaf_values = np.zeros((len(trees), width))
        paths: list[list[list[tuple[int, float]]]] = []  # per tree, per leaf position
        changes: list[tuple[float, float]] = []  # per node of every tree: to the left, right
        self.base = 0.0  # the sum of the trees' root values: the log-odds before any split
        num: dict[str, list] = {k: [] for k in ("column", "threshold", "mask", "start", "zero")}
        cat: dict[str, list] = {k: [] for k in ("feature", "members", "mask", "start")}
        for t, tree in enumerate(trees):
            order, left_leaves = _leaf_order(tree, f"tree {t}")
            self.leaf_values[t, : len(order)] = tree.leaf_values[order]
            root, leaf_paths, node_changes = _paths(tree)
            changes += node_changes
            self.base += root
            paths.append([leaf_paths[leaf] for leaf in order])
            num["start"].append(len(num["mask"]))
            cat["start"].append(len(cat["mask"]))
            members = iter(tree.categories)
            for node in range(tree.n_leaves - 1):
                # The leaves this node's failed test removes: its left subtree's.
                mask = int(self.full) & ~sum(1 << p for p in left_leaves[node])
                decision, feature = int(tree.decisions[node]), int(tree.features[node])
                if decision & _CATEGORICAL:
                    cat["feature"].append(feature)
                    cat["members"].append(next(members))
                    cat["mask"].append(mask)
                    continue
                threshold, missing = float(tree.thresholds[node]), (decision >> 2) & 3
                # Where NaN goes: the default direction, or as 0.0 when the type is None.
                nan_left = (
                    (threshold >= 0.0)
                    if missing == _MISSING_NONE
                    else bool(decision & _DEFAULT_LEFT)
                )
                # A NaN read as -inf goes left at any threshold, as +inf right (x <= t).
                num["column"].append(feature if nan_left else feature + n_features)
                num["threshold"].append(min(max(threshold, -_LARGEST), _LARGEST))
                num["mask"].append(mask)
                if missing == _MISSING_ZERO:
                    num["zero"].append((len(num["mask"]) - 1, feature, nan_left))
            # A tree without a split of one kind gets one padding cell of it (it removes no leaf):
            # reduceat needs every tree's run of cells to be non-empty.
            if len(num["mask"]) == num["start"][-1]:
                num["column"].append(0)
                num["threshold"].append(0.0)
                num["mask"].append(int(self.full))
            if len(cat["mask"]) == cat["start"][-1]:
                cat["feature"].append(0)
                cat["members"].append(np.zeros(0, dtype=np.int64))
                cat["mask"].append(int(self.full))
        self.num_columns = np.array(num["column"], dtype=np.int64)
        self.num_thresholds = np.array(num["threshold"], dtype=np.float64)
        self.num_masks = np.array(num["mask"], dtype=self.dtype)
        self.num_starts = np.array(num["start"], dtype=np.int64)
        self.num_zero = num["zero"]  # (cell, feature, nan_left): missing type Zero, rare
        self.cat_features = np.array(cat["feature"], dtype=np.int64)
        self.cat_masks = np.array(cat["mask"], dtype=self.dtype)
        self.cat_starts = np.array(cat["start"], dtype=np.int64)
        # Category c of cell j goes left when table[j * (top + 1) + c]; slot "top" is in no
        # bitset: NaN, negatives and values past every bitset land there.
        self.cat_top = max((int(m.max()) + 1 for m in cat["members"] if m.size), default=0)
        table = np.zeros((len(cat["mask"]), self.cat_top + 1), dtype=bool)
        for j, m in enumerate(cat["members"]):
            table[j, m] = True
        self.cat_table = table.ravel()
        self.cat_offsets = np.arange(len(cat["mask"]), dtype=np.int64) * (self.cat_top + 1)
        self._trees = np.arange(self.n_trees)
        # Per (tree, leaf position): the features split on along the path and the value change.
        depth = max((len(p) for tree_paths in paths for p in tree_paths), default=0) or 1
        self.path_features = np.zeros((self.n_trees, width, depth), dtype=np.int64)
        self.path_changes = np.zeros((self.n_trees, width, depth))
        for t, tree_paths in enumerate(paths):
            for position, path in enumerate(tree_paths):
                for d, (feature, change) in enumerate(path):
                    self.path_features[t, position, d] = feature
                    self.path_changes[t, position, d] = change
        self.compiled = compiled.forest(trees, n_features, changes)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """The summed leaf values (log-odds) for each row of ``features``: by the compiled
        scorer when it is installed (``readmit_core.compiled``), else ``raw_numpy``."""
        if self.compiled is None:
            return self.raw_numpy(features)
        return self.compiled.raw(as_matrix(features, self.n_features))

    def raw_numpy(self, features: np.ndarray) -> np.ndarray:
        out = np.empty(len(features))
        for rows, leaves in self._chunks(features):
            out[rows] = self.leaf_values[self._trees, leaves].sum(axis=1)
        return out

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        """The base value and each feature's share of each row's log-odds (rows x features):
        the changes of node value along the row's path in every tree, summed per split feature,
        times the sigmoid's scale. ``base + contributions.sum(axis=1)`` is the log-odds of
        ``risk(features)`` (``raw(features)`` at LightGBM's default scale, 1). By the compiled
        scorer when it is installed, else ``contributions_numpy``."""
        if self.compiled is not None:
            out = self.compiled.contributions(as_matrix(features, self.n_features))
            return self.sigmoid * self.base, self.sigmoid * out
        return self.contributions_numpy(features)

    def contributions_numpy(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        out = np.zeros((len(features), self.n_features))
        for rows, leaves in self._chunks(features):
            n = len(leaves)
            cells = (
                np.arange(n)[:, None, None] * self.n_features
                + self.path_features[self._trees, leaves]
            )
            changes = self.path_changes[self._trees, leaves]
            out[rows] = np.bincount(
                cells.ravel(), changes.ravel(), minlength=n * self.n_features
            ).reshape(n, self.n_features)
        return self.sigmoid * self.base, self.sigmoid * out

    def _chunks(self, features: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
        features = as_matrix(features, self.n_features)
        step = max(1, _CELLS_PER_CHUNK // (len(self.num_masks) + len(self.cat_masks)))
        for start in range(0, len(features), step):
            yield slice(start, start + step), self._leaves(features[start : start + step])

    def _leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf position (left to right) each row reaches in each tree (rows x trees)."""
        nan = np.isnan(x)
        # Each feature twice: NaN as -inf (cells where it goes left), then as +inf; a real
        # infinity becomes the largest finite number, which every threshold (clipped) orders alike.
        finite = np.clip(x, -_LARGEST, _LARGEST)
        both = np.concatenate(
            [np.where(nan, -np.inf, finite), np.where(nan, np.inf, finite)], axis=1
        )
        left = both[:, self.num_columns] <= self.num_thresholds
        for cell, feature, nan_left in self.num_zero:
            zero = nan[:, feature] | (np.abs(x[:, feature]) <= _ZERO)
            left[zero, cell] = nan_left
        kept = np.bitwise_and.reduceat(
            np.where(left, self.full, self.num_masks), self.num_starts, axis=1
        )
        # int() truncates like C's cast (-0.5 is category 0); NaN, negatives and values past
        # every bitset go to the "top" slot, which is in none.
        whole = np.trunc(x)
        codes = np.where(whole >= 0, np.minimum(whole, self.cat_top), self.cat_top).astype(np.int64)
        left = self.cat_table[codes[:, self.cat_features] + self.cat_offsets]
        kept &= np.bitwise_and.reduceat(
            np.where(left, self.full, self.cat_masks), self.cat_starts, axis=1
        )
        lowest = kept & (~kept + self.dtype(1))  # the leftmost leaf not removed
        return np.frexp(lowest.astype(np.float64))[1] - 1

    def risk(self, features: np.ndarray) -> np.ndarray:
        return to_risk(self.sigmoid * self.raw(features))


class LightGBMScorer:
    """A LightGBM model from its text format (what ``Booster.model_to_string`` writes), scored
    in NumPy by this module's ``TreeEnsemble``: serving needs neither LightGBM nor SciPy."""

    kind = "lightgbm"
    FILE = "booster.txt"

    def __init__(self, model_text: str) -> None:
        self.model_text = model_text
        try:
            self.trees = TreeEnsemble(model_text, len(FEATURE_NAMES))
        except TreeModelError as exc:
            raise ScorerError(f"not a LightGBM binary text model: {exc}") from None

    def risk(self, features: np.ndarray) -> np.ndarray:
        return self.trees.risk(features)

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        return self.trees.sigmoid * self.trees.raw(features)

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        return self.trees.contributions(features)

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        return {}, {self.FILE: self.model_text}

    @classmethod
    def from_data(cls, params: dict[str, Any], files: dict[str, str]) -> LightGBMScorer:
        if cls.FILE not in files:
            raise ScorerError(f"{cls.FILE} is missing")
        return cls(files[cls.FILE])
