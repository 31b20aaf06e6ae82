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
        # appended, so code that knows the columns above by position keeps working; stores written before it read
        # it as null. The card's issuer as the payment processor reports it: its IIN/BIN (first 6-8 digits) or
        # the issuer's name (Stripe: ``card.iin`` or ``card.issuer``). Distinct cards from one prepaid or virtual
        # card issuer are an actor's habit (attribution's ``shared_payment_issuer``).
        ("payment_issuer", pa.string()),
    ]
)
_KNOWN = set(ACCOUNT_SCHEMA.names) - {"extra_json"}

# second-level labels under which the registrable name is one label further left (example.co.uk, uni.ac.jp)
_SECOND_LEVEL = frozenset(("co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "gv", "mil"))
# Public mailbox providers (the registrable label of the e-mail domain, any country suffix): addresses anyone can
# have, so the domain says nothing about who the holder works for, and two of them are no look-alike pair.
PUBLIC_MAILBOXES = frozenset((
    "gmail", "googlemail", "yahoo", "ymail", "rocketmail", "outlook", "hotmail", "live", "msn", "aol", "icloud",
    "me", "mac", "proton", "protonmail", "pm", "tutanota", "tuta", "gmx", "web", "freenet", "t-online", "yandex",
    "mail", "inbox", "bk", "list", "rambler", "qq", "foxmail", "sina", "sohu", "aliyun", "naver", "daum",
    "hanmail", "kakao", "nate", "zoho", "fastmail", "hey", "mailbox", "posteo", "libero", "virgilio", "orange",
    "wanadoo", "free", "laposte", "sfr", "seznam", "wp", "onet", "interia", "o2", "ukr", "rediffmail", "comcast",
    "verizon", "att", "sbcglobal", "bellsouth", "btinternet", "sky", "virginmedia", "bigpond", "optusnet",
    "shaw", "rogers", "sympatico", "uol", "bol", "terra", "docomo", "ezweb", "softbank", "i", "email",
))


def registrable_label(domain: str) -> str:
    """The label a registrant chose: ``example`` of ``mail.example.co.uk`` (no public-suffix list is shipped;
    common second-level suffixes are recognised)."""
    labels = [p for p in domain.strip().lower().rstrip(".").split(".") if p]
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else (labels[0] if labels else "")


def public_mailbox(domain: str) -> bool:
    """Whether ``domain`` is a public mailbox provider's (:data:`PUBLIC_MAILBOXES`, any suffix)."""
    return registrable_label(domain) in PUBLIC_MAILBOXES


def party(account_id: str, org_id: str | None, email_domain: str | None) -> str:
    """Who an account belongs to, as far as its record says: its organisation, else its e-mail domain unless that
    is a public mailbox, else the account itself (an individual)."""
    if org_id:
        return f"org:{org_id}"
    if email_domain and not public_mailbox(email_domain):
        return f"domain:{email_domain.strip().lower()}"
    return f"account:{account_id}"


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
    for key in ("email_domain", "payment_fp", "country", "signup_ip", "org_id", "tier", "payment_issuer"):
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
            orjson.dumps(extra).decode() if extra else None, values["payment_issuer"])


def accounts_to_table(rows: list[tuple]) -> pa.Table:
    return table_from_rows(rows, ACCOUNT_SCHEMA)
