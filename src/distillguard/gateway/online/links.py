"""Cross-account evidence the gateway finds itself: a payment fingerprint shared with flagged accounts, or a
private look-alike e-mail domain of theirs signed up for within a day of them."""

from __future__ import annotations

from typing import Any

from distillguard.attribution.domains import alike, throwaway
from distillguard.attribution.linking import LinkConfig
from distillguard.decide import flagged
from distillguard.model import parse_ts
from distillguard.model.account import public_mailbox

LINK_POINTS = 2.0  # a payment fingerprint shared with a flagged account: one family's worth, never alone
# a private look-alike domain family (``lunaris-ai.com`` beside a flagged ``lunarls-ai.com``), signed up for within
# COHORT_MS of a flagged holder: batch attribution weighs it a little below a shared card (0.3 against 0.35)
LOOKALIKE_POINTS = 1.7
COHORT_MS = LinkConfig().cohort_s * 1000  # batch attribution's cohort: colleagues who joined in other weeks are not one


def _created_ms(record: dict[str, Any] | None) -> int | None:
    value = (record or {}).get("created_at")
    if value is None:
        return None
    try:
        return parse_ts(value, "created_at")
    except (TypeError, ValueError):
        return None


def _private_domain(record: dict[str, Any] | None) -> str:
    """The account's e-mail domain when it can name one registrant (not a public mailbox), else ''."""
    domain = str((record or {}).get("email_domain") or "").strip().lower()
    return "" if not domain or public_mailbox(domain) else domain


class Links:
    """Cheap cross-account evidence: accounts tied to already-flagged accounts or known campaigns.

    Sources: accounts flagged by batch detection (``--detections``: verdict throttle or
    block, campaign membership) and accounts the online evidence alone would restrict. An account
    that shares a payment fingerprint with one of them gets ``LINK_POINTS`` of coordination evidence,
    if it may get cross-account evidence at all (batch attribution's rule,
    ``detect.evidence.coordination_eligible``): as much as one family, so it restricts only together
    with evidence of another family (a card shared inside a company team is not enough). An account whose
    e-mail domain is a private look-alike of a flagged account's (batch attribution's test,
    :func:`distillguard.attribution.domains.alike`, throwaway pairs excluded), signed up for within a day of
    it, gets ``LOOKALIKE_POINTS`` under the same rule: the same domain is no link (a company's colleagues), nor
    is a look-alike registered in another week (customers of ``atlaslabs.ai`` beside ``atlas-lab.org``).

    Not used: campaigns' template fingerprints (the ``tpl`` signal). Agentic harvesting imitates coding
    agents, so a template is no account link; shared intel compares keyed MinHash over whole prompts instead.
    """

    def __init__(self) -> None:
        self.payments: dict[str, set[str]] = {}  # payment fingerprint -> flagged accounts using it
        self.flagged: set[str] = set()
        self.domains: dict[str, list[int]] = {}  # private domain of flagged accounts -> their sign-up times
        self._holders = 0  # flagged accounts in ``domains``: a cached look-alike answer is stale once it grows
        self._domain_links: dict[str, tuple[int, float, str]] = {}  # account -> (holders then, points, why)

    def seed(self, batch: Any, accounts: dict[str, dict[str, Any]]) -> None:
        """Accounts batch detection restricts or put in a campaign (accounts.csv)."""
        for account, entry in batch.entries.items():
            if flagged(entry.verdict) or entry.campaign_id:
                self.flag(account, accounts.get(account))

    def flag(self, account: str, record: dict[str, Any] | None) -> None:
        if account in self.flagged:
            return
        self.flagged.add(account)
        payment = (record or {}).get("payment_fp")
        if payment:
            self.payments.setdefault(str(payment), set()).add(account)
        domain, created = _private_domain(record), _created_ms(record)
        if domain and created is not None:
            self.domains.setdefault(domain, []).append(created)
            self._holders += 1

    def evidence(self, account: str, record: dict[str, Any] | None) -> tuple[float, str]:
        payment = (record or {}).get("payment_fp")
        if payment:
            others = self.payments.get(str(payment), set()) - {account}
            if others:
                return LINK_POINTS, (f"linked: shares a payment fingerprint with {len(others)} flagged account(s) "
                                     f"({min(others)})")
        return self._lookalike(account, record)

    def _lookalike(self, account: str, record: dict[str, Any] | None) -> tuple[float, str]:
        version = self._holders
        cached = self._domain_links.get(account)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        points, why = 0.0, ""
        domain, created = _private_domain(record), _created_ms(record)
        if domain and created is not None:
            for other, times in self.domains.items():
                if other != domain and alike(domain, other) and not throwaway(domain, other) \
                        and any(abs(created - t) <= COHORT_MS for t in times):
                    points, why = LOOKALIKE_POINTS, (f"linked: e-mail domain {domain} looks like {other} of a flagged "
                                                     "account signed up within a day of it")
                    break
        self._domain_links[account] = (version, points, why)
        return points, why
