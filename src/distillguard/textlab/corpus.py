"""Real human turns for the text heads: ShareGPT V3, odd-hash half only (``distillguard.corpus.sharegpt``).

ShareGPT stores one original conversation as several records ``<base>_0``, ``<base>_1``, ... whose ids hash
independently, so the text heads split the odd half by the *base* id (70 / 15 / 15 %, :func:`text_split`): no
conversation is on two sides. Training only ever uses records that are also in the shared loader's ``train``
split (``sharegpt.split``), so nothing the simulator holds out is trained on; a record in the shared
validation/test split whose base falls in our train part is dropped.

``weak_capability`` labels a turn by keyword rules (documented in docs/text-classifiers.md); ``STRICT``
patterns mark turns where a real human plainly asked for what a head detects: they are left out of that
head's training negatives (not relabelled) and counted when auditing label noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from distillguard.corpus import sharegpt

HUMAN_ROLES = ("human", "user")


@dataclass(frozen=True)
class HumanTurn:
    cid: str
    index: int  # position of the turn in its conversation
    text: str


def base_id(cid: str) -> str:
    return re.sub(r"_\d+$", "", cid)


def text_split(cid: str) -> str:
    """train (70 %), validation (15 %) or test (15 %) for the text heads, by the base id's digest."""
    b = sharegpt.digest(base_id(cid))[1]
    return "train" if b < 179 else "validation" if b < 217 else "test"


def _assign(cid: str) -> str | None:
    assert sharegpt.is_odd(cid)
    which = text_split(cid)
    if which == "train" and sharegpt.split(cid) != "train":
        return None
    return which


@lru_cache(maxsize=1)
def human_turns() -> dict[str, tuple[HumanTurn, ...]]:
    """Non-empty human turns per split (train / validation / test) of the odd half."""
    by_split: dict[str, list[HumanTurn]] = {s: [] for s in sharegpt.SPLITS}
    for conv in sharegpt.conversations():
        which = _assign(conv.id)
        if which is None:
            continue
        for i, turn in enumerate(conv.turns):
            if turn.role in HUMAN_ROLES and turn.text.strip():
                by_split[which].append(HumanTurn(conv.id, i, turn.text))
    return {k: tuple(v) for k, v in by_split.items()}


@lru_cache(maxsize=1)
def assistant_turns() -> dict[str, tuple[str, ...]]:
    """Assistant answers per split (used as the responses a rubric prompt asks to grade)."""
    out: dict[str, list[str]] = {s: [] for s in sharegpt.SPLITS}
    for conv in sharegpt.conversations():
        which = _assign(conv.id)
        if which is not None:
            out[which].extend(t.text for t in conv.turns if t.role == "gpt" and t.text.strip())
    return {k: tuple(v) for k, v in out.items()}


_STOP = frozenset((
    "de", "la", "que", "el", "en", "y", "los", "las", "por", "una", "con", "para", "es", "un", "und", "der", "die",
    "das", "ist", "nicht", "ein", "ich", "le", "les", "des", "est", "pas", "et", "il", "une", "du", "di", "che",
    "non", "per", "della", "um", "não", "com", "uma", "você", "em",
))


def language_group(text: str) -> str:
    """'en' or 'non-en' (script or stop-word heuristic over the first 600 characters)."""
    head = text[:600]
    letters = [c for c in head if c.isalpha()]
    if letters and sum(1 for c in letters if ord(c) > 0x24F) / len(letters) > 0.2:
        return "non-en"
    words = re.findall(r"[a-zà-ÿ]+", head.lower())
    if len(words) >= 4 and sum(w in _STOP for w in words) / len(words) > 0.15:
        return "non-en"
    return "en"


STRICT = {
    "cot": re.compile(r"step[- ]by[- ]step|chain[- ]of[- ]thought|show (your|the|all) (work|steps|reasoning)|"
                      r"explain (your|the) reasoning|reason(ing)? (through|it out)|think (it )?through|"
                      r"逐步|一步一步|paso a paso|schritt für schritt|étape par étape|шаг за шагом", re.I),
    "coerce": re.compile(r"(internal|hidden|inner|raw|full|entire) (reasoning|thoughts?|thinking|monologue|chain)|"
                         r"<think>|scratchpad|thought process verbatim", re.I),
    "rubric": re.compile(r"rubric|\bgrade (this|the|my|each|following)|\bscore (this|the|my|each|following)|"
                         r"on a scale (of|from)|(which|what) (response|answer|one) is better|"
                         r"\brate (this|the|my|each|following)|evaluate (this|the|my|each|following)|reward model|"
                         r"act as a judge|\bjudge (this|the|each)|rank (these|the following)|criteria", re.I),
    "length": re.compile(r"as (long|detailed|lengthy|comprehensive) as (possible|you can)|at least \d+ words|"
                         r"don'?t stop|leave nothing out|exhaustive|as much detail as|\d{4,} words|longest", re.I),
    "synth": re.compile(r"dataset|data set|training data|fine-?tun|jsonl|synthetic|data augmentation|"
                        r"(generate|create|write|give me) \d+ (diverse |different |unique )?"
                        r"(examples|questions|prompts|variations|variants|samples|pairs)", re.I),
}


