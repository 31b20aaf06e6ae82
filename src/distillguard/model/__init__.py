"""The exchange model at the centre of every stage."""

from distillguard.model.account import ACCOUNT_SCHEMA, TIERS, accounts_to_table, flatten_account
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
    "ACCOUNT_SCHEMA", "COLUMNS", "CONTENT_COLUMNS", "EXCHANGE_SCHEMA", "TIERS", "FieldError",
    "accounts_to_table", "flatten", "flatten_account", "format_ts", "parse_ts", "rows_to_table", "to_record",
]
