"""Admission: who is asking and what the policy says about it.

An API key becomes an account (``keys``, or the key's id when there is no key file or the policy lets unknown keys
in), the engine decides on the request (:meth:`Admission.decide`), and every request refused before a decision
(bad key, malformed body, unknown route, or malformed HTTP the server layer answered) is counted and audited with
the key's id, never the key, so key stuffing and probing show in the audit log.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

from distillguard.gateway import errors
from distillguard.gateway.asgi import Reject, Scope, header, key_id, printable
from distillguard.gateway.engine import Decision, Engine
from distillguard.gateway.metrics import Metrics

log = logging.getLogger("distillguard.gateway")


class InFlight:
    """What the gateway knows about one request as it goes (for the audit of a refusal, metrics, the id)."""

    __slots__ = ("id", "method", "path", "route", "account", "api_key_id", "decided", "status")

    def __init__(self, request_id: str, method: str, path: str) -> None:
        self.id, self.method, self.path = request_id, method, path
        self.route = "other"
        self.account: str | None = None
        self.api_key_id: str | None = None
        self.decided = False  # a decision was audited: later failures are the exchange's, not refusals
        self.status = 0


class Admission:
    """Authentication, the decision, and the audit of refusals, for the proxy app."""

    def __init__(self, engine: Engine, metrics: Metrics, keys: dict[str, str] | None = None,
                 trust_forwarded: bool = False) -> None:
        self.engine = engine
        self.metrics = metrics
        self.keys = keys
        self.trust_forwarded = trust_forwarded
        self._id_prefix = "gw-" + uuid.uuid4().hex[:16]
        self._id_count = 0

    def new_id(self) -> str:
        """A request id, unique per gateway process start (random prefix + counter: no syscall per request)."""
        self._id_count += 1
        return f"{self._id_prefix}{self._id_count:x}"

    def account(self, scope: Scope, req: InFlight | None = None) -> tuple[str, str]:
        """``(account, key id)`` of the request's bearer key; a 401 without a key, or with an unknown one the
        policy does not let in."""
        auth = header(scope, b"authorization")
        if not auth or not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise Reject(errors.NO_KEY, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.")
        api_key = auth[7:].strip()
        kid = key_id(api_key)
        if req is not None:
            req.api_key_id = kid
        if self.keys is None:
            account = kid
        else:
            known = self.keys.get(api_key)
            if known is None:
                if self.engine.policy.unknown_keys != "allow":
                    raise Reject(errors.BAD_KEY, "Incorrect API key provided.")
                known = kid
            account = known
        if req is not None:
            req.account = account
        return account, kid

    def client_ip(self, scope: Scope) -> str:
        if self.trust_forwarded:
            forwarded = header(scope, b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip()
        client = scope.get("client")
        return str(client[0]) if client else "0.0.0.0"

    async def decide(self, req: InFlight, account: str, org_id: str | None, row: dict[str, Any],
                     now_ms: int) -> Decision:
        """The engine's decision on the request (audited before it takes effect), counted."""
        decision = await self.engine.decide(req.id, account, org_id, row, now_ms)
        req.decided = True
        self.metrics.decisions.inc(decision.action, decision.enforced)
        return decision

    def refusal(self, req: InFlight, exc: Reject, scope: Scope) -> None:
        """Count a refusal; one made before any decision is audited too (with the key's id, never the key)."""
        self.metrics.refused.inc(str(exc.status), exc.code)
        if req.decided:
            return
        try:
            self.engine.refused(req.id, int(time.time() * 1000), exc.status, exc.code, str(exc),
                                account_id=req.account, api_key_id=req.api_key_id, client_ip=self.client_ip(scope),
                                method=printable(req.method, 16), endpoint=printable(req.path, 200))
        except Exception:  # noqa: BLE001 - the refusal is answered whatever happens to its audit line
            log.exception("auditing refused request %s failed", req.id)

    def http_refused(self, status: int, code: str, client: str | None) -> str:
        """A request the HTTP layer answered itself: counted, audited; returns the id its answer carries."""
        self.metrics.http_errors.inc(str(status))
        request_id = self.new_id()
        with contextlib.suppress(Exception):
            self.engine.refused(request_id, int(time.time() * 1000), status, code,
                                f"malformed or oversized HTTP request ({code})", client_ip=client)
        return request_id


__all__ = ["Admission", "InFlight"]
