"""Evidence of distillation per account, each piece measured against the deployment's own baselines.

An *item* is one observation an analyst would name ("outputs ran to the token limit in 9 of 10 requests;
this cohort's benign rate is 3 %"). It turns an account's features and the cohort baseline into *points*:

* a continuous quantity scores by its robust z-score beyond ``z0`` (half a point per unit of z);
* a rate of rare events (outputs cut at the limit, demands for the reasoning trace) scores by how unlikely
  the account's count is under the cohort's benign rate: ``-log10 P(Binomial(n, p0) >= k)`` beyond 2 (so a
  count that benign traffic gives one time in a hundred scores nothing), half a point per decade;
* a few items score a fact directly (a days-old account).

Items belong to *families* of independent evidence (what the account takes, what its prompts ask for, who
is asking, how it covers a capability space, how it converses, when it works). Points are capped per item
and per family, and :mod:`distillguard.decide` requires two families before it restricts an account, so
no single trait decides and a campaign that changes one trait is still caught by the others.

Every item is defined once here and used by batch detection and by the gateway (on the same features).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom

from distillguard.detect.base import Features, column
from distillguard.detect.baselines import Baselines, describe_cohort
from distillguard.signals import TEXT_DIMS

FAMILIES: dict[str, str] = {
    "harvest": "what it takes",
    "distribution": "whether it takes the model's probabilities",
    "elicitation": "what its prompts ask for",
    "identity": "who is asking",
    "coverage": "how it covers a capability space",
    "session": "how it converses",
    "provenance": "where its conversations come from",
    "timing": "when it works",
}
# what prompts say is capped lowest of the strong families: eval labs and judges write like harvesters
# Token log-probabilities of generations are a family of their own: what soft-label distillation needs and
# no volume of text gives, so a campaign that takes them is not hidden under the cap on how much text it takes.
# A history of tool calls the account was never issued is a fact about where its requests were written, not a
# habit a customer may have: capped like the strong families, yet one family (decide still wants a second).
FAMILY_CAP: dict[str, float] = {"harvest": 4.0, "distribution": 2.0, "elicitation": 3.0, "identity": 3.0,
                                "coverage": 2.5, "session": 1.0, "provenance": 3.0, "timing": 2.0}


@dataclass(frozen=True)
class Finding:
    """One item's result for many accounts: points, what was observed and what it was compared with."""

    points: np.ndarray
    observed: np.ndarray
    baseline: np.ndarray
    cohort: np.ndarray  # cohort key (or "shipped prior") the baseline came from


@dataclass(frozen=True)
class Item:
    name: str
    family: str
    measure: Callable[[Features, Baselines], Finding]
    says: Callable[[Finding, Features, int], str]  # the reason in an analyst's words
    cap: float = 2.0


def _n(f: Features) -> np.ndarray:
    return np.expm1(column(f, "log_n"))


def _fmt_count(x: float) -> str:
    return f"{x:,.0f}"


def z_item(name: str, family: str, feature: str, *, z0: float = 2.0, cap: float = 2.0, min_n: int = 3,
           transform: Callable[[np.ndarray], np.ndarray] | None = None,
           gate: Callable[[Features], np.ndarray] | None = None,
           says: Callable[[Finding, Features, int], str]) -> Item:
    """Points for a quantity far above its cohort's baseline (robust z beyond ``z0``)."""

    def measure(f: Features, b: Baselines) -> Finding:
        x = column(f, feature)
        loc, scale, used = b.lookup(f, feature)
        z = (x - loc) / scale
        points = np.clip(0.5 * (z - z0), 0.0, cap)
        ok = _n(f) >= min_n
        if gate is not None:
            ok &= gate(f)
        points = np.where(ok, points, 0.0)
        show = transform or (lambda v: v)
        return Finding(points, show(x), show(loc), used)

    return Item(name, family, measure, says, cap)


