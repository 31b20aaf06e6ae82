"""Account features as functions of the sufficient statistics (batch and online alike).

:func:`features_from_stats` is the only place a feature is defined. It takes
statistic columns (many accounts in batch, one in the gateway), the account
records and a :class:`Context` of population facts that no single account knows:
when each model was released and how many accounts share a payment fingerprint or e-mail domain.
How a cohort's accounts usually behave is the detectors' business (``distillguard.detect.baselines``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distillguard.features.stats import DISTINCT_NAMES, GAP_BINS, HOUR_BINS, TEXT_DIMS
from distillguard.model import TIERS
from distillguard.signals.cues import CAPABILITIES, SCRIPTS

DAY_MS = 86_400_000.0
HOUR_MS = 3_600_000.0
FEATURE_NAMES: tuple[str, ...] = (
    # volume
    "log_n", "log_rate", "days", "peak_to_mean_day", "span_days",
    # what the account takes: outputs, reasoning, amplification of its own words, outputs at the limit, logits
    "log_tokens_per_req", "log_prompt_per_req", "amplification", "log_reasoning_per_req", "reasoning_share",
    "hit_cap_share", "big_budget_share", "mean_log_max_tokens", "logits_share",
    # what its prompts ask for (text classifiers; shares of requests)
    "cot_share", "coerce_share", "rubric_share", "length_share", "synth_share", "probe_share",
    # sessions, and whether their tool-call histories were issued here (history provenance)
    "single_turn_share", "mean_turns", "tool_share", "image_share", "error_share",
    "log_foreign_histories", "foreign_history_share",
    # coverage and templating
    *(f"cap_{name}" for name in CAPABILITIES), "cap_entropy", "cap_max_share", "cap_coverage",
    "script_entropy", "nonlatin_share", "n_scripts", "tpl_ratio", "log_tpl", "log_sys", "params_ratio", "log_params",
    *(f"text_emb_{k}" for k in range(TEXT_DIMS)),
    # timing and models
    "hour_entropy", "hour_max_share", "gap_cv", "lgap_mean", "lgap_std", "gap_entropy", "burst_share",
    "new_model_share", "new_model_speed",
    # infrastructure and identity
    "log_ip", "ip_per_req", "log_prefix", "log_asn", "log_ua", "log_tls", "log_key",
    "age_days", "tier", "verified", "log_payment_shared", "log_domain_shared", "card_parties",
)


@dataclass
class Context:
    """Population facts features are measured against; JSON-serialisable for the gateway."""

    releases: dict[str, float] = field(default_factory=dict)  # model -> release time (ms) inside the window
    payment_counts: dict[str, int] = field(default_factory=dict)
    domain_counts: dict[str, int] = field(default_factory=dict)
    # payment fingerprint -> distinct parties (organisations, company domains, individuals) it pays for, when >= 2
    payment_parties: dict[str, int] = field(default_factory=dict)
    # the deployment's baselines per cohort (``distillguard.detect.baselines.Baselines.to_json``), set by detection
    baselines: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"releases": self.releases, "payment_counts": self.payment_counts,
                "domain_counts": self.domain_counts, "payment_parties": self.payment_parties,
                "baselines": self.baselines}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Context:
        return cls(dict(data.get("releases", {})), dict(data.get("payment_counts", {})),
                   dict(data.get("domain_counts", {})), dict(data.get("payment_parties", {})),
                   dict(data.get("baselines", {})))


def normalised_entropy(counts: np.ndarray) -> np.ndarray:
    """Normalised Shannon entropy of each row of ``counts`` (0 = one bin, 1 = uniform)."""
    total = counts.sum(axis=1, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return h / np.log(counts.shape[1])


def _stack(stats: dict[str, np.ndarray], prefix: str, n: int) -> np.ndarray:
    return np.stack([stats[f"{prefix}_{i}"] for i in range(n)], axis=1).astype(np.float64)


def releases_from_models(models: np.ndarray, first_ts: np.ndarray) -> dict[str, float]:
    """Models first seen more than a day after the data starts count as released inside the window."""
    if len(first_ts) == 0:
        return {}
    start = float(np.min(first_ts))
    first: dict[str, float] = {}
    for per_model in models:
        for model, (_, ts) in per_model.items():
            first[model] = min(first.get(model, ts), ts)
    return {m: t for m, t in first.items() if t > start + DAY_MS}


def _model_features(models: np.ndarray, n: np.ndarray, first_ts: np.ndarray,
                    releases: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Share of traffic on newly released models and how fast an existing account moved to them."""
    share = np.zeros(len(n))
    speed = np.zeros(len(n))
    for i, per_model in enumerate(models):
        new = [(c, t, releases[m]) for m, (c, t) in per_model.items() if m in releases]
        if not new:
            continue
        share[i] = sum(c for c, _, _ in new) / max(n[i], 1.0)
        lags = [max(t - r, 0.0) for _, t, r in new if first_ts[i] < r]
        if lags:
            speed[i] = float(np.exp(-min(lags) / DAY_MS))
    return share, speed


