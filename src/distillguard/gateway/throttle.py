"""GCRA (generic cell rate algorithm): a rate limit held in one number per key.

GCRA stores only the "theoretical arrival time" (TAT) of the next request, so a
budget costs 8 bytes per account and updates atomically in one Redis script.
Token budgets reuse it with ``cost`` = tokens: a request is admitted while the
account is not in debt, and the tokens it actually used are charged afterwards
(the usage is only known once the response is complete).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """``per_minute`` units per minute, with up to ``burst_s`` seconds' worth spendable at once."""

    per_minute: float
    burst_s: float = 1.0

    @property
    def interval_ms(self) -> float:
        return 60_000.0 / self.per_minute

    @property
    def tolerance_ms(self) -> float:
        # at least one unit may always pass, whatever the burst
        return max(self.burst_s * 1000.0, self.interval_ms)


def gcra(tat: float | None, now_ms: float, rate: Rate, cost: float = 1.0) -> tuple[bool, float, float]:
    """One GCRA step: ``(allowed, new_tat, retry_after_ms)``; the TAT only moves when allowed."""
    base = now_ms if tat is None or tat < now_ms else tat
    new_tat = base + cost * rate.interval_ms
    allow_at = new_tat - rate.tolerance_ms
    if allow_at > now_ms:
        return False, (tat if tat is not None else now_ms), allow_at - now_ms
    return True, new_tat, 0.0


def charge(tat: float | None, now_ms: float, rate: Rate, cost: float) -> float:
    """Charge ``cost`` unconditionally (may go into debt): the post-response token accounting."""
    base = now_ms if tat is None or tat < now_ms else tat
    return base + cost * rate.interval_ms
