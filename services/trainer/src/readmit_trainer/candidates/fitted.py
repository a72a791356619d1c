"""What fitting a candidate gives: the settings it chose on validation and the fitted estimator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Fitted:
    algorithm: str
    params: dict[str, Any]
    estimator: Any
    val_roc_auc: float
