"""Linking-graph details: MinHash estimates, the flagged-share test on templates, evidence that accumulates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from distillguard.attribution import find_campaigns
from distillguard.attribution.minhash import PERMS, jaccard, signatures
from distillguard.model import ACCOUNT_SCHEMA, EXCHANGE_SCHEMA

T0_MS = int(datetime(2026, 2, 2, tzinfo=UTC).timestamp() * 1000)


def test_minhash_estimates_jaccard_and_skips_small_sets():
    rng = np.random.default_rng(1)
    shared = rng.choice(10**9, 300, replace=False)
    a = np.concatenate([shared, rng.choice(10**9, 100, replace=False) + 10**9])  # J(a, b) = 300 / 500 = 0.6
    b = np.concatenate([shared, rng.choice(10**9, 100, replace=False) + 2 * 10**9])
    c = np.array([1, 2])  # below min_size
    owner = np.concatenate([np.zeros(len(a)), np.ones(len(b)), np.full(len(c), 2), np.zeros(5)]).astype(np.int64)
    element = np.concatenate([a, b, c, a[:5]]).astype(np.uint64)  # duplicates do not count twice
    sig, has = signatures(owner, element, 3, min_size=3)
    assert sig.shape == (3, PERMS) and has.tolist() == [True, True, False]
    assert abs(jaccard(sig, np.array([0]), np.array([1]))[0] - 0.6) < 0.15
    again, _ = signatures(owner[::-1].copy(), element[::-1].copy(), 3, min_size=3)
    assert (again == sig).all()  # order of the input does not matter


def _connect(exchanges: dict, accounts: dict) -> duckdb.DuckDBPyConnection:
    """Views ``exchanges`` and ``accounts`` over the given columns, every other schema column null."""
    n_ex, n_acc = len(exchanges["id"]), len(accounts["account_id"])
    cols = {name: pa.nulls(n_ex, f.type) for name, f in zip(EXCHANGE_SCHEMA.names, EXCHANGE_SCHEMA, strict=True)}
    cols.update(exchanges)
    acc = {name: pa.nulls(n_acc, f.type) for name, f in zip(ACCOUNT_SCHEMA.names, ACCOUNT_SCHEMA, strict=True)}
    acc.update(accounts)
    con = duckdb.connect()
    con.register("_ex", pa.table(cols, schema=EXCHANGE_SCHEMA))
    con.register("_acc", pa.table(acc, schema=ACCOUNT_SCHEMA))
    con.execute("CREATE VIEW exchanges AS SELECT * FROM _ex")
    con.execute("CREATE VIEW accounts AS SELECT * FROM _acc")
    return con


def _exchanges(rng: np.random.Generator, ids: np.ndarray, owner: np.ndarray, user_agent: list[str],
               user_text: Callable[[], list[str]]) -> dict:
    """Exchange columns of ``ids[owner]`` over 28 days from random /24s (``user_text`` is drawn last)."""
    n_ex = len(owner)
    return dict(
        id=pa.array([f"x{i}" for i in range(n_ex)]),
        ts=pa.array(T0_MS + rng.integers(0, 28 * 86_400_000, n_ex), pa.int64()).cast(EXCHANGE_SCHEMA.field("ts").type),
        account_id=pa.array(ids[owner]),
        ip=pa.array([f"{a}.{b}.{c}.9" for a, b, c in rng.integers(1, 250, (n_ex, 3))]),
        user_agent=pa.array(user_agent),
        model=pa.array(["aurora-2"] * n_ex), max_tokens=pa.array([1024] * n_ex),
        n_user_turns=pa.array(np.ones(n_ex, np.int32)),
        user_text=pa.array(user_text()),
    )


def _world(n_benign: int, flagged: int, flagged_prompt: str | None = None
           ) -> tuple[duckdb.DuckDBPyConnection, pa.Table]:
    """Benign accounts all asking 'question about <n>' (one template once digits fold); the flagged ones signed up
    in one burst of their own (a sign-up key they dominate), the rest over a year."""
    rng = np.random.default_rng(3)
    ids = np.array([f"acct_{i:05d}" for i in range(n_benign)])
    per = 6
    owner = np.repeat(np.arange(n_benign), per)
    exchanges = _exchanges(rng, ids, owner, ["OpenAI/Python 1.59.7"] * len(owner), lambda: [
        flagged_prompt if flagged_prompt and o < flagged else f"question about {v}"
        for o, v in zip(owner.tolist(), rng.integers(0, 10**6, len(owner)).tolist(), strict=True)])
    created = T0_MS - rng.integers(2, 400, n_benign) * 86_400_000
    created[:flagged] = T0_MS - 86_400_000 + np.arange(flagged) * 30_000  # one sign-up every 30 s: one burst
    con = _connect(exchanges, {
        "account_id": pa.array(ids),
        "created_at": pa.array(created, pa.int64()).cast(ACCOUNT_SCHEMA.field("created_at").type),
        "email_domain": pa.array(["gmail.com"] * n_benign),
        "payment_fp": pa.array([f"pfp_4a1f{i:09d}" for i in range(n_benign)])})
    risk = np.zeros(n_benign)
    risk[:flagged] = 0.6
    return con, pa.table({"account_id": ids, "risk": risk})


def test_a_template_most_holders_of_which_are_not_suspicious_links_nobody():
    """Flagged false positives that share a common prompt (and a busy sign-up hour) are not a campaign."""
    con, scores = _world(n_benign=400, flagged=60)
    assert find_campaigns(con, scores) == []


def test_evidence_from_two_large_groups_accumulates_on_the_same_pairs():
    """200 accounts share a sign-up burst (0.15) and a template (0.25): neither links alone, together they do.

    Both groups are over ``clique_max``, so each proposes random circulant pairs; unless every proposed pair is
    weighed on every kind, the two samples barely overlap and the group falls apart.
    """
    con, scores = _world(n_benign=600, flagged=200, flagged_prompt="Produce a full worked solution for the dataset")
    campaigns = find_campaigns(con, scores)
    assert len(campaigns) == 1 and len(campaigns[0].accounts) == 200


def _quiet_world(created_ms: list[int] | np.ndarray, columns: dict[str, pa.Array], seed: int
                 ) -> tuple[duckdb.DuckDBPyConnection, pa.Table]:
    """Suspicious accounts (one per ``created_ms``) whose traffic shares nothing (own client, unique prompts) beside
    200 ordinary accounts signed up long before; ``columns``: the account records' other columns, all accounts."""
    rng = np.random.default_rng(seed)
    n_sus = len(created_ms)
    n = n_sus + 200
    ids = np.array([f"acct_{i:05d}" for i in range(n)])
    owner = np.repeat(np.arange(n), 4)
    exchanges = _exchanges(rng, ids, owner, [f"client/{i}" for i in owner.tolist()],
                           lambda: [f"{rng.integers(10**9)} unique words {o}" for o in owner.tolist()])
    created = np.r_[np.asarray(created_ms, dtype=np.int64), T0_MS - rng.integers(2, 400, 200) * 86_400_000]
    con = _connect(exchanges, {
        "account_id": pa.array(ids),
        "created_at": pa.array(created, pa.int64()).cast(ACCOUNT_SCHEMA.field("created_at").type), **columns})
    risk = np.r_[np.full(n_sus, 0.6), np.zeros(200)]
    return con, pa.table({"account_id": ids, "risk": risk})


