"""What every scorer is: the protocol the api, the trainer and the registry rely on."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class ScorerError(ValueError):
    """The saved data does not describe a valid scorer."""


class Scorer(Protocol):
    kind: str

    def risk(self, features: np.ndarray) -> np.ndarray: ...

    def contributions(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        """(base, rows x features): each feature's share of the log-odds; they sum with the
        base to the row's log-odds."""
        ...

    def to_data(self) -> tuple[dict[str, Any], dict[str, str]]: ...
