"""A CatBoost model as data: oblivious trees over binary features, scored in NumPy.

CatBoost turns categories (and combinations of them) into counter statistics ("CTRs": the
smoothed readmission rate, or the frequency, of the row's value or combination among the rows
the model was fitted on) and splits on those. Its own export keys the counts by a hash of the
values; ``readmit_trainer.catboost_export`` recounts them by value from the same rows, so the
saved model holds plain keys and numbers and scores exactly as CatBoost does.

CatBoost sees the encoded matrix (``readmit_core.features``) through ``category_keys``: each
categorical feature's code, and each ICD-9 code as its full value and its 3-character category,
as strings; and the ``FLOAT_INPUTS`` columns as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from readmit_core.diagnosis_rates import DIAGNOSES
from readmit_core.features import CATEGORICAL_FEATURES, FEATURE_NAMES
from readmit_core.log_odds import to_risk
from readmit_core.schema import FIELDS, Kind

MISSING_KEY = "NA"
# (name, feature column, how the key is read from it); the diagnosis groups are left out (a
# function of the code's value).
CATEGORY_INPUTS: tuple[tuple[str, int, str], ...] = (
    *((name, FEATURE_NAMES.index(name), "code") for name in CATEGORICAL_FEATURES
      if not name.endswith("_group")),
    *((f"{d}_code", FEATURE_NAMES.index(f"{d}_value"), "value") for d in DIAGNOSES),
    *((f"{d}_category", FEATURE_NAMES.index(f"{d}_value"), "category") for d in DIAGNOSES),
)  # fmt: skip
FLOAT_INPUTS: tuple[str, ...] = (
    *(f.name for f in FIELDS if f.kind is Kind.INTEGER),
    "age_years",
)
FLOAT_COLUMNS = tuple(FEATURE_NAMES.index(name) for name in FLOAT_INPUTS)
KEY_SEPARATOR = "\x1f"


class ObliviousModelError(ValueError):
    """The saved data does not describe a valid oblivious-tree model."""


def _key(value: float, how: str) -> str:
    if math.isnan(value):
        return MISSING_KEY
    if how == "value":  # ICD-9 codes have at most two decimals
        return f"{value:.2f}"
    return str(math.floor(value))  # a code, or the value's category ("250.83" -> 250)


def category_keys(features: np.ndarray) -> list[list[str]]:
    """Per ``CATEGORY_INPUTS``, each row's key."""
    return [[_key(v, how) for v in features[:, column].tolist()]
            for _, column, how in CATEGORY_INPUTS]  # fmt: skip


def projection_keys(keys: Sequence[Sequence[str]], floats: np.ndarray,
                    elements: Sequence[Sequence[Any]]) -> list[str]:  # fmt: skip
    """Each row's key in a counter table: its projection's elements joined. An element is
    ``["cat", i]`` (category input i's key), ``["float", j, border]`` (float input j above the
    border: "1" or "0") or ``["exact", i, key]`` (category input i is that key: "1" or "0")."""
    parts: list[list[str]] = []
    for element in elements:
        if element[0] == "cat":
            parts.append(list(keys[element[1]]))
        elif element[0] == "float":
            parts.append(["1" if v > element[2] else "0" for v in floats[:, element[1]].tolist()])
        else:
            parts.append(["1" if k == element[2] else "0" for k in keys[element[1]]])
    return [KEY_SEPARATOR.join(row) for row in zip(*parts, strict=True)]


def _element_columns(element: Sequence[Any]) -> int:
    """The feature column an element reads."""
    return FLOAT_COLUMNS[element[1]] if element[0] == "float" else CATEGORY_INPUTS[element[1]][1]


