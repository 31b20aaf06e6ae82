"""Benign populations: the false-positive traps every detector must survive.

Each mimics one legitimate pattern that *looks* like distillation on a single axis: app backends
(one system prompt, huge volume), batch jobs (templated, max tokens, machine pacing), eval runners
(systematic subject sweeps with chain-of-thought, instant pivot to a new model), campuses
(many accounts behind one NAT), company teams (shared payment), resellers (proxy ASNs, many IPs).
"""

from __future__ import annotations

import random

import numpy as np
import orjson

from distillguard.simulate import lexicon as lx
from distillguard.simulate import prompts
from distillguard.simulate.accounts import (
    CURVES,
    Account,
    Events,
    Population,
    Reply,
    remember,
    runs,
    turn_of,
)
from distillguard.simulate.config import DAY_MS, MINI, NEW, OLD, Model
from distillguard.simulate.infra import (
    APP_UA,
    CLOUD,
    EDU,
    IDE_UA,
    ISP,
    PROXY,
    RESELLER_UA,
    SDK_UA,
    TZ,
    WORDS,
    Network,
    company_domain,
    created_before,
    endpoints,
    payment_fp,
    person_domain,
    pick_isp,
)
from distillguard.simulate.text import (
    TOOL_SCHEMAS,
    Fill,
    code_answer,
    document,
    image_part,
    mc_question,
    pick,
    reasoning,
    tool_call,
    vary,
)


def _choice(rng: np.random.Generator, seq: tuple | list):
    return seq[int(rng.integers(len(seq)))]


class _Base(Population):
    """Identity helpers common to benign populations."""

    def account(self, rng: np.random.Generator, i: int, *, net: Network, country: str, tier: str,
                email: str | None = None, org: str | None = None, pay: str | None = "card", n_keys: int = 1,
                created: int | None = None, verified: float = 0.92) -> Account:
        start = self.tl.start_ms
        return Account(
            account_id=self.world.ident("acct", self.name, i),
            behaviour=self,
            created_at=created if created is not None else created_before(rng, start, 3, 900),
            email_domain=email or person_domain(rng, country),
            payment_fp=payment_fp(rng) if pay == "card" else pay,
            country=country,
            signup_ip=net.home[0].ip,
            org_id=org or self.world.ident("org", self.name, i),
            tier=tier,
            verified=bool(rng.random() < verified),
            net=net,
            keys=tuple(self.world.ident("key", self.name, i, k) for k in range(n_keys)),
            tz=TZ.get(country, 0.0),
        )


def _chat(acct: Account, tag: int, model: Model, r: random.Random, state: dict, first, system: str | None,
          n_chars: tuple[int, int], params, image: float = 0.0) -> Reply:
    """One turn of a multi-turn chat: open with ``first(r)``, continue with follow-ups, keep history.

    With probability ``image`` the opening message carries a picture (screenshots, photos of homework):
    image inputs are not an attack signal on their own."""
    sid, turn, _ = turn_of(tag)
    prev = state.get(sid) if turn else None
    if prev is None:
        prompt = first(r)
        history = [{"role": "system", "content": system}] if system else []
        user: str | list = prompt[0]
        if image and r.random() < image:
            user = [{"type": "text", "text": prompt[0]}, image_part(r)]
    else:
        history, prompt = prev
        user = prompts.followup(r, prompt)
    messages = [*history, {"role": "user", "content": user}]
    request: dict = {"model": model.name, "messages": messages}
    params(r, request)
    content = prompts.respond(r, prompt, n_chars[0] + int(r.random() * n_chars[1]))
    trace = None
    if request.get("reasoning_effort"):
        trace = reasoning(r, prompt[1], 300 + int(r.random() * 900))
    remember(state, tag, messages, {"role": "assistant", "content": content}, prompt)
    return request, content, trace, None


def _human_params(r: random.Random, request: dict) -> None:
    prompts.sampling(r, request)
    if r.random() < 0.1:
        request["reasoning_effort"] = pick(r, ("low", "medium"))


