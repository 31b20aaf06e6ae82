"""What is usual, measured on the deployment being analysed: robust baselines per cohort.

Every "unusual" judgement in detection is made against these numbers, not against the simulator the
project was developed on. A *cohort* groups accounts that are expected to behave alike whatever their
intent: billing tier, client kind (agentic tool loops vs. chat) and volume band. Cohorts never use a
suspicious trait (age, outputs, rotation) as a key, so harvesters are compared with the legitimate
customers they imitate.

Per cohort and measured quantity the baseline is a robust location and scale:

* continuous quantities: the median and the MAD (x 1.4826) over the cohort's accounts with enough traffic;
* rates of rare events (a share of requests): a *benign rate* p0, the cohort's median share plus two MADs.

Median and MAD tolerate up to half of a cohort being attackers. Two more guards keep a cohort that
attackers dominate from normalising them: a cohort's location may exceed the whole deployment's by at
most half a deployment scale, and its scale may be at most 1.5 times the deployment's (a benign rate at
most three times the deployment's). Scales and rates never go
below the shipped floors (:data:`PRIORS`), and a cohort (or a whole deployment) with fewer than
:data:`MIN_ACCOUNTS` accounts falls back to its parent (tier dropped, then volume band, then everyone), and
finally to the shipped priors, so a small deployment gets the documented defaults.

The fitted baselines are JSON (``Baselines.to_json``): ``detect`` writes them into ``context.json`` and the
gateway scores new traffic against the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distillguard.detect.base import Features, column
from distillguard.model import TIERS
from distillguard.signals import TEXT_DIMS

MIN_ACCOUNTS = 25  # a cohort with fewer accounts (with enough traffic) borrows its parent's baseline
MIN_N = 5  # accounts with fewer exchanges do not shape baselines (their shares are too noisy)
MAD_SCALE = 1.4826

# volume bands: a handful of requests, regular use, heavy use
BANDS = ((0.0, "low"), (20.0, "mid"), (500.0, "high"))


@dataclass(frozen=True)
class Prior:
    """The shipped default for one quantity: location, and the floor of its scale (or of its benign rate)."""

    location: float
    scale: float


# Shipped priors. Continuous quantities: (typical value, smallest scale allowed). Rates: (typical benign rate,
# smallest benign rate allowed). Chosen from public descriptions of API usage and the project's simulated
# benign populations (real ShareGPT text), deliberately lenient: a deployment's own traffic replaces them.
PRIORS: dict[str, Prior] = {
    "log_tokens_per_req": Prior(5.8, 0.4),  # ~330 output tokens per request
    "amplification": Prior(0.2, 0.8),  # output about as long as the prompt
    "log_reasoning_per_req": Prior(6.0, 0.6),  # ~400 tokens of returned reasoning, among accounts with any
    "ip_per_req": Prior(0.1, 0.1),
    "log_ip": Prior(1.1, 0.5),
    "log_prefix": Prior(0.9, 0.5),
    "log_asn": Prior(0.7, 0.4),
    "log_ua": Prior(0.7, 0.25),
    "log_key": Prior(0.7, 0.3),
    "cap_entropy": Prior(0.3, 0.15),
    "n_scripts": Prior(1.0, 0.5),
    "single_turn_share": Prior(0.6, 0.15),
    "hour_entropy": Prior(0.5, 0.12),
    "gap_cv": Prior(1.5, 0.4),
    "tpl_ratio": Prior(0.9, 0.15),
    # share of agent sessions answering tool calls never issued to the account (most accounts: none)
    "foreign_history_share": Prior(0.0, 0.05),
    # where an account's prompts sit, on average, in the text classifiers' representation (the distribution test)
    **{f"text_emb_{k}": Prior(0.0, 0.1) for k in range(TEXT_DIMS)},
    # rates of rare events: (typical, floor)
    "hit_cap": Prior(0.02, 0.03),
    "logits": Prior(0.0, 0.01),
    # the text classifiers pass 0.6-1.3 % of held-out real human turns at their thresholds
    # (docs/text-classifiers.md): no benign rate is assumed below that
    "coerce": Prior(0.008, 0.012),
    "rubric": Prior(0.006, 0.012),
    "synth": Prior(0.013, 0.02),
    "length": Prior(0.007, 0.012),
    "cot": Prior(0.02, 0.05),
}
RATES = ("hit_cap", "logits", "coerce", "rubric", "synth", "length", "cot")
# quantities most accounts do not have at all (returned reasoning: only reasoning models return it): the baseline
# is what is usual among the accounts that have some, else a few hundred tokens would look extreme against zero
CONDITIONAL = ("log_reasoning_per_req",)
CONTINUOUS = tuple(name for name in PRIORS if name not in RATES)


def volume_band(n: np.ndarray) -> np.ndarray:
    out = np.full(len(n), BANDS[0][1], dtype=object)
    for lower, name in BANDS[1:]:
        out[n >= lower] = name
    return out


def client_kind(features: Features) -> np.ndarray:
    """``agent`` for accounts whose requests are mostly tool loops, else ``chat``."""
    return np.where(column(features, "tool_share") >= 0.5, "agent", "chat").astype(object)


def tier_names(features: Features) -> np.ndarray:
    codes = np.asarray(features["tier"], dtype=np.float64)
    return np.array([TIERS[int(c)] if np.isfinite(c) and 0 <= c < len(TIERS) else "unknown" for c in codes],
                    dtype=object)


def cohorts(features: Features) -> np.ndarray:
    """Each account's most specific cohort key, ``tier/kind/band``."""
    n = np.expm1(column(features, "log_n"))
    tiers, kinds, bands = tier_names(features), client_kind(features), volume_band(n)
    return np.array([f"{t}/{k}/{b}" for t, k, b in zip(tiers, kinds, bands, strict=True)], dtype=object)


