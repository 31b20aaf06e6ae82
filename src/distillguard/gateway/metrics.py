"""The gateway's Prometheus metrics, in the text exposition format (0.0.4), written by hand.

Why not ``prometheus_client``: the gateway is one asyncio event loop, so a counter is a plain ``int`` in a dict
(no lock, no registry lookup per increment on the request path), and ten-odd metrics render in a few dozen
lines. The format is checked against ``prometheus_client``'s own parser in the tests (a test-only dependency).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable

# request duration buckets, seconds (the gateway's own time plus the upstream's; streams until their last byte)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=True)) + "}"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Counter:
    """A counter family: label values -> count (labels are the gateway's own small vocabularies, never ids)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.values: dict[tuple, int] = {} if labels else {(): 0}

    def inc(self, *values: object, by: int = 1) -> None:
        self.values[values] = self.values.get(values, 0) + by

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.labels, k)} {v}" for k, v in sorted(self.values.items(), key=str)]
        return lines


class Histogram:
    """A histogram family with one label (the route)."""

    def __init__(self, name: str, doc: str, label: str, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.name, self.doc, self.label, self.buckets = name, doc, label, buckets
        self.series: dict[str, tuple[list[int], list[float]]] = {}  # value -> (bucket counts, [sum])

    def observe(self, value: str, seconds: float) -> None:
        entry = self.series.get(value)
        if entry is None:
            entry = self.series[value] = ([0] * (len(self.buckets) + 1), [0.0])
        entry[0][bisect.bisect_left(self.buckets, seconds)] += 1
        entry[1][0] += seconds

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} histogram"]
        for value, (counts, total) in sorted(self.series.items()):
            running = 0
            label = f'{self.label}="{_escape(value)}"'
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                lines.append(f'{self.name}_bucket{{{label},le="{_number(bound) if bound != math.inf else "+Inf"}"}} '
                             f"{running}")
            lines.append(f"{self.name}_sum{{{label}}} {_number(total[0])}")
            lines.append(f"{self.name}_count{{{label}}} {running}")
        return lines


class Gauge:
    """A value read when scraped (``read`` returns a number, or label values -> number); ``kind`` ``counter`` for a
    running total kept elsewhere (e.g. by the online scorer's handle)."""

    def __init__(self, name: str, doc: str, read: Callable[[], float | dict[tuple, float]],
                 labels: tuple[str, ...] = (), kind: str = "gauge") -> None:
        self.name, self.doc, self.read, self.labels, self.kind = name, doc, read, labels, kind

    def render(self) -> list[str]:
        value = self.read()
        lines = [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} {self.kind}"]
        if isinstance(value, dict):
            lines += [f"{self.name}{_labels(self.labels, k)} {_number(v)}" for k, v in sorted(value.items(), key=str)]
        else:
            lines.append(f"{self.name} {_number(value)}")
        return lines


class Metrics:
    """Everything ``GET /metrics`` reports."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests = Counter("distillguard_requests_total", "HTTP requests answered by the gateway app.",
                                ("route", "status"))
        self.duration = Histogram("distillguard_request_duration_seconds",
                                  "Time from request to the last response byte.", "route")
        self.decisions = Counter("distillguard_decisions_total", "Policy decisions (audited before they act).",
                                 ("action", "enforced"))
        self.refused = Counter("distillguard_refused_total",
                               "Requests the gateway refused before a decision (audited), by status and code.",
                               ("status", "code"))
        self.upstream_errors = Counter("distillguard_upstream_errors_total",
                                       "Upstream failures: unreachable, timeout, HTTP error answers, streams cut.",
                                       ("kind",))
        self.http_errors = Counter("distillguard_http_errors_total",
                                   "Requests the HTTP layer refused before the app saw them (malformed, too large).",
                                   ("status",))
        self.extra: list[Gauge | Counter] = []

    def gauge(self, name: str, doc: str, read: Callable[[], float | dict[tuple, float]],
              labels: tuple[str, ...] = (), kind: str = "gauge") -> None:
        self.extra.append(Gauge(name, doc, read, labels, kind))

    def render(self) -> bytes:
        lines = ["# HELP distillguard_start_time_seconds When the gateway process started (Unix time).",
                 "# TYPE distillguard_start_time_seconds gauge", f"distillguard_start_time_seconds {self.started!r}"]
        for family in (self.requests, self.duration, self.decisions, self.refused, self.upstream_errors,
                       self.http_errors, *self.extra):
            try:
                lines += family.render()
            except Exception:  # noqa: BLE001, S112 - a broken reader must not take /metrics down
                continue
        return ("\n".join(lines) + "\n").encode()
