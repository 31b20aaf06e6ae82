"""What the console shows: a detection run (``accounts.csv``, ``campaigns.json``, ``links.json``) over a store.

Everything a page needs is answered from small in-memory DuckDB tables built once at start-up in one scan of
the store (per account, hour and model: exchange counts, API keys and IPs), so no page scans the exchanges,
except the sample exchanges of one account (a filtered read of that account's rows). ``reload()`` picks up a
new detection run.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import igraph as ig
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from distillguard.attribution import KINDS
from distillguard.store import Store

PAGE = 50
VERDICT_BANDS = {"flagged": ("throttle", "block"), "block": ("block",), "throttle": ("throttle",),
                 "watch": ("watch",), "allow": ("allow",)}
KIND_GROUP = {kind: group for kind, (_, group) in KINDS.items()}
_INTEL = re.compile(r"from (\S+) \d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_SECRET = re.compile(r"\b(sk|key|tok)[-_][A-Za-z0-9_-]{8,}\b")
_IP = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b")
_NUMBER = re.compile(r"\b\d{6,}\b")


def redact(text: str | None, limit: int = 600) -> str:
    """Text with e-mail addresses, key-like tokens, IP addresses and long numbers masked, cut to ``limit``."""
    if not text:
        return ""
    out = _EMAIL.sub("[email]", text)
    out = _SECRET.sub("[secret]", out)
    out = _IP.sub("[ip]", out)
    out = _NUMBER.sub("[number]", out)
    return out if len(out) <= limit else out[:limit] + " …"


@dataclass
class Filters:
    verdict: str = ""
    tier: str = ""
    campaign: str = ""
    model: str = ""
    since: str = ""  # YYYY-MM-DD: active on or after
    until: str = ""  # YYYY-MM-DD: active on or before
    q: str = ""
    page: int = 0

    @classmethod
    def from_query(cls, query: Any) -> Filters:
        def get(name: str) -> str:
            return str(query.get(name) or "").strip()[:200]

        try:
            page = max(0, min(int(get("page") or 0), 100_000))
        except ValueError:
            page = 0
        out = cls(get("verdict"), get("tier"), get("campaign"), get("model"), get("since"), get("until"), get("q"),
                  page)
        for name in ("since", "until"):
            value = getattr(out, name)
            if value and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                setattr(out, name, "")
        if out.verdict not in VERDICT_BANDS:
            out.verdict = ""
        return out

    def query(self, **over: Any) -> str:
        from urllib.parse import urlencode

        values = {k: v for k, v in {**self.__dict__, **over}.items() if v not in ("", 0, None)}
        return urlencode(values)


class ConsoleData:
    def __init__(self, store: str | Path, detections: str | Path | None) -> None:
        self.store = Store.open(store, create=False)
        self.content = bool(self.store.content)
        self.detections = Path(detections) if detections else None
        self._lock = threading.Lock()
        self._store_lock = threading.Lock()
        self.store_con = self.store.connect(threads=1)
        self.con = duckdb.connect()
        self.con.execute("SET threads = 1")
        self.load()

    # ---- loading --------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            self._load_store()
            self._load_detections()

    def _load_store(self) -> None:
        src = self.store_con
        fine = src.sql("""
            SELECT account_id, coalesce(api_key_id, '') AS api_key_id, coalesce(ip, '') AS ip,
                   coalesce(model, 'unknown') AS model, date_trunc('hour', ts) AS hour, count(*)::INTEGER AS n
            FROM exchanges GROUP BY ALL""").to_arrow_table()
        self.con.register("_fine", fine)
        self.con.execute("CREATE OR REPLACE TABLE hours AS SELECT account_id, model, hour, sum(n)::INTEGER AS n "
                         "FROM _fine GROUP BY ALL ORDER BY account_id, hour")
        self.con.execute("CREATE OR REPLACE TABLE keys AS SELECT DISTINCT api_key_id AS value, account_id FROM _fine "
                         "WHERE api_key_id <> '' ORDER BY value")
        self.con.execute("CREATE OR REPLACE TABLE ips AS SELECT DISTINCT ip AS value, account_id FROM _fine "
                         "WHERE ip <> '' ORDER BY value")
        self.con.execute("CREATE OR REPLACE TABLE acct_models AS SELECT account_id, model, sum(n)::BIGINT AS n, "
                         "min(hour) AS first, max(hour) AS last FROM _fine GROUP BY ALL")
        self.con.execute("CREATE OR REPLACE TABLE releases AS SELECT model, min(hour) AS first FROM _fine GROUP BY ALL")
        self.con.unregister("_fine")
        for table, column in (("keys", "value"), ("keys", "account_id"), ("ips", "value"), ("ips", "account_id"),
                              ("acct_models", "account_id")):
            self.con.execute(f"CREATE INDEX {table}_{column} ON {table} ({column})")
        # where each account's exchanges are: a sample reads one file, not the whole store
        files = self.store.exchange_files()
        self.files: list[str] = list(files)
        if files:
            from distillguard.store.store import _sql_list

            located = src.sql(f"SELECT account_id, filename AS file, count(*)::INTEGER AS n FROM read_parquet("
                              f"{_sql_list(files)}, filename = true) GROUP BY ALL").to_arrow_table()
            self.con.register("_located", located)
            self.con.execute("CREATE OR REPLACE TABLE located AS SELECT * FROM _located ORDER BY account_id")
            self.con.unregister("_located")
            self.con.execute("CREATE INDEX located_account ON located (account_id)")
        records = src.sql("SELECT account_id, tier, payment_fp, email_domain, signup_ip, country, created_at "
                              "FROM accounts").to_arrow_table()
        self.con.register("_records", records)
        self.con.execute("CREATE OR REPLACE TABLE records AS SELECT * FROM _records")
        self.con.unregister("_records")
        span = self.con.execute("SELECT min(hour), max(hour), sum(n) FROM hours").fetchall()[0]
        self.span = (span[0], span[1])
        self.total_exchanges = int(span[2] or 0)

    def _load_detections(self) -> None:
        d = self.detections
        path = d / "accounts.csv" if d is not None else None
        if path is not None and path.exists():
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={"campaign_id": pa.string(), "signals": pa.string(), "verdict": pa.string()}))
        else:  # no detection run: every account of the store, unscored
            table = self.con.sql(
                "SELECT account_id, 0.0 AS risk, 'allow' AS verdict, NULL::VARCHAR AS campaign_id, '' AS signals, "
                "sum(n) AS exchanges, min(hour)::VARCHAR AS first_seen, max(hour)::VARCHAR AS last_seen "
                "FROM hours GROUP BY 1").to_arrow_table()
        self.points_columns = [c for c in table.column_names if c.startswith("points_")]
        self.con.register("_acc", table)
        self.con.execute("""
            CREATE OR REPLACE TABLE acc AS SELECT a.*, coalesce(r.tier, '') AS tier,
                   coalesce(r.payment_fp, '') AS payment_fp, coalesce(r.email_domain, '') AS email_domain,
                   coalesce(r.signup_ip, '') AS signup_ip, coalesce(r.country, '') AS country,
                   CAST(a.first_seen AS TIMESTAMPTZ) AS first_ts, CAST(a.last_seen AS TIMESTAMPTZ) AS last_ts
            FROM _acc a LEFT JOIN records r USING (account_id) ORDER BY risk DESC, account_id""")
        self.con.unregister("_acc")
        self.con.execute("CREATE INDEX acc_account ON acc (account_id)")
        self.n_accounts = int(self.con.execute("SELECT count(*) FROM acc").fetchall()[0][0])
        doc: dict[str, Any] = {"campaigns": []}
        if d is not None and (d / "campaigns.json").exists():
            doc = orjson.loads((d / "campaigns.json").read_bytes())
        self.campaigns: dict[str, dict[str, Any]] = {c["id"]: c for c in doc.get("campaigns", [])}
        self.generated = doc.get("generated")
        members = [(a, c["id"]) for c in self.campaigns.values() for a in c["accounts"]]
        self.con.register("_members", pa.table({"account_id": [m[0] for m in members],
                                                "campaign_id": [m[1] for m in members]}, schema=pa.schema(
            [("account_id", pa.string()), ("campaign_id", pa.string())])))
        self.con.execute("CREATE OR REPLACE TABLE members AS SELECT * FROM _members")
        self.con.unregister("_members")
        self.con.execute("CREATE OR REPLACE TABLE camp_hours AS SELECT m.campaign_id, h.hour, h.model, sum(h.n) AS n "
                         "FROM hours h JOIN members m USING (account_id) GROUP BY ALL ORDER BY 1, 2")
        self.links: dict[str, dict[str, Any]] = {}
        if d is not None and (d / "links.json").exists():
            self.links = orjson.loads((d / "links.json").read_bytes()).get("campaigns", {})
        self.models = [r[0] for r in self.con.execute("SELECT model FROM releases ORDER BY first").fetchall()]
        self.tiers = [r[0] for r in self.con.execute("SELECT DISTINCT tier FROM acc WHERE tier <> '' ORDER BY 1")
                      .fetchall()]
        self._graphs: dict[str, dict[str, Any]] = {}
        self._adj: dict[str, dict[str, list[tuple[str, str]]]] = {}
        self._intel: dict[str, dict[str, Any]] = {}

    def _q(self, sql: str, args: list | tuple = ()) -> list[tuple]:
        cur = self.con.cursor()
        try:
            return cur.execute(sql, list(args)).fetchall()
        finally:
            cur.close()

    # ---- queues ---------------------------------------------------------
    def _matching_accounts(self, q: str) -> tuple[str, list]:
        """SQL condition on ``acc`` for a search: account, API key, IP (or prefix), payment fingerprint, template."""
        q = q.strip()
        if not q:
            return "", []
        templates = [cid for cid, c in self.campaigns.items()
                     if any(q == t.get("fingerprint") or (len(q) >= 4 and q.lower() in (t.get("example") or "").lower())
                            for t in c.get("templates", []))]
        cond = ("(account_id = ? OR account_id LIKE ? OR payment_fp = ? "
                "OR account_id IN (SELECT account_id FROM keys WHERE value = ?) "
                "OR account_id IN (SELECT account_id FROM ips WHERE value = ? OR (length(?) >= 6 AND value LIKE ?))")
        args: list[Any] = [q, q + "%", q, q, q, q, q + "%"]
        if templates:
            cond += " OR account_id IN (SELECT account_id FROM members WHERE campaign_id IN (" + \
                ",".join("?" * len(templates)) + "))"
            args += templates
        return cond + ")", args

    def account_queue(self, f: Filters, limit: int = PAGE) -> tuple[list[dict[str, Any]], int]:
        where: list[str] = ["1=1"]
        args: list[Any] = []
        if f.verdict:
            bands = VERDICT_BANDS[f.verdict]
            where.append("verdict IN (" + ",".join("?" * len(bands)) + ")")
            args += bands
        if f.tier:
            where.append("tier = ?")
            args.append(f.tier)
        if f.campaign:
            where.append("campaign_id = ?")
            args.append(f.campaign)
        if f.model:
            where.append("account_id IN (SELECT account_id FROM acct_models WHERE model = ?)")
            args.append(f.model)
        if f.since:
            where.append("last_ts >= CAST(? AS TIMESTAMPTZ)")
            args.append(f.since)
        if f.until:
            where.append("first_ts < CAST(? AS TIMESTAMPTZ) + INTERVAL 1 DAY")
            args.append(f.until)
        cond, more = self._matching_accounts(f.q)
        if cond:
            where.append(cond)
            args += more
        sql_where = " AND ".join(where)
        total = int(self._q(f"SELECT count(*) FROM acc WHERE {sql_where}", args)[0][0])
        rows = self._q("SELECT account_id, risk, verdict, campaign_id, exchanges, first_seen, last_seen, tier, "
                       f"signals FROM acc WHERE {sql_where} ORDER BY risk DESC, account_id LIMIT ? OFFSET ?",
                       [*args, limit, f.page * limit])
        names = ("account_id", "risk", "verdict", "campaign_id", "exchanges", "first_seen", "last_seen", "tier",
                 "signals")
        return [dict(zip(names, r, strict=True)) for r in rows], total

    def campaign_queue(self, f: Filters) -> list[dict[str, Any]]:
        out = []
        wanted: set[str] | None = None
        if f.q:
            cond, args = self._matching_accounts(f.q)
            wanted = {r[0] for r in self._q(f"SELECT DISTINCT campaign_id FROM acc WHERE campaign_id IS NOT NULL "
                                             f"AND {cond}", args)} | {c for c in self.campaigns if c == f.q}
        for c in sorted(self.campaigns.values(), key=lambda c: (-c.get("score", 0), c["id"])):
            if wanted is not None and c["id"] not in wanted:
                continue
            if f.model and f.model not in c.get("models", {}):
                continue
            if f.since and (c.get("last_seen") or "") < f.since:
                continue
            if f.until and (c.get("first_seen") or "9") > f.until + "T23:59:59Z":
                continue
            if f.campaign and c["id"] != f.campaign:
                continue
            out.append(c)
        return out

    # ---- one account ----------------------------------------------------
    def account(self, account_id: str) -> dict[str, Any] | None:
        cur = self.con.cursor()
        try:
            res = cur.execute("SELECT * FROM acc WHERE account_id = ?", [account_id])
            names = [d[0] for d in res.description]
            found = res.fetchall()
            row = found[0] if found else None
        finally:
            cur.close()
        if row is None:
            return None
        out = dict(zip(names, row, strict=True))
        out["reasons"] = [r.strip() for r in str(out.get("signals") or "").split(";") if r.strip()]
        out["points"] = {c[len("points_"):]: float(out.get(c) or 0.0) for c in self.points_columns}
        out["keys"] = [r[0] for r in self._q("SELECT DISTINCT value FROM keys WHERE account_id = ? LIMIT 20",
                                             [account_id])]
        out["ips"] = [r[0] for r in self._q("SELECT DISTINCT value FROM ips WHERE account_id = ? LIMIT 20",
                                            [account_id])]
        out["models"] = [dict(zip(("model", "n", "first", "last"), r, strict=True)) for r in self._q(
            "SELECT model, n, first, last FROM acct_models WHERE account_id = ? ORDER BY first", [account_id])]
        return out

    def points_of(self, account_ids: list[str]) -> dict[str, dict[str, float]]:
        """Evidence points per family of many accounts, in one query (what a campaign decision records)."""
        if not account_ids or not self.points_columns:
            return {}
        cols = ", ".join(self.points_columns)
        cur = self.con.cursor()
        try:
            cur.register("_wanted", pa.table({"account_id": pa.array(account_ids, pa.string())}))
            rows = cur.execute(f"SELECT account_id, {cols} FROM acc WHERE account_id IN "
                               "(SELECT account_id FROM _wanted)").fetchall()
        finally:
            cur.close()
        names = [c[len("points_"):] for c in self.points_columns]
        return {r[0]: {n: float(v or 0.0) for n, v in zip(names, r[1:], strict=True)} for r in rows}

    def account_days(self, account_id: str) -> list[tuple[datetime, str, int]]:
        return [(r[0], r[1], int(r[2])) for r in self._q(
            "SELECT date_trunc('day', hour) AS d, model, sum(n) FROM hours WHERE account_id = ? GROUP BY ALL "
            "ORDER BY d", [account_id])]

    def linked_accounts(self, account: dict[str, Any], limit: int = 30) -> list[dict[str, Any]]:
        """Accounts sharing a campaign link, an API key, an IP or a payment fingerprint with ``account``."""
        aid = account["account_id"]
        found: dict[str, set[str]] = defaultdict(set)
        camp = account.get("campaign_id")
        if camp and camp in self.links:
            for other, kind in self._adjacency(camp).get(aid, ()):
                found[other].add(kind)
        for table, how, values in (("keys", "same API key", account.get("keys") or []),
                                   ("ips", "same IP address", account.get("ips") or [])):
            values = values[:20]
            if not values:
                continue
            for r in self._q(f"SELECT DISTINCT account_id FROM {table} WHERE value IN ({','.join('?' * len(values))}) "
                             "AND account_id <> ? LIMIT 50", [*values, aid]):
                found[r[0]].add(how)
        if account.get("payment_fp"):
            for r in self._q("SELECT account_id FROM acc WHERE payment_fp = ? AND account_id <> ? LIMIT 50",
                             [account["payment_fp"], aid]):
                found[r[0]].add("same payment fingerprint")
        if not found:
            return []
        ids = list(found)
        rows = {r[0]: r for r in self._q(
            "SELECT account_id, risk, verdict, campaign_id FROM acc WHERE account_id IN (" + ",".join("?" * len(ids))
            + ")", ids)}
        out: list[dict[str, Any]] = [
            {"account_id": a, "how": sorted(found[a]), "risk": rows[a][1] if a in rows else None,
             "verdict": rows[a][2] if a in rows else "", "campaign_id": rows[a][3] if a in rows else None}
            for a in ids]
        out.sort(key=lambda r: (-(r["risk"] or 0), r["account_id"]))
        return out[:limit]

    def _adjacency(self, campaign_id: str) -> dict[str, list[tuple[str, str]]]:
        """account -> [(linked account, evidence kind)] in a campaign's linking graph (built once)."""
        if campaign_id not in self._adj:
            ids = self.links[campaign_id]["accounts"]
            adj: dict[str, set[tuple[str, str]]] = defaultdict(set)
            for a, b, kind, _ in self.links[campaign_id]["edges"]:
                words = kind.replace("_", " ")
                adj[ids[a]].add((ids[b], words))
                adj[ids[b]].add((ids[a], words))
            self._adj[campaign_id] = {k: sorted(v) for k, v in adj.items()}
        return self._adj[campaign_id]

    def samples(self, account_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """A few of the account's exchanges (content columns only when the store keeps content)."""
        cols = "id, ts, model, ip, user_agent, max_tokens, prompt_tokens, completion_tokens, status"
        if self.content:  # the texts a page shows (system prompts and reasoning traces are long and not shown)
            cols += ", user_text, response_text"
        located = self._q("SELECT file FROM located WHERE account_id = ? ORDER BY n DESC, file LIMIT 1", [account_id])
        if not located:
            return []
        from distillguard.store.store import _sql_str

        with self._store_lock:
            res = self.store_con.execute(f"SELECT {cols} FROM read_parquet('{_sql_str(located[0][0])}') "
                                         "WHERE account_id = ? ORDER BY ts LIMIT ?", [account_id, limit])
            names = [d[0] for d in res.description]
            return [dict(zip(names, r, strict=True)) for r in res.fetchall()]

    # ---- one campaign ---------------------------------------------------
    def members(self, campaign_id: str, limit: int = 2000) -> list[dict[str, Any]]:
        rows = self._q("SELECT a.account_id, a.risk, a.verdict, a.exchanges, a.first_seen, a.last_seen, a.tier "
                       "FROM members m JOIN acc a USING (account_id) WHERE m.campaign_id = ? "
                       "ORDER BY a.risk DESC, a.account_id LIMIT ?", [campaign_id, limit])
        names = ("account_id", "risk", "verdict", "exchanges", "first_seen", "last_seen", "tier")
        return [dict(zip(names, r, strict=True)) for r in rows]

    def campaign_hours(self, campaign_id: str) -> list[tuple[datetime, str, int]]:
        return [(r[0], r[1], int(r[2])) for r in self._q(
            "SELECT hour, model, n FROM camp_hours WHERE campaign_id = ? ORDER BY 1", [campaign_id])]

    def campaign_models(self, campaign_id: str) -> list[dict[str, Any]]:
        """Per model: the campaign's first and last use, exchanges, and the model's first use by anyone."""
        rows = self._q("SELECT am.model, sum(am.n), min(am.first), max(am.last), any_value(r.first) "
                       "FROM acct_models am JOIN members m USING (account_id) JOIN releases r USING (model) "
                       "WHERE m.campaign_id = ? GROUP BY 1 ORDER BY 3", [campaign_id])
        out = []
        for model, n, first, last, release in rows:
            lag = (first - release).total_seconds() / 3600.0 if first and release else None
            out.append({"model": model, "exchanges": int(n), "first": first, "last": last, "release": release,
                        "lag_hours": lag})
        return out

    def campaign_intel(self, campaign_id: str) -> dict[str, Any]:
        """Shared intel matched on the campaign's members (from their reasons): members reporting, accounts hit."""
        if campaign_id in self._intel:
            return self._intel[campaign_id]
        rows = self._q("SELECT a.account_id, a.signals FROM members m JOIN acc a USING (account_id) "
                       "WHERE m.campaign_id = ? AND a.signals LIKE '%intel%'", [campaign_id])
        reporters: dict[str, int] = defaultdict(int)
        lines: dict[str, int] = defaultdict(int)
        for _, signals in rows:
            for part in str(signals).split(";"):
                if "intel" in part:
                    lines[part.strip()] += 1
                    for member in set(_INTEL.findall(part)):
                        reporters[member] += 1
        out = {"accounts": len(rows), "members": dict(reporters),
               "reasons": sorted(lines.items(), key=lambda kv: -kv[1])[:10]}
        self._intel[campaign_id] = out
        return out

    def graph(self, campaign_id: str) -> dict[str, Any]:
        """The campaign's evidence graph, readable at hundreds of accounts (see :func:`evidence_graph`)."""
        if campaign_id not in self._graphs:
            camp = self.campaigns[campaign_id]
            links = self.links.get(campaign_id)
            if links is None:  # no links.json: the identifiers members share, from their account records
                links = self._record_links(camp["accounts"])
            verdicts = dict(self._q("SELECT account_id, verdict FROM members m JOIN acc USING (account_id) "
                                    "WHERE m.campaign_id = ?", [campaign_id]))
            self._graphs[campaign_id] = evidence_graph(links["accounts"], links["edges"], verdicts)
        return self._graphs[campaign_id]

    def _record_links(self, accounts: list[str]) -> dict[str, Any]:
        ids = sorted(accounts)
        index = {a: i for i, a in enumerate(ids)}
        rows = self._q("SELECT account_id, payment_fp, email_domain, signup_ip FROM acc WHERE account_id IN ("
                       + ",".join("?" * len(ids)) + ")", ids) if ids else []
        edges = []
        for col, kind in ((1, "shared_payment"), (2, "shared_email_domain"), (3, "shared_signup_network")):
            groups: dict[str, list[int]] = defaultdict(list)
            for r in rows:
                if r[col]:
                    groups[r[col] if col != 3 else ".".join(str(r[col]).split(".")[:3])].append(index[r[0]])
            for members in groups.values():
                edges += [(members[0], m, kind, 1.0) for m in members[1:]]
        return {"accounts": ids, "edges": edges}


def evidence_graph(accounts: list[str], edges: list, verdicts: dict[str, str] | None = None) -> dict[str, Any]:
    """Cytoscape elements for a linking graph, drawn so it stays readable at hundreds of accounts.

    * per evidence kind, each connected group of accounts it links becomes one *hub* ("shared payment, 37
      accounts") joined to its members: n + 1 edges instead of up to n(n-1)/2;
    * accounts linked by exactly the same identity and behaviour evidence collapse into one node ("12 accounts"),
      joined to each hub with a width by how many of them it holds;
    * hubs sit in one compound node per evidence group (identity, behaviour, infrastructure); infrastructure
      hubs are marked so the page can collapse them into one node (infrastructure corroborates, never links
      alone).
    """
    verdicts = verdicts or {}
    by_kind: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for a, b, kind, _ in edges:
        by_kind[kind].append((int(a), int(b)))
    hubs: list[tuple[str, str, list[int]]] = []  # (hub id, kind, member indices)
    for kind in sorted(by_kind):
        g = ig.Graph(n=len(accounts), edges=by_kind[kind])
        for k, comp in enumerate(c for c in g.connected_components() if len(c) >= 2):
            hubs.append((f"hub:{kind}:{k}", kind, comp))
    group_of_hub = {hub_id: KIND_GROUP.get(kind, "behaviour") for hub_id, kind, _ in hubs}
    signature: dict[int, list[str]] = defaultdict(list)  # linking (non-infrastructure) hubs of each account
    member_hubs: dict[int, list[str]] = defaultdict(list)
    for hub_id, _, comp in hubs:
        for i in comp:
            member_hubs[i].append(hub_id)
            if group_of_hub[hub_id] != "infrastructure":
                signature[i].append(hub_id)
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i in range(len(accounts)):
        groups[tuple(sorted(signature.get(i, [])))].append(i)
    nodes: list[dict[str, Any]] = []
    out_edges: list[dict[str, Any]] = []
    for group in sorted(set(group_of_hub.values())):
        nodes.append({"data": {"id": f"group:{group}", "label": group, "kind_group": group}, "classes": "group"})
    for hub_id, kind, comp in hubs:
        group = group_of_hub[hub_id]
        nodes.append({"data": {"id": hub_id, "label": f"{kind.replace('_', ' ')} ({len(comp)})", "kind": kind,
                               "kind_group": group, "parent": f"group:{group}", "size": len(comp)},
                      "classes": "hub" + (" infra" if group == "infrastructure" else "")})
    infra_groups: list[tuple[str, int]] = []
    for n, (_sig, members) in enumerate(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))):
        ids = [accounts[i] for i in members]
        node_id = f"acct:{ids[0]}" if len(ids) == 1 else f"accts:{n}"
        worst = max((verdicts.get(a, "allow") for a in ids), key=_verdict_rank)
        label = ids[0] if len(ids) == 1 else f"{len(ids)} accounts"
        nodes.append({"data": {"id": node_id, "label": label, "accounts": ids[:500], "count": len(ids),
                               "verdict": worst}, "classes": "account" + (" many" if len(ids) > 1 else "")})
        reach: dict[str, int] = defaultdict(int)  # hub -> members of this node in it
        for i in members:
            for hub_id in member_hubs.get(i, []):
                reach[hub_id] += 1
        infra_members = 0
        for hub_id, count in sorted(reach.items()):
            kind = hub_id.split(":")[1]
            infra = group_of_hub[hub_id] == "infrastructure"
            infra_members = max(infra_members, count) if infra else infra_members
            out_edges.append({"data": {"id": f"e:{node_id}:{hub_id}", "source": node_id, "target": hub_id,
                                       "kind": kind, "weight": count}, "classes": "infra" if infra else ""})
        if infra_members:
            infra_groups.append((node_id, infra_members))
    if infra_groups:  # the collapsed stand-in for every infrastructure hub
        nodes.append({"data": {"id": "infra:all", "label": "infrastructure (collapsed)", "kind": "infrastructure",
                               "kind_group": "infrastructure"}, "classes": "hub infra-collapsed"})
        out_edges += [{"data": {"id": f"e:{n}:infra", "source": n, "target": "infra:all", "kind": "infrastructure",
                                "weight": w}, "classes": "infra-collapsed"} for n, w in infra_groups]
    return {"elements": nodes + out_edges, "accounts": len(accounts), "hubs": len(hubs),
            "account_nodes": len(groups), "kinds": sorted(by_kind)}


def _verdict_rank(v: str) -> int:
    return {"allow": 0, "watch": 1, "throttle": 2, "block": 3}.get(v, 0)
