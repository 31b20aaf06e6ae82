"""The exchange model at the centre of every stage."""

from distillguard.model.account import (
    ACCOUNT_SCHEMA,
    PUBLIC_MAILBOXES,
    TIERS,
    accounts_to_table,
    flatten_account,
    party,
    public_mailbox,
    registrable_label,
)
from distillguard.model.exchange import (
    COLUMNS,
    CONTENT_COLUMNS,
    EXCHANGE_SCHEMA,
    FieldError,
    flatten,
    format_ts,
    parse_ts,
    rows_to_table,
    to_record,
)

__all__ = [
    "ACCOUNT_SCHEMA", "COLUMNS", "CONTENT_COLUMNS", "EXCHANGE_SCHEMA", "PUBLIC_MAILBOXES", "TIERS", "FieldError",
    "accounts_to_table", "flatten", "flatten_account", "format_ts", "parse_ts", "party", "public_mailbox",
    "registrable_label", "rows_to_table", "to_record",
]
