"""Benign populations: the false-positive traps every detector must survive.

Every benign user turn is real: sessions replay odd-half ShareGPT conversations (simulate/corpus.py,
simulate/sessions.py). Each population mimics one legitimate pattern that *looks* like distillation on
some axis: power users (reasoning_effort high, long answers), proxy users (the residential-proxy exits
attackers rent), app backends (one system prompt, huge volume), batch jobs (templated, max tokens,
machine pacing, JSON mode), eval runners (chain-of-thought and LLM-as-judge sweeps, logprobs, instant
pivot to a new model), coding agents ("reason step by step before editing", long tool loops), campuses
(many accounts behind one NAT), company teams (shared payment), resellers (proxy ASNs, many IPs and keys)
and ranking apps (``n > 1`` and ``logprobs`` with short outputs). Behaviour varies per account: session
length, pace, chronotype, day-to-day activity, client and parameter habits.
"""

from __future__ import annotations

import random
import re

import numpy as np
import orjson

from distillguard.simulate import lexicon as lx
from distillguard.simulate import paraphrase as para
from distillguard.simulate import prompts
from distillguard.simulate.accounts import CURVES, Account, Events, Population, Reply, World, runs
from distillguard.simulate.config import DAY_MS, MINI, NEW, OLD, Model
from distillguard.simulate.corpus import TOPICS, Chat, Corpus, load
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
    residential,
    vpn,
)
from distillguard.simulate.sessions import agent_turn, chat_turn, noisy, topic_of
from distillguard.simulate.text import (
    MATH_KINDS,
    TOOL_SCHEMAS,
    Fill,
    answer,
    math_problem,
    mc_question,
    pick,
    reasoning,
    vary,
)


def _choice(rng: np.random.Generator, seq: tuple | list):
    return seq[int(rng.integers(len(seq)))]


def _mix(rng: np.random.Generator, corpus: Corpus, weights: dict[tuple[str, ...], float]) -> tuple:
    """Per-account pool mix: (cumulative weights, pools), each weight jittered so accounts differ."""
    pools = [corpus.pool(*names) for names in weights]
    w = np.array(list(weights.values())) * rng.lognormal(0, 0.5, len(weights))
    return tuple(np.cumsum(w / w.sum()).tolist()), tuple(pools)


def _draw(r: random.Random, mix: tuple) -> tuple[Chat, ...]:
    cum, pools = mix
    u = r.random()
    for c, pool in zip(cum, pools, strict=True):
        if u < c:
            return pool
    return pools[-1]


