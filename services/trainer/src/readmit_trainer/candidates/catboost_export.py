"""A fitted CatBoost model -> ``readmit_core.scoring.catboost`` data: its trees and tests from
CatBoost's JSON export, its counter tables recounted by value on the rows it was fitted on.

CatBoost's export keys the counts by a hash of the values; counting the same rows by value gives
the same numbers (the scorer is tested equal to CatBoost), and the saved model stays plain data.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from readmit_core.scoring.catboost import (
    CATEGORY_INPUTS,
    FLOAT_COLUMNS,
    FLOAT_INPUTS,
    category_keys,
    projection_keys,
)


def frame(features: np.ndarray) -> Any:
    """What CatBoost is fitted on and scores: category keys (strings) then float inputs."""
    import pandas as pd

    keys = category_keys(features)
    columns = {name: k for (name, _, _), k in zip(CATEGORY_INPUTS, keys, strict=True)}
    columns.update(
        {name: features[:, c] for name, c in zip(FLOAT_INPUTS, FLOAT_COLUMNS, strict=True)}
    )
    return pd.DataFrame(columns)


CAT_FEATURES = [name for name, _, _ in CATEGORY_INPUTS]


def _signed(value: int) -> int:
    """CatBoost's splits hold the int32 view of a value's uint32 hash."""
    return value - (1 << 32) if value >= 1 << 31 else value


def export(model: Any, features: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """``model`` (a ``CatBoostClassifier``) as fitted on ``features`` (the encoded rows) and
    ``y``, without an evaluation set's rows in its counters (``counter_calc_method="SkipTest"``)."""
    from catboost import Pool

    fitted_on = frame(features)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.json"
        model.save_model(
            str(path), format="json", pool=Pool(fitted_on, y, cat_features=CAT_FEATURES)
        )
        saved = json.loads(path.read_text())
    info = saved["features_info"]
    n_cat = len(CATEGORY_INPUTS)
    # The export numbers features within each kind; ours by input (category, then float).
    floats = [f["flat_feature_index"] - n_cat for f in info.get("float_features", [])]
    cats = [c["flat_feature_index"] for c in info.get("categorical_features", [])]
    value_of = {_signed(h["hash"]): h["value"] for h in info.get("cat_features_hash", [])}

    def element(e: dict[str, Any]) -> list[Any]:
        kind = e["combination_element"]
        if kind == "cat_feature_value":
            return ["cat", cats[e["cat_feature_index"]]]
        if kind == "cat_feature_exact_value":
            return ["exact", cats[e["cat_feature_index"]], value_of[e["value"]]]
        if kind == "float_feature":
            return ["float", floats[e["float_feature_index"]], e["border"]]
        raise ValueError(f"unknown CTR element {kind}")

    keys = [list(k) for k in fitted_on[CAT_FEATURES].to_numpy(dtype=object).T]
    float_values = features[:, FLOAT_COLUMNS]
    tables: list[dict[str, Any]] = []
    table_of: dict[str, int] = {}
    ctrs: list[dict[str, Any]] = []
    # A split's split_index numbers the binary features: every float border, every one-hot
    # value, then every CTR border, in the export's order; only CTR splits need it.
    numbered: list[int | None] = [None] * (
        sum(len(f.get("borders") or []) for f in info.get("float_features", []))
        + sum(len(c.get("values") or []) for c in info.get("categorical_features", []))
    )
    for ctr in info.get("ctrs", []):
        identifier = ctr["identifier"]
        if identifier not in table_of:
            elements = [element(e) for e in json.loads(identifier)["identifier"]]
            counted = _count(projection_keys(keys, float_values, elements), y)
            table_of[identifier] = len(tables)
            tables.append({"elements": elements, **counted})
        numbered += [len(ctrs)] * len(ctr["borders"])
        ctrs.append(
            {
                "table": table_of[identifier],
                "type": ctr["ctr_type"],
                "prior": [ctr["prior_numerator"], ctr["prior_denomerator"]],
                "shift": ctr["shift"],
                "scale": ctr["scale"],
            }
        )
    tests: list[list[Any]] = []
    test_of: dict[str, int] = {}

    def test(split: dict[str, Any]) -> int:
        kind = split["split_type"]
        if kind == "FloatFeature":
            spec = ["float", floats[split["float_feature_index"]], split["border"]]
        elif kind == "OneHotFeature":
            spec = ["onehot", cats[split["cat_feature_index"]], value_of[split["value"]]]
        elif kind == "OnlineCtr":
            spec = ["ctr", numbered[split["split_index"]], split["border"]]
        else:
            raise ValueError(f"unknown split type {kind}")
        key = json.dumps(spec)
        if key not in test_of:
            test_of[key] = len(tests)
            tests.append(spec)
        return test_of[key]

    trees = [
        {
            "splits": [test(s) for s in t.get("splits") or []],
            "leaf_values": t["leaf_values"],
            "leaf_weights": t["leaf_weights"],
        }
        for t in saved["oblivious_trees"]
    ]
    scale, bias = saved["scale_and_bias"]
    return {
        "binary": tests,
        "ctrs": ctrs,
        "tables": tables,
        "trees": trees,
        "scale": scale,
        "bias": bias[0] if isinstance(bias, list) else bias,
    }


def _count(keys: list[str], y: np.ndarray) -> dict[str, list[Any]]:
    import pandas as pd

    inverse, uniques = pd.factorize(np.asarray(keys, dtype=object))
    counts = np.bincount(inverse, minlength=len(uniques))
    positives = np.bincount(inverse, weights=(np.asarray(y) > 0.5), minlength=len(uniques))
    return {
        "keys": uniques.tolist(),
        "positives": positives.astype(int).tolist(),
        "counts": counts.tolist(),
    }
