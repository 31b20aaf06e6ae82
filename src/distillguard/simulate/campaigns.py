"""Distillation campaigns, modelled on the public record of industrial-scale capability extraction.

An :class:`Actor` owns infrastructure (proxy address pools, client stacks and TLS fingerprints,
prepaid card issuers, look-alike email domains, template dialect) that is the same in every
provider it attacks: that sharing is what cross-provider intel can match on. Campaign types differ
in what they harvest and how they try to hide; none of them is detectable by a single keyword.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from distillguard.simulate import lexicon as lx
from distillguard.simulate.accounts import (
    CURVES,
    Account,
    Events,
    Population,
    Reply,
    World,
    remember,
    runs,
    turn_of,
)
from distillguard.simulate.config import DAY_MS, HOUR_MS, NEW, OLD, CampaignSpec, Model
from distillguard.simulate.infra import (
    APP_UA,
    CLOUD,
    PROXY,
    SDK_UA,
    TZ,
    Endpoint,
    Network,
    clients,
    endpoints,
    payment_fp,
    person_domain,
    tls_fp,
)
from distillguard.simulate.infra import PREPAID_BINS as _PREPAID
from distillguard.simulate.text import (
    MATH_KINDS,
    TOOL_SCHEMAS,
    Fill,
    answer,
    code_answer,
    fill,
    image_part,
    math_problem,
    pick,
    reasoning,
    tool_call,
    vary,
)

_LOOKALIKE = ("gmai1.com", "gmaill.co", "outlook-mail.net", "hotrnail.com", "protonmaii.com", "yah00-mail.net",
              "icloud-mail.org", "qq-mail.top", "gmx-mail.site", "out1ook.com")
_STEMS = ("mailbox", "inbox", "post", "fastmail", "webmail", "cloudmail", "mymail", "tempbox")
_TLDS = ("top", "xyz", "site", "online", "icu", "shop", "cc")
_CLAIMED = ("US", "SG", "GB", "DE", "JP", "HK", "CA", "AU", "NL", "KR")


@dataclass(frozen=True)
class Actor:
    """An intrusion set: the infrastructure and habits reused by all of its campaigns."""

    name: str
    tz: float
    core: tuple[Endpoint, ...]  # proxy /24s every campaign of the actor keeps coming back to
    uas: tuple[str, ...]
    fps: tuple[str, ...]  # TLS fingerprints of their own client stack, paired with ``uas``
    bins: tuple[str, ...]  # prepaid / virtual card issuers
    domains: tuple[str, ...]  # look-alike and throwaway email domains
    dialect: int  # which phrasing variants their templates use
    temperature: float


def make_actor(world: World, name: str) -> Actor:
    rng = world.shared_rng("actor", name)
    uas = tuple(str(u) for u in rng.choice(np.array(SDK_UA[:10]), 3, replace=False))
    fps = tuple(tls_fp(f"{name}-stack-{k}") for k in range(2)) + (tls_fp(uas[2].split("/")[0]),)
    domains = tuple(str(d) for d in rng.choice(np.array(_LOOKALIKE), 3, replace=False)) + tuple(
        f"{_STEMS[int(rng.integers(len(_STEMS)))]}{int(rng.integers(10, 999))}.{_TLDS[int(rng.integers(len(_TLDS)))]}"
        for _ in range(5))
    return Actor(name=name, tz=float(rng.choice([8.0, 8.0, 3.0, 5.5])),
                 core=tuple(endpoints(rng, PROXY, 160, subnets=6)), uas=uas, fps=fps,
                 bins=tuple(str(b) for b in rng.choice(np.array(_PREPAID), 2, replace=False)),
                 domains=domains, dialect=int(rng.integers(0, 3)), temperature=float(rng.choice([0.6, 0.7, 1.0])))


class Campaign(Population):
    """A population run by an actor inside a window of days, with its own budget and accounts."""

    label = "attack"
    curve = CURVES["flat"]
    weekend = 1.0
    sigma = 0.45
    error_rate = 0.01

    def __init__(self, world: World, spec: CampaignSpec, actor: Actor) -> None:
        super().__init__(world)
        self.spec = spec
        self.actor = actor
        self.name = spec.type
        self.key = self.campaign = spec.id
        self.actor_name = actor.name
        shared = world.shared_rng("pool", actor.name, spec.id)
        size = max(40, 2 * spec.n_accounts)
        self.pool = clients(endpoints(shared, PROXY + CLOUD[4:], size, subnets=size // 40 + 3) + list(actor.core),
                            actor.uas, actor.fps)

    def factors(self, acct: Account, rng: np.random.Generator) -> np.ndarray:
        f = np.zeros(self.tl.days)
        lo, hi = acct.profile.get("window", (self.spec.start_day, self.spec.end_day))
        f[lo:hi] = 1.0
        return f

    def identity(self, rng: np.random.Generator, i: int, *, net: Network, created: int, email: str,
                 pay: str | None, country: str, tier: str, verified: float) -> Account:
        return Account(
            account_id=self.world.ident("acct", self.spec.id, i), behaviour=self, created_at=created,
            email_domain=email, payment_fp=pay, country=country, signup_ip=net.home[0].ip,
            org_id=self.world.ident("org", self.spec.id, i), tier=tier, verified=bool(rng.random() < verified),
            net=net, keys=(self.world.ident("key", self.spec.id, i),), tz=TZ.get(country, 0.0),
        )

    def actor_email(self, rng: np.random.Generator, share: float = 0.8) -> str:
        if rng.random() < share:
            return self.actor.domains[int(rng.integers(len(self.actor.domains)))]
        return person_domain(rng, "US")

    def actor_card(self, rng: np.random.Generator, share: float = 0.7) -> str:
        return payment_fp(rng, self.actor.bins) if rng.random() < share else payment_fp(rng)

    def network(self, rng: np.random.Generator, rotate: float) -> Network:
        home = [self.pool[int(j)] for j in rng.integers(0, len(self.pool), 1 + int(rng.integers(0, 2)))]
        return Network([Endpoint(c["ip"], c["asn"], c["country"]) for c in home], self.actor.uas, pool=self.pool,
                       rotate=rotate, fps=self.actor.fps)

    def max_tokens(self, r: random.Random, model: Model) -> int:
        """Near the cap, with enough spread that no single threshold separates them."""
        cap = model.max_output
        u = r.random()
        return cap if u < 0.6 else cap - 512 if u < 0.85 else cap // 2


class Hydra(Campaign):
    """Hydra proxy cluster: batch-made accounts rotating over proxy ASNs, running agentic coding and
    tool orchestration, pivoting half their traffic to a new model within hours of its release."""

    error_rate = 0.03

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        s = self.spec
        length = s.end_day - s.start_day
        cards = [payment_fp(rng, self.actor.bins) for _ in range(max(2, n // 10))]
        batch = int(np.clip(n // rng.integers(5, 9), 5, 150))  # accounts made together
        p_new = float(rng.uniform(0.58, 0.66))
        out = []
        for i in range(n):
            b, k = divmod(i, batch)
            if k == 0:
                life = min(length, int(rng.integers(8, 16)))
                n_batches = max(1, (n + batch - 1) // batch)
                lo = s.start_day + int(b / max(n_batches - 1, 1) * (length - life))
                made = self.tl.day_ms(lo) - int(rng.uniform(0.3, 2.5) * DAY_MS)
            pay = cards[int(rng.integers(len(cards)))] if rng.random() < 0.6 else self.actor_card(rng)
            created = made + k * int(rng.integers(20, 240)) * 1000
            acct = self.identity(rng, i, net=self.network(rng, rotate=0.65), created=created,
                                 email=self.actor_email(rng), pay=pay, country=str(rng.choice(_CLAIMED)),
                                 tier=str(rng.choice(["payg", "payg", "free", "startup"])), verified=0.4)
            tools = [str(t) for t in rng.choice(np.array(lx.TOOL_NAMES), int(rng.integers(4, 9)), replace=False)]
            acct.profile = {"window": (lo, lo + life), "tools": tools, "schemas": [TOOL_SCHEMAS[t] for t in tools]}
            acct.p_new = p_new
            out.append(acct)
        return out

    def factors(self, acct: Account, rng: np.random.Generator) -> np.ndarray:
        f = super().factors(acct, rng)
        release = self.tl.release_day - 1
        f[release: release + 3] *= 1.4  # the harvesting rush on the new model
        return f

    def models(self, owner: np.ndarray, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ramp = np.clip((ts - self.tl.release_ms) / HOUR_MS, 0, 1)
        return np.where(rng.random(ts.size) < self.p_new[owner] * ramp, NEW, OLD).astype(np.int8)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        f = Fill(r, module=pick(r, lx.MODULES))
        system = lx.AGENT_SYSTEMS[(self.actor.dialect + int(r.random() * 2)) % len(lx.AGENT_SYSTEMS)]
        if r.random() < 0.3:
            system += " Reasoning: high. Think thoroughly before every action."
        task = vary(pick(r, lx.AGENT_TASKS).format_map(f), r, typo=0.02, polite=0.05, lower=0.0)
        messages: list[dict] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        tools = acct.profile["tools"]
        if r.random() < 0.3:  # a synthetic trajectory to continue from, not a real session
            for _ in range(1 + int(r.random() * 3)):
                call = tool_call(r, pick(r, tools), f)
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                messages.append({"role": "tool", "tool_call_id": call["id"],
                                 "content": pick(r, lx.TOOL_RESULTS).format_map(f)})
        request = {"model": model.name, "messages": messages, "tools": acct.profile["schemas"],
                   "temperature": self.actor.temperature, "max_completion_tokens": self.max_tokens(r, model),
                   "reasoning_effort": "high" if r.random() < 0.9 else "medium", "stream": r.random() < 0.2}
        topic = f["codetask"] if "codetask" in f else f"update the {f['module']} module"
        trace = reasoning(r, topic, 900 + int(r.random() * 1800))
        if r.random() < 0.6:
            calls = [tool_call(r, pick(r, tools), f) for _ in range(1 + int(r.random() * 2))]
            return request, pick(r, (None, "I'll start by inspecting the repository layout.")), trace, calls
        return request, code_answer(r, f["lang"], topic, 500 + int(r.random() * 900)), trace, None


_SWEEP_CODE = (
    "Write a complete, production-quality {lang} implementation to {codetask}. Include error handling and tests. "
    "Explain your design decisions step by step.",
    "Task {k}: {codetask} in {lang}.\nRequirements: {constraint}.\nThink through the problem carefully before "
    "writing the final code.",
    "You are an expert {lang} engineer. Implement code to {codetask} ({constraint}). Give the full code and a "
    "detailed explanation of your reasoning.",
)
_CONSTRAINTS = ("O(n log n) or better", "no external dependencies", "thread-safe", "streaming input",
                "handle unicode input", "idiomatic and documented")
_TOOL_GOALS = (
    "find the three most recent issues mentioning {module} and summarise them", "look up the weather in {city} and "
    "draft a packing list", "search for papers on {subject} and save a bibliography to refs.md", "compute the "
    "compound growth of 1000 at 7% for {n} years with python and report it", "list the files in src, read the "
    "{module} module and explain what it does", "check whether the tests pass and report failures",
)
_UI_TASKS = ("open the settings page and enable dark mode", "fill in the signup form with test data",
             "download the latest invoice from the billing page", "sort the spreadsheet by column C",
             "find the export button and export the report as PDF", "close the cookie banner and log in",
             "create a new calendar event for Friday at 10:00", "rename the file on the desktop to report-final")
_VISION = ("Describe everything in this image in exhaustive detail, then explain your reasoning about what it shows.",
           "Extract all text from this {doc_kind} image and explain its structure step by step.",
           "What is the total on this receipt? Reason step by step and show your work.",
           "Analyse this chart: trends, outliers and conclusions. Think step by step.",
           "Identify every UI element in this screenshot and what each one does.")
AREAS = ("coding", "tool_use", "computer_use", "math", "vision")
_COMPUTER = [TOOL_SCHEMAS["computer"]]


class CapabilitySweep(Campaign):
    """Narrow accounts that together walk a coverage plan: coding, tool use, computer use, math, vision."""

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        made = self.tl.day_ms(self.spec.start_day) - int(rng.uniform(1, 4) * DAY_MS)
        out = []
        for i in range(n):
            created = made + int(rng.integers(0, 6 * 3600)) * 1000
            acct = self.identity(rng, i, net=self.network(rng, rotate=0.1), created=created,
                                 email=self.actor_email(rng, 0.6), pay=self.actor_card(rng, 0.8),
                                 country=str(rng.choice(_CLAIMED)), tier=str(rng.choice(["payg", "startup"])),
                                 verified=0.6)
            acct.profile = {"area": AREAS[i % len(AREAS)], "lang": lx.SLOTS["lang"][(i // len(AREAS)) % 12],
                            "template": _SWEEP_CODE[(self.actor.dialect + i) % 3], "gap": float(rng.uniform(12, 60)),
                            "tools": [str(t) for t in rng.choice(np.array(lx.TOOL_NAMES), 5, replace=False)]}
            acct.profile["schemas"] = [TOOL_SCHEMAS[t] for t in acct.profile["tools"]]
            acct.adopt_ms = self.tl.release_ms + int(rng.uniform(0.2, 3) * DAY_MS)
            acct.p_new = 1.0
            out.append(acct)
        return out

    def finalise(self, rng: np.random.Generator, accounts: list[Account], budget: float) -> None:
        super().finalise(rng, accounts, budget)
        self.gaps = np.array([a.profile["gap"] for a in accounts])

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        """Two or three machine-paced bursts per account-day; tags are coverage positions."""
        counts = rng.poisson(self.rates[:, day])
        if not counts.any():
            return None
        owner = np.repeat(np.arange(counts.size), counts)
        gaps = self.gaps[owner] * (0.5 + rng.random(owner.size))

        def place(first: np.ndarray, span: np.ndarray) -> np.ndarray:
            return rng.random(first.size) * np.maximum(86_400 - span, 0)

        sec, _ = runs(rng, owner, np.minimum(1.0, 1.5 / counts[owner]), gaps, place, max_len=1 << 30)
        ts = self.tl.day_ms(day) + (sec % 86_400 * 1000).astype(np.int64)
        owner, ts, pos = self.positions(owner, ts, day)
        return owner, ts, pos, self.models(owner, ts, rng)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        area = p["area"]
        request: dict = {"model": model.name, "messages": [], "temperature": self.actor.temperature,
                         "max_tokens": self.max_tokens(r, model)}
        f = Fill(r, lang=p["lang"], module=pick(r, lx.MODULES), k=str(tag % 10_000))
        calls = None
        if area == "coding":
            f["codetask"] = lx.SLOTS["codetask"][tag % len(lx.SLOTS["codetask"])]
            f["constraint"] = _CONSTRAINTS[(tag // 25) % len(_CONSTRAINTS)]
            text, topic = p["template"].format_map(f), f["codetask"]
            content = code_answer(r, p["lang"], topic, 500 + int(r.random() * 900))
        elif area == "math":
            problem, result = math_problem(r, tag)
            text = ("Solve the following problem. Show every step of your reasoning in full detail and put the final "
                    f"answer in \\boxed{{}}.\n\n{problem}")
            topic = MATH_KINDS[tag % len(MATH_KINDS)]
            content = answer(r, "the solution", 300 + int(r.random() * 600)) + f"\n\n\\boxed{{{result}}}"
        elif area == "tool_use":
            text, topic = "Use the available tools to " + _TOOL_GOALS[tag % len(_TOOL_GOALS)].format_map(f), "tools"
            request["tools"] = p["schemas"]
            calls = [tool_call(r, pick(r, p["tools"]), f) for _ in range(1 + int(r.random() * 3))]
            content = None
        elif area == "computer_use":
            text, topic = f"Step {tag % 40 + 1}: {_UI_TASKS[tag % len(_UI_TASKS)]}. Current screen:", "the desktop"
            request["tools"] = _COMPUTER
            calls = [tool_call(r, "computer", f)]
            content = "I can see the window. I'll click the relevant control."
        else:
            text, topic = fill(_VISION[tag % len(_VISION)], r), "the image"
            content = answer(r, topic, 400 + int(r.random() * 800))
        if area in ("computer_use", "vision"):
            request["messages"] = [{"role": "user", "content": [{"type": "text", "text": text}, image_part(r)]}]
        else:
            request["messages"] = [{"role": "user", "content": text}]
        trace = None
        if area in ("coding", "math") or r.random() < 0.3:
            request["reasoning_effort"] = "high"
            trace = reasoning(r, topic, 800 + int(r.random() * 1600))
        return request, content, trace, calls


class CotRubric(Campaign):
    """Rubric/reward-model grading with full reasoning, dispatched round-robin over a pool of accounts
    ("load balancing") from one scheduler: synchronised timing, shared payment, repeated templates."""

    error_rate = 0.005

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        made = self.tl.day_ms(self.spec.start_day) - int(rng.uniform(1, 3) * DAY_MS)
        cards = [payment_fp(rng, self.actor.bins) for _ in range(2)]
        subnet = endpoints(rng, CLOUD, n, subnets=1)
        domain = self.actor.domains[int(rng.integers(len(self.actor.domains)))]
        ua = self.actor.uas[0]
        out = []
        for i in range(n):
            net = Network([subnet[i]], (ua,), fps=self.actor.fps[:1])
            out.append(self.identity(rng, i, net=net, created=made + i * int(rng.integers(30, 120)) * 1000,
                                     email=domain, pay=cards[i % 2], country=str(rng.choice(_CLAIMED[:4])),
                                     tier=str(rng.choice(["research", "payg"])), verified=0.7))
        return out

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        """One dispatcher per campaign-day: evenly paced slots in the operators' working window,
        handed to the accounts round-robin."""
        active = np.flatnonzero(self.rates[:, day] > 0)
        total = int(rng.poisson(self.rates[:, day].sum())) if active.size else 0
        if total == 0:
            return None
        start = ((9 - self.actor.tz) % 24) * 3600 + rng.uniform(0, 1800)
        sec = (start + 12 * 3600 / total * np.arange(total) + rng.normal(0, 0.3, total)) % 86_400
        ts = self.tl.day_ms(day) + (sec * 1000).astype(np.int64)
        owner = active[np.arange(total) % active.size]
        return owner, ts, np.arange(total, dtype=np.int64), self.models(owner, ts, rng)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        template = lx.RUBRIC_TEMPLATES[(tag + self.actor.dialect) % 2 + (tag % 7 == 0)]
        k = 3 + int(r.random() * 3)
        criteria = r.sample(lx.RUBRIC_CRITERIA, k)
        rubric = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(criteria))
        f = Fill(r)
        prompt = pick(r, lx.CASUAL).format_map(f)
        topic = f.get("subject") or "the task"
        candidate = answer(r, topic, 200 + int(r.random() * 300))
        text = template.format(rubric=rubric, prompt=prompt, response=candidate)
        request = {"model": model.name, "messages": [{"role": "user", "content": text}], "temperature": 0,
                   "max_tokens": self.max_tokens(r, model), "reasoning_effort": "high"}
        trace = reasoning(r, topic, 1000 + int(r.random() * 1500), "Let me evaluate each criterion in turn.")
        score = 1 + int(r.random() * 10)
        content = "\n".join(f"{c.capitalize()}: {pick(r, lx.BODY).replace('{t}', topic)}"
                            for c in criteria) + f"\n\nScore: {score}/10"
        return request, content, trace, None


class MultilingualCot(Campaign):
    """Reasoning-trace coercion in many languages: 'reveal your full internal reasoning'."""

    curve = CURVES["work"]
    sigma = 0.5

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        langs = tuple(lx.COERCION)
        out = []
        for i in range(n):
            made = self.tl.day_ms(self.spec.start_day) - int(rng.uniform(1, 40) * DAY_MS)
            acct = self.identity(rng, i, net=self.network(rng, rotate=0.3), created=made,
                                 email=self.actor_email(rng, 0.5), pay=self.actor_card(rng, 0.6),
                                 country=str(rng.choice(_CLAIMED)), tier=str(rng.choice(["payg", "edu", "free"])),
                                 verified=0.5)
            acct.profile = {"langs": (langs[i % len(langs)], langs[int(rng.integers(len(langs)))])}
            acct.tz = self.actor.tz
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        lang = pick(r, acct.profile["langs"])
        a, b, c = 5 + int(r.random() * 20), 2 + int(r.random() * 5), 30 + int(r.random() * 900)
        if r.random() < 0.3:
            q, _ = math_problem(r, int(r.random() * len(MATH_KINDS)))
        else:
            q = pick(r, lx.LOCAL_QUESTIONS[lang]).format(a=a, b=b, c=c)
        text = pick(r, lx.COERCION[lang]).format(q=q)
        request = {"model": model.name, "messages": [{"role": "user", "content": text}],
                   "temperature": self.actor.temperature, "max_tokens": self.max_tokens(r, model),
                   "reasoning_effort": "high"}
        opener = pick(r, lx.LOCAL_OPENERS[lang])
        trace = reasoning(r, "the problem", 1000 + int(r.random() * 1800), opener)
        content = opener + "\n\n" + reasoning(r, "the problem", 300 + int(r.random() * 700), "") + f"\n\n= {c % a}"
        return request, content, trace, None


class LowAndSlow(Campaign):
    """An adaptive campaign: each account looks like a casual user (volume, diurnal timing, ISP-like
    proxies, aged identity) and paraphrases, yet the accounts together harvest long reasoning
    across a coverage plan."""

    curve = CURVES["human"]
    weekend = 1.1
    sigma = 0.6
    session_len = 1.15
    gap_s = 120.0
    error_rate = 0.004

    PLAN = (*lx.SLOTS["subject"], *(f"how to {t}" for t in lx.SLOTS["codetask"]), *MATH_KINDS)

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            country = str(rng.choice(["US", "US", "GB", "DE", "CA", "AU", "FR"]))
            home = endpoints(rng, PROXY, 1 + int(rng.integers(0, 2)))
            ua = APP_UA[int(rng.integers(len(APP_UA)))]
            net = Network(home, (ua,), pool=self.pool, rotate=0.05)
            acct = self.identity(rng, i, net=net, created=self.tl.start_ms - int(rng.uniform(60, 700) * DAY_MS),
                                 email=person_domain(rng, country), pay=self.actor_card(rng, 0.3), country=country,
                                 tier=str(rng.choice(["payg", "free"])), verified=0.9)
            acct.p_mini = 0.05
            acct.adopt_ms = self.tl.release_ms + int(rng.uniform(0.5, 6) * DAY_MS)
            out.append(acct)
        return out

    def factors(self, acct: Account, rng: np.random.Generator) -> np.ndarray:
        f = super().factors(acct, rng)
        return f * np.array([self.weekend if self.tl.weekday(d) >= 5 else 1.0 for d in range(self.tl.days)])

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        ev = super().day_events(day, rng)
        if ev is None:
            return None
        owner, ts, tag, models = ev
        base = self.before[owner, day].astype(np.int64) + self.shards[owner] * 7919
        return owner, ts, tag + (base << 24), models

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        sid, turn, _ = turn_of(tag)
        prev = state.get(sid) if turn else None
        if prev is None:
            topic = self.PLAN[((tag >> 24) + (sid & 0x3FFF)) % len(self.PLAN)]
            ask = pick(r, lx.HARVEST_ASKS).replace("{topic}", topic)
            text = " ".join(x for x in (pick(r, lx.HARVEST_OPENERS), ask, pick(r, lx.HARVEST_CLOSERS)) if x)
            messages = [{"role": "user", "content": vary(text, r, typo=0.12, polite=0.2, lower=0.3)}]
        else:
            history, topic = prev
            messages = [*history, {"role": "user", "content": vary(pick(r, (
                "can you go deeper on the step you found hardest?", "nice - walk me through that last part again, "
                "slower?", "what if the assumptions change? reason it through again")), r)}]
        request: dict = {"model": model.name, "messages": messages}
        if r.random() < 0.3:
            request["temperature"] = pick(r, (0.7, 1.0))
        if r.random() < 0.55:
            request["max_tokens"] = pick(r, (8000, 12000, 16000, model.max_output))
        request["reasoning_effort"] = "high" if r.random() < 0.7 else "medium"
        if r.random() < 0.5:
            request["stream"] = True
        trace = reasoning(r, topic, 1200 + int(r.random() * 1800))
        content = answer(r, topic, 600 + int(r.random() * 900))
        remember(state, tag, messages, {"role": "assistant", "content": content}, topic)
        return request, content, trace, None


CAMPAIGNS: dict[str, type[Campaign]] = {
    "hydra_agentic": Hydra, "capability_sweep": CapabilitySweep, "cot_rubric": CotRubric,
    "multilingual_cot": MultilingualCot, "low_and_slow": LowAndSlow,
}