def _account_columns(accounts: dict[str, np.ndarray] | None, n: int, context: Context,
                     first_ts: np.ndarray) -> dict[str, np.ndarray]:
    if accounts is None:
        nan = np.full(n, np.nan)
        return {"age_days": nan, "tier": nan, "verified": nan, "log_payment_shared": np.zeros(n),
                "log_domain_shared": np.zeros(n), "card_parties": np.zeros(n)}
    created = np.asarray(accounts["created_ms"], dtype=np.float64)
    tier_codes = {t: float(i) for i, t in enumerate(TIERS)}
    pay = np.array([context.payment_counts.get(p, 1) if p else 0 for p in accounts["payment_fp"]], dtype=np.float64)
    dom = np.array([context.domain_counts.get(d, 1) if d else 0 for d in accounts["email_domain"]], dtype=np.float64)
    return {
        "age_days": (first_ts - created) / DAY_MS,
        "tier": np.array([tier_codes.get(t, np.nan) if t else np.nan for t in accounts["tier"]]),
        "verified": np.asarray(accounts["verified"], dtype=np.float64),
        "log_payment_shared": np.log1p(np.maximum(pay - 1, 0)),
        "log_domain_shared": np.log1p(np.maximum(dom - 1, 0)),
        # parties paying with the account's card, itself included (0: no card on record)
        "card_parties": np.array([float(context.payment_parties.get(p, 1)) if p else 0.0
                                  for p in accounts["payment_fp"]], dtype=np.float64),
    }


def features_from_stats(stats: dict[str, np.ndarray], accounts: dict[str, np.ndarray] | None,
                        context: Context) -> dict[str, np.ndarray]:
    """Feature columns (:data:`FEATURE_NAMES`) for the accounts in ``stats``.

    ``accounts`` holds, aligned with ``stats``, ``tier``, ``verified``, ``created_ms``,
    ``payment_fp`` and ``email_domain`` (None when no account records are known).
    """
    n = np.maximum(stats["n"], 1.0)
    f: dict[str, np.ndarray] = {}
    span_h = np.maximum((stats["last_ts"] - stats["first_ts"]) / HOUR_MS, 1.0)
    f["log_n"] = np.log1p(stats["n"])
    f["log_rate"] = np.log1p(stats["n"] / span_h)
    f["log_tokens_per_req"] = np.log1p(stats["completion_tokens"] / n)
    f["log_prompt_per_req"] = np.log1p(stats["prompt_tokens"] / n)
    f["amplification"] = (stats["log_out"] - stats["log_in"]) / n
    f["log_reasoning_per_req"] = np.log1p(stats["reasoning_chars"] / 4.0 / n)  # returned reasoning, in ~tokens
    f["reasoning_share"] = stats["reasoning_tokens"] / np.maximum(stats["completion_tokens"], 1.0)
    f["mean_log_max_tokens"] = stats["log_max_tokens"] / n
    for name in ("cot", "coerce", "rubric", "length", "synth", "probe", "logits", "hit_cap", "big_budget",
                 "single_turn"):
        f[f"{name}_share"] = stats[name] / n
    f["mean_turns"] = stats["turns"] / n
    for k in range(TEXT_DIMS):  # the mean of the account's prompts in the text classifiers' representation
        f[f"text_emb_{k}"] = stats[f"temb_{k}"] / n
    f["tool_share"] = stats["tools"] / n
    f["image_share"] = stats["image"] / n
    f["error_share"] = stats["errors"] / n
    own, foreign = stats["history_own"], stats["history_foreign"]
    f["log_foreign_histories"] = np.log1p(foreign)
    f["foreign_history_share"] = np.divide(foreign, own + foreign, out=np.zeros(len(n)), where=own + foreign > 0)
    caps = _stack(stats, "cap", len(CAPABILITIES))
    cap_share = caps / n[:, None]
    for i, name in enumerate(CAPABILITIES):
        f[f"cap_{name}"] = cap_share[:, i]
    f["cap_entropy"] = normalised_entropy(caps)
    f["cap_max_share"] = cap_share.max(axis=1)
    f["cap_coverage"] = (cap_share >= 0.05).sum(axis=1).astype(np.float64)
    scripts = _stack(stats, "script", len(SCRIPTS))
    f["script_entropy"] = normalised_entropy(scripts)
    f["nonlatin_share"] = 1.0 - scripts[:, 0] / n
    f["n_scripts"] = (scripts / n[:, None] >= 0.05).sum(axis=1).astype(np.float64)
    hours = _stack(stats, "hour", HOUR_BINS)
    f["hour_entropy"] = normalised_entropy(hours)
    f["hour_max_share"] = hours.max(axis=1) / n
    gap_n = np.maximum(stats["gap_n"], 1.0)
    mean = stats["gap_sum"] / gap_n
    var = np.maximum(stats["gap_sumsq"] / gap_n - mean**2, 0.0)
    f["gap_cv"] = np.where(stats["gap_n"] >= 2, np.sqrt(var) / np.maximum(mean, 1e-3), np.nan)
    lmean = stats["lgap_sum"] / gap_n
    f["lgap_mean"] = np.where(stats["gap_n"] >= 1, lmean, np.nan)
    f["lgap_std"] = np.where(stats["gap_n"] >= 2, np.sqrt(np.maximum(stats["lgap_sumsq"] / gap_n - lmean**2, 0)),
                             np.nan)
    gaps = _stack(stats, "gap", GAP_BINS)
    f["gap_entropy"] = normalised_entropy(gaps)
    f["burst_share"] = gaps[:, 0] / gap_n
    days = np.maximum(stats["days"], 1.0)
    f["days"] = stats["days"]
    f["peak_to_mean_day"] = stats["max_day"] / (n / days)
    f["span_days"] = (stats["last_ts"] - stats["first_ts"]) / DAY_MS
    for name in DISTINCT_NAMES:
        f[f"log_{name}"] = np.log1p(stats[f"d_{name}"])
    f["ip_per_req"] = stats["d_ip"] / n
    f["tpl_ratio"] = stats["d_tpl"] / n
    f["params_ratio"] = stats["d_params"] / n
    f["new_model_share"], f["new_model_speed"] = _model_features(stats["models"], n, stats["first_ts"],
                                                                 context.releases)
    f.update(_account_columns(accounts, len(n), context, stats["first_ts"]))
    return {name: np.asarray(f[name], dtype=np.float64) for name in FEATURE_NAMES}