class _Base(Population):
    """Identity helpers and per-account behaviour common to benign populations."""

    human = True  # chronotype shift and per-account session habits

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.corpus = load(world.corpus)

    def account(self, rng: np.random.Generator, i: int, *, net: Network, country: str, tier: str,
                email: str | None = None, org: str | None = None, pay: str | None = "card", n_keys: int = 1,
                created: int | None = None, verified: float = 0.92) -> Account:
        start = self.tl.start_ms
        acct = Account(
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
        if self.human:
            acct.tz += float(np.clip(rng.normal(0, 1.2), -4, 4))  # early birds and night owls
            acct.sess = self.session_len * float(rng.lognormal(0, 0.5)) if self.session_len > 1 else 0.0
            acct.gap = self.gap_s * float(rng.lognormal(0, 0.5))
        acct.profile["habit"] = _habit(rng)
        return acct


def _habit(rng: np.random.Generator) -> tuple[float, float | None, float, float]:
    """A client's parameter habits: stream share, its usual temperature (None = SDK default), how often the
    user sets max_tokens, and how often a large one."""
    return (float(rng.choice([0.0, 0.5, 0.9, 1.0])), _choice(rng, (None, None, 0.7, 1.0, 0.5, 0.2, 0.9)),
            float(rng.uniform(0.05, 0.6)), float(rng.choice([0.02, 0.05, 0.15, 0.3])))


def _params(acct: Account, r: random.Random, request: dict, effort: float = 0.08) -> None:
    stream, temperature, p_max, p_big = acct.profile["habit"]
    if temperature is not None:
        request["temperature"] = temperature if r.random() < 0.85 else pick(r, (0.2, 0.7, 1.0, 1.2))
    u = r.random()
    if u < p_big:
        request["max_tokens"] = pick(r, (8192, 16000, 16384))
    elif u < p_max:
        request["max_tokens"] = pick(r, (256, 512, 1000, 1024, 2048, 4096))
    if r.random() < stream:
        request["stream"] = True
    if r.random() < 0.06:
        request["top_p"] = pick(r, (0.9, 0.95, 1.0))
    if r.random() < effort:
        request["reasoning_effort"] = pick(r, ("low", "medium", "medium", "high"))


def _human_net(rng: np.random.Generator, seed: int, uas: tuple[str, ...], p_vpn: float,
               p_resi: float) -> tuple[Network, str]:
    """Home ISP addresses, or a VPN's hosting exits, or a residential-proxy service's exits."""
    isp = pick_isp(rng)
    u = rng.random()
    if u < p_vpn:
        return Network(vpn(rng, 1 + int(rng.integers(0, 3))), uas), isp[1]
    if u < p_vpn + p_resi:
        home, pool = residential(seed, rng, uas)
        return Network(home, uas, pool=pool, rotate=float(rng.uniform(0.2, 0.9))), isp[1]
    home = endpoints(rng, (isp,), 1 + int(rng.integers(0, 2))) + endpoints(rng, ISP, int(rng.integers(0, 2)))
    return Network(home, uas), isp[1]


class Casual(_Base):
    """Individuals chatting from home: diurnal in their own timezone, real conversations, some on VPNs or
    residential proxies, a heavy tail of power users."""

    name = "casual"
    weekend = 1.15
    sigma = 1.4
    session_len = 2.6
    gap_s = 90.0
    adopt_days = 4.0
    burst = 0.5

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out: list[Account] = []
        for i in range(n):
            uas = tuple(_choice(rng, APP_UA) for _ in range(1 + int(rng.integers(0, 2))))
            net, country = _human_net(rng, self.world.seed, uas, 0.08, 0.04)
            free = rng.random() < 0.6
            created = None
            if rng.random() < 0.1:  # new sign-ups during the span
                created = self.tl.start_ms + int(rng.uniform(0, self.tl.days - 3) * DAY_MS)
            acct = self.account(rng, i, net=net, country=country, tier="free" if free else "payg",
                                pay=None if free and rng.random() < 0.7 else "card", created=created)
            lang = lx.LANGUAGE_OF.get(country, "en")
            acct.profile["mix"] = _mix(rng, self.corpus, {("lang:" + lang, "nocode"): 0.6 if lang != "en" else 0.0,
                                                          ("nocode",): 1.0, ("code",): 0.15, ("long", "all"): 0.1})
            acct.profile["effort"] = float(rng.choice([0.0, 0.03, 0.1, 0.3]))
            acct.p_mini = float(rng.uniform(0, 0.4))
            acct.p_new = 0.85
            # households: one card paying for two (every 33rd account) or three people's accounts (every 100th),
            # each on their own mailbox -- the shared payment signal's ordinary look-alike (no random draw, so the
            # rest of the population is unchanged)
            for size, every in ((3, 100), (2, 33)):
                if i % every == size - 1 and all(a.payment_fp for a in (*out[i - size + 1:], acct)):
                    acct.payment_fp = out[i - size + 1].payment_fp
                    for a in out[i - size + 2:]:
                        a.payment_fp = acct.payment_fp
                    break
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        return chat_turn(acct, tag, model, r, state, _draw(r, p["mix"]),
                         lambda r, q: _params(acct, r, q, p["effort"]),
                         system="You are a helpful assistant." if r.random() < 0.2 else None, image=0.03)


_POWER_SYSTEMS = (
    None, None, "Think step by step and be thorough.", "You are an expert assistant. Give detailed, rigorous answers "
    "and explain your reasoning.", "Always reason carefully before answering. Prefer depth over brevity.",
    "Answer like a senior researcher: precise, complete, with citations where possible.",
)


class PowerUser(_Base):
    """Researchers, analysts and enthusiasts: long sessions, long detailed answers, step-by-step reasoning,
    ``reasoning_effort: high`` and large ``max_tokens``: legitimately what harvesters ask for."""

    name = "power_user"
    weekend = 0.9
    sigma = 1.0
    session_len = 4.0
    gap_s = 150.0
    adopt_days = 1.0
    burst = 0.8

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            uas = (_choice(rng, APP_UA + SDK_UA[:6]),)
            net, country = _human_net(rng, self.world.seed, uas, 0.1, 0.02)
            if rng.random() < 0.2:  # scripts on a cloud box
                net = Network(endpoints(rng, (_choice(rng, CLOUD),), 1), uas)
            acct = self.account(rng, i, net=net, country=country, tier=_choice(rng, ("payg", "payg", "research",
                                                                                     "startup")),
                                created=created_before(rng, self.tl.start_ms, 30, 1100))
            acct.profile.update({
                "mix": _mix(rng, self.corpus, {("long",): 1.0, ("math", "all"): 0.3, ("code",): 0.5,
                                               ("en:writing",): 0.2}),
                "system": _choice(rng, _POWER_SYSTEMS), "effort": float(rng.uniform(0.3, 0.95)),
                "ask": float(rng.uniform(0.0, 0.5)), "max": _choice(rng, (16384, 32768, 32000, 64000, 8192)),
            })
            acct.p_new = 0.95
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile

        def params(r: random.Random, request: dict) -> None:
            _params(acct, r, request, 0.0)
            if r.random() < p["effort"]:
                request["reasoning_effort"] = "high" if r.random() < 0.75 else "medium"
            if r.random() < 0.6:
                request["max_completion_tokens"] = min(p["max"], model.max_output)
                request.pop("max_tokens", None)

        def wrap(r: random.Random, text: str) -> str:
            return f"{text}\n\n{para.reason_ask(r)}" if r.random() < p["ask"] else text

        return chat_turn(acct, tag, model, r, state, _draw(r, p["mix"]), params, system=p["system"], wrap=wrap,
                         longer=0.35, effort_chars=(900, 2600))


class ProxyUser(_Base):
    """Customers who reach the API through the same residential-proxy services attackers rent: people in
    regions the provider does not serve, privacy-minded users, small teams behind a proxy subscription."""

    name = "proxy_user"
    weekend = 1.0
    sigma = 1.1
    session_len = 2.4
    gap_s = 100.0
    adopt_days = 3.0
    burst = 0.6

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            uas = (_choice(rng, APP_UA + SDK_UA[:4]),)
            home, pool = residential(self.world.seed, rng, uas, sticky=1 + int(rng.integers(0, 3)))
            net = Network(home, uas, pool=pool, rotate=float(rng.uniform(0.1, 1.0)))
            really = _choice(rng, ("CN", "CN", "RU", "VN", "TR", "IN", "US", "DE", "BR", "KR"))
            acct = self.account(rng, i, net=net, country=home[0].country, tier=_choice(rng, ("free", "payg", "payg")),
                                email=person_domain(rng, really), pay=_choice(rng, ("card", "card", None)))
            acct.tz = TZ.get(really, 0.0) + float(rng.normal(0, 1.0))
            lang = lx.LANGUAGE_OF.get(really, "en")
            acct.profile["mix"] = _mix(rng, self.corpus, {("lang:" + lang, "all"): 0.5 if lang != "en" else 0.0,
                                                          ("all",): 1.0, ("code",): 0.3})
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        return chat_turn(acct, tag, model, r, state, _draw(r, acct.profile["mix"]),
                         lambda r, q: _params(acct, r, q, 0.1), image=0.02)


# One fixed system prompt per product; the user slot carries real questions from the matching topic pool.
APP_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "writing": ("You are {brand} Write, an AI writing assistant embedded in a document editor. Help users draft, "
                "rewrite and polish text. Match the user's language and keep their voice.", ("en:writing",)),
    "study": ("You are {brand} Tutor, a study helper for students. Explain concepts clearly, check understanding, "
              "and do not simply hand over answers to graded work.", ("topic:learning", "math")),
    "travel": ("You are {brand}, a friendly travel planning assistant inside a mobile app. Suggest itineraries, "
               "keep answers under 200 words, and always mention local transport options.", ("topic:travel",)),
    "health": ("You are {brand} Coach. Give safe, evidence-based fitness and nutrition guidance. You are not a "
               "doctor; recommend professional advice for injuries.", ("topic:health",)),
    "business": ("You are {brand} Copilot, an assistant for small-business owners: marketing copy, customer "
                 "emails, pricing and planning. Be practical and concise.", ("topic:business",)),
    "legal": ("You are {brand}, an assistant that explains rules and contracts in plain language. You do not give "
              "legal advice; summarise rights and suggest contacting a local advice centre.", ("topic:legal",)),
    "general": ("You are {brand}, a friendly general-purpose assistant in a mobile app. Answer helpfully and format "
                "with short paragraphs and lists.", ("nocode",)),
    "dev": ("You are {brand} DevHelp, the assistant in a developer documentation portal. Answer programming "
            "questions with short, correct code examples.", ("code",)),
    "zh_general": ("你是{brand}智能助手，请用简洁、友好的语言回答用户的问题。", ("lang:zh", "all")),
}


