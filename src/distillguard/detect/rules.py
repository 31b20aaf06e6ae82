"""Interpretable rules: each one a behaviour an analyst would name, combined by noisy-OR.

Rules need volume (``MIN_EXCHANGES``) before they speak (except those that count their
own evidence: two verbatim-trace demands are rare in benign traffic at any volume), and none of them alone
reaches a block: heavy legitimate users trip single rules (one system prompt,
"think step by step", shared cards), distillation trips several at once.

A few rules are *strong* (``Rule.strong``): each describes what harvesting a model's outputs costs the
harvester whatever the campaign's texts -- demanding the hidden reasoning trace, single-shot prompts that
pull long reasoning outputs, a throwaway account that maxes out every output budget or rotates through
proxies from its first request -- and each fired on no benign account of any trap population in simulator
seeds 1, 2 (training) and 5, 6 (validation). One strong rule sets a risk floor at throttle (:data:`FLOOR`,
see :meth:`RulesDetector.floor`), so a campaign type the supervised trees never saw is still restricted;
blocking still needs the fused model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from distillguard.detect.base import Features, column, rows

MIN_EXCHANGES = 20
FLOOR = 0.7  # risk when a strong rule fires: throttle (decide.THROTTLE 0.6), below block (0.85)


@dataclass(frozen=True)
class Rule:
    name: str
    weight: float
    fires: Callable[[Features], np.ndarray]
    says: Callable[[Features, int], str]
    gated: bool = True  # needs MIN_EXCHANGES; rules that count their own evidence are not gated
    strong: bool = False  # campaign-agnostic harvesting evidence: alone it sets the risk floor (FLOOR)
    min_n: int = 0  # own volume gate of an ungated rule


def _pct(f: Features, name: str, i: int) -> str:
    return f"{100 * column(f, name)[i]:.0f}%"


def _young(f: Features, days: float) -> np.ndarray:
    """Known to be at most ``days`` old at first use (no account record: age unknown, never young)."""
    age = np.asarray(f["age_days"], dtype=np.float64)
    return np.isfinite(age) & (age >= 0) & (age <= days)


def _count(f: Features, name: str, i: int) -> int:
    return round(math.expm1(column(f, name)[i]))


RULES: tuple[Rule, ...] = (
    Rule("trace_coercion", 0.55,
         lambda f: (column(f, "coerce_share") >= 0.05)
         & (column(f, "coerce_share") * np.expm1(column(f, "log_n")) >= 2),
         lambda f, i: f"demands the hidden reasoning trace verbatim in {_pct(f, 'coerce_share', i)} of requests",
         gated=False, strong=True),
    # single-shot prompts eliciting reasoning whose outputs are long: the outputs are what is being harvested.
    # Seeds 1, 2, 5, 6: benign max ~533 tokens/request at cot >= 0.4 (eval runners); low-and-slow >= ~750.
    Rule("reasoning_harvest", 0.45,
         lambda f: (column(f, "cot_share") >= 0.4) & (column(f, "log_tokens_per_req") >= 6.5)
         & (column(f, "single_turn_share") >= 0.8),
         lambda f, i: f"single-shot reasoning prompts in {_pct(f, 'cot_share', i)} of requests harvesting long "
                      f"outputs (~{_count(f, 'log_tokens_per_req', i)} tokens each)",
         gated=False, strong=True, min_n=5),
    # a throwaway account: new, every request asks for (near) the maximum output, never a follow-up turn.
    # Seeds 1, 2, 5, 6: the youngest benign account with this profile was 24 days old at first use (a batch job).
    Rule("throwaway_harvest", 0.4,
         lambda f: _young(f, 7) & (column(f, "big_budget_share") >= 0.9) & (column(f, "single_turn_share") >= 0.95),
         lambda f, i: f"account {column(f, 'age_days')[i]:.1f} days old at first use asks for long outputs in "
                      f"{_pct(f, 'big_budget_share', i)} of single-turn requests", strong=True),
    # a throwaway account that rotates through proxies from the start (the only benign account this young with
    # 16+ addresses in seeds 1, 2, 5, 6 was a reseller at 0.02 addresses per request)
    Rule("throwaway_rotation", 0.35,
         lambda f: _young(f, 7) & (column(f, "ip_per_req") >= 0.3) & (column(f, "log_ip") >= math.log1p(15)),
         lambda f, i: f"account {column(f, 'age_days')[i]:.1f} days old at first use rotates through "
                      f"{_count(f, 'log_ip', i)} IP addresses", strong=True),
    Rule("cot_harvest", 0.45,
         lambda f: (column(f, "cot_share") >= 0.45) & (column(f, "single_turn_share") >= 0.9)
         & (column(f, "big_budget_share") >= 0.5),
         lambda f, i: f"chain-of-thought elicitation in {_pct(f, 'cot_share', i)} of single-turn requests "
                      f"with long output budgets"),
    Rule("rubric_harvest", 0.4, lambda f: column(f, "rubric_share") >= 0.3,
         lambda f, i: f"rubric / reward-model grading requests in {_pct(f, 'rubric_share', i)} of traffic"),
    Rule("capability_sweep", 0.35, lambda f: (column(f, "cap_coverage") >= 5) & (column(f, "cap_entropy") >= 0.7),
         lambda f, i: f"systematic sweep across {int(column(f, 'cap_coverage')[i])} capability categories"),
    Rule("fast_model_switch", 0.3,
         lambda f: (column(f, "new_model_speed") >= 0.5) & (column(f, "new_model_share") >= 0.4),
         lambda f, i: f"moved {_pct(f, 'new_model_share', i)} of its traffic to the new model within a day of "
                      "release"),
    Rule("proxy_rotation", 0.3, lambda f: (column(f, "ip_per_req") >= 0.3) & (column(f, "log_ip") >= math.log1p(15)),
         lambda f, i: f"rotates through {_count(f, 'log_ip', i)} IP addresses in "
                      f"{_count(f, 'log_prefix', i)} prefixes"),
    Rule("machine_timing", 0.2, lambda f: (column(f, "gap_cv") > 0) & (column(f, "gap_cv") <= 0.35),
         lambda f, i: f"machine-regular request timing (inter-arrival CV {column(f, 'gap_cv')[i]:.2f})"),
    Rule("output_harvest", 0.25,
         lambda f: (column(f, "hit_cap_share") >= 0.3) & (column(f, "single_turn_share") >= 0.9),
         lambda f, i: f"{_pct(f, 'hit_cap_share', i)} of responses run to the token limit, no follow-up turns"),
    Rule("multilingual_reasoning", 0.35,
         lambda f: (column(f, "n_scripts") >= 3) & (column(f, "cot_share") >= 0.3),
         lambda f, i: f"reasoning-trace prompts across {int(column(f, 'n_scripts')[i])} writing systems"),
    Rule("refusal_probing", 0.25, lambda f: column(f, "probe_share") >= 0.2,
         lambda f, i: f"probes refusal boundaries in {_pct(f, 'probe_share', i)} of requests"),
    Rule("fresh_account", 0.15, lambda f: (column(f, "age_days") >= 0) & (column(f, "age_days") <= 3)
         & (column(f, "verified") < 1),
         lambda f, i: f"unverified account first used {column(f, 'age_days')[i]:.1f} days after sign-up"),
    Rule("shared_payment", 0.15,
         lambda f: (column(f, "log_payment_shared") >= math.log1p(3)) & (column(f, "verified") < 1),
         lambda f, i: f"payment fingerprint shared with {_count(f, 'log_payment_shared', i)} other accounts"),
    Rule("template_repetition", 0.2,
         lambda f: (column(f, "tpl_ratio") <= 0.05) & (column(f, "log_n") >= math.log1p(100)),
         lambda f, i: f"one prompt template repeated ({_count(f, 'log_tpl', i)} templates over "
                      f"{_count(f, 'log_n', i)} requests)"),
)


class RulesDetector:
    """Noisy-OR of the rules that fire: ``1 - prod(1 - weight)`` over fired rules."""

    name = "rules"

    def fit(self, features: Features, labels: np.ndarray | None = None) -> RulesDetector:
        return self

    def fired(self, features: Features) -> np.ndarray:
        """Boolean matrix (accounts x rules), gated on minimum volume."""
        if not rows(features):
            return np.zeros((0, len(RULES)), dtype=bool)
        n = column(features, "log_n")
        enough = n >= math.log1p(MIN_EXCHANGES)
        return np.column_stack([rule.fires(features) & (enough | (not rule.gated)) & (n >= math.log1p(rule.min_n))
                                for rule in RULES])

    def floor(self, features: Features, fired: np.ndarray | None = None) -> np.ndarray:
        """Risk floor per account: :data:`FLOOR` when a strong rule fires, else 0."""
        fired = self.fired(features) if fired is None else fired
        strong = np.array([r.strong for r in RULES], dtype=bool)
        return np.where(fired[:, strong].any(axis=1), FLOOR, 0.0) if len(fired) else np.zeros(0)

    def score(self, features: Features, fired: np.ndarray | None = None) -> np.ndarray:
        weights = np.array([r.weight for r in RULES])
        fired = self.fired(features) if fired is None else fired
        return 1.0 - np.prod(np.where(fired, 1.0 - weights, 1.0), axis=1)

    def explain(self, features: Features, index: int) -> list[tuple[float, str]]:
        fired = self.fired({k: v[index:index + 1] for k, v in features.items()})[0]
        out = [(rule.weight, rule.says(features, index)) for rule, hit in zip(RULES, fired, strict=True) if hit]
        return sorted(out, key=lambda x: -x[0])
