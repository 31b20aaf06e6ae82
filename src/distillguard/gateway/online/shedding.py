"""The online scorer's load-shedding policy: which exchanges are folded while the worker is behind.

Used by the worker (:mod:`.worker`, per row as it reads them) and the proxy side (:mod:`.process`, sampling
before shipping when the worker gets no CPU at all). See :class:`~distillguard.gateway.online.ScorerProcess`.
"""

from __future__ import annotations

import time

SHED_MODES = ("sample", "off")
SHED_START_MS, SHED_STOP_MS = 3000.0, 500.0  # shedding starts this far behind, stops below the other
FOLD_FIRST, SAMPLE_EVERY = 32, 8  # while shedding: every account's first exchanges, then 1 in SAMPLE_EVERY
# an account with an online evidence family this strong is never shed (ordinary traffic shows weak points in a
# family or two, e.g. session 0.58 for single-turn API use; harvesting shows 2-3 points in several)
PROTECT_POINTS = 1.0


class _Shedder:
    """The worker's load-shedding rule (see :class:`ScorerProcess`): fold or count each row as it is read.

    Rows are counted per account only during a shedding episode (memory only under load): each account's
    first ``FOLD_FIRST`` exchanges of an episode are folded, then one in ``SAMPLE_EVERY``.
    """

    def __init__(self) -> None:
        self.mode = "sample"
        self.start_ms, self.stop_ms = SHED_START_MS, SHED_STOP_MS
        self.active = False
        self.lag_ms = 0
        self.ready_ms = int(time.time() * 1000)  # set again once the worker has loaded the model
        self.seen: dict[str, int] = {}  # rows read per account in this episode (capped: small ints, no objects)
        self.shed: dict[str, int] = {}  # rows not folded per account since the last report

    def set_active(self, active: bool) -> None:
        self.active = active
        if not active:
            self.seen.clear()

    def fold(self, account: str, queued_ms: int, protected: bool, now_ms: int) -> bool:
        # how long the row waited for this worker: rows queued while it was starting count from when it was ready
        lag = self.lag_ms = now_ms - max(queued_ms, self.ready_ms)
        if self.active and lag < self.stop_ms:
            self.set_active(False)
        elif not self.active and lag > self.start_ms and self.mode == "sample":
            self.set_active(True)
        if not self.active or protected:
            return True
        seen = self.seen.get(account, 0)
        self.seen[account] = seen + 1 if seen < FOLD_FIRST else FOLD_FIRST + (seen - FOLD_FIRST + 1) % SAMPLE_EVERY
        if seen < FOLD_FIRST or seen == FOLD_FIRST:
            return True
        self.shed[account] = self.shed.get(account, 0) + 1
        return False