class AppBackend(_Base):
    """A product's server: one system prompt for all its end users, steady volume, a few server IPs."""

    name = "app_backend"
    human = False
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
            kind = _choice(rng, tuple(APP_KINDS))
            brand = _choice(rng, lx.BRANDS)
            cloud = _choice(rng, CLOUD)
            net = Network(endpoints(rng, (cloud,), 2 + int(rng.integers(0, 3)), subnets=1), (_choice(rng, SDK_UA),))
            country = _choice(rng, ("US", "GB", "DE", "SG", "IN", "BR", "JP", "FR"))
            acct = self.account(rng, i, net=net, country=country, email=company_domain(rng),
                                tier=_choice(rng, ("startup", "enterprise", "payg")), n_keys=2, verified=1.0)
            system, pools = APP_KINDS[kind]
            acct.sess = float(rng.choice([1.0, 1.3, 2.0, 3.5]))
            acct.profile.update({"system": system.format(brand=brand), "pool": self.corpus.pool(*pools, "all"),
                                 "temperature": _choice(rng, (0.2, 0.3, 0.5, 0.7, None)),
                                 "max_tokens": _choice(rng, (400, 512, 800, 1024, 2048, None)),
                                 "stream": bool(rng.random() < 0.6)})
            acct.p_mini = _choice(rng, (0.0, 0.5, 0.9))
            acct.p_new = 0.7
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile

        def params(r: random.Random, request: dict) -> None:
            if p["temperature"] is not None:
                request["temperature"] = p["temperature"]
            if p["max_tokens"]:
                request["max_tokens"] = p["max_tokens"]
            if p["stream"]:
                request["stream"] = True
            request["user"] = f"u{int(r.random() * 50_000)}"

        return chat_turn(acct, tag, model, r, state, p["pool"], params, system=p["system"], noise=0.3)


