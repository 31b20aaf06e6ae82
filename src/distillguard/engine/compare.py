"""Are two detection outputs the same? (accounts.csv and campaigns.json of two engines, or two runs)."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import orjson

RISK_TOLERANCE = 1e-6
# attribution sorts a campaign's evidence by weight only; items of equal weight keep the order rows came out of an
# unordered GROUP BY, which no engine defines (DuckDB's own order changes with its thread count: threads=1 and
# threads=8 name different kinds on the same store). The members' reason names the first three kinds, so it
# inherits the tie. Until attribution sorts ties (docs/spark.md), comparisons set that list aside.
_TIED_KINDS = re.compile(r"((?:member of|linked to) campaign-[0-9a-f]+: \d+ linked accounts) \([^)]*\)")


def _accounts(out: Path) -> dict[str, dict[str, str]]:
    with (out / "accounts.csv").open(newline="", encoding="utf-8") as handle:
        return {row["account_id"]: row for row in csv.DictReader(handle)}


def _campaigns(out: Path, strict: bool) -> list[dict[str, Any]]:
    campaigns = orjson.loads((out / "campaigns.json").read_bytes())["campaigns"]
    if not strict:
        for campaign in campaigns:  # evidence of equal weight in either order (see _TIED_KINDS)
            campaign["evidence"] = sorted(campaign.get("evidence", []), key=lambda e: (-e["weight"], e["kind"]))
    return campaigns


def _close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return a == b


def differences(left: Path, right: Path, tolerance: float = RISK_TOLERANCE, limit: int = 20,
                strict: bool = False) -> list[str]:
    """What differs between two output directories (empty: the same results).

    Per account: risk within ``tolerance``, the same verdict and campaign, the same exchanges and first/last
    seen, each family's points within ``tolerance``. Campaigns: the same list, in order, every field equal
    (numbers within ``tolerance``). Unless ``strict``, evidence items of equal weight may come in either order and
    the kinds a member's "member of campaign-..." (or "linked to campaign-...") reason lists are set aside: both
    follow an order no engine defines (see ``_TIED_KINDS``).
    """
    out: list[str] = []
    a, b = _accounts(Path(left)), _accounts(Path(right))
    if a.keys() != b.keys():
        out.append(f"accounts: {len(a.keys() - b.keys())} only left, {len(b.keys() - a.keys())} only right")
    for account in sorted(a.keys() & b.keys()):
        x, y = a[account], b[account]
        for name in x:
            if name == "account_id":
                continue
            if name == "risk" or name.startswith("points_"):
                if abs(float(x[name] or 0) - float(y.get(name) or 0)) > tolerance:
                    out.append(f"{account} {name}: {x[name]} != {y.get(name)}")
            elif name == "signals" and not strict:
                if _TIED_KINDS.sub(r"\1", x[name]) != _TIED_KINDS.sub(r"\1", y.get(name) or ""):
                    out.append(f"{account} {name}: {x[name]!r} != {y.get(name)!r}")
            elif x[name] != y.get(name):
                out.append(f"{account} {name}: {x[name]!r} != {y.get(name)!r}")
        if len(out) >= limit:
            return out
    ca, cb = _campaigns(Path(left), strict), _campaigns(Path(right), strict)
    if [c["id"] for c in ca] != [c["id"] for c in cb]:
        out.append(f"campaign ids: {[c['id'] for c in ca]} != {[c['id'] for c in cb]}")
    for x, y in zip(ca, cb, strict=False):
        for key in x.keys() | y.keys():
            if not _close(x.get(key), y.get(key), tolerance):
                out.append(f"campaign {x['id']} {key}: {str(x.get(key))[:200]} != {str(y.get(key))[:200]}")
    return out[:limit]
