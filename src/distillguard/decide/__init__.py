"""Verdicts from risk: every threshold in one place.

``allow < WATCH <= watch < THROTTLE <= throttle < BLOCK <= block``. Evidence that
only comes from one sharing member's intel (``corroborated=False``) is capped at
throttle: a single peer's report can slow an account down, never cut it off.
"""

from __future__ import annotations

VERDICTS = ("allow", "watch", "throttle", "block")
WATCH = 0.3
THROTTLE = 0.6
BLOCK = 0.85


def verdict(risk: float, *, corroborated: bool = True, watch: float = WATCH, throttle: float = THROTTLE,
            block: float = BLOCK) -> str:
    """The action for a calibrated ``risk`` in [0, 1]."""
    if risk >= block and corroborated:
        return "block"
    if risk >= throttle:
        return "throttle"
    if risk >= watch:
        return "watch"
    return "allow"


def flagged(verdict_name: str) -> bool:
    """Whether a verdict restricts the account (throttle or block): what "flagged" means in evaluation."""
    return verdict_name in ("throttle", "block")


__all__ = ["BLOCK", "THROTTLE", "VERDICTS", "WATCH", "flagged", "verdict"]