# Nightly jobs: (task, instruction, JSON mode, long output).
BATCH = (
    ("summarize", "Summarize the following {doc} in 3 bullet points.", False, False),
    ("classify", "Classify the following text into one of: technology, business, health, education, travel, "
                 "legal, other. Respond in JSON with keys \"label\" and \"confidence\".", True, False),
    ("extract", "Extract the named entities (people, organisations, places, products) and the main topic from the "
                "{doc} below. Return JSON with keys \"entities\", \"topic\" and \"language\".", True, False),
    ("sentiment", "Rate the sentiment of this text from -2 (very negative) to 2 (very positive). Reply with the "
                  "number only.", False, False),
    ("expand", "Rewrite the following notes as a detailed, well-structured {doc} with headings. Be thorough and "
               "do not omit any point.", False, True),
    ("faq", "Generate five question-answer pairs for a help-centre FAQ from the text below. Return JSON: "
            "{{\"faq\": [{{\"q\": ..., \"a\": ...}}]}}.", True, False),
    ("keywords", "List ten SEO keywords for this article, comma separated, nothing else.", False, False),
    ("translate", "Translate the following {doc} into {target}. Keep the formatting.", False, True),
)
_SENT = re.compile(r"(?<=[.!?])\s+")
_CAPS = re.compile(r"\b[A-Z][a-z]{2,}(?:\s[A-Z][a-z]{2,})?\b")


class BatchJob(_Base):
    """A nightly enterprise job: one templated task over many real documents, fixed parameters; some
    produce long outputs that hit ``max_tokens``, many run at ``temperature 0`` in JSON mode."""

    name = "batch_job"
    human = False
    weekend = 0.3
    sigma = 0.9
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
            task, template, json_mode, long = BATCH[int(rng.integers(len(BATCH)))]
            cap = _choice(rng, (None, 512, 1024, 2048)) if long else _choice(rng, (None, 256, 1024))
            acct.profile.update({
                "task": task, "json": json_mode, "long": long, "cap": cap, "gap": float(rng.uniform(0.3, 3.0)),
                "template": template.format(doc=_choice(rng, lx.SLOTS["doc_kind"]),
                                            target=_choice(rng, ("German", "French", "Spanish", "Japanese"))),
                "doc_first": bool(rng.random() < 0.3), "temperature": _choice(rng, (0, 0, 0, 0.2)),
                "offset": int(rng.integers(len(self.corpus.documents)))})
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
        docs = self.corpus.documents
        doc = docs[int(r.random() * len(docs))]
        text = f"{doc}\n\n{p['template']}" if p["doc_first"] else f"{p['template']}\n\n{doc}"
        request: dict = {"model": model.name, "messages": [{"role": "user", "content": text}],
                         "temperature": p["temperature"], "max_tokens": p["cap"] or model.max_output}
        if p["json"]:
            request["response_format"] = {"type": "json_object"}
        return request, _batch_output(r, p["task"], doc, docs), None, None


