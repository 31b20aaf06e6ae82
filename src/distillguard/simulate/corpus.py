"""Real conversations for the simulator: ShareGPT V3, **odd-hash half only**, classified and pooled.

Every benign user turn (and the assistant turns that sessions carry as history) comes from here, and so do
the documents batch jobs process, the code that coding agents read and the public questions harvesters
reuse. The only reader is :mod:`distillguard.corpus.sharegpt`, which yields the odd half and nothing else;
this module never sees an even-half conversation. Conversations are classified cheaply by content
(language by script and stop words; code, math, writing or chat by markers and keywords) so that each
population draws from the part of real usage it stands for.

A corpus is keyed by the sharegpt split (``train`` by default, so runs used for training never contain
the validation or test conversations; ``all`` for the whole odd half) and built once per process, before
any day is rendered, so forked workers share it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from distillguard.corpus import sharegpt
from distillguard.simulate.exchange import known

SPLITS = ("train", "validation", "test", "all")
MAX_TURN = 4_000  # characters kept of one turn (longer pastes are cut, as chat clients cut them)
MAX_PAIRS = 12  # exchanges kept of one conversation

_CODE_MARK = re.compile(
    r"```|^\s*(?:def |class \w+|import \w|from \w+ import|#include|public (?:static|class)|function\s*\w*\(|"
    r"const \w+ = |let \w+ = |var \w+ = |SELECT .+ FROM|CREATE TABLE|<\?php|<div|<html|package \w+;|"
    r"fn \w+\(|func \w+\()|console\.log\(|\);\s*$|^\s*}\s*$", re.M | re.I)
_MATH = re.compile(
    r"\b(?:solve|equation|integral|derivative|probability|calculate|compute|prove|theorem|matrix|algebra|"
    r"geometry|percent(?:age)?|how many|statistic|variance|formula|log\(|sqrt|fraction|polynomial|calculus|"
    r"mean and|standard deviation)\b|\d\s*[+*^=×÷]\s*\(?\d", re.I)
_WRITING = re.compile(
    r"\b(?:write|essay|e-?mail|letter|story|poem|article|blog|rewrite|paraphrase|summari[sz]e|cover letter|"
    r"outline|caption|slogan|script|headline|tweet|linkedin|copy for|proofread|tone)\b", re.I)
# Topic pools for app backends (a product only sees the questions its users bring to it).
TOPICS = {
    "travel": re.compile(r"\b(?:travel|trip|itinerar|hotel|flight|visit|tourist|vacation|holiday|city)\w*", re.I),
    "learning": re.compile(r"\b(?:explain|grammar|translat|vocabulary|language|learn|student|teach|lesson|quiz|"
                           r"homework|exam)\w*", re.I),
    "health": re.compile(r"\b(?:health|workout|exercise|diet|nutrition|fitness|sleep|weight|symptom|muscle|"
                         r"meal|calorie|doctor|therapy)\w*", re.I),
    "business": re.compile(r"\b(?:marketing|business|customer|product|sales|brand|startup|company|client|"
                           r"pricing|campaign|seo|strategy)\w*", re.I),
    "legal": re.compile(r"\b(?:law|legal|contract|tenant|landlord|lease|court|rights|policy|regulation|"
                        r"compliance|gdpr|visa)\w*", re.I),
}
_STOP_WORDS = {
    "en": "the and is to of you for that with this it in are be on",
    "es": "el la que de los las por para una está cómo es en del se con",
    "pt": "não que de uma para com você está como os em do da",
    "de": "der die und ist nicht ich das ein eine mit zu den auf",
    "fr": "le la les est une pour que des vous avec je et dans pas",
    "it": "il che non della per una sono di un gli le mi come",
}
_STOP = {lang: frozenset(words.split()) for lang, words in _STOP_WORDS.items()}
_SCRIPTS = (("ja", re.compile(r"[\u3040-\u30ff]")), ("ko", re.compile(r"[\uac00-\ud7af]")),
            ("zh", re.compile(r"[\u4e00-\u9fff]")), ("ru", re.compile(r"[\u0400-\u04ff]")),
            ("ar", re.compile(r"[\u0600-\u06ff]")))
_WORD = re.compile(r"[^\W\d_]+")
_FENCE = re.compile(r"```([\w+#.-]*)[^\n]*\n(.*?)```", re.S)


def language(text: str) -> str:
    """ISO 639-1 code of ``text``: script first (kana before han), then stop words among Latin languages."""
    sample = text[:3000]
    for code, script in _SCRIPTS:
        if len(script.findall(sample)) >= max(8, len(sample) // 25):
            return code
    counts = Counter(w.lower() for w in _WORD.findall(sample[:2000]))
    scores = {lang: sum(counts[w] for w in words) for lang, words in _STOP.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if best != "en" and scores[best] >= 5 and scores[best] > 1.5 * scores["en"] else "en"


def kind_of(turns: tuple[str, ...]) -> str:
    """code, math, writing or chat, from markers in the user turns and fences anywhere."""
    users = turns[0::2]
    if any("```" in t for t in turns) or sum(len(_CODE_MARK.findall(u)) for u in users) >= 3:
        return "code"
    first = users[0][:1500]
    if _MATH.search(first):
        return "math"
    if _WRITING.search(first[:400]):
        return "writing"
    return "chat"


@dataclass(frozen=True, slots=True)
class Chat:
    """One real conversation as alternating user/assistant texts (``turns[2k]`` asks, ``turns[2k+1]`` answers)."""

    turns: tuple[str, ...]
    lang: str
    kind: str
    topic: str  # an app-backend topic pool it belongs to, or ""

    @property
    def pairs(self) -> int:
        return len(self.turns) // 2


def _clean(conv: sharegpt.Conversation) -> tuple[str, ...]:
    """User/assistant alternation: leading assistant turns (split conversations) and system turns dropped,
    consecutive turns of one side merged, empty exchanges and a trailing unanswered question dropped."""
    out: list[str] = []
    for turn in conv.turns:
        side = 0 if turn.role in ("human", "user") else 1 if turn.role in ("gpt", "chatgpt", "bing") else -1
        text = turn.text.strip()
        if side < 0 or not text or (not out and side == 1):
            continue
        if len(out) % 2 == side:
            out.append(text[:MAX_TURN])
        else:
            out[-1] = (out[-1] + "\n\n" + text)[:MAX_TURN]
    if len(out) % 2:
        out.pop()
    return tuple(out[: 2 * MAX_PAIRS])


class Corpus:
    """The classified odd-half conversations of one split, with the pools populations draw from."""

    def __init__(self, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"corpus split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.split = split
        chats: list[Chat] = []
        for conv in sharegpt.conversations(None if split == "all" else split):
            turns = _clean(conv)
            if not turns:
                continue
            first = turns[0][:600]
            topic = next((name for name, rx in TOPICS.items() if len(rx.findall(first)) >= 1), "")
            chats.append(Chat(turns, language(" ".join(turns[0::2])), kind_of(turns), topic))
        if not chats:
            raise sharegpt.CorpusMissing("no odd-half ShareGPT conversations found")
        self.chats = tuple(chats)
        pools: dict[str, list[Chat]] = {"all": list(chats)}
        for chat in chats:
            pools.setdefault(chat.kind, []).append(chat)
            pools.setdefault("lang:" + chat.lang, []).append(chat)
            if chat.lang == "en":
                pools.setdefault("en", []).append(chat)
                pools.setdefault("en:" + chat.kind, []).append(chat)
            if chat.topic:
                pools.setdefault("topic:" + chat.topic, []).append(chat)
            if chat.kind != "code":
                pools.setdefault("nocode", []).append(chat)
            if sum(map(len, chat.turns[1::2])) / chat.pairs >= 1_800:
                pools.setdefault("long", []).append(chat)
            if chat.pairs >= 3:
                pools.setdefault("multi", []).append(chat)
        self.pools = {name: tuple(p) for name, p in pools.items()}
        blocks = []
        for chat in self.pools.get("code", ()):
            for text in chat.turns:
                for lang, code in _FENCE.findall(text):
                    if 80 <= len(code) <= 3_000:
                        blocks.append((lang.lower() or "text", code.rstrip()))
        self.code_blocks = tuple(blocks) or (("text", "print('hello')"),)
        # Prose the model wrote: what batch jobs summarise, classify and extract from.
        self.documents = tuple(a for c in self.pools.get("nocode", ()) for a in c.turns[1::2]
                               if 400 <= len(a) <= 4_000 and "```" not in a)
        known(t for c in chats for t in c.turns)

    def pool(self, *names: str, minimum: int = 20) -> tuple[Chat, ...]:
        """The first of ``names`` holding at least ``minimum`` conversations (the last name as a fallback)."""
        for name in names:
            found = self.pools.get(name, ())
            if len(found) >= minimum:
                return found
        return self.pools.get(names[-1], ()) or self.pools["all"]

    def describe(self) -> dict[str, int]:
        return {name: len(p) for name, p in sorted(self.pools.items())}


@lru_cache(maxsize=4)
def load(split: str = "train") -> Corpus:
    """The corpus of one split, built once per process."""
    return Corpus(split)
