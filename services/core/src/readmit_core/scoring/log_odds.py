"""Every scorer here works in log-odds (trees, linear terms, explanations) and reports a risk."""

from __future__ import annotations

import numpy as np


def to_risk(log_odds: np.ndarray) -> np.ndarray:
    """The logistic function: the probability whose log-odds is ``log_odds``."""
    return 1.0 / (1.0 + np.exp(-log_odds))
