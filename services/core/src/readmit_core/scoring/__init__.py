"""What a fitted model computes from the feature matrix, rebuilt from plain data.

A scorer is made from numbers and its library's own files read as data (LightGBM's text format,
CatBoost's trees recounted by value), never from pickled objects, so a model artifact can be read
without running anything it carries; all are scored in NumPy (or the compiled extension,
``compiled``). ``to_data`` gives what is saved (JSON-able parameters and named text files);
``from_data`` checks and rebuilds it. One module per kind, named after the library whose files it
reads; ``SCORERS`` maps a saved kind to its class.
"""

from __future__ import annotations

from typing import Any

from readmit_core.scoring.blend import BlendScorer
from readmit_core.scoring.catboost import CatBoostScorer
from readmit_core.scoring.lightgbm import LightGBMScorer
from readmit_core.scoring.linear import LinearScorer
from readmit_core.scoring.protocol import Scorer, ScorerError

__all__ = [
    "SCORERS",
    "BlendScorer",
    "CatBoostScorer",
    "LightGBMScorer",
    "LinearScorer",
    "Scorer",
    "ScorerError",
]

SCORERS: dict[str, Any] = {
    LightGBMScorer.kind: LightGBMScorer,
    LinearScorer.kind: LinearScorer,
    CatBoostScorer.kind: CatBoostScorer,
    BlendScorer.kind: BlendScorer,
}
