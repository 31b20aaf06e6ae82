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
from distillguard.simulate import paraphrase as para
from distillguard.simulate.accounts import (
    CURVES,
    Account,
    Events,
    Population,
    Reply,
    World,
    runs,
    turn_of,
)
from distillguard.simulate.config import DAY_MS, HOUR_MS, NEW, OLD, CampaignSpec, Model
from distillguard.simulate.corpus import Chat, load
from distillguard.simulate.infra import (
    APP_UA,
    CLOUD,
    IDE_UA,
    PROXY,
    RESELLER_UA,
    SDK_UA,
    TZ,
    Endpoint,
    Network,
    clients,
    company_domain,
    endpoints,
    payment_fp,
    person_domain,
    residential,
    tls_fp,
)
from distillguard.simulate.infra import PREPAID_BINS as _PREPAID
from distillguard.simulate.sessions import agent_turn, chat_turn, code_block, tool_result, topic_of
from distillguard.simulate.text import (
    MATH_KINDS,
    TOOL_SCHEMAS,
    Fill,
    answer,
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
        self.corpus = load(world.corpus)

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

    def walk(self, pool: tuple[Chat, ...], pos: int) -> Chat:
        """Systematic coverage: position ``pos`` of the campaign's plan over ``pool`` (a stride walk, so
        neighbouring positions are unrelated conversations and no conversation repeats within a lap)."""
        return pool[(pos * 7919 + self.spec.start_day) % len(pool)]

    def plan_tags(self, ev: Events | None, day: int) -> Events | None:
        """Session tags with each account's plan position above bit 32 (see :meth:`plan_pos`)."""
        if ev is None:
            return None
        owner, ts, tag, models = ev
        base = self.before[owner, day].astype(np.int64) + self.shards[owner] * 7919
        return owner, ts, tag + (base << 32), models

    @staticmethod
    def plan_pos(tag: int) -> int:
        return (tag >> 32) + ((tag >> 10) & 0x3FFFFF)

    def harvest_text(self, r: random.Random, question: str, lang: str = "en") -> str:
        """A public question wrapped in one of many asks for complete reasoning (or none: the parameters ask)."""
        u = r.random()
        ask = para.reason_ask(r, lang)
        if u < 0.3:
            return f"{question}\n\n{ask}"
        if u < 0.45:
            return f"{ask}\n\n{question}"
        if u < 0.6:
            return f"{question}\n\n{ask} {para.reason_ask(r, lang)}"
        return question

    def max_tokens(self, r: random.Random, model: Model) -> int:
        """Near the cap, with enough spread that no single threshold separates them."""
        cap = model.max_output
        u = r.random()
        return cap if u < 0.6 else cap - 512 if u < 0.85 else cap // 2


def _content(chat: Chat, k: int = 0, more: int = 0) -> str:
    """The corpus's answer to turn ``k`` of ``chat``, running on over ``more`` later answers (long outputs)."""
    parts = chat.turns[2 * k + 1: 2 * (k + more) + 2: 2]
    return "\n\n".join(parts)


class Hydra(Campaign):
    """Hydra proxy cluster: batch-made accounts rotating over proxy ASNs (a quarter over residential-proxy
    exits), running agentic coding and tool orchestration on public coding questions and task grammars,
    pivoting half their traffic to a new model within hours of its release."""

    error_rate = 0.03

    def __init__(self, world: World, spec: CampaignSpec, actor: Actor) -> None:
        super().__init__(world, spec, actor)
        self.code = self.corpus.pool("en:code", "code")

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
            net = self.network(rng, rotate=0.65)
            if rng.random() < 0.25:  # rotating over a residential-proxy service instead
                home, pool = residential(self.world.seed, rng, self.actor.uas, self.actor.fps)
                net = Network(home, self.actor.uas, pool=pool, rotate=0.8, fps=self.actor.fps)
            acct = self.identity(rng, i, net=net, created=created,
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
        systems = _HYDRA_SYSTEMS
        system = systems[(self.actor.dialect * 3 + int(r.random() * 4)) % len(systems)]
        if r.random() < 0.3:
            system += pick(r, (" Reasoning: high. Think thoroughly before every action.", " " + para.reason_ask(r),
                               " Explain your reasoning before each tool call."))
        code = self.code
        chat = code[int(r.random() * len(code))]
        if r.random() < 0.3:
            task = vary(pick(r, lx.AGENT_TASKS).format_map(f), r, typo=0.02, polite=0.05, lower=0.0)
        else:
            task = chat.turns[0]
        messages: list[dict] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        tools = acct.profile["tools"]
        if r.random() < 0.3:  # a synthetic trajectory to continue from, not a real session
            for _ in range(1 + int(r.random() * 3)):
                call = tool_call(r, pick(r, tools), f)
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                messages.append({"role": "tool", "tool_call_id": call["id"],
                                 "content": tool_result(r, call["function"]["name"], self.corpus, f)})
        request = {"model": model.name, "messages": messages, "tools": acct.profile["schemas"],
                   "temperature": self.actor.temperature, "max_completion_tokens": self.max_tokens(r, model),
                   "reasoning_effort": "high" if r.random() < 0.9 else "medium", "stream": r.random() < 0.2}
        trace = reasoning(r, topic_of(task), 900 + int(r.random() * 1800))
        if r.random() < 0.6:
            calls = [tool_call(r, pick(r, tools), f) for _ in range(1 + int(r.random() * 2))]
            return request, pick(r, (None, "I'll start by inspecting the repository layout.")), trace, calls
        return request, _content(chat, 0, int(r.random() * 2)), trace, None


_AGENT_SYSTEMS_MORE = (
    "You are an expert autonomous agent. Solve the task completely, calling tools as needed; think out loud.",
    "System: coding agent v2. You have shell, editor and search tools. Produce a plan, execute it, verify it.",
    "Du bist ein autonomer Software-Agent. Nutze die Werkzeuge, um die Aufgabe vollständig zu lösen.",
    "你是一个自主编程智能体。使用提供的工具完成任务，每一步前先说明你的思路。",
    "You are a helpful agent. Use tools. Be thorough.",
)
_HYDRA_SYSTEMS = lx.AGENT_SYSTEMS + _AGENT_SYSTEMS_MORE
_SWEEP_CODE = (
    "Write a complete, production-quality {lang} implementation for this: {q}\nInclude error handling and tests. "
    "Explain your design decisions step by step.",
    "Task {k}: {q}\nRequirements: {constraint}.\nThink through the problem carefully before writing the final code.",
    "You are an expert {lang} engineer. {q}\n({constraint}) Give the full code and a detailed explanation of your "
    "reasoning.",
    "{q}",
    "{q}\n\nPlease answer with complete code, no placeholders.",
    "Solve in {lang} ({constraint}): {q}",
    "[{k}] {q}",
)
_SWEEP_MATH = (
    "Solve the following problem. Show every step of your reasoning in full detail and put the final answer in "
    "\\boxed{{}}.\n\n{q}", "{q}\n\n{ask}", "Problem {k}: {q}", "{q}\nGive a rigorous solution.", "{q}",
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
           "Identify every UI element in this screenshot and what each one does.", "What's in this picture?",
           "Describe this image.")
AREAS = ("coding", "tool_use", "computer_use", "math", "vision")
_COMPUTER = [TOOL_SCHEMAS["computer"]]


class CapabilitySweep(Campaign):
    """Narrow accounts that together walk a coverage plan (coding and math over the public corpus, tool use,
    computer use, vision) in machine-paced bursts, with many phrasings of the request."""

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
                            "templates": tuple(int(t) for t in rng.choice(len(_SWEEP_CODE), 3, replace=False)),
                            "gap": float(rng.uniform(12, 60)),
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
            chat = self.walk(self.corpus.pool("en:code", "code"), tag)
            f["q"] = chat.turns[0]
            f["constraint"] = _CONSTRAINTS[(tag // 25) % len(_CONSTRAINTS)]
            text, topic = _SWEEP_CODE[p["templates"][tag % 3]].format_map(f), topic_of(chat.turns[0])
            content = _content(chat, 0, int(r.random() * 2))
        elif area == "math":
            if r.random() < 0.7:
                chat = self.walk(self.corpus.pool("math", "all"), tag)
                q, content = chat.turns[0], _content(chat)
            else:
                q, result = math_problem(r, tag)
                content = answer(r, "the solution", 300 + int(r.random() * 600)) + f"\n\n\\boxed{{{result}}}"
            text = pick(r, _SWEEP_MATH).format(q=q, k=tag % 10_000, ask=para.reason_ask(r))
            topic = MATH_KINDS[tag % len(MATH_KINDS)]
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
            content = _content(self.walk(self.corpus.pool("nocode"), tag))
        if area in ("computer_use", "vision"):
            request["messages"] = [{"role": "user", "content": [{"type": "text", "text": text}, image_part(r)]}]
        else:
            request["messages"] = [{"role": "user", "content": text}]
        trace = None
        if area in ("coding", "math") or r.random() < 0.3:
            request["reasoning_effort"] = "high"
            trace = reasoning(r, topic, 800 + int(r.random() * 1600))
        return request, content, trace, calls


_RUBRIC_MORE = (
    "Bewerte die folgende Antwort anhand der Kriterien mit 1 bis 10 Punkten. Begründe jede Bewertung ausführlich "
    "Schritt für Schritt.\n\nKriterien:\n{rubric}\n\nFrage:\n{prompt}\n\nAntwort:\n{response}",
    "请根据以下评分标准，为回答打分（1-10分），并逐条详细说明你的推理过程。\n\n评分标准：\n{rubric}\n\n问题：\n{prompt}\n\n回答：\n"
    "{response}",
    "Rubric:\n{rubric}\n---\nQ: {prompt}\nA: {response}\n---\nGrade it (1-10). Reasoning first, in full.",
    "You are a strict teaching assistant. Mark this answer out of 10 using the marking scheme below and justify "
    "every mark you give or withhold.\n\nMarking scheme:\n{rubric}\n\nQuestion: {prompt}\n\nStudent answer: "
    "{response}",
)


class CotRubric(Campaign):
    """Rubric/reward-model grading with full reasoning, dispatched round-robin over a pool of accounts
    ("load balancing") from one scheduler: synchronised timing, shared payment, rotating templates in several
    languages over real question/answer pairs."""

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
        templates = lx.RUBRIC_TEMPLATES + _RUBRIC_MORE
        template = templates[(tag + self.actor.dialect) % 3 + 3 * (tag % 5 == 0) + (tag % 11 == 0)]
        k = 3 + int(r.random() * 3)
        criteria = r.sample(lx.RUBRIC_CRITERIA, k)
        rubric = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(criteria))
        chat = self.walk(self.corpus.pools["all"], tag)
        text = template.format(rubric=rubric, prompt=chat.turns[0][:2500], response=chat.turns[1][:3000])
        request = {"model": model.name, "messages": [{"role": "user", "content": text}], "temperature": 0,
                   "max_tokens": self.max_tokens(r, model), "reasoning_effort": "high"}
        topic = topic_of(chat.turns[0])
        trace = reasoning(r, topic, 1000 + int(r.random() * 1500), "Let me evaluate each criterion in turn.")
        content = "\n".join(f"{c.capitalize()}: {para.judge_output(r, False, 1).split(chr(10))[0]}"
                            for c in criteria) + f"\n\nScore: {1 + int(r.random() * 10)}/10"
        return request, content, trace, None


class MultilingualCot(Campaign):
    """Reasoning-trace coercion in many languages: 'reveal your full internal reasoning', over local question
    grammars and public questions, with the phrase families benign users share."""

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
        u = r.random()
        local = self.corpus.pools.get("lang:" + lang, ())
        local = local if len(local) >= 20 else ()
        content = None
        if local and u < 0.5:
            chat = pick(r, local)
            q, content = chat.turns[0], _content(chat)
        elif u < 0.7:
            q = pick(r, lx.LOCAL_QUESTIONS[lang]).format(a=a, b=b, c=c)
        elif u < 0.85:
            q, _ = math_problem(r, int(r.random() * len(MATH_KINDS)))
        else:
            chat = pick(r, self.corpus.pool("math", "all"))
            q = chat.turns[0]
        if r.random() < 0.6:
            text = pick(r, lx.COERCION[lang]).format(q=q)
        else:
            text = f"{q}\n\n{para.reason_ask(r, lang)} {para.reason_ask(r, lang)}"
        request = {"model": model.name, "messages": [{"role": "user", "content": text}],
                   "temperature": self.actor.temperature, "max_tokens": self.max_tokens(r, model),
                   "reasoning_effort": "high"}
        opener = pick(r, lx.LOCAL_OPENERS[lang])
        trace = reasoning(r, "the problem", 1000 + int(r.random() * 1800), opener)
        if content is None:
            content = opener + "\n\n" + reasoning(r, "the problem", 300 + int(r.random() * 700), "") + f"\n\n= {c % a}"
        return request, content, trace, None


_OPENERS = ("", "", "", "Hey!", "Hi there,", "Quick question.", "Ok so", "I'm studying for an exam and",
            "Been stuck on this:", "My kid asked me this:", "hello", "Hi,")
_CLOSERS = ("", "", "", "thanks so much!", "no rush", "ty", "appreciate it :)", "thank you!", "thx")


class LowAndSlow(Campaign):
    """An adaptive campaign: each account looks like a casual user (volume, diurnal timing, ISP-like
    proxies, aged identity) and asks real public questions with casual wrapping, yet the accounts together
    harvest long reasoning across a coverage plan."""

    curve = CURVES["human"]
    weekend = 1.1
    sigma = 0.6
    session_len = 1.3
    gap_s = 120.0
    error_rate = 0.004

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
        return self.plan_tags(super().day_events(day, rng), day)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        sid, turn, last = turn_of(tag)
        prev = state.get(sid) if turn else None
        if prev is None:
            pools = (self.corpus.pool("long"), self.corpus.pool("math", "all"), self.corpus.pool("en:code", "code"))
            pos = self.plan_pos(tag)
            chat = self.walk(pools[pos % 3], pos // 3)
            body = self.harvest_text(r, chat.turns[0])
            text = " ".join(x for x in (pick(r, _OPENERS), body, pick(r, _CLOSERS)) if x)
            messages = [{"role": "user", "content": vary(text, r, typo=0.1, polite=0.2, lower=0.1)
                         if len(text) < 300 else text}]
            k = 0
        else:
            history, chat, k = prev
            messages = [*history, {"role": "user", "content": vary(para.deeper(r), r)}]
        request: dict = {"model": model.name, "messages": messages}
        if r.random() < 0.3:
            request["temperature"] = pick(r, (0.7, 1.0))
        if r.random() < 0.55:
            request["max_tokens"] = pick(r, (8000, 12000, 16000, model.max_output))
        if r.random() < 0.8:
            request["reasoning_effort"] = "high" if r.random() < 0.7 else "medium"
        if r.random() < 0.5:
            request["stream"] = True
        trace = reasoning(r, topic_of(chat.turns[0]), 1200 + int(r.random() * 1800)) \
            if request.get("reasoning_effort") else None
        content = _content(chat, min(k, chat.pairs - 1), 1)
        if last:
            state.pop(sid, None)
        else:
            state[sid] = ([*messages, {"role": "assistant", "content": content}], chat, k + 1)
        return request, content, trace, None


class LogitHarvest(Campaign):
    """Distillation on token distributions: ``logprobs`` with the maximum ``top_logprobs`` (and sometimes
    ``n > 1`` samples at temperature 1) over public questions with long outputs. It never asks for reasoning
    and sends no ``reasoning_effort``: the signal is in parameters detectors do not look at."""

    curve = CURVES["app"]
    sigma = 0.6
    error_rate = 0.008

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            cloud = CLOUD[int(rng.integers(len(CLOUD)))]
            net = Network(endpoints(rng, (cloud,), 1 + int(rng.integers(0, 2))), self.actor.uas[:1],
                          fps=self.actor.fps[:1])
            acct = self.identity(rng, i, net=net, created=self.tl.start_ms - int(rng.uniform(10, 240) * DAY_MS),
                                 email=company_domain(rng) if rng.random() < 0.5 else person_domain(rng, "US"),
                                 pay=payment_fp(rng), country=str(rng.choice(_CLAIMED)),
                                 tier=str(rng.choice(["payg", "startup"])), verified=0.85)
            acct.profile = {"top": int(rng.choice([5, 10, 20, 20])), "n": int(rng.choice([1, 1, 4, 8])),
                            "max": int(rng.choice([2048, 4096, 8192]))}
            out.append(acct)
        return out

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        ev = super().day_events(day, rng)
        if ev is None:
            return None
        owner, ts, _, models = ev
        order = np.lexsort((ts, owner))
        owner, ts, models = owner[order], ts[order], models[order]
        _, _, pos = self.positions(owner, ts, day)
        return owner, ts, pos, models

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        chat = self.walk(self.corpus.pools["all"], tag)
        request: dict = {"model": model.name, "messages": [{"role": "user", "content": chat.turns[0]}],
                         "logprobs": True, "top_logprobs": p["top"], "max_tokens": min(p["max"], model.max_output)}
        alternatives = None
        if p["n"] > 1:
            request["n"] = p["n"]
            request["temperature"] = 1.0
            first = _content(chat)
            alternatives = [first[int(r.random() * 200):][:1500] for _ in range(p["n"] - 1)]
        elif r.random() < 0.5:
            request["temperature"] = pick(r, (0, 0.7, 1.0))
        content = _content(chat, 0, 1 + int(r.random() * 2))
        if alternatives:
            return request, content, None, None, alternatives
        return request, content, None, None


class AgedSleeper(Campaign):
    """Aged accounts (1-3 years) with their own verified cards and mainstream email, on residential-proxy
    exits, low volume on a human diurnal curve, multi-turn sessions: the opener is a public question from a
    capability-sweep plan, the follow-ups are generic ("go deeper", "now the edge cases")."""

    curve = CURVES["human"]
    weekend = 1.0
    sigma = 0.5
    session_len = 3.5
    gap_s = 200.0
    burst = 0.6
    error_rate = 0.004

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            country = str(rng.choice(["US", "US", "GB", "CA", "AU", "DE", "SG"]))
            ua = APP_UA[int(rng.integers(len(APP_UA)))]
            home, pool = residential(self.world.seed, rng, (ua,), sticky=1 + int(rng.integers(0, 2)))
            net = Network(home, (ua,), pool=pool, rotate=0.05)
            acct = self.identity(rng, i, net=net, created=self.tl.start_ms - int(rng.uniform(365, 1100) * DAY_MS),
                                 email=person_domain(rng, country), pay=payment_fp(rng), country=country,
                                 tier="payg", verified=1.0)
            acct.tz = TZ.get(country, 0.0) + float(rng.normal(0, 1.0))
            acct.sess = self.session_len * float(rng.lognormal(0, 0.4))
            acct.gap = self.gap_s * float(rng.lognormal(0, 0.4))
            acct.profile = {"effort": float(rng.uniform(0.2, 0.8))}
            acct.adopt_ms = self.tl.release_ms + int(rng.uniform(0.3, 4) * DAY_MS)
            out.append(acct)
        return out

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        return self.plan_tags(super().day_events(day, rng), day)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        sid, turn, last = turn_of(tag)
        prev = state.get(sid) if turn else None
        if prev is None:
            pos = self.plan_pos(tag)
            pools = (self.corpus.pool("en:code", "code"), self.corpus.pool("math", "all"), self.corpus.pool("long"),
                     self.corpus.pool("en:writing", "all"))
            chat = self.walk(pools[pos % 4], pos // 4)
            messages: list[dict] = [{"role": "user", "content": chat.turns[0]}]
            k = 0
        else:
            history, chat, k = prev
            messages = [*history, {"role": "user", "content": vary(para.deeper(r), r, typo=0.05)}]
        request: dict = {"model": model.name, "messages": messages}
        if r.random() < 0.5:
            request["stream"] = True
        if r.random() < acct.profile["effort"]:
            request["reasoning_effort"] = "high"
        if r.random() < 0.4:
            request["max_tokens"] = pick(r, (4096, 8192, 16000))
        trace = reasoning(r, topic_of(chat.turns[0]), 1000 + int(r.random() * 2000)) \
            if request.get("reasoning_effort") else None
        content = _content(chat, min(k, chat.pairs - 1), int(r.random() * 2))
        if last:
            state.pop(sid, None)
        else:
            state[sid] = ([*messages, {"role": "assistant", "content": content}], chat, k + 1)
        return request, content, trace, None


class EnterpriseFront(Campaign):
    """A front company on an enterprise contract: one org, many API keys and accounts under it, invoice
    billing, company email, cloud servers; steady volume. A quarter of the traffic is genuine product use
    (one system prompt, short answers); the rest harvests reasoning over a systematic plan of public questions."""

    curve = CURVES["app"]
    weekend = 0.9
    sigma = 0.5
    error_rate = 0.003

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        org = self.world.ident("org", self.spec.id, "contract")
        domain = company_domain(rng)
        invoice = payment_fp(rng)
        cloud = CLOUD[int(rng.integers(len(CLOUD)))]
        servers = endpoints(rng, (cloud,), 6 + n // 3, subnets=2)
        ua = SDK_UA[int(rng.integers(6))]
        made = self.tl.start_ms - int(rng.uniform(60, 400) * DAY_MS)
        brand = lx.BRANDS[int(rng.integers(len(lx.BRANDS)))]
        out = []
        for i in range(n):
            net = Network([servers[int(j)] for j in rng.integers(0, len(servers), 2)], (ua,))
            acct = self.identity(rng, i, net=net, created=made + int(rng.uniform(0, 50) * DAY_MS), email=domain,
                                 pay=invoice, country=str(rng.choice(["US", "SG", "GB", "DE"])), tier="enterprise",
                                 verified=1.0)
            acct.org_id = org
            acct.keys = tuple(self.world.ident("key", self.spec.id, i, k) for k in range(int(rng.integers(1, 5))))
            acct.profile = {"system": f"You are {brand} Assist, the internal knowledge assistant of {brand}. "
                                      "Answer employees' questions accurately.",
                            "genuine": float(rng.uniform(0.1, 0.4))}
            acct.p_new = 0.8
            out.append(acct)
        return out

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        ev = super().day_events(day, rng)
        if ev is None:
            return None
        owner, ts, _, models = ev
        order = np.lexsort((ts, owner))
        owner, ts, models = owner[order], ts[order], models[order]
        _, _, pos = self.positions(owner, ts, day)
        return owner, ts, pos, models

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        if r.random() < p["genuine"]:
            chat = pick(r, self.corpus.pool("topic:business", "nocode"))
            request = {"model": model.name, "messages": [{"role": "system", "content": p["system"]},
                                                         {"role": "user", "content": chat.turns[0]}],
                       "temperature": 0.3, "max_tokens": 1024}
            return request, chat.turns[1], None, None
        pools = (self.corpus.pool("en:code", "code"), self.corpus.pool("math", "all"), self.corpus.pool("long"))
        chat = self.walk(pools[tag % 3], tag // 3)
        system = p["system"] if r.random() < 0.5 else None
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": self.harvest_text(r, chat.turns[0])}]
        request = {"model": model.name, "messages": messages, "temperature": self.actor.temperature,
                   "max_completion_tokens": self.max_tokens(r, model),
                   "reasoning_effort": "high" if r.random() < 0.85 else "medium"}
        trace = reasoning(r, topic_of(chat.turns[0]), 1200 + int(r.random() * 2000))
        return request, _content(chat, 0, 1 + int(r.random() * 2)), trace, None


class ResellerMixed(Campaign):
    """A proxy/reseller service whose operator harvests: its accounts carry real customers' sessions (all
    topics, parameters passed through) *and* the operator's harvesting requests, on reseller infrastructure."""

    curve = CURVES["flat"]
    weekend = 0.95
    sigma = 0.6
    session_len = 1.8
    gap_s = 30.0
    error_rate = 0.006

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            home = endpoints(rng, PROXY + CLOUD, int(rng.integers(20, 61)), subnets=int(rng.integers(4, 12)))
            net = Network(home, (RESELLER_UA[int(rng.integers(len(RESELLER_UA)))],))
            acct = self.identity(rng, i, net=net, created=self.tl.start_ms - int(rng.uniform(30, 500) * DAY_MS),
                                 email=company_domain(rng), pay=payment_fp(rng),
                                 country=str(rng.choice(["SG", "HK", "US"])), tier="enterprise", verified=1.0)
            acct.keys = tuple(self.world.ident("key", self.spec.id, i, k) for k in range(int(rng.integers(5, 21))))
            acct.profile = {"harvest": float(rng.uniform(0.3, 0.6))}
            acct.p_mini = 0.2
            acct.p_new = 0.6
            out.append(acct)
        return out

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        return self.plan_tags(super().day_events(day, rng), day)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        sid, turn, last = turn_of(tag)
        key = ("h", sid)
        harvest = state.get(key) if turn else (r.random() < acct.profile["harvest"])
        if last:
            state.pop(key, None)
        else:
            state[key] = harvest
        if not harvest:
            from distillguard.simulate.populations import reseller_params
            return chat_turn(acct, tag, model, r, state, self.corpus.pools["all"], reseller_params,
                             system=pick(r, (None, None, "You are a helpful assistant.", "你是一个有用的助手。")))
        chat = self.walk(self.corpus.pools["all"], self.plan_pos(tag))
        request = {"model": model.name, "messages": [{"role": "user", "content": self.harvest_text(r, chat.turns[0])}],
                   "max_tokens": self.max_tokens(r, model), "reasoning_effort": "high"}
        if r.random() < 0.5:
            request["stream"] = True
        trace = reasoning(r, topic_of(chat.turns[0]), 1000 + int(r.random() * 2000))
        return request, _content(chat, 0, int(r.random() * 3)), trace, None


_TRAJ_TOOLS = tuple(lx.IDE_TOOLS) + ("computer",)
_TRAJ_SCHEMAS = [TOOL_SCHEMAS[t] for t in _TRAJ_TOOLS]


class AgenticTrajectory(Campaign):
    """Synthetic agent and computer-use trajectories: multi-turn tool loops (IDE client strings) whose first
    request already carries a fabricated history of tool calls and results the account never received, over
    a breadth of public coding questions, sometimes with screenshots; 24/7 and fast."""

    curve = CURVES["flat"]
    sigma = 0.5
    session_len = 8.0
    gap_s = 12.0
    error_rate = 0.01

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        made = self.tl.day_ms(self.spec.start_day) - int(rng.uniform(5, 60) * DAY_MS)
        for i in range(n):
            ua = IDE_UA[int(rng.integers(len(IDE_UA)))]
            if rng.random() < 0.5:
                home, pool = residential(self.world.seed, rng, (ua,), self.actor.fps[:1])
                net = Network(home, (ua,), pool=pool, rotate=0.3, fps=self.actor.fps[:1])
            else:
                net = Network(endpoints(rng, (CLOUD[int(rng.integers(len(CLOUD)))],), 1), (ua,), fps=self.actor.fps[:1])
            acct = self.identity(rng, i, net=net, created=made + int(rng.integers(0, 20 * 86_400)) * 1000,
                                 email=self.actor_email(rng, 0.3), pay=self.actor_card(rng, 0.5),
                                 country=str(rng.choice(_CLAIMED)), tier=str(rng.choice(["payg", "startup"])),
                                 verified=0.7)
            acct.profile = {"system": pick(random.Random(i), lx.IDE_SYSTEMS + _AGENT_SYSTEMS_MORE)}
            out.append(acct)
        return out

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        return self.plan_tags(super().day_events(day, rng), day)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        corpus = self.corpus
        pos = self.plan_pos(tag)
        pool = (self.walk(corpus.pool("en:code", "code"), pos),)

        def params(r: random.Random, request: dict) -> None:
            request["max_tokens"] = self.max_tokens(r, model)
            request["reasoning_effort"] = "high"
            request["temperature"] = self.actor.temperature

        def fabricate(r: random.Random) -> list[dict]:
            """Tool calls and results that never happened on this account."""
            f = Fill(r, module=pick(r, lx.MODULES))
            fake: list[dict] = []
            for _ in range(2 + int(r.random() * 5)):
                call = tool_call(r, pick(r, _TRAJ_TOOLS), f)
                fake.append({"role": "assistant", "content": None, "tool_calls": [call]})
                if call["function"]["name"] == "computer":
                    result: str | list = [{"type": "text", "text": "screenshot"}, image_part(r)]
                else:
                    result = code_block(r, corpus)[1]
                fake.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            return fake

        return agent_turn(acct, tag, model, r, state, corpus, pool, acct.profile["system"], _TRAJ_SCHEMAS,
                          _TRAJ_TOOLS, params, p_tool=0.8, max_loop=20, image=0.3, effort_chars=(900, 1800),
                          prefix=fabricate)


class JudgeHarvest(Campaign):
    """Preference-pair harvesting: two candidate answers to one public question, "which is better, reason
    step by step" (the public MT-bench judge prompts and variants, no 1-10 rubric), dispatched in lockstep from
    one scheduler across accounts that share two cards."""

    error_rate = 0.005

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        made = self.tl.day_ms(self.spec.start_day) - int(rng.uniform(3, 30) * DAY_MS)
        cards = [payment_fp(rng) for _ in range(2)]  # ordinary cards, shared
        subnet = endpoints(rng, CLOUD, n, subnets=2)
        uas = ("inspect_ai/0.3.58", "OpenAI/Python 1.61.0", self.actor.uas[1])
        out = []
        for i in range(n):
            ua = uas[i % len(uas)]
            net = Network([subnet[i]], (ua,))
            out.append(self.identity(rng, i, net=net, created=made + int(rng.uniform(0, 10) * DAY_MS),
                                     email=company_domain(rng) if i % 3 else person_domain(rng, "US"),
                                     pay=cards[i % 2], country=str(rng.choice(_CLAIMED[:4])),
                                     tier=str(rng.choice(["research", "payg", "startup"])), verified=0.8))
        return out

    day_events = CotRubric.day_events

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        pool = self.corpus.pools["multi"] if "multi" in self.corpus.pools else self.corpus.pools["all"]
        chat = self.walk(pool, tag)
        a, b = chat.turns[1][:3000], (chat.turns[3] if chat.pairs > 1 else chat.turns[1][: len(chat.turns[1]) // 2])
        if tag % 2:
            a, b = b[:3000], a
        template = pick(r, para.JUDGE_PAIR + _PAIR_MORE)
        text = template.format(q=chat.turns[0][:2500], a=a, b=b[:3000])
        request = {"model": model.name, "messages": [{"role": "user", "content": text}],
                   "temperature": 0 if r.random() < 0.7 else self.actor.temperature,
                   "max_tokens": self.max_tokens(r, model),
                   "reasoning_effort": "high" if r.random() < 0.7 else "medium"}
        trace = reasoning(r, topic_of(chat.turns[0]), 900 + int(r.random() * 1500), "Let me compare the two answers.")
        return request, para.judge_output(r, True, 4), trace, None


_PAIR_MORE = (
    "Compare answer A and answer B to the question below. Think step by step about which one is more accurate "
    "and helpful, then state your preference.\n\nQuestion: {q}\n\nA: {a}\n\nB: {b}",
    "请比较下面两个回答，逐步分析哪个更好，并说明理由。\n\n问题：{q}\n\n回答A：{a}\n\n回答B：{b}",
    "Vergleiche die beiden Antworten und begründe Schritt für Schritt, welche besser ist.\n\nFrage: {q}\n\n"
    "Antwort A: {a}\n\nAntwort B: {b}",
)


CAMPAIGNS: dict[str, type[Campaign]] = {
    "hydra_agentic": Hydra, "capability_sweep": CapabilitySweep, "cot_rubric": CotRubric,
    "multilingual_cot": MultilingualCot, "low_and_slow": LowAndSlow, "logit_harvest": LogitHarvest,
    "aged_sleeper": AgedSleeper, "enterprise_front": EnterpriseFront, "reseller_mixed": ResellerMixed,
    "agentic_trajectory": AgenticTrajectory, "judge_harvest": JudgeHarvest,
}
