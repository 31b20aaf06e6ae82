"""Look-alike e-mail domains: distinct registrations one actor made to look unrelated, or like a known mailbox.

An actor who signs up hundreds of accounts registers a handful of domains that differ in the ways domain-
squatting tools enumerate (dnstwist's fuzzers): hyphenation (``lunaris-ai`` / ``lunarisai``), homoglyphs
(``lunarls``, ``gmai1``, ``hotrnail``), an added or dropped letter (``gmaill``), a swapped top-level domain, and
a dictionary word appended to one stem (``lunaris-labs``). Two domains are *look-alikes* when, after folding
homoglyphs and dropping separators, digits and the public suffix, they are equal or one edit apart
(insertion, deletion, substitution or adjacent transposition; stems of six letters or more), or when they
begin with the same word of five letters or more.

A pair in which a domain imitates a *public* mailbox (one many ordinary accounts use: ``gmai1.com``), or two
domains of one numbered series (``fastmail851.site``, ``fastmail667.icu``), is a *throwaway* pair: such domains
are bought, generated and shared by many operations, so it links with less weight than a private family does.

Look-alikes are returned as *pairs*: a pair is a linking key held by the accounts of either domain, so the key
test of :mod:`distillguard.attribution.linking` (most holders suspicious) judges each pair on its own: a
harvester's ``hotrnail.com`` paired with the real ``hotmail.com`` fails it, while its ``out1ook.com`` and
``outlook-mail.net`` pass together.
"""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import combinations

from distillguard.model.account import PUBLIC_MAILBOXES, public_mailbox, registrable_label

_GLYPHS = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("3", "e"), ("5", "s"), ("i", "l"), ("|", "l"))
_WORD = re.compile(r"[a-z]+")
MIN_STEM = 6  # one edit apart counts only for stems this long (``mail1`` / ``mails`` are different words)
MIN_WORD = 5  # a shared leading word this long links (``lunaris-ai`` / ``lunaris-labs``)
MIN_LINK = 4  # stems shorter than this never pair (``126.com`` / ``i.ua`` fold to one letter)
MAX_BLOCK = 200  # domains sharing a blocking key beyond this are compared by equal stems only


def stem(label: str) -> str:
    """Homoglyphs folded, then everything but letters dropped."""
    text = label.lower()
    for glyph, letter in _GLYPHS:
        text = text.replace(glyph, letter)
    return "".join(_WORD.findall(text))


def lead_word(label: str) -> str:
    """The first word of the label as written (before a hyphen or underscore), homoglyphs folded, up to the
    first character that is not a letter then (``yah00-mail`` -> ``yahoo``, ``fastmail851`` -> ``fastmall``)."""
    token = re.split(r"[^a-z0-9|]+", label.lower())[0] if label else ""
    for glyph, letter in _GLYPHS:
        token = token.replace(glyph, letter)
    match = _WORD.match(token)
    return match.group(0) if match else ""


def one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one insertion, deletion, substitution or adjacent swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1:] == b[i + 1:]:
            return True  # substitution
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]  # transposition
    if la > lb:
        return a[i + 1:] == b[i:]
    return a[i:] == b[i + 1:]


def imitates_public(domain: str) -> bool:
    """Whether ``domain`` imitates a public mailbox without being one: ``gmai1.com``, ``fastmail-x-lxv.site``."""
    label = registrable_label(domain)
    if label in PUBLIC_MAILBOXES:
        return False
    s, word = stem(label), lead_word(label)
    return any(s == p or (len(s) >= MIN_STEM and one_edit(s, p)) or word == p for p in _PUBLIC_STEMS)


# the public mailboxes' folded stems long enough to be imitated (``me``, ``i``, ``pm`` are words, not brands)
_PUBLIC_STEMS = tuple(sorted({stem(p) for p in PUBLIC_MAILBOXES if len(stem(p)) >= MIN_WORD}))


