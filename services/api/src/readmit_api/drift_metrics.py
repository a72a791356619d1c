"""The live side of input drift: the last encounters' input bins and flags in a sliding window,
exported at scrape time next to the served model's own baseline (``readmit_core.drift``).

Metrics (per pod; the window counts encounters, not time):
``readmit_drift_window_encounters``, ``readmit_drift_live_share{input,bin}``,
``readmit_drift_baseline_share{input,bin}``, ``readmit_drift_psi{input}``,
``readmit_drift_live_flagged_share``, ``readmit_drift_baseline_flagged_share``.
A model without a baseline (trained before it was saved) exports only the live side. The live
side waits until the window holds READMIT_DRIFT_MIN_ENCOUNTERS (100): a share of a handful of
encounters, read before and after one request, would say that patient's inputs and flag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from readmit_core.drift import INPUTS, psi, shares, valid_baseline


class DriftWindow:
    """A ring buffer of the last ``size`` encounters: their input bins and whether flagged."""

    def __init__(self, size: int) -> None:
        self.bins = np.zeros((size, len(INPUTS)), dtype=np.int8)
        self.flagged = np.zeros(size, dtype=bool)
        self.count = 0
        self._next = 0

    def observe(self, bins: np.ndarray, flagged: np.ndarray) -> None:
        size = len(self.flagged)
        bins, flagged = bins[-size:], flagged[-size:]
        slots = (self._next + np.arange(len(bins))) % size
        self.bins[slots], self.flagged[slots] = bins, flagged
        self._next = (self._next + len(bins)) % size
        self.count = min(self.count + len(bins), size)


class DriftCollector(Collector):
    """Registered once per process (like every metric); the app attaches its window and how to
    read the served model's baseline when it starts."""

    def __init__(self) -> None:
        self.window: DriftWindow | None = None
        self.baseline: Callable[[], Any] = lambda: None  # info["drift_baseline"] or None
        self.min_encounters = 1

    def attach(self, window: DriftWindow, baseline: Callable[[], Any], min_encounters: int) -> None:
        self.window, self.baseline, self.min_encounters = window, baseline, min_encounters

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.window is None:
            return
        n = self.window.count
        yield GaugeMetricFamily(
            "readmit_drift_window_encounters", "Encounters in the drift window", value=n
        )
        base = valid_baseline(self.baseline())
        live = shares(self.window.bins[:n]) if n >= self.min_encounters else None
        if live is not None:
            yield _shares(
                "readmit_drift_live_share", "Share of the window's encounters per input bin", live
            )
            yield GaugeMetricFamily(
                "readmit_drift_live_flagged_share",
                "Share of the window's encounters flagged",
                value=float(self.window.flagged[:n].mean()),
            )
        if base is not None:
            yield _shares(
                "readmit_drift_baseline_share",
                "Share per input bin on the served model's validation data",
                base["shares"],
            )
            yield GaugeMetricFamily(
                "readmit_drift_baseline_flagged_share",
                "Share flagged on the served model's validation data",
                value=float(base["flagged_share"]),
            )
        if base is not None and live is not None:
            index = GaugeMetricFamily(
                "readmit_drift_psi",
                "Population stability index of each input: window vs the served model's baseline",
                labels=["input"],
            )
            for spec in INPUTS:
                index.add_metric([spec.name], psi(base["shares"][spec.name], live[spec.name]))
            yield index


COLLECTOR = DriftCollector()
REGISTRY.register(COLLECTOR)


def _shares(name: str, doc: str, values: Mapping[str, list[float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["input", "bin"])
    for spec in INPUTS:
        for label, share in zip(spec.labels, values[spec.name], strict=True):
            family.add_metric([spec.name, label], share)
    return family
