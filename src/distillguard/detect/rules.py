"""Interpretable rules: each one a behaviour an analyst would name, combined by noisy-OR.

Rules need volume (``MIN_EXCHANGES``) before they speak (except those that count their
own evidence: two verbatim-trace demands are rare in benign traffic at any volume), and none of them alone
reaches a block: heavy legitimate users trip single rules (one system prompt,
"think step by step", shared cards), distillation trips several at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from distillguard.detect.base import Features, column, rows

MIN_EXCHANGES = 20


@dataclass(frozen=True)
class Rule:
    name: str
    weight: float
    fires: Callable[[Features], np.ndarray]
    says: Callable[[Features, int], str]
    gated: bool = True  # needs MIN_EXCHANGES; rules that count their own evidence are not gated


def _pct(f: Features, name: str, i: int) -> str:
    return f"{100 * column(f, name)[i]:.0f}%"


def _count(f: Features, name: str, i: int) -> int:
    return round(math.expm1(column(f, name)[i]))


RULES: tuple[Rule, ...] = (
    Rule("trace_coercion", 0.55,
         lambda f: (column(f, "coerce_share") >= 0.05)
         & (column(f, "coerce_share") * np.expm1(column(f, "log_n")) >= 2),
         lambda f, i: f"demands the hidden reasoning trace verbatim in {_pct(f, 'coerce_share', i)} of requests",
         gated=False),
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
        enough = column(features, "log_n") >= math.log1p(MIN_EXCHANGES)
        return np.column_stack([rule.fires(features) & (enough | (not rule.gated)) for rule in RULES])

    def score(self, features: Features) -> np.ndarray:
        weights = np.array([r.weight for r in RULES])
        fired = self.fired(features)
        return 1.0 - np.prod(np.where(fired, 1.0 - weights, 1.0), axis=1)

    def explain(self, features: Features, index: int) -> list[tuple[float, str]]:
        fired = self.fired({k: v[index:index + 1] for k, v in features.items()})[0]
        out = [(rule.weight, rule.says(features, index)) for rule, hit in zip(RULES, fired, strict=True) if hit]
        return sorted(out, key=lambda x: -x[0])