class Casual(_Base):
    """Individuals chatting from home: diurnal in their own timezone, short varied sessions."""

    name = "casual"
    weekend = 1.15
    sigma = 1.3
    session_len = 2.5
    gap_s = 90.0
    adopt_days = 4.0

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            isp = pick_isp(rng)
            home = endpoints(rng, (isp,), 1 + int(rng.integers(0, 2))) + endpoints(rng, ISP, int(rng.integers(0, 2)))
            uas = tuple(_choice(rng, APP_UA) for _ in range(1 + int(rng.integers(0, 2))))
            free = rng.random() < 0.6
            created = None
            if rng.random() < 0.1:  # new sign-ups during the span
                created = self.tl.start_ms + int(rng.uniform(0, self.tl.days - 3) * DAY_MS)
            acct = self.account(rng, i, net=Network(home, uas), country=isp[1], tier="free" if free else "payg",
                                pay=None if free and rng.random() < 0.7 else "card", created=created)
            if isp[1] in lx.LANGUAGE_OF:
                acct.profile["lang"] = lx.LANGUAGE_OF[isp[1]]
            acct.p_mini = 0.2
            acct.p_new = 0.85
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        lang = acct.profile.get("lang")
        first = (lambda r: prompts.local(r, lang)) if lang and r.random() < 0.5 else prompts.casual
        return _chat(acct, tag, model, r, state, first, "You are a helpful assistant." if r.random() < 0.3 else None,
                     (150, 700), _human_params, image=0.03)


