"""Loading the gateway's inputs (keys, accounts) and wiring an :class:`Engine` from them.

Every loader reports bad input as ``file:line: field: reason``.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from distillguard.errors import DistillguardError
from distillguard.gateway.engine import AccountInfo
from distillguard.gateway.policy import Policy
from distillguard.gateway.scoring import BatchRisk, FusedScorer
from distillguard.ingest import open_binary
from distillguard.model import FieldError, flatten_account


class ConfigError(DistillguardError, ValueError):
    """Bad gateway input; the message names file, line and field."""


def _jsonl(path: Path):
    try:
        handle = open_binary(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield number, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: <record>: invalid JSON: {exc}") from None


def load_keys(path: str | Path) -> dict[str, str]:
    """``{"api_key": ..., "account_id": ...}`` per line -> api_key -> account_id."""
    path = Path(path)
    keys: dict[str, str] = {}
    for number, record in _jsonl(path):
        if not isinstance(record, dict):
            raise ConfigError(f"{path}:{number}: <record>: expected a JSON object")
        for name in ("api_key", "account_id"):
            value = record.get(name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}:{number}: {name}: required non-empty string")
        if record["api_key"] in keys and keys[record["api_key"]] != record["account_id"]:
            raise ConfigError(f"{path}:{number}: api_key: already mapped to account {keys[record['api_key']]!r}")
        keys[record["api_key"]] = record["account_id"]
    return keys


def load_accounts(path: str | Path) -> dict[str, AccountInfo]:
    """Account records (the ingest ``--accounts`` format): org and verification feed the exemptions."""
    path = Path(path)
    accounts: dict[str, AccountInfo] = {}
    for number, record in _jsonl(path):
        try:
            row = flatten_account(record)
        except FieldError as exc:
            raise ConfigError(f"{path}:{number}: {exc.field}: {exc.reason}") from None
        accounts[row[0]] = AccountInfo(org_id=row[6], verified=bool(row[8]), record=record)
    return accounts


def build_scorer(policy: Policy, detections: str | Path | None = None, online: bool = True,
                 accounts: dict[str, AccountInfo] | None = None, background: bool = False,
                 context: str | Path | None = None, decisions: str | Path | None = None) -> FusedScorer:
    """Batch evidence from ``detections`` (a detect output dir, reloaded on change), online evidence scored
    against that run's baselines (or ``context``, a ``context.json``), decided by the policy's ``decide``."""
    batch = BatchRisk(detections) if detections else None
    online_evidence = None
    if online:
        from distillguard.features import Context
        from distillguard.gateway.online import OnlineFeatures

        # population facts and baselines from the last detect run, when there is one; later runs refresh them
        context_path = Path(context) if context else (Path(detections) / "context.json" if detections else None)
        loaded = None
        if context_path is not None and context_path.exists():
            try:
                loaded = Context.from_json(orjson.loads(context_path.read_bytes()))
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise ConfigError(f"{context_path}: not a detect context.json ({exc})") from None
        elif context:
            raise ConfigError(f"{context_path}: cannot read: no such file")
        online_evidence = OnlineFeatures(context=loaded, background=background, policy=policy.decide,
                                         accounts={a: info.record for a, info in (accounts or {}).items()})
    analyst = None
    if decisions:
        from distillguard.decide.analyst import DecisionsError
        from distillguard.gateway.scoring import DecisionsFile

        try:
            analyst = DecisionsFile(decisions)
        except (DecisionsError, OSError) as exc:
            raise ConfigError(str(exc)) from None
    return FusedScorer(batch=batch, online=online_evidence, policy=policy.decide, analyst=analyst)

