"""Scale presets, the simulated time line and the model catalogue.

Everything that sizes a run lives here, so a preset can be read in one place and the
generators carry no magic volumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

BENIGN_POPULATIONS = (
    "casual", "power_user", "proxy_user", "app_backend", "batch_job", "eval_runner", "coding_agent", "campus",
    "company_team", "reseller", "ranking_app",
)
CAMPAIGN_TYPES = (
    "hydra_agentic", "capability_sweep", "cot_rubric", "multilingual_cot", "low_and_slow",
    "logit_harvest", "aged_sleeper", "enterprise_front", "reseller_mixed", "agentic_trajectory", "judge_harvest",
)
ACTORS = ("lab-alpha", "lab-beta", "lab-gamma")

# Share of benign *accounts* and of benign *exchanges* per population. Few, heavy app backends and
# resellers against many light casual users gives the heavy tail the detectors must not mistake for abuse.
BENIGN_MIX: dict[str, tuple[float, float]] = {
    "casual": (0.44, 0.13),
    "power_user": (0.04, 0.04),
    "proxy_user": (0.03, 0.02),
    "app_backend": (0.02, 0.21),
    "batch_job": (0.02, 0.09),
    "eval_runner": (0.01, 0.06),
    "coding_agent": (0.12, 0.16),
    "campus": (0.17, 0.07),
    "company_team": (0.12, 0.07),
    "reseller": (0.01, 0.10),
    "ranking_app": (0.02, 0.04),
}
# Share of attack exchanges / attack accounts per campaign type. The first three keep the public record's
# proportions among themselves (hydra ~80 % of volume, capability sweeps ~20 %, rubric harvesting ~1 %);
# the adaptive kinds after them take ~12 % of the volume between them.
ATTACK_MIX: dict[str, tuple[float, float]] = {
    "hydra_agentic": (0.70, 0.62),
    "capability_sweep": (0.17, 0.14),
    "cot_rubric": (0.008, 0.02),
    "multilingual_cot": (0.007, 0.03),
    "low_and_slow": (0.003, 0.04),
    "logit_harvest": (0.025, 0.02),
    "aged_sleeper": (0.004, 0.03),
    "enterprise_front": (0.035, 0.03),
    "reseller_mixed": (0.02, 0.01),
    "agentic_trajectory": (0.02, 0.04),
    "judge_harvest": (0.008, 0.02),
}
# Active window of each campaign instance as fractions of the span, per type (instance i uses row i).
WINDOWS: dict[str, tuple[tuple[float, float], ...]] = {
    "hydra_agentic": ((0.0, 1.0), (0.25, 1.0), (0.1, 0.8), (0.4, 1.0)),
    "capability_sweep": ((0.1, 0.75), (0.45, 1.0), (0.2, 0.9)),
    "cot_rubric": ((0.15, 0.85), (0.3, 1.0)),
    "multilingual_cot": ((0.05, 0.7), (0.35, 1.0)),
    "low_and_slow": ((0.0, 1.0), (0.2, 1.0)),
    "logit_harvest": ((0.2, 0.9), (0.5, 1.0)),
    "aged_sleeper": ((0.0, 1.0), (0.1, 1.0)),
    "enterprise_front": ((0.0, 1.0), (0.3, 1.0)),
    "reseller_mixed": ((0.0, 1.0), (0.2, 1.0)),
    "agentic_trajectory": ((0.3, 1.0), (0.1, 0.7)),
    "judge_harvest": ((0.25, 0.9), (0.4, 1.0)),
}
CAMPAIGN_PREFIX = {"hydra_agentic": "hydra", "capability_sweep": "sweep", "cot_rubric": "rubric",
                   "multilingual_cot": "mlcot", "low_and_slow": "slow", "logit_harvest": "logit",
                   "aged_sleeper": "sleeper", "enterprise_front": "front", "reseller_mixed": "resell",
                   "agentic_trajectory": "traj", "judge_harvest": "judge"}


@dataclass(frozen=True)
class Scale:
    """A size preset: total exchanges, how much of it is attack, and how many accounts carry it."""

    name: str
    exchanges: int
    attack_share: float
    benign_accounts: int
    attack_accounts: int
    instances: tuple[int, ...]  # campaign instances per type, in CAMPAIGN_TYPES order
    actors: int


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale("tiny", 5_000, 0.30, 150, 60, (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), 2),
        Scale("small", 60_000, 0.30, 900, 300, (2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1), 2),
        Scale("medium", 1_000_000, 0.35, 8_000, 2_400, (3, 2, 2, 2, 2, 2, 2, 1, 1, 2, 1), 3),
        Scale("large", 4_000_000, 0.40, 24_000, 8_000, (4, 3, 2, 2, 2, 2, 2, 2, 1, 2, 2), 3),
        # ~24,000 attacker accounts and ~16.4M attack exchanges: the publicly reported scale.
        Scale("public", 20_000_000, 0.82, 40_000, 24_000, (4, 3, 2, 2, 2, 2, 2, 2, 1, 2, 2), 3),
    )
}


@dataclass(frozen=True)
class Model:
    name: str
    snapshot: str  # what the response body reports
    max_output: int  # the output-token cap attackers push against


OLD, NEW, MINI = 0, 1, 2


@dataclass(frozen=True)
class Timeline:
    """The simulated span, day-indexed from 0, with one new-model release inside it."""

    start_ms: int
    days: int
    release_day: int  # 1-based day of the span on which the new model launches
    release_hour: int = 15

    @classmethod
    def default(cls, days: int = 28, release_day: int = 15) -> Timeline:
        start = datetime(2026, 2, 2, tzinfo=UTC)
        return cls(int(start.timestamp() * 1000), days, release_day)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * DAY_MS

    @property
    def release_ms(self) -> int:
        return self.start_ms + (self.release_day - 1) * DAY_MS + self.release_hour * HOUR_MS

    def day_ms(self, day: int) -> int:
        return self.start_ms + day * DAY_MS

    def weekday(self, day: int) -> int:
        """0 = Monday, so weekend effects follow the calendar of the chosen start."""
        return datetime.fromtimestamp(self.day_ms(day) / 1000, UTC).weekday()

    def day_name(self, day: int) -> str:
        return datetime.fromtimestamp(self.day_ms(day) / 1000, UTC).strftime("%Y-%m-%d")

    def models(self) -> tuple[Model, ...]:
        release = datetime.fromtimestamp(self.release_ms / 1000, UTC).strftime("%Y-%m-%d")
        return (
            Model("aurora-2", "aurora-2-2025-09-30", 16_384),
            Model("aurora-3", f"aurora-3-{release}", 32_768),
            Model("aurora-2-mini", "aurora-2-mini-2025-09-30", 8_192),
        )


@dataclass(frozen=True)
class CampaignSpec:
    """One campaign instance in one provider: who runs it, when, and how big it is."""

    id: str
    type: str
    actor: str
    start_day: int
    end_day: int  # exclusive
    n_accounts: int
    n_exchanges: int


def _split(total: float, weights: list[float]) -> list[float]:
    norm = sum(weights)
    return [total * w / norm for w in weights]


def plan_campaigns(scale: Scale, exchanges: int, days: int, n_actors: int, offset: int = 0,
                   types: tuple[str, ...] = CAMPAIGN_TYPES) -> list[CampaignSpec]:
    """Lay out campaign instances for one provider; ``offset`` delays them (later providers are hit later).

    Small types get a floor so that even ``tiny`` carries every type with enough traffic to detect.
    ``types`` keeps only those campaign types: the instances kept are exactly those of a full run (same ids,
    actors, windows and volumes), so a type can be held out without changing the others.
    """
    attack_total = exchanges * scale.attack_share
    floor = min(0.06, 300 / max(attack_total, 1))
    shares = {t: max(v, floor) for t, (v, _) in ATTACK_MIX.items()}
    norm = sum(shares.values())
    specs: list[CampaignSpec] = []
    for type_index, (ctype, n_instances) in enumerate(zip(CAMPAIGN_TYPES, scale.instances, strict=True)):
        weights = [0.7**i for i in range(n_instances)]
        volumes = _split(attack_total * shares[ctype] / norm, weights)
        accounts = _split(scale.attack_accounts * ATTACK_MIX[ctype][1], weights)
        minimum = {"capability_sweep": 5, "enterprise_front": 6, "reseller_mixed": 2}.get(ctype, 4)
        for i in range(n_instances):
            lo, hi = WINDOWS[ctype][i]
            start = min(int(lo * days) + offset, days - 3)
            end = min(start + max(int((hi - lo) * days), 3), days)
            specs.append(CampaignSpec(
                id=f"{CAMPAIGN_PREFIX[ctype]}-{i + 1}", type=ctype, actor=ACTORS[(type_index + i) % n_actors],
                start_day=start, end_day=end, n_accounts=max(minimum, round(accounts[i])),
                n_exchanges=max(1, round(volumes[i] * (end - start) / max(int((hi - lo) * days), 3))),
            ))
    return [s for s in specs if s.type in types]


def benign_plan(scale: Scale, exchanges: int) -> dict[str, tuple[int, float]]:
    """Accounts and exchange budget per benign population (at least two accounts each)."""
    benign_total = exchanges * (1 - scale.attack_share)
    return {pop: (max(2, round(scale.benign_accounts * a)), benign_total * v) for pop, (a, v) in BENIGN_MIX.items()}