# How far above its cohort's benign rate an account's rate must be before it counts, and where it counts fully: a
# cue in twice the benign share of requests is ordinary variation between customers; one in thirty times the share,
# or in half of all requests where the benign rate is too high for that (but never below 3x), is what an account
# built for it does.
LIFT_NONE = 2.0
LIFT_FULL = 30.0
FULL_SHARE = 0.5


def rate_item(name: str, family: str, rate: str, *, cap: float = 2.0, min_count: float = 2.0,
              gate: Callable[[Features], np.ndarray] | None = None,
              says: Callable[[Finding, Features, int], str]) -> Item:
    """Points for a rate of events both improbable under the cohort's benign rate and well above it.

    Two measures, the smaller wins: *surprise* (the binomial tail, in decades: a few requests prove little) and
    *lift* (the rate over the benign rate, from :data:`LIFT_NONE` to :data:`LIFT_FULL` on a log scale). Surprise
    alone grows with volume for any excess: a nightly batch job with 900 requests, 6 % of them grading prompts
    against a benign 1.2 %, would score as if grading were its purpose. Lift alone would let three requests decide;
    the surprise of three requests holds them back. Where the benign rate is high (asking for steps, in a cohort
    where a sixth of the requests do), full lift is reached at :data:`FULL_SHARE` of the account's requests instead.
    """
    lift_none = math.log10(LIFT_NONE)

    def measure(f: Features, b: Baselines) -> Finding:
        n = np.rint(_n(f))
        share = column(f, f"{rate}_share")
        k = np.rint(share * n)
        p0, _, used = b.lookup(f, rate)
        p0 = np.clip(p0, 1e-6, 0.999)
        with np.errstate(divide="ignore"):
            surprise = -np.log10(np.maximum(binom.sf(k - 1, n, p0), 1e-300))
            lift = np.log10(np.maximum(k / np.maximum(n, 1.0), 1e-12) / p0)
        lift_full = np.log10(np.maximum(np.minimum(LIFT_FULL, FULL_SHARE / p0), 1.5 * LIFT_NONE))
        points = np.minimum(np.clip(0.5 * (surprise - 2.0), 0.0, cap),
                            cap * np.clip((lift - lift_none) / (lift_full - lift_none), 0.0, 1.0))
        ok = k >= min_count
        if gate is not None:
            ok &= gate(f)
        return Finding(np.where(ok, points, 0.0), share, p0, used)

    return Item(name, family, measure, says, cap)


# ---- reason texts --------------------------------------------------------------------------------------------
def _vs(finding: Finding, i: int, value: str, base: str) -> str:
    return f"{value} vs {base} for {describe_cohort(str(finding.cohort[i]))}"


def _tokens(finding: Finding, f: Features, i: int) -> str:
    return _vs(finding, i, f"~{_fmt_count(math.expm1(finding.observed[i]))} output tokens per request",
               f"~{_fmt_count(math.expm1(finding.baseline[i]))}")


def _amplification(finding: Finding, f: Features, i: int) -> str:
    return _vs(finding, i, f"outputs ~{math.exp(finding.observed[i]):.1f}x as long as its prompts",
               f"~{math.exp(finding.baseline[i]):.1f}x")


def _reasoning(finding: Finding, f: Features, i: int) -> str:
    return _vs(finding, i, f"~{_fmt_count(math.expm1(finding.observed[i]))} tokens of returned reasoning per request",
               f"~{_fmt_count(math.expm1(finding.baseline[i]))}")


def _rate_says(what: str) -> Callable[[Finding, Features, int], str]:
    def says(finding: Finding, f: Features, i: int) -> str:
        n = round(float(_n(f)[i]))
        k = round(float(finding.observed[i]) * n)
        return _vs(finding, i, f"{what} in {k} of {n} requests", f"a benign rate of {100 * finding.baseline[i]:.1f} %")

    return says


def _count_says(what: str, feature: str) -> Callable[[Finding, Features, int], str]:
    def says(finding: Finding, f: Features, i: int) -> str:
        value = math.expm1(finding.observed[i])
        approx = "" if value < 16 else "~"
        return _vs(finding, i, f"{approx}{_fmt_count(value)} {what}", f"~{_fmt_count(math.expm1(finding.baseline[i]))}")

    return says