def _batch_output(r: random.Random, task: str, doc: str, docs: tuple[str, ...]) -> str:
    sentences = [s for s in _SENT.split(doc) if len(s) > 20] or [doc[:200]]
    if task == "summarize":
        return "\n".join("- " + s.strip() for s in sentences[:3])
    if task == "classify":
        label = next((name for name, rx in TOPICS.items() if rx.search(doc)), "other")
        return orjson.dumps({"label": label, "confidence": round(0.5 + r.random() / 2, 2)}).decode()
    if task == "extract":
        ents = list(dict.fromkeys(_CAPS.findall(doc)))[:6]
        return orjson.dumps({"entities": ents, "topic": topic_of(sentences[0]), "language": "en"}).decode()
    if task == "sentiment":
        return pick(r, ("-2", "-1", "0", "0", "1", "1", "2"))
    if task == "faq":
        pairs = [{"q": topic_of(s) + "?", "a": s.strip()} for s in sentences[:5]]
        return orjson.dumps({"faq": pairs}).decode()
    if task == "keywords":
        words = [w.lower() for w in re.findall(r"[A-Za-z]{5,}", doc)]
        return ", ".join(list(dict.fromkeys(words))[:10])
    # expand / translate: long outputs (the job's max_tokens often cuts them)
    more = [docs[int(r.random() * len(docs))] for _ in range(1 + int(r.random() * 3))]
    return "\n\n".join(["# " + topic_of(doc).title(), doc, *more])


_EVAL_UA = ("lm_eval/0.4.7 OpenAI/Python 1.59.7", "inspect_ai/0.3.58", "helm/0.5.4", "OpenAI/Python 1.61.0",
            "openai-evals/3.0.1", "promptfoo/0.103.0", "python-httpx/0.27.2")
SUITES = ("mc_cot", "mc_logprob", "open", "judge", "pairwise", "passk")


