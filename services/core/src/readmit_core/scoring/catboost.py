"""A CatBoost model as data: oblivious trees over binary features, scored in NumPy.

CatBoost turns categories (and combinations of them) into counter statistics ("CTRs": the
smoothed readmission rate, or the frequency, of the row's value or combination among the rows
the model was fitted on) and splits on those. Its own export keys the counts by a hash of the
values; ``readmit_trainer.candidates.catboost_export`` recounts them by value from the same rows,
so the saved model holds plain keys and numbers and scores exactly as CatBoost does.

CatBoost sees the encoded matrix (``readmit_core.features``) through ``category_keys``: each
categorical feature's code, and each ICD-9 code as its full value and its 3-character category,
as strings; and the ``FLOAT_INPUTS`` columns as numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from readmit_core.diagnosis_rates import DIAGNOSES
from readmit_core.features import CATEGORICAL_FEATURES, COUNT_FEATURES, FEATURE_NAMES
from readmit_core.scoring import compiled
from readmit_core.scoring.lightgbm import as_matrix
from readmit_core.scoring.log_odds import to_risk
from readmit_core.scoring.protocol import ScorerError

MISSING_KEY = "NA"
# (name, feature column, how the key is read from it); the diagnosis groups are left out (a
# function of the code's value).
CATEGORY_INPUTS: tuple[tuple[str, int, str], ...] = (
    *(
        (name, FEATURE_NAMES.index(name), "code")
        for name in CATEGORICAL_FEATURES
        if not name.endswith("_group")
    ),
    *((f"{d}_code", FEATURE_NAMES.index(f"{d}_value"), "value") for d in DIAGNOSES),
    *((f"{d}_category", FEATURE_NAMES.index(f"{d}_value"), "category") for d in DIAGNOSES),
)
CATEGORY_COLUMNS = tuple(column for _, column, _ in CATEGORY_INPUTS)
FLOAT_INPUTS: tuple[str, ...] = (*COUNT_FEATURES, "age_years")
FLOAT_COLUMNS = tuple(FEATURE_NAMES.index(name) for name in FLOAT_INPUTS)
KEY_SEPARATOR = "\x1f"


class ObliviousModelError(ValueError):
    """The saved data does not describe a valid oblivious-tree model."""


@lru_cache(maxsize=8192)  # a few thousand codes and values: scoring reads them again and again
def _key(value: float, how: str) -> str:
    if math.isnan(value):
        return MISSING_KEY
    if how == "value":  # ICD-9 codes have at most two decimals
        return f"{value:.2f}"
    return str(math.floor(value))  # a code, or the value's category ("250.83" -> 250)


def category_keys(features: np.ndarray) -> list[list[str]]:
    """Per ``CATEGORY_INPUTS``, each row's key."""
    return [
        [_key(v, how) for v in features[:, column].tolist()] for _, column, how in CATEGORY_INPUTS
    ]


def projection_keys(
    keys: Sequence[Sequence[str]], floats: np.ndarray, elements: Sequence[Sequence[Any]]
) -> list[str]:
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
    """The feature column an element (or test) reads."""
    inputs = FLOAT_COLUMNS if element[0] == "float" else CATEGORY_COLUMNS
    if element[0] not in ("cat", "exact", "float", "onehot") or not 0 <= element[1] < len(inputs):
        raise ValueError(f"unknown input in {element!r}")
    return inputs[element[1]]