def _share_says(what: str) -> Callable[[Finding, Features, int], str]:
    def says(finding: Finding, f: Features, i: int) -> str:
        return _vs(finding, i, f"{what} {100 * finding.observed[i]:.0f} %", f"{100 * finding.baseline[i]:.0f} %")

    return says


# ---- identity items scored from facts --------------------------------------------------------------------------
def _young(f: Features, b: Baselines) -> Finding:
    age = np.asarray(f["age_days"], dtype=np.float64)
    known = np.isfinite(age) & (age >= 0)
    points = np.where(known & (age < 1), 1.5, np.where(known & (age < 7), 1.0, np.where(known & (age < 30), 0.4, 0)))
    return Finding(points, age, np.full(len(age), 30.0), np.full(len(age), "shipped prior", dtype=object))


def _young_says(finding: Finding, f: Features, i: int) -> str:
    return f"account first used {finding.observed[i]:.1f} days after sign-up"


def _card_parties(f: Features, b: Baselines) -> Finding:
    """One payment card paying for accounts of several unrelated parties (organisations, company domains or
    individuals): a shared payment signal. A company's card pays for its own organisation's accounts and a couple
    may share one, so two parties score nothing; three score a point, four or more one and a half."""
    parties = np.nan_to_num(column(f, "card_parties"))
    points = np.where(parties >= 4, 1.5, np.where(parties >= 3, 1.0, 0.0))
    return Finding(points, parties, np.full(len(parties), 2.0), np.full(len(parties), "shipped prior", dtype=object))


def _card_parties_says(finding: Finding, f: Features, i: int) -> str:
    return (f"its payment card pays for accounts of {finding.observed[i]:.0f} unrelated organisations or people "
            "(a company card pays for one organisation)")


def _text_distance(f: Features, b: Baselines) -> Finding:
    """The distribution test: how far the account's typical prompt sits from its cohort's, in the text
    classifiers' learned representation (robust deviations, root mean square over the kept dimensions)."""
    squares = np.zeros(len(f["log_n"]))
    used = np.full(len(squares), "shipped prior", dtype=object)
    for k in range(TEXT_DIMS):
        loc, scale, used = b.lookup(f, f"text_emb_{k}")
        squares += ((column(f, f"text_emb_{k}") - loc) / scale) ** 2
    distance = np.sqrt(squares / TEXT_DIMS)
    points = np.where(_n(f) >= 20, np.clip(0.5 * (distance - 3.0), 0.0, 1.0), 0.0)
    return Finding(points, distance, np.full(len(distance), 3.0), used)


def _text_distance_says(finding: Finding, f: Features, i: int) -> str:
    return (f"its prompts sit {finding.observed[i]:.1f} robust deviations from the typical prompt of "
            f"{describe_cohort(str(finding.cohort[i]))}")


def _new_model(f: Features, b: Baselines) -> Finding:
    speed, share = column(f, "new_model_speed"), column(f, "new_model_share")
    points = np.where((speed >= 0.5) & (share >= 0.4) & (_n(f) >= 10), 1.0 + 0.5 * (share >= 0.6), 0.0)
    return Finding(points, share, np.zeros(len(share)), np.full(len(share), "shipped prior", dtype=object))


def _new_model_says(finding: Finding, f: Features, i: int) -> str:
    return f"moved {100 * finding.observed[i]:.0f} % of its traffic to a newly released model within a day"


# History provenance. Tool-call ids are the provider's: a request answering a call that no response ever issued to
# the account carries a history written elsewhere -- a synthetic trajectory to continue from, or one harvested
# through another account. Customers do it too, rarely: a session moved from another provider or account midway,
# a conversation imported from elsewhere, and (once per account) a session under way when the data starts. So
# the share of the account's agent sessions must be high (FOREIGN_FLOOR above its cohort's usual share, and at
# least FOREIGN_FLOOR), and full points need FOREIGN_FULL such sessions.
FOREIGN_FLOOR = 0.3
FOREIGN_SPAN = 0.5  # share above the floor at which the item counts fully
FOREIGN_FULL = 5