class EvalRunner(_Base):
    """A research team's harness: benchmark sweeps at temperature 0 with chain-of-thought prompts, open-ended
    real prompts graded by LLM-as-judge (single and pairwise rubric grading), logprob scoring, pass@k with
    ``n > 1``; re-run on a new model within hours of its release (looks like a capability sweep)."""

    name = "eval_runner"
    human = False
    sigma = 0.7
    error_rate = 0.002

    def factors(self, acct: Account, rng: np.random.Generator) -> np.ndarray:
        f = np.zeros(self.tl.days)
        days = acct.profile["sweep_days"]
        for d in range(self.tl.days):
            if self.tl.weekday(d) in days:
                f[d] = float(rng.uniform(0.5, 1.5))
        f[self.tl.release_day - 1] = 1.5  # the re-run on the new model
        return f

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            table = EDU if rng.random() < 0.5 else CLOUD
            row = _choice(rng, table)
            net = Network(endpoints(rng, (row,), 1 + int(rng.integers(0, 2)), subnets=1), (_choice(rng, _EVAL_UA),))
            acct = self.account(rng, i, net=net, country=row[1], email=f"{_choice(rng, WORDS)}-lab.org",
                                tier="research", verified=1.0)
            suites = tuple(str(s) for s in rng.choice(np.array(SUITES), 1 + int(rng.integers(0, 3)), replace=False))
            acct.profile.update({
                "sweep_days": tuple(int(d) for d in rng.choice(5, 1 + int(rng.integers(0, 3)), replace=False)),
                "suites": suites, "prefix": _choice(rng, lx.EVAL_PREFIXES), "gap": float(rng.uniform(0.4, 3.0)),
                "effort": rng.random() < 0.3, "max_tokens": _choice(rng, (2048, 4096, 8192, 16384)),
                "items": int(rng.integers(200, 2000)), "offset": int(rng.integers(1 << 20)),
                "lang": _choice(rng, ("en", "en", "en", "zh", "es", "de", "fr", "ja"))})
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
        suite = p["suites"][tag % len(p["suites"])]
        item = (p["offset"] + tag // len(p["suites"])) % p["items"]
        request: dict = {"model": model.name, "messages": [], "temperature": 0, "max_tokens": p["max_tokens"],
                         "seed": 1234}
        trace = alternatives = None
        pool = self.corpus.pools["all"]
        if suite in ("mc_cot", "mc_logprob"):
            subject = lx.BENCH_SUBJECTS[item % len(lx.BENCH_SUBJECTS)]
            question = mc_question(r, subject, item)
            if suite == "mc_logprob":
                text = f"{question}\nAnswer:"
                request.update(max_tokens=1, logprobs=True, top_logprobs=int(pick(r, (4, 5, 10))))
                content = pick(r, (" A", " B", " C", " D"))
            else:
                text = p["prefix"].replace("{bench}", subject.replace("_", " ")) + "\n\n" + question
                content = reasoning(r, subject.replace("_", " "), 250 + int(r.random() * 700),
                                    "Let's think step by step.") + f"\nAnswer: {pick(r, 'ABCD')}"
        elif suite == "open":
            chat = pool[item * 7919 % len(pool)]
            text = chat.turns[0]
            if r.random() < 0.5:
                text += "\n\n" + para.reason_ask(r, p["lang"])
            content = chat.turns[1]
        elif suite in ("judge", "pairwise"):
            chat = pool[item * 7919 % len(pool)]
            other = pool[(item * 7919 + 1) % len(pool)]
            if suite == "judge" and r.random() < 0.3:  # rubric-based grading (HealthBench-style rubrics)
                rubric = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(r.sample(lx.RUBRIC_CRITERIA, 4)))
                text = pick(r, lx.RUBRIC_TEMPLATES).format(rubric=rubric, prompt=chat.turns[0][:3000],
                                                           response=chat.turns[1][:4000])
            elif suite == "judge":
                text = pick(r, para.JUDGE_SINGLE).format(q=chat.turns[0][:3000], a=chat.turns[1][:4000])
            else:
                text = pick(r, para.JUDGE_PAIR).format(q=chat.turns[0][:3000], a=chat.turns[1][:3000],
                                                       b=other.turns[1][:3000])
            content = para.judge_output(r, suite == "pairwise")
        else:  # pass@k on real coding questions
            code = self.corpus.pools["code"]
            chat = code[item * 7919 % len(code)]
            text = chat.turns[0]
            k = int(pick(r, (3, 5, 10)))
            request.update(n=k, temperature=0.8)
            request.pop("seed")
            content = chat.turns[1]
            alternatives = [code[(item * 7919 + j) % len(code)].turns[1][:1500] for j in range(1, k)]
        request["messages"] = [{"role": "user", "content": text}]
        if p["effort"] and suite != "mc_logprob":
            request["reasoning_effort"] = "high"
            trace = reasoning(r, topic_of(text), 600 + int(r.random() * 1400))
        if alternatives:
            return request, content, trace, None, alternatives
        return request, content, trace, None


_IDE_SCHEMAS = [TOOL_SCHEMAS[t] for t in lx.IDE_TOOLS]
IDE_SYSTEMS = (
    *lx.IDE_SYSTEMS,
    "You are a coding agent in the user's editor. Think carefully and reason step by step before editing any "
    "file. Read the relevant code first, make the smallest correct change, then run the tests.",
    "You are an expert engineer pair-programming with the user. Before each edit, explain your plan and think "
    "through edge cases. Use the tools to inspect files; never guess file contents.",
    "You are Cascade-style agentic assistant. Reason thoroughly about the codebase before acting. Keep going "
    "until the user's task is completely resolved.",
    "Role: autonomous coding assistant.\nRules:\n1. Think step by step.\n2. Use tools to gather context.\n"
    "3. Verify with tests.\n4. Summarise changes at the end.",
)