def _domain_world(domains: list[str], created_ms: list[int]) -> tuple[duckdb.DuckDBPyConnection, pa.Table]:
    """Suspicious accounts that share nothing but what their e-mail domains and sign-up times say, beside 200
    ordinary gmail accounts."""
    return _quiet_world(created_ms, {"email_domain": pa.array([*domains, *(["gmail.com"] * 200)]),
                                     "payment_fp": pa.array([f"pm_{i:09d}" for i in range(len(domains) + 200)])}, 5)


def test_a_private_family_of_look_alike_domains_signed_up_together_is_one_campaign():
    family = ["lunaris-ai.com", "lunarisai.co", "lunarls-ai.com", "lunaris-ai.net", "lunarisai.co", "lunarls-ai.com"]
    day = 86_400_000
    con, scores = _domain_world(family, [T0_MS - 30 * day + i * 6 * 3_600_000 for i in range(6)])  # 6 h apart
    campaigns = find_campaigns(con, scores)
    assert len(campaigns) == 1 and len(campaigns[0].accounts) == 6
    assert "lookalike_email_domain" in {e.kind for e in campaigns[0].evidence}


def test_look_alike_domains_of_accounts_signed_up_apart_or_of_one_provider_link_nobody():
    """Colleagues at atlas-lab.org and customers of atlaslabs.ai (common words, sign-ups months apart), and one
    provider's country domains signed up together, are no campaign."""
    day = 86_400_000
    apart = ["atlas-lab.org", "atlaslabs.ai", "atlas-lab.org", "atlaslabs.ai", "atlas-lab.org", "atlaslabs.ai"]
    con, scores = _domain_world(apart, [T0_MS - (40 + 60 * i) * day for i in range(6)])
    assert find_campaigns(con, scores) == []
    provider = ["yandex.com", "yandex.ru", "yandex.com", "yandex.ru", "yandex.com", "yandex.ru"]
    con, scores = _domain_world(provider, [T0_MS - 30 * day + i * 3_600_000 for i in range(6)])
    assert find_campaigns(con, scores) == []


def _card_world(issuers: list[str | None], fingerprints: list[str], benign_issuer: str | None = None
                ) -> tuple[duckdb.DuckDBPyConnection, pa.Table]:
    """Suspicious accounts with distinct cards, signed up in one burst (0.15 of a link: not enough alone), beside
    200 ordinary accounts whose cards come from ``benign_issuer``."""
    n_sus = len(issuers)
    return _quiet_world(T0_MS - 86_400_000 + np.arange(n_sus) * 60_000, {
        "email_domain": pa.array(["gmail.com"] * (n_sus + 200)),
        "payment_fp": pa.array([*fingerprints, *(f"card_{i:09d}" for i in range(200))]),
        "payment_issuer": pa.array([*issuers, *([benign_issuer] * 200)], pa.string())}, 9)


def test_distinct_cards_of_one_issuer_link_only_by_the_records_issuer_field():
    """The issuer is the account record's ``payment_issuer`` (what a payment processor reports), never parsed out of
    the fingerprint's text: a provider's fingerprints are opaque. An issuer most of whose holders are ordinary
    customers (a big bank's BIN) links nobody."""
    cards = [f"pfp_53d2a1{i:010x}" for i in range(8)]
    con, scores = _card_world(["53d2a1"] * 8, cards)
    campaigns = find_campaigns(con, scores)
    assert len(campaigns) == 1 and len(campaigns[0].accounts) == 8
    assert "shared_payment_issuer" in {e.kind for e in campaigns[0].evidence}
    con, scores = _card_world([None] * 8, cards)  # the same fingerprints, no issuer in the records
    assert find_campaigns(con, scores) == []
    con, scores = _card_world(["411111"] * 8, cards, benign_issuer="411111")  # 8 of 208 holders suspicious
    assert find_campaigns(con, scores) == []
