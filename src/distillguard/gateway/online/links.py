"""Cross-account evidence the gateway finds itself: payment fingerprints shared with flagged accounts."""

from __future__ import annotations

from typing import Any

from distillguard.decide import flagged

LINK_POINTS = 2.0  # a payment fingerprint shared with a flagged account: one family's worth, never alone


class Links:
    """Cheap cross-account evidence: accounts tied to already-flagged accounts or known campaigns.

    Sources: accounts flagged by batch detection (``--detections``: verdict throttle or
    block, campaign membership) and accounts the online evidence alone would restrict. An account
    that shares a payment fingerprint with one of them gets ``LINK_POINTS`` of coordination evidence,
    if it may get cross-account evidence at all (batch attribution's rule,
    ``detect.evidence.coordination_eligible``): as much as one family, so it restricts only together
    with evidence of another family (a card shared inside a company team is not enough).

    Not used: campaigns' template fingerprints (the ``tpl`` signal). Agentic harvesting imitates coding
    agents, so a template is no account link; shared intel compares keyed MinHash over whole prompts instead.
    """

    def __init__(self) -> None:
        self.payments: dict[str, set[str]] = {}  # payment fingerprint -> flagged accounts using it
        self.flagged: set[str] = set()

    def seed(self, batch: Any, accounts: dict[str, dict[str, Any]]) -> None:
        """Accounts batch detection restricts or put in a campaign (accounts.csv)."""
        for account, entry in batch.entries.items():
            if flagged(entry.verdict) or entry.campaign_id:
                self.flag(account, accounts.get(account))

    def flag(self, account: str, record: dict[str, Any] | None) -> None:
        self.flagged.add(account)
        payment = (record or {}).get("payment_fp")
        if payment:
            self.payments.setdefault(str(payment), set()).add(account)

    def evidence(self, account: str, record: dict[str, Any] | None) -> tuple[float, str]:
        payment = (record or {}).get("payment_fp")
        if not payment:
            return 0.0, ""
        payment = str(payment)
        others = self.payments.get(payment, set()) - {account}
        if others:
            return LINK_POINTS, (f"linked: shares a payment fingerprint with {len(others)} flagged account(s) "
                                 f"({min(others)})")
        return 0.0, ""