class AppBackend(_Base):
    """A product's server: one system prompt for all its end users, steady volume, a few server IPs."""

    name = "app_backend"
    curve = CURVES["app"]
    weekend = 0.9
    session_len = 1.4
    gap_s = 40.0
    adopt_days = 10.0
    error_rate = 0.003

    def weights(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.pareto(1.1, n) + 1  # a couple of very large customers

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            kind = _choice(rng, tuple(lx.APPS))
            brand = _choice(rng, lx.BRANDS)
            goods, item = _choice(rng, lx.GOODS)
            cloud = _choice(rng, CLOUD)
            net = Network(endpoints(rng, (cloud,), 2 + int(rng.integers(0, 3)), subnets=1), (_choice(rng, SDK_UA),))
            country = _choice(rng, ("US", "GB", "DE", "SG", "IN", "BR", "JP", "FR"))
            acct = self.account(rng, i, net=net, country=country, email=company_domain(rng),
                                tier=_choice(rng, ("startup", "enterprise", "payg")), n_keys=2, verified=1.0)
            system, questions = lx.APPS[kind]
            topic = {"shop": item, "travel": "your trip", "tutor": "that grammar point", "fitness": "your training",
                     "legal": "your tenancy"}[kind]
            acct.profile = {"system": system.format(brand=brand, goods=goods), "questions": questions, "topic": topic,
                            "slots": {"brand": brand, "goods_item": item}, "temperature": _choice(rng, (0.2, 0.3, 0.5)),
                            "max_tokens": _choice(rng, (400, 512, 800, 1024))}
            acct.p_mini = _choice(rng, (0.0, 0.5, 0.9))
            acct.p_new = 0.7
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile

        def first(r: random.Random) -> prompts.Prompt:
            f = Fill(r, order=f"#{int(r.random() * 900000) + 100000}", **p["slots"])
            return vary(pick(r, p["questions"]).format_map(f), r, typo=0.1), p["topic"], "app"

        def params(r: random.Random, request: dict) -> None:
            request["temperature"] = p["temperature"]
            request["max_tokens"] = p["max_tokens"]

        return _chat(acct, tag, model, r, state, first, p["system"], (120, 450), params)


class BatchJob(_Base):
    """A nightly enterprise job: one templated task over many documents, fixed parameters, max tokens."""

    name = "batch_job"
    weekend = 0.3
    sigma = 0.8
    adopt_days = 12.0
    error_rate = 0.002

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            cloud = _choice(rng, CLOUD)
            net = Network(endpoints(rng, (cloud,), 1 + int(rng.integers(0, 2)), subnets=1), (_choice(rng, SDK_UA[:8]),))
            country = _choice(rng, ("US", "DE", "GB", "FR", "NL", "JP"))
            acct = self.account(rng, i, net=net, country=country, email=company_domain(rng), tier="enterprise",
                                n_keys=1, verified=1.0)
            task, template = _choice(rng, lx.BATCH_TASKS)
            doc_kind = _choice(rng, lx.SLOTS["doc_kind"])
            acct.profile = {"task": task, "template": template.replace("{doc_kind}", doc_kind),
                            "gap": float(rng.uniform(0.3, 3.0)), "json": task in ("classify", "extract"),
                            "doc_first": bool(rng.random() < 0.3)}
            acct.p_mini = _choice(rng, (0.0, 0.0, 1.0))
            acct.p_new = 1.0
            out.append(acct)
        return out

    def finalise(self, rng: np.random.Generator, accounts: list[Account], budget: float) -> None:
        super().finalise(rng, accounts, budget)
        self.gaps = np.array([a.profile["gap"] for a in accounts])

    def times(self, owner: np.ndarray, day: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One machine-paced run per account, starting in the 01:00-05:00 local window."""

        def place(first: np.ndarray, span: np.ndarray) -> np.ndarray:
            lo = ((1 - self.tz[owner[first]]) % 24) * 3600
            return lo + rng.random(first.size) * np.maximum(4 * 3600 - span, 0)

        gaps = self.gaps[owner] * (0.85 + 0.3 * rng.random(owner.size))
        sec, _ = runs(rng, owner, 0.0, gaps, place, max_len=1 << 30)
        return sec % 86_400, np.zeros(owner.size, np.int64)

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        doc = document(r, 3 + int(r.random() * 6))
        text = f"{doc}\n\n{p['template'].strip()}" if p["doc_first"] else p["template"] + doc
        request: dict = {"model": model.name, "messages": [{"role": "user", "content": text}],
                         "temperature": 0, "max_tokens": model.max_output}
        task = p["task"]
        if p["json"]:
            request["response_format"] = {"type": "json_object"}
        if task == "classify":
            content = orjson.dumps({"label": pick(r, ("billing", "technical", "account", "sales", "other")),
                                    "confidence": round(0.5 + r.random() / 2, 2)}).decode()
        elif task == "extract":
            content = orjson.dumps({"invoice_number": f"INV-{int(r.random() * 90000) + 10000}",
                                    "invoice_date": "2026-02-1" + str(int(r.random() * 9)),
                                    "vendor": pick(r, lx.VENDORS), "total_amount": round(r.random() * 9000, 2),
                                    "currency": pick(r, ("EUR", "USD", "GBP"))}).decode()
        elif task == "sentiment":
            content = pick(r, ("-2", "-1", "0", "1", "2"))
        else:
            content = "\n".join("- " + s for s in doc.split(". ")[:3])
        return request, content, None, None


class EvalRunner(_Base):
    """A research team's benchmark harness: subject sweeps at temperature 0 with chain-of-thought
    prompts, re-run on a new model within a day of its release (looks like a capability sweep)."""

    name = "eval_runner"
    sigma = 0.6
    error_rate = 0.002

    def factors(self, acct: Account, rng: np.random.Generator) -> np.ndarray:
        f = np.zeros(self.tl.days)
        days = acct.profile["sweep_days"]
        for d in range(self.tl.days):
            if self.tl.weekday(d) in days:
                f[d] = 1.0
        f[self.tl.release_day - 1] = 1.5  # the re-run on the new model
        return f

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            table = EDU if rng.random() < 0.5 else CLOUD
            row = _choice(rng, table)
            uas = (_choice(rng, ("lm_eval/0.4.7 OpenAI/Python 1.59.7", "inspect_ai/0.3.58", "helm/0.5.4",
                                 "OpenAI/Python 1.61.0")),)
            net = Network(endpoints(rng, (row,), 1 + int(rng.integers(0, 2)), subnets=1), uas)
            acct = self.account(rng, i, net=net, country=row[1], email=f"{_choice(rng, WORDS)}-lab.org",
                                tier="research", verified=1.0)
            acct.profile = {"sweep_days": tuple(int(d) for d in rng.choice(5, 2, replace=False)),
                            "prefix": _choice(rng, lx.EVAL_PREFIXES), "gap": float(rng.uniform(0.4, 3.0)),
                            "effort": rng.random() < 0.3, "max_tokens": _choice(rng, (2048, 4096, 8192))}
            out.append(acct)
        return out

    def day_events(self, day: int, rng: np.random.Generator) -> Events | None:
        """Each sweeping account runs its items back to back; on release day, on the new model."""
        counts = rng.poisson(self.rates[:, day])
        day_ms = self.tl.day_ms(day)
        release_day = day == self.tl.release_day - 1
        parts = []
        for i in np.flatnonzero(counts):
            n, acct = int(counts[i]), self.accounts[i]
            if release_day:
                start = (self.tl.release_ms - day_ms) / 1000 + rng.uniform(1, 5) * 3600
                gap = min(acct.profile["gap"], (86_399 - start) / n)
                model = NEW
            else:
                start = ((rng.uniform(9, 19) - acct.tz) % 24) * 3600
                gap = acct.profile["gap"]
                if day_ms >= self.tl.release_ms:
                    model = NEW if rng.random() < 0.6 else OLD
                else:
                    model = MINI if rng.random() < 0.2 else OLD
            sec = (start + np.cumsum(gap * (0.8 + 0.4 * rng.random(n)))) % 86_400
            parts.append((np.full(n, i), day_ms + (sec * 1000).astype(np.int64), np.arange(n), model))
        if not parts:
            return None
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]).astype(np.int64),
                np.concatenate([np.full(p[0].size, p[3], np.int8) for p in parts]))

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        subject = lx.BENCH_SUBJECTS[(tag // 25) % len(lx.BENCH_SUBJECTS)]
        text = p["prefix"].replace("{bench}", subject.replace("_", " ")) + "\n\n" + mc_question(r, subject, tag)
        request: dict = {"model": model.name, "messages": [{"role": "user", "content": text}], "temperature": 0,
                         "max_tokens": p["max_tokens"], "seed": 1234}
        trace = None
        if p["effort"]:
            request["reasoning_effort"] = "high"
            trace = reasoning(r, subject.replace("_", " "), 600 + int(r.random() * 1400))
        content = reasoning(r, subject.replace("_", " "), 250 + int(r.random() * 700), "Let's think step by step.") \
            + f"\nAnswer: {pick(r, 'ABCD')}"
        return request, content, trace, None


_IDE_SCHEMAS = [TOOL_SCHEMAS[t] for t in lx.IDE_TOOLS]


class CodingAgent(_Base):
    """An IDE agent: long tool-using sessions where each turn carries the previous tool results."""

    name = "coding_agent"
    curve = CURVES["work"]
    weekend = 0.35
    session_len = 9.0
    gap_s = 25.0
    adopt_days = 2.0

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            isp = pick_isp(rng) if rng.random() < 0.7 else _choice(rng, CLOUD)
            net = Network(endpoints(rng, (isp,), 1 + int(rng.integers(0, 2))), (_choice(rng, IDE_UA),))
            acct = self.account(rng, i, net=net, country=isp[1], tier=_choice(rng, ("payg", "payg", "startup")))
            acct.profile = {"system": _choice(rng, lx.IDE_SYSTEMS), "lang": _choice(rng, lx.SLOTS["lang"][:8]),
                            "project": _choice(rng, lx.SLOTS["project"]), "temperature": _choice(rng, (0, 0.2, 0.6))}
            acct.p_new = 0.95
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        sid, turn, _ = turn_of(tag)
        prev = state.get(sid) if turn else None
        f = Fill(r, lang=p["lang"], project=p["project"], module=pick(r, lx.MODULES))
        if prev is None:
            task = vary(pick(r, lx.AGENT_TASKS).format_map(f), r, typo=0.05, polite=0.1)
            messages = [{"role": "system", "content": p["system"]}, {"role": "user", "content": task}]
            topic = f["codetask"] if "codetask" in f else task[:60]
        else:
            history, topic = prev
            calls = history[-1].get("tool_calls")
            if calls:
                follow = [{"role": "tool", "tool_call_id": c["id"], "content": pick(r, lx.TOOL_RESULTS).format_map(f)}
                          for c in calls]
            else:
                follow = [{"role": "user", "content": prompts.followup(r, ("", "", "chat"))}]
            messages = [*history, *follow]
        request: dict = {"model": model.name, "messages": messages,
                         "tools": _IDE_SCHEMAS, "temperature": p["temperature"],
                         "max_tokens": 8192, "stream": True}
        if r.random() < 0.75 and turn < 30:
            calls = [tool_call(r, pick(r, lx.IDE_TOOLS), f)]
            content = pick(r, (None, "Let me look at the relevant files first.", "I'll run the tests to see "
                                                                                   "what fails."))
            reply = {"role": "assistant", "content": content, "tool_calls": calls}
        else:
            calls = None
            content = code_answer(r, p["lang"], topic, 150 + int(r.random() * 500))
            reply = {"role": "assistant", "content": content}
        remember(state, tag, messages, reply, topic)
        return request, content, None, calls


class Campus(_Base):
    """Students: many edu accounts behind a few NAT addresses sharing one email domain."""

    name = "campus"
    curve = CURVES["student"]
    weekend = 0.7
    session_len = 2.0
    gap_s = 120.0
    adopt_days = 6.0

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out: list[Account] = []
        while len(out) < n:
            size = min(n - len(out), int(rng.integers(8, 41)))
            row = _choice(rng, EDU)
            nat = endpoints(rng, (row,), 1 + int(rng.integers(0, 3)), subnets=1)
            word = _choice(rng, WORDS)
            domain = {"GB": f"{word}.ac.uk", "CN": f"stu.{word}.edu.cn", "JP": f"{word}.ac.jp",
                      "AU": f"student.{word}.edu.au"}.get(row[1], f"{word}-university.edu")
            for _ in range(size):
                uas = (_choice(rng, APP_UA),)
                acct = self.account(rng, len(out), net=Network(nat, uas), country=row[1], email=domain, tier="edu",
                                    pay=None if rng.random() < 0.8 else "card", verified=1.0,
                                    created=created_before(rng, self.tl.start_ms, 3, 400))
                acct.p_mini = 0.3
                out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        return _chat(acct, tag, model, r, state, prompts.student, None, (150, 650), _human_params, image=0.04)


class CompanyTeam(_Base):
    """Colleagues: several accounts on one org, one payment method and one office range."""

    name = "company_team"
    curve = CURVES["work"]
    weekend = 0.1
    sigma = 0.9
    session_len = 1.6
    gap_s = 60.0

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out: list[Account] = []
        team = 0
        while len(out) < n:
            size = min(n - len(out), int(rng.integers(3, 11)))
            office = pick_isp(rng)
            nat = endpoints(rng, (office,), 2 + int(rng.integers(0, 5)), subnets=1)
            org = self.world.ident("org", self.name, "team", team)
            domain = company_domain(rng)
            card = payment_fp(rng)
            tier = _choice(rng, ("startup", "enterprise"))
            for _ in range(size):
                uas = (_choice(rng, SDK_UA), _choice(rng, APP_UA))
                acct = self.account(rng, len(out), net=Network(nat, uas), country=office[1], email=domain, org=org,
                                    pay=card, tier=tier, verified=1.0)
                out.append(acct)
            team += 1
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        return _chat(acct, tag, model, r, state, prompts.work, None, (200, 800), _human_params, image=0.03)


class Reseller(_Base):
    """A legitimate API reseller: many end users, many IPs across hosting/proxy ASNs, all topics, 24/7."""

    name = "reseller"
    curve = CURVES["flat"]
    weekend = 0.95
    sigma = 0.7
    session_len = 1.3
    gap_s = 30.0
    adopt_days = 0.5

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            home = endpoints(rng, PROXY + CLOUD, int(rng.integers(20, 61)), subnets=int(rng.integers(4, 12)))
            net = Network(home, (_choice(rng, RESELLER_UA),))
            acct = self.account(rng, i, net=net, country=_choice(rng, ("SG", "HK", "US", "DE", "GB")),
                                email=company_domain(rng), tier=_choice(rng, ("enterprise", "payg")),
                                n_keys=int(rng.integers(5, 21)), verified=1.0)
            acct.p_mini = 0.25
            acct.p_new = 0.5
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        system = pick(r, (None, None, "You are a helpful assistant.", "你是一个有用的助手。", "Answer concisely."))
        return _chat(acct, tag, model, r, state, prompts.mixed, system, (150, 900), _reseller_params, image=0.03)


def _reseller_params(r: random.Random, request: dict) -> None:
    prompts.sampling(r, request, high_tokens=0.3)
    if r.random() < 0.2:
        request["reasoning_effort"] = pick(r, ("low", "medium", "high"))


BENIGN = {cls.name: cls for cls in (Casual, AppBackend, BatchJob, EvalRunner, CodingAgent, Campus, CompanyTeam,
                                     Reseller)}