def alike(a: str, b: str) -> bool:
    """Whether two distinct domains look alike (see the module's docstring)."""
    la, lb = registrable_label(a), registrable_label(b)
    if la == lb and la in PUBLIC_MAILBOXES:
        return False  # one provider's country domains
    sa, sb = stem(la), stem(lb)
    if min(len(sa), len(sb)) < MIN_LINK:
        return False
    if sa == sb:
        return True
    if min(len(sa), len(sb)) >= MIN_STEM and one_edit(sa, sb):
        return True
    wa, wb = lead_word(la), lead_word(lb)
    return len(wa) >= MIN_WORD and wa == wb


def _blocks(unique: list[str]) -> dict[tuple[str, str], list[str]]:
    blocks: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in unique:
        label = registrable_label(d)
        s = stem(label)
        if not s:
            continue
        blocks[("stem", s)].append(d)
        blocks[("head", s[:4])].append(d)
        blocks[("tail", s[-4:])].append(d)  # an edit inside the first four letters
        word = lead_word(label)
        if len(word) >= MIN_WORD:
            blocks[("word", word)].append(d)
    return blocks


def _unique(domains: list[str]) -> list[str]:
    return sorted({d.strip().lower() for d in domains if d and d.strip()})


def lookalike_pairs(domains: list[str]) -> list[tuple[str, str]]:
    """Sorted pairs ``(a, b)``, ``a < b``, of distinct look-alike domains among ``domains`` (lower-cased).

    Candidates are proposed by blocking keys (the stem, its first and last four letters, the leading word), so the
    cost stays near linear; a block larger than :data:`MAX_BLOCK` is skipped, except a family of equal stems,
    which is paired as a star.
    """
    blocks = _blocks(_unique(domains))
    pairs: set[tuple[str, str]] = set()
    for (kind, _), members in blocks.items():
        if len(members) < 2 or (len(members) > MAX_BLOCK and kind != "stem"):
            continue
        # a large family of one stem (hundreds of suffix swaps) is paired as a star around its first member, so
        # its keys grow with the family, not with its square
        candidates = combinations(members, 2) if len(members) <= MAX_BLOCK else ((members[0], m) for m in members[1:])
        for a, b in candidates:
            if alike(a, b):
                pairs.add((a, b) if a < b else (b, a))
    return sorted(pairs)


def numbered(a: str, b: str) -> bool:
    """Whether two domains are one numbered series (``fastmail851.site``, ``fastmail667.icu``): the names
    disposable-mail services and bulk registrations generate, which many operations share."""
    la, lb = registrable_label(a), registrable_label(b)
    return la != lb and bool(re.search(r"[0-9]", la + lb)) and re.sub(r"[0-9]+", "", la) == re.sub(r"[0-9]+", "", lb)


def throwaway(a: str, b: str) -> bool:
    """Whether a look-alike pair is of throwaway domains many operations share rather than one registrant's
    private family: a public mailbox or an imitation of one on either side, or one numbered series."""
    return any(public_mailbox(d) or imitates_public(d) for d in (a, b)) or numbered(a, b)


def squats(domains: list[str], public: list[str]) -> set[str]:
    """The ``domains`` that look like one of the ``public`` domains (mailboxes most accounts use) without being it:
    ``gmai1.com`` for ``gmail.com``. Squats on a public mailbox are bought and shared by many operations, so a pair
    of them says less about one registrant than a private family (``lunaris-ai.com``, ``lunarls-ai.com``) does."""
    mine, known = _unique(domains), set(_unique(public))
    out: set[str] = set()
    for (_, _), members in _blocks(sorted(set(mine) | known)).items():
        if len(members) > MAX_BLOCK:
            continue
        ours = [d for d in members if d in mine and d not in known]
        theirs = [d for d in members if d in known]
        out.update(d for d in ours if d not in out and any(alike(d, p) for p in theirs))
    return out


__all__ = ["PUBLIC_MAILBOXES", "alike", "imitates_public", "lookalike_pairs", "numbered", "one_edit", "public_mailbox",
           "registrable_label", "squats", "stem", "throwaway"]
