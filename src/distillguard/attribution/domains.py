"""Look-alike e-mail domains: distinct registrations one actor made to look unrelated, or like a known mailbox.

An actor who signs up hundreds of accounts registers a handful of domains that differ in the ways domain-
squatting tools enumerate (dnstwist's fuzzers): hyphenation (``lunaris-ai`` / ``lunarisai``), homoglyphs
(``lunarls``, ``gmai1``, ``hotrnail``), an added or dropped letter (``gmaill``), a swapped top-level domain, and
a dictionary word appended to one stem (``lunaris-labs``). Two domains are *look-alikes* when, after folding
homoglyphs and dropping separators, digits and the public suffix, they are equal or one edit apart
(insertion, deletion, substitution or adjacent transposition; stems of six letters or more), or when they
begin with the same word of five letters or more.

Look-alikes are returned as *pairs*: a pair is a linking key held by the accounts of either domain, so the key
test of :mod:`distillguard.attribution.linking` (most holders suspicious) judges each pair on its own: a
harvester's ``hotrnail.com`` paired with the real ``hotmail.com`` fails it, while its ``gmai1.com`` and
``gmaill.co`` pass together.
"""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import combinations

# second-level labels under which the registrable name is one label further left (example.co.uk, uni.ac.jp)
_SECOND_LEVEL = frozenset(("co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gv", "mil"))
_GLYPHS = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("3", "e"), ("5", "s"), ("i", "l"), ("|", "l"))
_WORD = re.compile(r"[a-z]+")
MIN_STEM = 6  # one edit apart counts only for stems this long (``mail1`` / ``mails`` are different words)
MIN_WORD = 5  # a shared leading word this long links (``lunaris-ai`` / ``lunaris-labs``)
MAX_BLOCK = 200  # domains sharing a blocking key beyond this are compared by equal stems only


def registrable_label(domain: str) -> str:
    """The label a registrant chose: ``example`` of ``mail.example.co.uk`` (no public-suffix list is shipped;
    common second-level suffixes are recognised)."""
    labels = [p for p in domain.strip().lower().rstrip(".").split(".") if p]
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else (labels[0] if labels else "")


def stem(label: str) -> str:
    """Homoglyphs folded, then everything but letters dropped."""
    text = label.lower()
    for glyph, letter in _GLYPHS:
        text = text.replace(glyph, letter)
    return "".join(_WORD.findall(text))


def lead_word(label: str) -> str:
    """The first word of the label as written (before a hyphen, digit or underscore), homoglyphs folded."""
    words = _WORD.findall(re.sub(r"[^a-z0-9]+", " ", label.lower()).split(" ")[0] if label else "")
    return stem(words[0]) if words else ""


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


def alike(a: str, b: str) -> bool:
    """Whether two distinct domains look alike (see the module's docstring)."""
    la, lb = registrable_label(a), registrable_label(b)
    sa, sb = stem(la), stem(lb)
    if not sa or not sb:
        return False
    if sa == sb:
        return True
    if min(len(sa), len(sb)) >= MIN_STEM and one_edit(sa, sb):
        return True
    wa, wb = lead_word(la), lead_word(lb)
    return len(wa) >= MIN_WORD and wa == wb


def lookalike_pairs(domains: list[str]) -> list[tuple[str, str]]:
    """Sorted pairs ``(a, b)``, ``a < b``, of distinct look-alike domains among ``domains`` (lower-cased).

    Candidates are proposed by blocking keys (the stem, its first and last four letters, the leading word), so the
    cost stays near linear; a block larger than :data:`MAX_BLOCK` is skipped except for equal stems.
    """
    unique = sorted({d.strip().lower() for d in domains if d and d.strip()})
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
    pairs: set[tuple[str, str]] = set()
    for (kind, _), members in blocks.items():
        if len(members) < 2 or (len(members) > MAX_BLOCK and kind != "stem"):
            continue
        for a, b in combinations(members, 2):
            if kind == "stem" or alike(a, b):
                pairs.add((a, b) if a < b else (b, a))
    return sorted(pairs)


__all__ = ["alike", "lookalike_pairs", "one_edit", "registrable_label", "stem"]