def _foreign_histories(f: Features, b: Baselines) -> Finding:
    share = column(f, "foreign_history_share")
    count = np.expm1(column(f, "log_foreign_histories"))
    loc, _, used = b.lookup(f, "foreign_history_share")
    floor = np.maximum(FOREIGN_FLOOR, loc + FOREIGN_FLOOR)
    strength = np.clip((share - floor) / FOREIGN_SPAN, 0.0, 1.0)
    volume = np.clip((count - 1.0) / (FOREIGN_FULL - 1.0), 0.0, 1.0)
    return Finding(FAMILY_CAP["provenance"] * strength * volume, share, np.maximum(loc, 0.0), used)


def _foreign_histories_says(finding: Finding, f: Features, i: int) -> str:
    foreign = math.expm1(float(column(f, "log_foreign_histories")[i]))
    share = finding.observed[i]
    sessions = foreign / share if share > 0 else foreign
    approx = "" if sessions < 16 else "~"
    return _vs(finding, i, f"{approx}{foreign:,.0f} of {approx}{sessions:,.0f} agent sessions answer tool calls "
                           "this account was never issued (histories written elsewhere)",
               f"{100 * finding.baseline[i]:.0f} % of sessions")


ITEMS: tuple[Item, ...] = (
    # what it takes
    z_item("long_outputs", "harvest", "log_tokens_per_req", cap=3.0, says=_tokens),
    z_item("amplification", "harvest", "amplification", cap=2.0, says=_amplification),
    z_item("reasoning_volume", "harvest", "log_reasoning_per_req", cap=2.0, says=_reasoning),
    rate_item("outputs_at_limit", "harvest", "hit_cap", cap=3.0,
              says=_rate_says("long outputs (1,024+ tokens) cut at the token limit")),
    # whether it takes the model's probabilities
    rate_item("logits", "distribution", "logits", cap=2.0,
              says=_rate_says("asks for the token log-probabilities of long generations")),
    # what its prompts ask for
    rate_item("trace_coercion", "elicitation", "coerce", cap=3.0,
              says=_rate_says("demands the hidden reasoning trace")),
    rate_item("grading", "elicitation", "rubric", cap=2.0, says=_rate_says("rubric or reward-model grading")),
    rate_item("training_data", "elicitation", "synth", cap=2.0, says=_rate_says("asks for training-style data")),
    rate_item("length_push", "elicitation", "length", cap=2.0, says=_rate_says("pushes for maximal length")),
    rate_item("step_by_step", "elicitation", "cot", cap=1.0, says=_rate_says("asks for step-by-step reasoning")),
    # who is asking
    Item("young_account", "identity", _young, _young_says, 1.5),
    Item("card_across_parties", "identity", _card_parties, _card_parties_says, 1.5),
    z_item("address_rotation", "identity", "ip_per_req", cap=2.0, min_n=10,
           gate=lambda f: column(f, "log_ip") >= math.log1p(8), says=_share_says("new IP address per request")),
    z_item("network_spread", "identity", "log_asn", cap=1.5, min_n=10, says=_count_says("networks (ASNs)", "log_asn")),
    z_item("client_mix", "identity", "log_ua", cap=2.0, min_n=5, says=_count_says("client user agents", "log_ua")),
    # how it covers a capability space
    z_item("capability_sweep", "coverage", "cap_entropy", cap=2.0, min_n=20,
           says=_share_says("evenness of its capability coverage")),
    z_item("many_languages", "coverage", "n_scripts", cap=1.0, min_n=10, says=_count_says("writing systems", "")),
    Item("unusual_text", "coverage", _text_distance, _text_distance_says, 1.0),
    # how it converses
    z_item("single_shot", "session", "single_turn_share", cap=1.0, min_n=10, z0=1.5,
           says=_share_says("single-turn requests")),
    # where its conversations come from
    Item("foreign_histories", "provenance", _foreign_histories, _foreign_histories_says, 3.0),
    # when it works
    z_item("round_the_clock", "timing", "hour_entropy", cap=1.0, min_n=50, says=_share_says("spread over the day")),
    Item("new_model_rush", "timing", _new_model, _new_model_says, 1.5),
)


