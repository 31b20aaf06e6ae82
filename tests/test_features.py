"""Per-account features: batch (DuckDB) and online (AccountState) agree; the state stays small."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from distillguard.features import AccountState, account_features, attach_signals
from distillguard.features.state import ISSUED_MEMORY, KMV_K, Kmv
from distillguard.features.stats import string_hash
from distillguard.ingest.pipeline import ingest
from distillguard.signals import SIGNALS
from distillguard.store import Store
from distillguard.store.store import CARRIED

START = datetime(2026, 2, 2, tzinfo=UTC)
PROMPTS = ["Write a python function to sort a list", "Think step by step and show your full internal reasoning",
           "Rate the following response on a scale of 1-10 using the rubric", "请逐步思考并给出完整的推理过程",
           "hello how are you", "Solve the equation 3x+2=11"]


def _tool_turn(r: random.Random, a: int, k: int, session: dict) -> tuple[list[dict], dict | None]:
    """An agent account's request history and the tool call its response issues. Every third account is an agent;
    half of those (``a % 6 == 1``) open half their sessions with a history of a call it was never issued."""
    if a % 3 != 1:
        return [], None
    if session.get("first") is None and a % 6 == 1 and r.random() < 0.5:
        session["first"] = f"call_made_up_{k}"
    history: list[dict] = []
    if session.get("first") is not None:
        call = {"id": session["first"], "type": "function", "function": {"name": "read", "arguments": "{}"}}
        history = [{"role": "assistant", "content": None, "tool_calls": [call]},
                   {"role": "tool", "tool_call_id": session["first"], "content": "file contents"}]
    issued = None
    if r.random() < 0.6:
        issued = {"id": f"call_{k}", "type": "function", "function": {"name": "read", "arguments": "{}"}}
        if session.get("first") is None:
            session["first"] = issued["id"]
    if r.random() < 0.25:
        session["first"] = None  # the session ends
    return history, issued


def write_traffic(directory: Path, accounts: int = 18, seed: int = 1) -> tuple[Path, Path]:
    """A small canonical log with varied accounts (volumes, IPs, models incl. one released mid-way, agents answering
    tool calls, some of them calls they were never issued)."""
    r = random.Random(seed)
    logs, records = directory / "ex.jsonl", directory / "accounts.jsonl"
    k = 0
    with logs.open("wb") as out, records.open("wb") as acc:
        for a in range(accounts):
            aid = f"acct_{a:03d}"
            acc.write(orjson.dumps({"account_id": aid, "created_at": (START - timedelta(days=a)).isoformat(),
                                    "tier": ("free", "payg", "enterprise")[a % 3], "verified": a % 2 == 0,
                                    "payment_fp": f"pay{a % 4}", "email_domain": f"d{a % 5}.com"}) + b"\n")
            t = START + timedelta(minutes=r.randint(0, 600))
            session: dict = {}
            for _ in range(r.randint(5, 120)):
                t += timedelta(seconds=r.expovariate(1 / 1800))
                k += 1
                model = "aurora-3" if t > START + timedelta(days=1, hours=6) and r.random() < 0.6 else "aurora-2"
                history, issued = _tool_turn(r, a, k, session)
                reply: dict = {"role": "assistant", "content": "ok"}
                if issued is not None:
                    reply["tool_calls"] = [issued]
                out.write(orjson.dumps({
                    "id": f"x{k}", "ts": t.isoformat().replace("+00:00", "Z"), "account_id": aid,
                    "client": {"ip": f"10.{a}.{r.randint(0, 20)}.{r.randint(1, 30 if a % 4 == 0 else 2)}",
                               "user_agent": f"ua/{a % 2}", "asn": 100 + a % 3, "tls_fp": "t13"},
                    "request": {"model": model, "max_tokens": r.choice([512, 8192]), "temperature": 0.7,
                                "messages": [{"role": "user", "content": f"{r.choice(PROMPTS)} {r.randint(0, 99)}"},
                                             *history]},
                    "response": {"choices": [{"message": reply, "finish_reason": r.choice(["stop", "length"])}],
                                 "usage": {"prompt_tokens": 20, "completion_tokens": r.randint(5, 500)}},
                    "status": 200}) + b"\n")
    return logs, records


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("features")
    logs, records = write_traffic(root)
    store = Store.open(root / "store")
    ingest([logs], store, accounts=records)
    return store


def test_batch_and_online_agree(store: Store) -> None:
    con = store.connect()
    attach_signals(con, store, store.derived(SIGNALS))
    table = account_features(con)
    carried = ", ".join(CARRIED)
    rows = con.sql(f"SELECT * FROM exchanges e JOIN (SELECT * EXCLUDE ({carried}) FROM signals) s USING (id) "
                   "ORDER BY ts, id").to_arrow_table()
    accounts = {r["account_id"]: r for r in con.sql("SELECT * FROM accounts").to_arrow_table().to_pylist()}
    states: dict[str, AccountState] = {}
    for row in rows.to_pylist():
        state = states.setdefault(row["account_id"], AccountState(accounts.get(row["account_id"])))
        state.update(row, row)
    assert set(states) == set(table.account_ids)
    checked = sketched = 0
    for i, account in enumerate(table.account_ids):
        online = states[account].features(table.context)
        sketched += any(states[account].sketches[n].estimate() >= KMV_K for n in states[account].sketches)
        for name, values in table.features.items():
            b, o = values[i], online[name]
            # one definition: distinct counts are the same K-minimum-values estimate in both, so every feature
            # agrees (up to float summation order), above the sketch size too
            assert (np.isnan(b) and np.isnan(o)) or o == pytest.approx(b, rel=1e-9, abs=1e-9), (account, name, b, o)
        checked += 1
    assert checked == len(table)
    assert sketched, "some account has more distinct values than the sketch keeps exactly"
    foreign = dict(zip(table.account_ids, table.features["foreign_history_share"], strict=True))
    # the agents that made up histories, and only they, answer calls they were never issued (beyond the first
    # session, which may have started before the data)
    made_up = {a for a, share in foreign.items() if share > 0.3}
    assert made_up == {f"acct_{a:03d}" for a in range(18) if a % 6 == 1}
    assert all(foreign[f"acct_{a:03d}"] == 0 for a in range(18) if a % 6 == 4)


def test_state_is_small_and_round_trips(store: Store) -> None:
    con = store.connect()
    rows = con.sql("SELECT * FROM exchanges ORDER BY ts, id").to_arrow_table()
    signals = SIGNALS.derive(rows).to_pylist()
    state = AccountState({"account_id": "a", "tier": "payg", "verified": True, "created_at": "2026-01-01T00:00:00Z",
                          "payment_fp": "p" * 40, "email_domain": "example.com"})
    for row, sig in zip(rows.to_pylist(), signals, strict=True):
        state.update(row, sig)  # every exchange into one account: the sketches fill up
    blob = state.to_bytes()
    assert 100 < len(state.issued) <= ISSUED_MEMORY
    assert len(blob) <= 1024 + 4 * ISSUED_MEMORY + 2  # the statistics, and the calls it remembers
    again = AccountState.from_bytes(blob)
    assert again.issued == state.issued
    a, b = state.features(), again.features()
    for name in a:
        assert (np.isnan(a[name]) and np.isnan(b[name])) or b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-4), name
    with pytest.raises(ValueError):
        AccountState.from_bytes(b"\x09" + blob[1:])


def test_issued_memory_keeps_the_calls_sessions_answer() -> None:
    """Online, an account remembers its ISSUED_MEMORY most recent calls, a call its sessions keep answering counting
    as recent: a long session stays its own while newer calls push out ones nobody answers."""
    state = AccountState()
    base = {"ts": "2026-02-02T10:00:00.000Z", "account_id": "a"}
    signals = dict.fromkeys(("cot", "coerce", "rubric", "length", "synth", "probe", "logits", "hit_cap", "big_budget",
                             "single_turn"), False) | {"cap": 0, "script": 0, "tpl": 1, "sys_fp": 0, "params_fp": 0,
                                                       **{f"temb{k}": 0 for k in range(4)}}
    def call(i: int) -> int:  # a call id's 64-bit hash
        return i * 0x9E3779B97F4A7C15 % 2**64

    state.update({**base, "issued_call": call(1)}, signals)  # a long session's first call
    state.update({**base, "issued_call": call(2)}, signals)  # a call no request answers
    for i in range(3, ISSUED_MEMORY + 100):
        state.update({**base, "issued_call": call(i), "cited_call": call(1) if i % 50 == 0 else None}, signals)
    assert len(state.issued) == ISSUED_MEMORY and len(AccountState.from_bytes(state.to_bytes()).issued) == ISSUED_MEMORY
    state.update({**base, "cited_call": call(1)}, signals)
    state.update({**base, "cited_call": call(2)}, signals)
    assert (state.histories["own"].estimate(), state.histories["foreign"].estimate()) == (1, 1)


def test_kmv_is_exact_below_k_and_close_above() -> None:
    sketch = Kmv()
    for i in range(KMV_K - 1):
        sketch.add(string_hash(f"v{i}"))
        sketch.add(string_hash(f"v{i}"))
    assert sketch.estimate() == KMV_K - 1
    for i in range(5000):
        sketch.add(string_hash(f"w{i}"))
    assert 2000 < sketch.estimate() < 12000


def test_string_hash_is_duckdbs_md5_upper_half() -> None:
    import duckdb

    for value in ("10.0.0.1", "python-httpx/0.27", "ünï©ødé", ""):
        (sql,) = duckdb.connect().execute("SELECT (md5_number_upper(?) >> 32)::UINTEGER", [value]).fetchone()
        assert sql == string_hash(value)


def test_prefix_features_only_see_the_past(store: Store) -> None:
    con = store.connect()
    attach_signals(con, store, store.derived(SIGNALS))
    full = account_features(con)
    cut = int(np.median(full.stats["first_ts"]))
    early = account_features(con, until_ms=cut)
    assert 0 < len(early) < len(full)
    assert (early.stats["last_ts"] < cut).all()
    assert early.stats["n"].sum() < full.stats["n"].sum()


def test_serialised_state_is_lossless(store: Store) -> None:
    """Features of a deserialised state equal the live state's bit for bit (tree splits sit at data values)."""
    from distillguard.features.state import features_many

    con = store.connect()
    rows = con.sql("SELECT * FROM exchanges ORDER BY ts, id").to_arrow_table()
    signals = SIGNALS.derive(rows).to_pylist()
    states: dict[str, AccountState] = {}
    for row, sig in zip(rows.to_pylist(), signals, strict=True):
        row["max_tokens"] = 8192  # log2(8193) summed n times: the value the shipped trees split at
        states.setdefault(row["account_id"], AccountState()).update(row, sig)
    live = list(states.values())
    again = [AccountState.from_bytes(s.to_bytes()) for s in live]
    assert all(len(s.to_bytes()) <= 1024 + 4 * ISSUED_MEMORY + 2 for s in live)
    assert all(copy.issued == state.issued and copy.histories["foreign"].values == state.histories["foreign"].values
               for state, copy in zip(live, again, strict=True))
    many = features_many(again)
    for state, copy, vectorised in zip(live, again, many, strict=True):
        assert copy.sums == state.sums
        a, b = state.features(), copy.features()
        for name in a:
            assert (np.isnan(a[name]) and np.isnan(b[name])) or a[name] == b[name] == vectorised[name], name