def strict_heads(text: str) -> set[str]:
    """The heads whose strict pattern ``text`` matches: a real text that plainly asks for what a head detects is no
    training negative for that head."""
    return {head for head, rx in STRICT.items() if rx.search(text)}

_CODE = re.compile(
    r"```|\bdef \w+\(|\bfunction\s*\w*\(|\bclass \w+[:({]|\bimport \w|#include|\bconsole\.log|\bSELECT .* FROM\b|"
    r"\bpublic static\b|=>|\bnpm\b|\bpip install\b|Traceback \(most recent|\bTypeError\b|\bdocker\w*\b|"
    r"\b(python|javascript|typescript|java|c\+\+|c#|golang|rust|kotlin|swift|php|ruby|sql|html|css|react|node\.?js|"
    r"django|flask|api|regex|bash|powershell|kubernetes|git|json|yaml|code|script|function|compile|debug|"
    r"bug|repository|algorithm|database|query|frontend|backend|endpoint)\b", re.I)
_MATH = re.compile(
    r"\b(solve|equation|integral|derivative|probability|theorem|prove|proof|matrix|polynomial|calculate|"
    r"arithmetic|algebra|geometry|calculus|factori[sz]e|simplify|percent(age)?|fraction)\b|"
    r"\d\s*[\+\-\*/\^=×÷]\s*\d|[∫∑√π≤≥]|方程|计算|证明", re.I)
_TRANSLATE = re.compile(
    r"\btranslat\w*\b.{0,60}\b(into|to|in)\s+(english|chinese|japanese|korean|spanish|french|german|"
    r"portuguese|italian|russian|arabic|hindi|vietnamese|turkish|indonesian|dutch|polish|mandarin)|"
    r"翻译成|翻訳|번역|traduce al|traduis|übersetze|переведи", re.I)
_EXTRACT = re.compile(
    r"\b(extract|pull out|parse)\b.{0,80}\b(from|in) (the|this|these|following|below)|"
    r"\b(into|as) (a )?(json|csv|table)\b.{0,40}(from|following)|提取|抽出|추출", re.I)
_REASON = re.compile(r"\b(riddle|puzzle|brain ?teaser|logic(al)? (problem|question)|syllogism|"
                     r"lateral thinking|deduce)\b|谜题|逻辑题", re.I)
_WRITING = re.compile(
    r"\b(write|rewrite|compose|draft|create|edit|proofread|summari[sz]e|paraphrase)\b.{0,40}"
    r"\b(essay|story|poem|email|e-mail|letter|blog|article|post|caption|tweet|speech|script|lyrics|"
    r"description|summary|slogan|headline|outline|cover letter|bio|review|paragraph|copy|newsletter|ad)\b|"
    r"^\s*(summari[sz]e|paraphrase|rewrite|proofread)\b", re.I)
_TOOLS = re.compile(r"you have access to (the following )?(tools|functions)|\btool_calls?\b|function[_ ]call|"
                    r"\"parameters\"\s*:\s*\{", re.I)
_COMPUTER = re.compile(r"\b(click|double-click|screenshot|mouse|scroll down|take a screenshot|open the browser)\b",
                       re.I)


def weak_capability(text: str) -> str:
    """Keyword rules, most specific first (see docs/text-classifiers.md)."""
    t = text[:3000]
    if _TOOLS.search(t):
        return "tool_use"
    if _COMPUTER.search(t) and not _CODE.search(t):
        return "computer_use"
    if "```" in t or re.search(r"\bdef \w+\(|#include|\bSELECT .* FROM\b|Traceback \(most recent", t):
        return "coding"
    if _TRANSLATE.search(t):
        return "translation"
    if _EXTRACT.search(t):
        return "data_extraction"
    if _CODE.search(t):
        return "coding"
    if _MATH.search(t):
        return "math"
    if _REASON.search(t):
        return "reasoning"
    if _WRITING.search(t):
        return "writing"
    return "chat"
