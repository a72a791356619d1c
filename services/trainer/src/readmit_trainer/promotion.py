"""The champion/challenger rule: whether a new version takes the serving alias, and why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Champion:
    """The version holding the alias, as this run could judge it."""

    version: str
    roc_auc: float | None  # on this run's test part; None if it could not be scored
    unservable: str | None = None  # why the api refuses its files (e.g. the old pickled format)


@dataclass(frozen=True)
class Decision:
    move: bool
    reason: str


def decide(challenger_auc: float, champion: Champion | None, force: bool) -> Decision:
    """Move on force, onto an empty alias, off a version the api cannot serve, or when the
    challenger scores strictly better; keep a champion that merely could not be scored (a
    registry hiccup is no reason to replace a working model)."""
    if force:
        return Decision(True, "forced")
    if champion is None:
        return Decision(True, "no current holder")
    if champion.unservable is not None:
        return Decision(
            True, f"champion v{champion.version} cannot be served: {champion.unservable}"
        )
    if champion.roc_auc is None:
        return Decision(
            False, f"challenger {challenger_auc:.4f} vs champion v{champion.version} unscorable"
        )
    better = challenger_auc > champion.roc_auc
    return Decision(
        better,
        f"challenger {challenger_auc:.4f} vs champion v{champion.version} {champion.roc_auc:.4f}",
    )