class ObliviousTrees:
    """CatBoost's oblivious trees (every node at one depth tests the same binary feature: a
    row's leaf index is its tests' bits) over float thresholds, one-hot categories and CTRs.

    ``data`` (what ``readmit_trainer.catboost_export`` writes):
    ``binary``: the tests, each ``["float", j, border]`` (float input j > border), ``["onehot",
    i, key]`` (category input i is key) or ``["ctr", c, border]`` (CTR c > border);
    ``ctrs``: ``{"table", "type" (Borders: rate, Counter: frequency), "prior": [numerator,
    denominator], "shift", "scale"}``; ``tables``: ``{"elements", "keys", "positives",
    "counts"}`` counted on the fitting rows; ``trees``: ``{"splits" (binary indices, bit d of
    the leaf index = split d), "leaf_values", "leaf_weights"}``; ``scale`` and ``bias``.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        try:
            self._parse(data)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ObliviousModelError(f"not an oblivious-tree model: {exc!r}") from None

    def _parse(self, data: dict[str, Any]) -> None:
        self.scale, self.bias = float(data["scale"]), float(data["bias"])
        self.tables = []
        for table in data["tables"]:
            elements = [list(e) for e in table["elements"]]
            for e in elements:
                _element_columns(e)  # an unknown input fails here
            counts = np.asarray(table["counts"], dtype=np.float64)
            positives = np.asarray(table["positives"], dtype=np.float64)
            if counts.shape != positives.shape or counts.shape != (len(table["keys"]),):
                raise ValueError("a table's keys, positives and counts differ in length")
            index = {str(k): i for i, k in enumerate(table["keys"])}
            # an unseen key reads the zero counts in the last slot
            largest = float(counts.max(initial=0.0))
            self.tables.append((elements, index, np.append(positives, 0.0),
                                np.append(counts, 0.0), largest))  # fmt: skip
        self.ctrs = []
        for ctr in data["ctrs"]:
            if ctr["type"] not in ("Borders", "Counter"):
                raise ValueError(f"CTR type {ctr['type']!r}")
            if not 0 <= int(ctr["table"]) < len(self.tables):
                raise ValueError(f"CTR of unknown table {ctr['table']}")
            numerator, denominator = map(float, ctr["prior"])
            self.ctrs.append((int(ctr["table"]), ctr["type"], numerator, denominator,
                              float(ctr["shift"]), float(ctr["scale"])))  # fmt: skip
        self.binary = [list(b) for b in data["binary"]]
        columns = np.zeros((len(self.binary) + 1, len(FEATURE_NAMES)))  # last: padding test
        for b, test in enumerate(self.binary):
            if test[0] == "ctr":
                elements = self.tables[self.ctrs[test[1]][0]][0]
                read = sorted({_element_columns(e) for e in elements})
            elif test[0] in ("float", "onehot"):
                read = [_element_columns(test)]
            else:
                raise ValueError(f"binary test {test!r}")
            columns[b, read] = 1.0 / len(read)  # a combination's change is shared by its fields
        self.attribution = columns
        trees = data["trees"]
        depth = max((len(t["splits"]) for t in trees), default=0)
        n, width = len(trees), 1 << depth
        self.splits = np.full((n, max(depth, 1)), len(self.binary), dtype=np.int64)
        self.leaf_values = np.zeros((n, width))
        weights = np.zeros((n, width))
        for t, tree in enumerate(trees):
            splits = [int(s) for s in tree["splits"]]
            if any(not 0 <= s < len(self.binary) for s in splits):
                raise ValueError(f"tree {t} splits on an unknown test")
            size = 1 << len(splits)
            if len(tree["leaf_values"]) != size or len(tree["leaf_weights"]) != size:
                raise ValueError(f"tree {t} needs {size} leaf values and weights")
            self.splits[t, : len(splits)] = splits
            self.leaf_values[t, :size] = tree["leaf_values"]
            weights[t, :size] = tree["leaf_weights"]
        if not (np.isfinite(self.leaf_values).all() and np.isfinite(weights).all()):
            raise ValueError("leaf values and weights must be finite")
        self.depth = depth
        self.node_values = self._node_values(weights, [len(t["splits"]) for t in trees])
        self.base = self.scale * float(self.node_values[0][:, 0].sum()) + self.bias
        self._trees = np.arange(n)[None, :]

    def _node_values(self, weights: np.ndarray, depths: list[int]) -> list[np.ndarray]:
        """Per depth d, each tree's node values (trees x 2**d; a node is the leaf index's low d
        bits): the training-weighted mean of its leaves, an empty node its parent's. From a
        tree's own depth on, its leaf values themselves: the changes along a path add up to its
        leaf, and a shallower tree's padding tests change nothing."""
        n, width = weights.shape
        values: list[np.ndarray] = []
        parent = np.zeros((n, 1))
        for d in range(self.depth):
            # leaf l = high * 2**d + node: summing over "high" gives each node's leaves
            total = weights.reshape(n, width >> d, 1 << d).sum(axis=1)
            summed = (weights * self.leaf_values).reshape(n, width >> d, 1 << d).sum(axis=1)
            inherited = parent[:, np.arange(1 << d) % parent.shape[1]]
            parent = np.divide(summed, total, out=inherited, where=total > 0)
            values.append(parent)
        values.append(self.leaf_values)
        for d, level in enumerate(values):
            done = np.asarray(depths) <= d
            level[done] = self.leaf_values[done, : 1 << d]
        return values

    def _tests(self, features: np.ndarray) -> np.ndarray:
        """Each row's binary test results (rows x tests, plus the padding test: always 0)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"expected rows of {len(FEATURE_NAMES)} features")
        keys, floats = category_keys(features), features[:, FLOAT_COLUMNS]
        counted = []
        for elements, index, positives, counts, _ in self.tables:
            unseen = len(positives) - 1
            rows = [index.get(k, unseen) for k in projection_keys(keys, floats, elements)]
            counted.append((positives[rows], counts[rows]))
        ctr_values = []
        for table, kind, numerator, denominator, shift, scale in self.ctrs:
            positives, counts = counted[table]
            if kind == "Borders":
                value = (positives + numerator) / (counts + denominator)
            else:  # the value's frequency, relative to the table's most frequent value
                value = (counts + numerator) / (self.tables[table][4] + denominator)
            ctr_values.append((value + shift) * scale)
        out = np.zeros((len(features), len(self.binary) + 1), dtype=bool)
        for b, test in enumerate(self.binary):
            if test[0] == "float":
                out[:, b] = floats[:, test[1]] > test[2]
            elif test[0] == "onehot":
                out[:, b] = [k == test[2] for k in keys[test[1]]]
            else:
                out[:, b] = ctr_values[test[1]] > test[2]
        return out

    def _leaves(self, tests: np.ndarray) -> np.ndarray:
        """Each row's leaf index in each tree (rows x trees)."""
        bits = tests[:, self.splits].astype(np.int64)  # rows x trees x depth
        return (bits << np.arange(self.splits.shape[1])).sum(axis=2)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """The model's log-odds per row (CatBoost's ``RawFormulaVal``)."""
        leaves = self._leaves(self._tests(features))
        return self.scale * self.leaf_values[self._trees, leaves].sum(axis=1) + self.bias

    def risk(self, features: np.ndarray) -> np.ndarray:
        return to_risk(self.raw(features))

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        """The base value and each feature's share of each row's log-odds (rows x features):
        along the row's path in every tree, the node value's change at each test, given to the
        columns the test reads (shared equally by a combination's fields)."""
        leaves = self._leaves(self._tests(features))
        per_test = np.zeros((len(leaves), len(self.binary) + 1))
        rows = np.arange(len(leaves))[:, None]
        for d in range(self.depth):
            before = self.node_values[d][self._trees, leaves & ((1 << d) - 1)]
            after = self.node_values[d + 1][self._trees, leaves & ((1 << (d + 1)) - 1)]
            np.add.at(per_test, (rows, self.splits[:, d][None, :]), after - before)
        return self.base, self.scale * per_test @ self.attribution
