"""Online per-account evidence with the batch definitions: ``SIGNALS`` per exchange, ``AccountState`` per
account, the batch detectors per account, against the batch run's baselines.

Exchanges are folded in micro-batches: the signal code is vectorised (a 1-row
derive costs ~2 ms, a 128-row batch ~50 us a row), so a batch is flushed when it
fills or its oldest exchange is ``max_lag_ms`` old (on the exchange clock, so
replay behaves exactly like the proxy); decisions see state at most that stale.

Each due account's features (:func:`~distillguard.features.state.features_many`, the batch
``features_from_stats``) are scored by batch detection's own detectors (``Model.record``) against the
deployment's baselines from the last ``detect`` run (``context.json``; the shipped priors before there is
one). The result is :class:`~distillguard.gateway.scoring.Online` evidence: family points, the exchanges
behind them and the reasons; the proxy's :class:`~distillguard.gateway.scoring.FusedScorer` joins it with
batch evidence and intel and calls :func:`distillguard.decide.decide`, the one decision stage. Volume
gates, thresholds and the two-family rule therefore live in ``decide`` alone.
An account is re-scored at ``RESCORE_AT`` exchanges early on (a new account is judged
quickly), then every ``RESCORE_EVERY``; all accounts due in one fold are scored in one
vectorised call, so scoring cost stays flat under load.
State is kept serialised (``AccountState.to_bytes``, lossless: features from it equal
the live state's bit for bit), under 1 KiB per account.

With ``background=True`` (the live proxy) the folding and scoring run in a worker
process (:class:`ScorerProcess`) with this same code, inline; the proxy only ships
completed rows and reads published evidence. Replay folds inline, deterministically.

The package, by concern: :mod:`.features` (folding in micro-batches, due rescoring, the published evidence),
:mod:`.evidence` (the detectors on online features), :mod:`.store` (the latest evidence per account, packed),
:mod:`.links` (payment-fingerprint links),
:mod:`.process` (the proxy's side of the worker process: pipes, buffering, drops), :mod:`.worker` (the worker
process's loop: scheduling of folds) and :mod:`.shedding` (the load-shedding policy).
"""

from __future__ import annotations

from distillguard.gateway.online.evidence import EvidenceFn, EvidenceScorer
from distillguard.gateway.online.features import RESCORE_AT, RESCORE_EVERY, OnlineFeatures, _due
from distillguard.gateway.online.links import LINK_POINTS, Links
from distillguard.gateway.online.process import (
    BUFFER_SHED_BYTES,
    MAX_BACKLOG_BYTES,
    NOT_SHIPPED,
    POLL_EVERY_S,
    PUMP_EVERY_S,
    SEND_ROWS,
    SEND_WAIT_S,
    ScorerProcess,
    idle_priority,
)
from distillguard.gateway.online.shedding import (
    FOLD_FIRST,
    PROTECT_POINTS,
    SAMPLE_EVERY,
    SHED_MODES,
    SHED_START_MS,
    SHED_STOP_MS,
    _Shedder,
)
from distillguard.gateway.online.store import MAX_SHARED, EvidenceStore
from distillguard.gateway.online.worker import (
    REPORT_EVERY_S,
    WORKER_BATCH_ROWS,
    WORKER_MAX_BATCH_ROWS,
    WORKER_WAIT_S,
    _worker_main,
    worker_entry,
)

__all__ = ["BUFFER_SHED_BYTES", "FOLD_FIRST", "LINK_POINTS", "MAX_BACKLOG_BYTES", "MAX_SHARED", "NOT_SHIPPED",
           "POLL_EVERY_S", "PROTECT_POINTS", "PUMP_EVERY_S", "REPORT_EVERY_S", "RESCORE_AT", "RESCORE_EVERY",
           "SAMPLE_EVERY", "SEND_ROWS", "SEND_WAIT_S", "SHED_MODES", "SHED_START_MS", "SHED_STOP_MS",
           "WORKER_BATCH_ROWS", "WORKER_MAX_BATCH_ROWS", "WORKER_WAIT_S", "EvidenceFn", "EvidenceScorer",
           "EvidenceStore", "Links", "OnlineFeatures", "ScorerProcess", "_Shedder", "_due", "_worker_main",
           "idle_priority", "worker_entry"]
