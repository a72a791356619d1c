"""The champion/challenger rule on its own (no registry, no training)."""

from __future__ import annotations

import pytest

from readmit_trainer.promotion import Champion, decide


@pytest.mark.parametrize(
    ("challenger", "champion", "force", "move", "reason"),
    [
        (0.60, None, False, True, "no current holder"),
        (0.60, Champion("3", 0.70), True, True, "forced"),
        (0.71, Champion("3", 0.70), False, True, "challenger 0.7100 vs champion v3 0.7000"),
        (0.70, Champion("3", 0.70), False, False, "vs champion v3 0.7000"),  # a tie keeps
        (0.69, Champion("3", 0.70), False, False, "vs champion v3 0.7000"),
        # A registry hiccup is no reason to replace a working model...
        (0.99, Champion("3", None), False, False, "champion v3 unscorable"),
        # ...but files the api refuses (the old pickled format) are: it serves nothing.
        (
            0.50,
            Champion("3", None, "pickled model format"),
            False,
            True,
            "champion v3 cannot be served: pickled model format",
        ),
    ],
)
def test_decide(
    challenger: float, champion: Champion | None, force: bool, move: bool, reason: str
) -> None:
    decision = decide(challenger, champion, force)
    assert decision.move is move
    assert reason in decision.reason
