"""What we served under a watermark key, from the store: the prompts to ask a suspect and the outputs whose
windows the supervised filter keeps (``distillguard provenance served``).

The gateway records ``{"resistance": {"watermark_key": ...}}`` with every exchange (ingest keeps unknown top-level
fields in ``extra_json``), so the exchanges served under a key, optionally only those of the suspected accounts,
are one query.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from distillguard.store import Store


def served_under_key(store_dir: str | Path, key_id: str, accounts: Sequence[str] | None = None,
                     limit: int | None = None) -> Iterator[dict[str, str]]:
    """``{"exchange_id", "account_id", "prompt", "completion"}`` per exchange served under ``key_id``."""
    store = Store.open(store_dir, create=False)
    con = store.connect()
    sql = ("SELECT id, account_id, user_text, coalesce(reasoning_text, '') || coalesce(response_text, '') "
           "FROM exchanges WHERE json_extract_string(extra_json, '$.resistance.watermark_key') = ? "
           "AND response_text IS NOT NULL")
    params: list = [key_id]
    if accounts:
        sql += f" AND account_id IN ({', '.join('?' for _ in accounts)})"
        params.extend(accounts)
    sql += " ORDER BY ts, id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    for exchange_id, account_id, prompt, completion in con.execute(sql, params).fetchall():
        yield {"exchange_id": exchange_id, "account_id": account_id, "prompt": prompt or "",
               "completion": completion}


def write_jsonl(rows: Iterator[dict[str, str]], path: str | Path) -> int:
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