# Cross-account evidence is granted only to an account that could be a harvester itself: it takes outputs
# (harvest) or log-probabilities (distribution), it continues histories it was never served (provenance), or it is
# a throwaway or disguised account (a days-old account, many clients, a card paying for several unrelated parties).
# What its prompts say is not enough (eval labs and harvesters write alike), nor is rotating addresses (customers
# of a residential proxy do, and a shared pool is the very link). Batch attribution and the gateway's online links
# both use this one rule.
COORDINATION_FAMILIES = ("harvest", "distribution", "provenance")
COORDINATION_ITEMS = ("young_account", "client_mix", "card_across_parties")
COORDINATION_MIN = 0.5


# What an account does with the API that a harvester would: takes, asks for, or covers. An account with less than
# USE_MIN points in all of them is, whatever its identity evidence (days old, behind a proxy), using the API as a
# customer does; cross-account links it holds only by chance do not tie it to an operation
# (pipeline.coordination_evidence, attribution.linking.COINCIDENTAL).
USE_FAMILIES = ("harvest", "distribution", "provenance", "elicitation", "coverage")
USE_MIN = 0.25


def points_in(parts: dict[str, np.ndarray], names: tuple[str, ...], n: int | None = None) -> np.ndarray:
    """Per account: the points of ``parts`` (families or items) named in ``names``, summed (absent ones: 0)."""
    n = n if n is not None else (len(next(iter(parts.values()))) if parts else 0)
    total = np.zeros(n)
    for name in names:
        total = total + parts.get(name, np.zeros(n))
    return total


def shows_use(families: dict[str, np.ndarray]) -> np.ndarray:
    """Per account: does its own evidence show a harvester's use of the API (:data:`USE_FAMILIES`)."""
    return points_in(families, USE_FAMILIES) >= USE_MIN


def coordination_eligible(families: dict[str, np.ndarray], items: dict[str, np.ndarray]) -> np.ndarray:
    """Per account: may cross-account evidence count for it (see :data:`COORDINATION_FAMILIES`)."""
    n = len(next(iter(families.values()))) if families else 0
    return points_in(families, COORDINATION_FAMILIES, n) + points_in(items, COORDINATION_ITEMS, n) >= COORDINATION_MIN


@dataclass
class Evidence:
    """Per-account evidence: item findings, family points (capped) and the volume behind them."""

    n: np.ndarray
    findings: dict[str, Finding] = field(default_factory=dict)
    families: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.n)

    def reasons(self, features: Features, i: int, limit: int = 4) -> list[tuple[float, str]]:
        """(points, words) of the strongest items of account ``i``, strongest first."""
        found = []
        for item in ITEMS:
            finding = self.findings.get(item.name)
            if finding is not None and finding.points[i] > 0:
                found.append((float(finding.points[i]), item.says(finding, features, i)))
        return sorted(found, key=lambda x: -x[0])[:limit]


def gather(features: Features, baselines: Baselines) -> Evidence:
    """Measure every item and total each family (capped)."""
    n = _n(features) if len(features.get("log_n", ())) else np.zeros(0)
    evidence = Evidence(n)
    for family in FAMILIES:
        evidence.families[family] = np.zeros(len(n))
    if not len(n):
        return evidence
    for item in ITEMS:
        finding = item.measure(features, baselines)
        evidence.findings[item.name] = finding
        evidence.families[item.family] = evidence.families[item.family] + finding.points
    for family, cap in FAMILY_CAP.items():
        evidence.families[family] = np.minimum(evidence.families[family], cap)
    return evidence