class CodingAgent(_Base):
    """An IDE agent: long tool loops over real coding conversations, real code in tool results, system
    prompts that ask it to reason step by step before editing, large ``max_tokens``."""

    name = "coding_agent"
    curve = CURVES["work"]
    weekend = 0.35
    session_len = 10.0
    gap_s = 20.0
    adopt_days = 2.0
    burst = 1.0

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            uas = (_choice(rng, IDE_UA),)
            if rng.random() < 0.3:
                row = _choice(rng, CLOUD)  # a cloud dev box
                net, country = Network(endpoints(rng, (row,), 1), uas), row[1]
            else:
                net, country = _human_net(rng, self.world.seed, uas, 0.1, 0.0)
            acct = self.account(rng, i, net=net, country=country, tier=_choice(rng, ("payg", "payg", "startup",
                                                                                     "enterprise")))
            acct.profile.update({
                "system": _choice(rng, IDE_SYSTEMS), "temperature": _choice(rng, (0, 0.2, 0.6, None)),
                "max": _choice(rng, (4096, 8192, 8192, 16384, 32768)), "p_tool": float(rng.uniform(0.55, 0.85)),
                "effort": _choice(rng, (None, None, "medium", "high")), "loop": int(rng.integers(6, 25)),
                "pool": self.corpus.pool("en:code", "code")})
            acct.p_new = 0.95
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile

        def params(r: random.Random, request: dict) -> None:
            if p["temperature"] is not None:
                request["temperature"] = p["temperature"]
            request["max_tokens"] = min(p["max"], model.max_output)
            request["stream"] = True
            if p["effort"]:
                request["reasoning_effort"] = p["effort"]

        def wrap(r: random.Random, text: str) -> str:
            if r.random() < 0.12:  # a task typed as an instruction rather than a question
                return vary(pick(r, lx.AGENT_TASKS).format_map(Fill(r, module=pick(r, lx.MODULES))), r, typo=0.05)
            return noisy(text, r, 0.2)

        return agent_turn(acct, tag, model, r, state, self.corpus, p["pool"], p["system"], _IDE_SCHEMAS,
                          lx.IDE_TOOLS, params, p_tool=p["p_tool"], max_loop=p["loop"], wrap=wrap)


class Campus(_Base):
    """Students: many edu accounts behind a few NAT addresses sharing one email domain."""

    name = "campus"
    curve = CURVES["student"]
    weekend = 0.7
    session_len = 2.2
    gap_s = 120.0
    adopt_days = 6.0
    burst = 0.5

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
                lang = lx.LANGUAGE_OF.get(row[1], "en")
                acct.profile["mix"] = _mix(rng, self.corpus, {
                    ("math", "all"): 0.25, ("en:writing",): 0.25, ("topic:learning",): 0.25, ("code",): 0.2,
                    ("lang:" + lang, "all"): 0.3 if lang != "en" else 0.0, ("all",): 0.1})
                acct.p_mini = 0.3
                out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        pool = _draw(r, acct.profile["mix"])
        if r.random() < 0.08:  # a textbook exercise typed in (the same problem families sweeps draw)
            problem, result = math_problem(r, int(r.random() * len(MATH_KINDS)))
            ask = pick(r, ("can you solve this and show steps", "hw question", "how do i do this", "help:"))
            pool = (Chat((f"{ask}: {problem}", answer(r, "the solution", 300 + int(r.random() * 600))
                          + f"\n\n\\boxed{{{result}}}"), "en", "math", ""),)
        return chat_turn(acct, tag, model, r, state, pool, lambda r, q: _params(acct, r, q, 0.08), image=0.04,
                         noise=0.6)


class CompanyTeam(_Base):
    """Colleagues: several accounts on one org, one payment method and one office range."""

    name = "company_team"
    curve = CURVES["work"]
    weekend = 0.1
    sigma = 0.9
    session_len = 1.8
    gap_s = 60.0
    burst = 0.8

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
                acct.profile["mix"] = _mix(rng, self.corpus, {("en:writing",): 0.3, ("topic:business",): 0.25,
                                                              ("code",): 0.3, ("all",): 0.2})
                out.append(acct)
            team += 1
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        return chat_turn(acct, tag, model, r, state, _draw(r, acct.profile["mix"]),
                         lambda r, q: _params(acct, r, q, 0.1), image=0.03, noise=0.2)


_RESELLER_SYSTEMS = (None, None, None, "You are a helpful assistant.", "你是一个有用的助手。", "Answer concisely.",
                     "You are ChatGPT, a large language model. Follow the user's instructions carefully.")


