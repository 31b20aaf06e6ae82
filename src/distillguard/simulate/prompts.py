"""Prompt makers shared by benign populations and campaigns.

A prompt is ``(text, topic, kind)``: ``kind`` is ``"chat"``, ``"math"`` or a programming language,
and tells :func:`respond` what a plausible answer looks like. Benign and attack traffic share
these makers deliberately: what separates them is volume, coverage, timing and parameters,
not vocabulary.
"""

from __future__ import annotations

import random

from distillguard.simulate import lexicon as lx
from distillguard.simulate.text import (
    MATH_KINDS,
    Fill,
    answer,
    code_answer,
    document,
    fill,
    math_problem,
    pick,
    vary,
)

Prompt = tuple[str, str, str]

_TOPIC_SLOTS = ("subject", "dish", "city", "thing", "hobby", "matter", "codetask", "course")


def _topic(f: Fill) -> str:
    for key in _TOPIC_SLOTS:
        if key in f:
            return f[key]
    return "this"


def casual(r: random.Random) -> Prompt:
    f = Fill(r)
    return vary(pick(r, lx.CASUAL).format_map(f), r), _topic(f), "chat"


def followup(r: random.Random, prompt: Prompt) -> str:
    """The next user turn of a session, in the register the session started in."""
    if prompt[2].startswith("local:"):
        return local(r, prompt[2][6:])[0]
    if prompt[2] == "app":
        return vary(fill(pick(r, lx.APP_FOLLOWUPS), r, goods_item=prompt[1]), r, typo=0.1)
    return vary(fill(pick(r, lx.FOLLOWUPS), r), r, typo=0.15, lower=0.4)


_STUDENT = (
    "explain {subject} for my {course} exam", "help me outline an essay on {subject}",
    "can u summarize the main arguments about {subject}", "quiz me on {course}, 5 questions",
    "whats the difference between {subject} and {subject2} for {course}", "{please} check my thesis statement "
    "about {subject}", "give me a study plan for {course} finals in {n} days",
)


def student(r: random.Random) -> Prompt:
    u = r.random()
    if u < 0.25:
        problem, _ = math_problem(r, int(r.random() * len(MATH_KINDS)))
        return vary(f"{pick(r, ('can you solve this and show steps', 'hw question', 'how do i do this'))}: "
                    f"{problem}", r, typo=0.25, lower=0.4), "this problem", "math"
    if u < 0.45:
        f = Fill(r, lang=pick(r, ("Python", "Java", "C++")),
                 what=pick(r, ("what am i doing wrong", "where do i start", "can you explain the approach",
                               "it gives the wrong output")))
        text = "my {lang} homework: {codetask}. {what}".format_map(f)
        return vary(text, r, typo=0.25, lower=0.4), f["codetask"], f["lang"]
    f = Fill(r)
    return vary(pick(r, _STUDENT).format_map(f), r, typo=0.25, lower=0.4), _topic(f), "chat"


_WORK = (
    "{write} a {tone} {doc_kind} about {matter}", "write a SQL query that returns the top 10 customers by revenue "
    "last quarter", "review this function for bugs and suggest fixes ({lang}): it should {codetask}",
)
_WORK_DOC = ("summarize these meeting notes in 5 bullets:", "draft a reply to this customer email, keep it {tone}:",
             "turn this into an exec summary:", "what are the risks in this plan?",
             "rewrite this to sound more {tone}:")


def work(r: random.Random) -> Prompt:
    f = Fill(r)
    if r.random() < 0.6:  # an instruction about a pasted document, in either order
        ask = vary(pick(r, _WORK_DOC).format_map(f), r, typo=0.05, polite=0.2, lower=0.05)
        doc = document(r, 2 + int(r.random() * 4))
        return (f"{ask}\n\n{doc}" if r.random() < 0.65 else f"{doc}\n\n{ask}"), "the document", "chat"
    text = vary(pick(r, _WORK).format_map(f), r, typo=0.05, polite=0.2, lower=0.05)
    if "codetask" in f:
        return text, f["codetask"], f["lang"]
    return text, f.get("matter") or "the request", "chat"


def local(r: random.Random, lang: str) -> Prompt:
    """A casual question in the user's own language; the reply follows in that language."""
    return fill(pick(r, lx.LOCAL_CASUAL[lang]), r), "", "local:" + lang


def code(r: random.Random, lang: str | None = None) -> Prompt:
    f = Fill(r, **({"lang": lang} if lang else {}))
    text = pick(r, ("how do I {codetask} in {lang}?", "{write} {lang} code to {codetask}", "in {project} I need to "
                    "{codetask}, using {lang}. best approach?", "why does my {lang} code have {bug}?",
                    "{lang}: {codetask}, with tests")).format_map(f)
    return vary(text, r, typo=0.06, lower=0.3), f.get("codetask") or f["bug"], f["lang"]


def mixed(r: random.Random) -> Prompt:
    """What a reseller forwards: everything its end users ask."""
    u = r.random()
    if u < 0.4:
        return casual(r)
    if u < 0.65:
        return code(r)
    if u < 0.85:
        return work(r)
    return student(r)


def respond(r: random.Random, prompt: Prompt, n_chars: int) -> str:
    _, topic, kind = prompt
    if kind == "chat" or kind == "app":
        return answer(r, topic, n_chars)
    if kind.startswith("local:"):  # opener, a few middle sentences, closer
        pool = lx.LOCAL_ANSWERS[kind[6:]]
        middle = [pick(r, pool[1:-1]) for _ in range(1 + n_chars // 200)]
        return "".join([pool[0], *middle, pool[-1]])
    if kind == "math":
        return answer(r, "the solution", n_chars)
    return code_answer(r, kind, topic, n_chars)


def sampling(r: random.Random, request: dict, high_tokens: float = 0.1) -> None:
    """Varied, human-chosen parameters (or SDK defaults) written into ``request``."""
    t = pick(r, (None, None, 0.7, 1.0, 0.5, 0.2, 1.2, 0.9))
    if t is not None:
        request["temperature"] = t
    u = r.random()
    if u < high_tokens:
        request["max_tokens"] = pick(r, (8192, 16000, 16384))
    elif u < 0.45:
        request["max_tokens"] = pick(r, (256, 512, 1000, 1024, 2048, 4096))
    if r.random() < 0.55:
        request["stream"] = True
    if r.random() < 0.1:
        request["top_p"] = pick(r, (0.9, 0.95, 1.0))
