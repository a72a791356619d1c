"""The compiled scorer (``services/scorer``, Rust), fed the arrays the NumPy scorers built.

It scores a row by walking its trees (~10-30x less time than the NumPy array operations for a
batch, ~20x for one row) and releases the GIL while it runs. It parses nothing: ``lightgbm.py``
and ``catboost.py`` read and check the model's data files, this module hands their arrays over,
and the extension checks every index again. Where the extension is not installed (a laptop
without Rust: ``make install`` builds it), the NumPy scorers run instead, with the same numbers;
``SCORER`` says which one serves, and the tests compare the two to 1e-9.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from readmit_core.features import FEATURE_NAMES

try:
    import readmit_scorer
except ImportError:  # the NumPy scorers serve (see the module's docstring)
    readmit_scorer = None

if TYPE_CHECKING:
    from readmit_core.scoring.catboost import ObliviousTrees
    from readmit_core.scoring.lightgbm import _Tree

SCORER = "compiled" if readmit_scorer is not None else "numpy"


def forest(trees: list[_Tree], n_features: int, changes: list[tuple[float, float]]) -> Any | None:
    """LightGBM's parsed trees as the extension's ``Forest`` (None without the extension);
    ``changes``: per node, the change of value to its left and right child (explanations)."""
    if readmit_scorer is None:
        return None
    columns: dict[str, list[Any]] = {
        k: []
        for k in ("feature", "threshold", "decision", "left", "right", "words_start", "words_len")
    }
    words: list[int] = []
    sizes, leaves = [], []
    for tree in trees:
        members = iter(tree.categories)
        for node in range(tree.n_leaves - 1):
            decision = int(tree.decisions[node])
            for name, value in (
                ("feature", int(tree.features[node])),
                ("threshold", float(tree.thresholds[node])),
                ("decision", decision),
                ("left", int(tree.left[node])),
                ("right", int(tree.right[node])),
            ):
                columns[name].append(value)
            bitset = _bitset(next(members)) if decision & 1 else []
            columns["words_start"].append(len(words))
            columns["words_len"].append(len(bitset))
            words += bitset
        sizes.append((tree.n_leaves - 1, tree.n_leaves))
        leaves += tree.leaf_values.tolist()
    c = columns
    return readmit_scorer.Forest(
        n_features,
        c["feature"],
        c["threshold"],
        c["decision"],
        c["left"],
        c["right"],
        c["words_start"],
        c["words_len"],
        words,
        sizes,
        leaves,
        changes,
    )


def _bitset(members: np.ndarray) -> list[int]:
    """Categories going left -> LightGBM's 32-bit words (bit c of word c // 32)."""
    words = [0] * (int(members.max()) // 32 + 1 if members.size else 0)
    for c in members.tolist():
        words[c // 32] |= 1 << (c % 32)
    return words


def oblivious(model: ObliviousTrees) -> Any | None:
    """CatBoost's indexed oblivious trees as the extension's ``Oblivious`` (None without it)."""
    if readmit_scorer is None:
        return None
    from readmit_core.scoring.catboost import CATEGORY_INPUTS, FLOAT_COLUMNS, MISSING_KEY

    categories = []
    for (_, column, how), vocab in zip(CATEGORY_INPUTS, model.vocab, strict=True):
        # the key's number, as the extension reads it from the value: an ICD-9 code's
        # hundredths ("250.83" -> 25083), else the floor ("3" -> 3)
        ids = [
            (round(float(k) * 100) if how == "value" else int(k), i)
            for k, i in vocab.items()
            if k != MISSING_KEY
        ]
        categories.append((column, how == "value", ids, vocab.get(MISSING_KEY, 0)))
    elements = []
    for e in model.elements:
        if e[0] == "cat":
            elements.append((0, e[1], 0.0, 0))
        elif e[0] == "float":
            elements.append((1, e[1], float(e[2]), 0))
        else:
            elements.append((2, e[1], 0.0, model.vocab[e[1]][str(e[2])]))
    ctrs = list(
        zip(
            model.ctr_table.tolist(),
            model.ctr_borders_kind.tolist(),
            model.ctr_numerator.tolist(),
            model.ctr_denominator.tolist(),
            model.ctr_shift.tolist(),
            model.ctr_scale.tolist(),
            strict=True,
        )
    )
    tests = []
    for kind, index, value in model.binary:
        if kind == "float":
            tests.append((0, index, float(value), 0))
        elif kind == "onehot":
            tests.append((1, index, 0.0, model.vocab[index][str(value)]))
        else:
            tests.append((2, index, float(value), 0))
    return readmit_scorer.Oblivious(
        len(FEATURE_NAMES),
        categories,
        list(FLOAT_COLUMNS),
        elements,
        np.ascontiguousarray(model.table_elements),
        np.ascontiguousarray(model.table_radix),
        model.table_base.tolist(),
        model.largest.tolist(),
        model.sorted_keys,
        model.sorted_positives,
        model.sorted_counts,
        ctrs,
        tests,
        np.ascontiguousarray(model.splits),
        np.ascontiguousarray(model.leaf_values),
        model.scale,
        model.bias,
        # node values per depth (each level trees x 2**d), for explanations
        model.depth,
        np.concatenate([level.ravel() for level in model.node_values]),
    )