def parents(key: str) -> list[str]:
    """The fallback chain of a cohort key: itself, without the tier, kind only, everyone."""
    tier, kind, band = key.split("/")
    return [key, f"*/{kind}/{band}", f"*/{kind}/*", "*/*/*"]


def _robust(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    return med, float(np.median(np.abs(values - med)) * MAD_SCALE)


@dataclass
class Baselines:
    """Per cohort key: quantity -> (location, scale) for continuous quantities, (rate, 0) for rates."""

    table: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    accounts: dict[str, int] = field(default_factory=dict)  # accounts behind each cohort's baseline

    # ---- fitting -------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, features: Features) -> Baselines:
        """Robust baselines of every cohort present in ``features`` (the deployment's accounts)."""
        out = cls()
        if not len(features.get("log_n", ())):
            return out
        n = np.expm1(column(features, "log_n"))
        keys = cohorts(features)
        enough = n >= MIN_N
        groups: dict[str, np.ndarray] = {}
        for key in set(keys):
            for parent in parents(key):
                if parent not in groups:
                    tier, kind, band = parent.split("/")
                    mask = enough.copy()
                    if tier != "*":
                        mask &= tier_names(features) == tier
                    if kind != "*":
                        mask &= client_kind(features) == kind
                    if band != "*":
                        mask &= volume_band(n) == band
                    groups[parent] = mask
        everyone = groups["*/*/*"]
        overall = cls._measure(features, everyone) if everyone.sum() >= MIN_ACCOUNTS else {}
        for key, mask in groups.items():
            if mask.sum() < MIN_ACCOUNTS:
                continue
            measured = cls._measure(features, mask)
            for name, (loc, scale) in measured.items():
                if name in overall and name in CONTINUOUS:  # a cohort attackers dominate cannot normalise them
                    g_loc, g_scale = overall[name]
                    g_scale = max(g_scale, PRIORS[name].scale)
                    loc = min(loc, g_loc + 0.5 * g_scale)
                    scale = min(scale, 1.5 * g_scale)
                elif name in overall:
                    loc = min(loc, max(overall[name][0], PRIORS[name].scale) * 3)
                measured[name] = (loc, scale)
            out.table[key] = measured
            out.accounts[key] = int(mask.sum())
        return out

    @staticmethod
    def _measure(features: Features, mask: np.ndarray) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        n = np.expm1(column(features, "log_n"))[mask]
        for name in CONTINUOUS:
            values = column(features, name)[mask]
            if name in CONDITIONAL:  # judged among the accounts that have any: most have none at all
                values = values[values > 0]
                if len(values) < MIN_ACCOUNTS:
                    continue
            out[name] = _robust(values)
        for name in RATES:
            share = column(features, f"{name}_share")[mask]
            shrunk = (share * n + PRIORS[name].location * 2.0) / (n + 2.0)
            med, mad = _robust(shrunk)
            out[name] = (med + 2 * mad, 0.0)
        return out

    # ---- lookup --------------------------------------------------------------------------------------------
    def lookup(self, features: Features, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(location, scale, cohort used) per account for quantity ``name``, floors applied."""
        keys = cohorts(features)
        prior = PRIORS[name]
        loc = np.empty(len(keys))
        scale = np.empty(len(keys))
        used = np.empty(len(keys), dtype=object)
        cache: dict[str, tuple[float, float, str]] = {}
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is None:
                hit = (prior.location, 0.0 if name in RATES else prior.scale, "shipped prior")
                for parent in parents(key):
                    entry = self.table.get(parent, {}).get(name)
                    if entry is not None:
                        hit = (entry[0], entry[1], parent)
                        break
                cache[key] = hit
            loc[i], scale[i], used[i] = hit
        if name in RATES:
            loc = np.maximum(loc, prior.scale)
        else:
            scale = np.maximum(scale, prior.scale)
        return loc, scale, used

    # ---- persistence ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "cohorts": {k: {n: [round(a, 6), round(b, 6)] for n, (a, b) in v.items()}
                                          for k, v in self.table.items()},
                "accounts": self.accounts}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Baselines:
        if not data:
            return cls()
        if data.get("version") != 1:
            raise ValueError(f"baselines: unsupported version {data.get('version')!r}")
        table = {k: {n: (float(v[0]), float(v[1])) for n, v in q.items()} for k, q in data.get("cohorts", {}).items()}
        return cls(table, {k: int(v) for k, v in data.get("accounts", {}).items()})


def describe_cohort(key: str) -> str:
    """A cohort key in words: ``payg/chat/mid`` -> "pay-as-you-go chat accounts with 20-499 requests"."""
    if key == "shipped prior":
        return "the shipped default"
    tier, kind, band = key.split("/")
    words = {"low": "under 20 requests", "mid": "20-499 requests", "high": "500+ requests"}
    who = "agentic accounts" if kind == "agent" else "chat accounts" if kind == "chat" else "accounts"
    parts = [] if tier == "*" else [f"{tier}-tier"]
    parts.append(who)
    if band != "*":
        parts.append(f"with {words[band]}")
    return " ".join(parts)
