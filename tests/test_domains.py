"""Look-alike e-mail domains (attribution/domains.py)."""

from __future__ import annotations

import pytest

from distillguard.attribution.domains import (
    alike,
    imitates_public,
    lookalike_pairs,
    numbered,
    one_edit,
    registrable_label,
    squats,
    stem,
    throwaway,
)


@pytest.mark.parametrize(("a", "b"), [
    ("lunarisai.co", "lunaris-ai.com"),  # hyphenation and TLD swap
    ("lunaris-ai.com", "lunarls-ai.com"),  # homoglyph l/i
    ("lunaris-ai.net", "lunaris-labs.io"),  # dictionary word on one stem
    ("gmai1.com", "gmail.com"), ("hotrnail.com", "hotmail.com"), ("out1ook.com", "outlook.com"),
    ("mailbox1.xyz", "mail-box7.top"), ("fastmail851.site", "fastmail667.icu"),  # digits and separators
    ("examplecorp.com", "exmaplecorp.io"),  # adjacent transposition
    ("northwind.com", "northwinds.com"),  # insertion
    ("example.co.uk", "examp1e.com"),  # registrable label under a second-level suffix
])
def test_lookalikes(a: str, b: str) -> None:
    assert alike(a, b) and alike(b, a)
    assert (min(a, b), max(a, b)) in lookalike_pairs([a, b, "unrelated.org"])


@pytest.mark.parametrize(("a", "b"), [
    ("gmail.com", "yahoo.com"), ("mit.edu", "umich.edu"), ("acme.com", "acne.com"),  # short stems: one edit is a word
    ("stanford.edu", "berkeley.edu"), ("alpha.io", "alphabet.com"),
    ("126.com", "i.ua"),  # stems of one letter
    ("yandex.com", "yandex.ru"), ("outlook.com", "outlook.de"),  # one public provider's country domains
])
def test_not_lookalikes(a: str, b: str) -> None:
    assert not alike(a, b)
    assert lookalike_pairs([a, b]) == []


def test_helpers() -> None:
    assert registrable_label("mail.example.co.uk") == "example"
    assert registrable_label("Example.COM.") == "example"
    assert stem("Lunar1s-AI") == "lunarlsal"
    assert one_edit("abcdef", "abcdxf") and one_edit("abcdef", "abdcef") and one_edit("abcdef", "abcdefg")
    assert not one_edit("abcdef", "abdcfe") and not one_edit("abc", "abcde")
    assert lookalike_pairs(["", " ", "a.com", "A.com"]) == []  # one domain, however written, is no pair


def test_blocking_keeps_many_domains_near_linear() -> None:
    domains = [f"company{i:05d}x{chr(97 + i % 26)}.com" for i in range(5000)]
    pairs = lookalike_pairs(domains)
    assert all(a < b for a, b in pairs)


def test_private_families_and_throwaway_pairs() -> None:
    # one registrant's private family: a pair of these links with full look-alike weight
    assert not throwaway("lunaris-ai.com", "lunarls-ai.com") and not throwaway("lunarisai.co", "lunaris-labs.io")
    # bought, generated and shared by many operations: squats on a public mailbox and numbered series
    assert throwaway("gmai1.com", "gmail.com") and throwaway("gmai1.com", "gmaill.co")
    assert throwaway("fastmail-x-lxv.site", "fastmail-x-c8n.top")
    assert throwaway("webmail170.online", "webmail555.shop") and numbered("post918.site", "post991.xyz")
    assert not numbered("lunaris-ai.com", "lunaris-ai.net")  # a suffix swap is no series
    assert imitates_public("hotrnail.com") and imitates_public("yah00-mail.net") and not imitates_public("gmail.com")
    # squats on what this deployment's ordinary accounts use, whether or not the shipped list knows it
    assert squats(["acmemai1.com", "lunaris-ai.com"], ["acmemail.com", "gmail.com"]) == {"acmemai1.com"}


def test_a_huge_family_of_one_stem_is_paired_as_a_star() -> None:
    family = [f"lunaris-ai.{tld}{i}" for i, tld in enumerate(["com", "net", "io"] * 200)]
    pairs = lookalike_pairs(family)
    assert len(pairs) == len(family) - 1  # not ~180,000
    assert {d for pair in pairs for d in pair} == set(family)
