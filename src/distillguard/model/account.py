"""Account records: who holds the API key (the optional second input)."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from distillguard.model.exchange import FieldError, parse_ts, table_from_rows

TIERS = ("free", "payg", "startup", "edu", "research", "enterprise")

ACCOUNT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("email_domain", pa.string()),
        ("payment_fp", pa.string()),
        ("country", pa.string()),
        ("signup_ip", pa.string()),
        ("org_id", pa.string()),
        ("tier", pa.string()),
        ("verified", pa.bool_()),
        ("extra_json", pa.string()),  # unknown fields, kept
    ]
)
_KNOWN = set(ACCOUNT_SCHEMA.names) - {"extra_json"}


def flatten_account(record: Any) -> tuple:
    """Validate an account record and return its row in :data:`ACCOUNT_SCHEMA` order."""
    if not isinstance(record, dict):
        raise FieldError("<record>", f"expected a JSON object, got {type(record).__name__}")
    account = record.get("account_id")
    if not isinstance(account, str) or not account:
        raise FieldError("account_id", "required non-empty string")
    created = record.get("created_at")
    created_ms = parse_ts(created, "created_at") if created is not None else None
    values: dict[str, Any] = {}
    for key in ("email_domain", "payment_fp", "country", "signup_ip", "org_id", "tier"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise FieldError(key, f"expected a string, got {type(value).__name__}")
        values[key] = value
    if values["tier"] is not None and values["tier"] not in TIERS:
        raise FieldError("tier", f"must be one of {', '.join(TIERS)}; got {values['tier']!r}")
    verified = record.get("verified")
    if verified is not None and not isinstance(verified, bool):
        raise FieldError("verified", f"expected true/false, got {type(verified).__name__}")
    extra = {k: v for k, v in record.items() if k not in _KNOWN}
    return (account, created_ms, values["email_domain"], values["payment_fp"], values["country"],
            values["signup_ip"], values["org_id"], values["tier"], verified,
            orjson.dumps(extra).decode() if extra else None)


def accounts_to_table(rows: list[tuple]) -> pa.Table:
    return table_from_rows(rows, ACCOUNT_SCHEMA)