class Reseller(_Base):
    """A legitimate API reseller: many end users (all topics and languages), many IPs across hosting/proxy
    ASNs, many keys, 24/7, parameters passed through (including reasoning_effort and high max_tokens)."""

    name = "reseller"
    human = False
    curve = CURVES["flat"]
    weekend = 0.95
    sigma = 0.8
    session_len = 2.0
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
            acct.profile["mix"] = _mix(rng, self.corpus, {("all",): 1.0, ("code",): 0.4, ("lang:zh", "all"): 0.2,
                                                          ("lang:ko", "all"): 0.1, ("long",): 0.2})
            acct.p_mini = 0.25
            acct.p_new = 0.5
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        return chat_turn(acct, tag, model, r, state, _draw(r, acct.profile["mix"]), reseller_params,
                         system=pick(r, _RESELLER_SYSTEMS), image=0.03)


def reseller_params(r: random.Random, request: dict) -> None:
    prompts.sampling(r, request, high_tokens=0.3)
    if r.random() < 0.2:
        request["reasoning_effort"] = pick(r, ("low", "medium", "high"))


_RANK_TASKS = (
    "Query: {q}\n\nDocument: {d}\n\nIs the document relevant to the query? Answer yes or no.",
    "Does the following answer respond to the question? Reply with a single token, Yes or No.\n\nQuestion: {q}\n"
    "Answer: {d}",
    "Classify the intent of this message as one of: question, request, complaint, chit-chat. Reply with the "
    "label only.\n\n{q}",
    "Is this text safe for work? Answer 'safe' or 'unsafe'.\n\n{q}",
)
_SUGGEST = ("Suggest a short title for this conversation:\n\n{q}", "Write a one-line reply suggestion to:\n\n{q}",
            "Give a short search query that would help answer:\n\n{q}", "Complete the user's sentence: {q}")


class RankingApp(_Base):
    """Search, moderation and suggestion features: ``logprobs``/``top_logprobs`` on one-token classification
    and reranking calls, ``n > 1`` short candidates for suggestions; short outputs, steady high volume."""

    name = "ranking_app"
    human = False
    curve = CURVES["app"]
    weekend = 0.85
    sigma = 1.0
    adopt_days = 8.0
    error_rate = 0.003

    def make_accounts(self, rng: np.random.Generator, n: int) -> list[Account]:
        out = []
        for i in range(n):
            cloud = _choice(rng, CLOUD)
            net = Network(endpoints(rng, (cloud,), 2 + int(rng.integers(0, 4)), subnets=1), (_choice(rng, SDK_UA),))
            acct = self.account(rng, i, net=net, country=_choice(rng, ("US", "DE", "GB", "IN", "SG", "JP")),
                                email=company_domain(rng), tier=_choice(rng, ("startup", "enterprise")), n_keys=2,
                                verified=1.0)
            mode = "rank" if rng.random() < 0.6 else "suggest"
            acct.profile.update({"mode": mode, "task": _choice(rng, _RANK_TASKS if mode == "rank" else _SUGGEST),
                                 "top": int(rng.choice([0, 2, 5, 10, 20])), "n": int(rng.choice([2, 3, 4, 5, 8])),
                                 "max": int(rng.choice([16, 32, 48, 64]))})
            acct.p_mini = float(rng.choice([0.0, 0.7, 1.0]))
            acct.p_new = 0.5
            out.append(acct)
        return out

    def render(self, acct: Account, tag: int, model: Model, r: random.Random, state: dict) -> Reply:
        p = acct.profile
        pool = self.corpus.pools["all"]
        chat = pool[int(r.random() * len(pool))]
        q = chat.turns[0][:1500]
        if p["mode"] == "rank":
            text = p["task"].format(q=q, d=chat.turns[1][:1500])
            request: dict = {"model": model.name, "messages": [{"role": "user", "content": text}], "temperature": 0,
                             "max_tokens": 1, "logprobs": True}
            if p["top"]:
                request["top_logprobs"] = p["top"]
            return request, pick(r, ("yes", "no", "Yes", "No", "question", "safe")), None, None
        text = p["task"].format(q=q)
        request = {"model": model.name, "messages": [{"role": "user", "content": text}], "temperature": 0.9,
                   "max_tokens": p["max"], "n": p["n"]}
        options = [topic_of(pool[int(r.random() * len(pool))].turns[1]) for _ in range(p["n"])]
        return request, options[0], None, None, options[1:]


BENIGN = {cls.name: cls for cls in (Casual, PowerUser, ProxyUser, AppBackend, BatchJob, EvalRunner, CodingAgent,
                                     Campus, CompanyTeam, Reseller, RankingApp)}