class ObliviousTrees:
    """CatBoost's oblivious trees (every node at one depth tests the same binary feature: a
    row's leaf index is its tests' bits) over float thresholds, one-hot categories and CTRs.

    ``data`` (what ``readmit_trainer.candidates.catboost_export`` writes):
    ``binary``: the tests, each ``["float", j, border]`` (float input j > border), ``["onehot",
    i, key]`` (category input i is key) or ``["ctr", c, border]`` (CTR c > border);
    ``ctrs``: ``{"table", "type" (Borders: rate, Counter: frequency), "prior": [numerator,
    denominator], "shift", "scale"}``; ``tables``: ``{"elements", "keys" (``projection_keys``),
    "positives", "counts"}`` counted on the fitting rows; ``trees``: ``{"splits" (binary
    indices, bit d of the leaf index = split d), "leaf_values", "leaf_weights"}``; ``scale``
    and ``bias``.

    Scoring is a few array operations whatever the number of CTRs: category keys become ids
    (0: a key no table or test knows), a table's key is its elements' ids and bits in mixed
    radix, and every table's keys sit, offset apart, in one sorted array: a row's counts in all
    tables are one ``searchsorted``.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        try:
            self._parse(data)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ObliviousModelError(f"not an oblivious-tree model: {exc!r}") from None

    def _parse(self, data: dict[str, Any]) -> None:
        self.scale, self.bias = float(data["scale"]), float(data["bias"])
        self.vocab: list[dict[str, int]] = [{} for _ in CATEGORY_INPUTS]
        tables = [self._split(table) for table in data["tables"]]
        self.binary = [list(b) for b in data["binary"]]
        for test in self.binary:
            if test[0] == "onehot":
                self._id(test[1], str(test[2]))
        self._index_tables(tables)
        self._index_ctrs(data["ctrs"], [elements for elements, _, _ in tables])
        self._index_tests()
        self._index_trees(data["trees"])
        self.compiled = compiled.oblivious(self)

    def _id(self, category: int, key: str) -> int:
        if not 0 <= category < len(CATEGORY_INPUTS):
            raise ValueError(f"unknown category input {category}")
        return self.vocab[category].setdefault(key, len(self.vocab[category]) + 1)

    def _split(self, table: dict[str, Any]) -> tuple[list[list[Any]], list[list[str]], dict]:
        """(elements, each element's column of key parts, the table) with ids assigned."""
        elements = [list(e) for e in table["elements"]]
        if not elements or len({json.dumps(e) for e in elements}) != len(elements):
            raise ValueError("a table needs distinct elements, at least one")
        parts = [str(k).split(KEY_SEPARATOR) for k in table["keys"]]
        if any(len(p) != len(elements) for p in parts):
            raise ValueError("a table's keys do not match its elements")
        columns = [[p[d] for p in parts] for d in range(len(elements))]
        for e, column in zip(elements, columns, strict=True):
            _element_columns(e)  # an unknown input fails here
            if e[0] == "cat":
                for key in column:
                    self._id(e[1], key)
            elif e[0] == "exact":
                self._id(e[1], str(e[2]))
        return elements, columns, table

    def _index_tables(self, tables: list[tuple[list[list[Any]], list[list[str]], dict]]) -> None:
        at: dict[str, int] = {}  # element -> its column in a row's element values
        width = max((len(e) for e, _, _ in tables), default=1)
        self.table_elements = np.zeros((len(tables), width), dtype=np.int64)
        self.table_radix = np.zeros((len(tables), width), dtype=np.int64)  # 0: no element
        self.table_base = np.zeros(len(tables), dtype=np.int64)
        self.largest = np.zeros(len(tables))
        self.elements: list[list[Any]] = []
        keys, positives, counts, base = [], [], [], 0
        for t, (elements, columns, table) in enumerate(tables):
            radix, key = 1, np.zeros(len(columns[0]), dtype=np.int64)
            for d, (e, column) in enumerate(zip(elements, columns, strict=True)):
                name = json.dumps(e)
                if name not in at:
                    at[name] = len(self.elements)
                    self.elements.append(e)
                self.table_elements[t, d], self.table_radix[t, d] = at[name], radix
                if e[0] == "cat":
                    ids, size = [self.vocab[e[1]][k] for k in column], len(self.vocab[e[1]]) + 1
                else:
                    ids, size = [int(k == "1") for k in column], 2
                key += np.asarray(ids, dtype=np.int64) * radix
                radix *= size
            self.table_base[t] = base
            keys.append(key + base)
            base += radix
            if base >= 1 << 62:
                raise ValueError("the tables' keys do not fit 64 bits")
            c = np.asarray(table["counts"], dtype=np.float64)
            p = np.asarray(table["positives"], dtype=np.float64)
            if c.shape != key.shape or p.shape != key.shape:
                raise ValueError("a table's keys, positives and counts differ in length")
            self.largest[t] = c.max(initial=0.0)
            counts.append(c)
            positives.append(p)
        flat = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
        order = np.argsort(flat, kind="stable")
        if (np.diff(flat[order]) == 0).any():
            raise ValueError("a table holds a key twice")
        # a key not found reads the zero counts past the end
        self.sorted_keys = flat[order]
        self.sorted_positives = np.append(np.concatenate(positives or [[]])[order], 0.0)
        self.sorted_counts = np.append(np.concatenate(counts or [[]])[order], 0.0)
        kinds = [e[0] for e in self.elements]
        self.cat_elements = np.array([i for i, k in enumerate(kinds) if k == "cat"], dtype=int)
        self.cat_inputs = np.array([e[1] for e in self.elements if e[0] == "cat"], dtype=int)
        self.float_elements = np.array([i for i, k in enumerate(kinds) if k == "float"], dtype=int)
        self.float_inputs = np.array([e[1] for e in self.elements if e[0] == "float"], dtype=int)
        self.float_borders = np.array([e[2] for e in self.elements if e[0] == "float"], dtype=float)
        self.exact_elements = np.array([i for i, k in enumerate(kinds) if k == "exact"], dtype=int)
        self.exact_inputs = np.array([e[1] for e in self.elements if e[0] == "exact"], dtype=int)
        self.exact_ids = np.array(
            [self.vocab[e[1]][str(e[2])] for e in self.elements if e[0] == "exact"], dtype=np.int64
        )

    def _index_ctrs(self, ctrs: list[dict[str, Any]], elements: list[list[list[Any]]]) -> None:
        columns: dict[str, list[float]] = {
            k: [] for k in ("table", "borders", "numerator", "denominator", "shift", "scale")
        }
        for ctr in ctrs:
            if ctr["type"] not in ("Borders", "Counter"):
                raise ValueError(f"CTR type {ctr['type']!r}")
            if not 0 <= int(ctr["table"]) < len(elements):
                raise ValueError(f"CTR of unknown table {ctr['table']}")
            numerator, denominator = map(float, ctr["prior"])
            for name, value in (
                ("table", int(ctr["table"])),
                ("borders", ctr["type"] == "Borders"),
                ("numerator", numerator),
                ("denominator", denominator),
                ("shift", float(ctr["shift"])),
                ("scale", float(ctr["scale"])),
            ):
                columns[name].append(value)
        self.ctr_table = np.array(columns["table"], dtype=np.int64)
        self.ctr_borders_kind = np.array(columns["borders"], dtype=bool)
        self.ctr_numerator, self.ctr_denominator, self.ctr_shift, self.ctr_scale = (
            np.array(columns[name], dtype=np.float64)
            for name in ("numerator", "denominator", "shift", "scale")
        )
        self.ctr_elements = [elements[t] for t in self.ctr_table.tolist()]

    def _index_tests(self) -> None:
        columns = np.zeros((len(self.binary) + 1, len(FEATURE_NAMES)))  # last: padding test
        kinds: dict[str, list[tuple[int, Any, Any]]] = {"float": [], "onehot": [], "ctr": []}
        for b, test in enumerate(self.binary):
            if test[0] == "ctr":
                read = sorted({_element_columns(e) for e in self.ctr_elements[test[1]]})
                kinds["ctr"].append((b, int(test[1]), float(test[2])))
            elif test[0] == "float":
                read = [_element_columns(test)]
                kinds["float"].append((b, int(test[1]), float(test[2])))
            elif test[0] == "onehot":
                read = [_element_columns(test)]
                kinds["onehot"].append((b, int(test[1]), self.vocab[test[1]][str(test[2])]))
            else:
                raise ValueError(f"binary test {test!r}")
            columns[b, read] = 1.0 / len(read)  # a combination's change is shared by its fields
        self.attribution = columns
        self.tests = {
            kind: tuple(np.array(column) for column in zip(*rows, strict=True))
            if rows
            else (np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0))
            for kind, rows in kinds.items()
        }

    def _index_trees(self, trees: list[dict[str, Any]]) -> None:
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
        features = as_matrix(features, len(FEATURE_NAMES))
        n, floats = len(features), features[:, FLOAT_COLUMNS]
        ids = (
            np.array(
                [
                    [vocab.get(_key(v, how), 0) for v in features[:, column].tolist()]
                    for vocab, (_, column, how) in zip(self.vocab, CATEGORY_INPUTS, strict=True)
                ],
                dtype=np.int64,
            )
            .reshape(len(self.vocab), n)
            .T
        )
        values = np.zeros((n, len(self.elements)), dtype=np.int64)
        values[:, self.cat_elements] = ids[:, self.cat_inputs]
        values[:, self.float_elements] = floats[:, self.float_inputs] > self.float_borders
        values[:, self.exact_elements] = ids[:, self.exact_inputs] == self.exact_ids
        keys = (values[:, self.table_elements] * self.table_radix).sum(axis=2) + self.table_base
        slots = np.searchsorted(self.sorted_keys, keys)
        found = self.sorted_keys[np.minimum(slots, len(self.sorted_keys) - 1)] == keys
        slots = np.where(found, slots, len(self.sorted_keys))
        positives = self.sorted_positives[slots][:, self.ctr_table]
        counts = self.sorted_counts[slots][:, self.ctr_table]
        ctr = np.where(
            self.ctr_borders_kind,
            (positives + self.ctr_numerator) / (counts + self.ctr_denominator),
            # Counter: the value's frequency, relative to the table's most frequent
            (counts + self.ctr_numerator) / (self.largest[self.ctr_table] + self.ctr_denominator),
        )
        ctr = (ctr + self.ctr_shift) * self.ctr_scale
        out = np.zeros((n, len(self.binary) + 1), dtype=bool)
        at, column, border = self.tests["float"]
        out[:, at] = floats[:, column] > border
        at, column, value = self.tests["onehot"]
        out[:, at] = ids[:, column] == value
        at, column, border = self.tests["ctr"]
        out[:, at] = ctr[:, column] > border
        return out

    def _leaves(self, tests: np.ndarray) -> np.ndarray:
        """Each row's leaf index in each tree (rows x trees)."""
        bits = tests[:, self.splits].astype(np.int64)  # rows x trees x depth
        return (bits << np.arange(self.splits.shape[1])).sum(axis=2)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """The model's log-odds per row (CatBoost's ``RawFormulaVal``): by the compiled scorer
        when it is installed (``compiled``), else ``raw_numpy``."""
        if self.compiled is None:
            return self.raw_numpy(features)
        return self.compiled.raw(as_matrix(features, len(FEATURE_NAMES)))

    def raw_numpy(self, features: np.ndarray) -> np.ndarray:
        leaves = self._leaves(self._tests(features))
        return self.scale * self.leaf_values[self._trees, leaves].sum(axis=1) + self.bias

    def risk(self, features: np.ndarray) -> np.ndarray:
        return to_risk(self.raw(features))

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        """The base value and each feature's share of each row's log-odds (rows x features):
        along the row's path in every tree, the node value's change at each test, given to the
        columns the test reads (shared equally by a combination's fields). The changes per test
        by the compiled scorer when it is installed, else ``contributions_numpy``."""
        if self.compiled is None:
            return self.contributions_numpy(features)
        changes = self.compiled.test_changes(as_matrix(features, len(FEATURE_NAMES)))
        return self.base, self.scale * changes @ self.attribution

    def contributions_numpy(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        leaves = self._leaves(self._tests(features))
        n, width = len(leaves), len(self.binary) + 1
        if not self.depth:  # no tree splits: nothing but the base
            return self.base, np.zeros((n, len(FEATURE_NAMES)))
        values = [
            level[self._trees, leaves & ((1 << d) - 1)] for d, level in enumerate(self.node_values)
        ]
        changes = np.stack([values[d + 1] - values[d] for d in range(self.depth)], axis=2)
        cells = np.arange(n)[:, None, None] * width + self.splits[None, :, : self.depth]
        per_test = np.bincount(cells.ravel(), changes.ravel(), minlength=n * width)
        return self.base, self.scale * per_test.reshape(n, width) @ self.attribution


class CatBoostScorer:
    """A CatBoost model as this module's data (one JSON file), scored in NumPy:
    serving needs no CatBoost."""

    kind = "catboost"
    FILE = "catboost.json"

    def __init__(self, data: dict[str, Any], text: str | None = None) -> None:
        """``text``: ``data`` as read from the file, if it was (kept rather than the parsed
        dict, which a large model's counter tables make many times bigger)."""
        try:
            self.trees = ObliviousTrees(data)
        except ObliviousModelError as exc:
            raise ScorerError(str(exc)) from None
        self.text = json.dumps(data, separators=(",", ":")) if text is None else text

    def risk(self, features: np.ndarray) -> np.ndarray:
        return self.trees.risk(features)

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        return self.trees.raw(features)

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        return self.trees.contributions(features)

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        return {}, {self.FILE: self.text}

    @classmethod
    def from_data(cls, params: dict[str, Any], files: dict[str, str]) -> CatBoostScorer:
        if cls.FILE not in files:
            raise ScorerError(f"{cls.FILE} is missing")
        try:
            data = json.loads(files[cls.FILE])
        except ValueError as exc:
            raise ScorerError(f"{cls.FILE} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ScorerError(f"{cls.FILE} is not an object")
        return cls(data, files[cls.FILE])
