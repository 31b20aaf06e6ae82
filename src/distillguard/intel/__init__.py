"""Threat-intel exchange between providers: STIX 2.1 export, keyed privacy, TAXII 2.1 hub/client, matching.

Entry points: :func:`distillguard.intel.export.export_bundle`, :func:`match_accounts`
(the ``intel`` input of ``run_detection``), :mod:`distillguard.intel.hub`,
:class:`distillguard.intel.client.TaxiiClient`. Imports are lazy so the CLI stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["match_accounts"]


def __getattr__(name: str) -> Any:
    if name == "match_accounts":
        from distillguard.intel.match import match_accounts
        return match_accounts
    raise AttributeError(name)
