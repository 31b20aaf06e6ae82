"""The analyst console: a Starlette app rendering server-side pages (Jinja2), assets shipped in the package.

Every route is declared once in :data:`ROUTES` with the permission it needs (``None``: public); the
dispatcher checks the session, the permission and, on POST, the CSRF token before any handler runs, so a
route cannot be added without an access rule. The Content-Security-Policy allows nothing but this origin.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from distillguard.cases.model import STATES, CaseError, related_campaigns
from distillguard.console import svg
from distillguard.console.auth import PERMISSIONS, Auth, User, csrf_ok
from distillguard.console.data import Filters, redact
from distillguard.console.service import Console
from distillguard.errors import DistillguardError

HERE = Path(__file__).parent
COOKIE = "dg_session"
LOGIN_COOKIE = "dg_login"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
Handler = Callable[[Request, User | None], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str
    permission: str | None  # None: public
    name: str


# Every route and the one permission it needs; tests/test_console_roles.py walks this table with every role.
ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("/login", "GET", None, "login_form"),
    RouteSpec("/login", "POST", None, "login"),
    RouteSpec("/healthz", "GET", None, "healthz"),
    RouteSpec("/logout", "POST", "view", "logout"),
    RouteSpec("/", "GET", "view", "home"),
    RouteSpec("/campaigns", "GET", "view", "campaigns"),
    RouteSpec("/campaigns/{cid}", "GET", "view", "campaign"),
    RouteSpec("/campaigns/{cid}/graph.json", "GET", "view", "campaign_graph"),
    RouteSpec("/campaigns/{cid}/decide", "POST", "decide", "campaign_decide"),
    RouteSpec("/campaigns/{cid}/escalate", "POST", "escalate", "campaign_escalate"),
    RouteSpec("/accounts", "GET", "view", "accounts"),
    RouteSpec("/accounts/{aid}", "GET", "view", "account"),
    RouteSpec("/accounts/{aid}/decide", "POST", "decide", "account_decide"),
    RouteSpec("/accounts/{aid}/escalate", "POST", "escalate", "account_escalate"),
    RouteSpec("/accounts/{aid}/reveal", "POST", "content", "account_reveal"),
    RouteSpec("/cases", "GET", "view", "cases"),
    RouteSpec("/cases", "POST", "cases", "case_open"),
    RouteSpec("/cases/{case_id}", "GET", "view", "case"),
    RouteSpec("/cases/{case_id}/change", "POST", "cases", "case_change"),
    RouteSpec("/cases/{case_id}/merge", "POST", "cases", "case_merge"),
    RouteSpec("/cases/{case_id}/export", "POST", "export", "case_export"),
    RouteSpec("/cases/{case_id}/packages/{name}", "GET", "export", "case_package"),
    RouteSpec("/decisions.jsonl", "GET", "view", "decisions_file"),
    RouteSpec("/labels.csv", "GET", "view", "labels_file"),
    RouteSpec("/validations", "GET", "view", "validations"),
    RouteSpec("/audit", "GET", "admin", "audit"),
    RouteSpec("/users", "GET", "admin", "users"),
    RouteSpec("/users", "POST", "admin", "user_put"),
)


class Forbidden(DistillguardError):
    """The signed-in user's role may not do this (403)."""


class ConsoleApp:
    def __init__(self, console: Console, auth: Auth, *, secure_cookies: bool = False,
                 validations: Path | None = None) -> None:
        self.console, self.auth = console, auth
        self.db, self.data = console.db, console.data
        self.secure = secure_cookies
        self.validations_path = validations
        self._campaign_pages: dict[str, dict[str, Any]] = {}
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                      autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                                      lstrip_blocks=True)
        self.env.globals.update(STATES=STATES, quote=quote)
        self.env.filters["num"] = lambda v: f"{int(v or 0):,}"
        self.env.filters["risk"] = lambda v: f"{float(v or 0):.3f}"
        self.env.filters["ts"] = lambda v: "" if v is None else str(v)[:16].replace("T", " ")

    # ---- plumbing -------------------------------------------------------
    def render(self, request: Request, user: User | None, template: str, code: int = 200, **ctx: Any
               ) -> HTMLResponse:
        html = self.env.get_template(template).render(user=user, request=request, can=(user.can if user else
                                                      (lambda _p: False)), **ctx)
        return HTMLResponse(html, status_code=code)

    def wrap(self, spec: RouteSpec, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            user = await asyncio.to_thread(self.auth.session, request.cookies.get(COOKIE))
            if spec.permission is not None:
                if user is None:
                    if spec.method == "GET" and not spec.path.endswith(".json"):
                        return RedirectResponse("/login?next=" + quote(request.url.path), 303)
                    return _plain("login required", 401)
                if not user.can(spec.permission):
                    await asyncio.to_thread(self.db.audit, user.name, user.role, "denied", request.url.path,
                                            f"needs {spec.permission}", {"method": spec.method}, _ip(request))
                    return self.render(request, user, "error.html", 403,
                                       message=f"Your role ({user.role}) may not do this ({spec.permission}).")
                if spec.method == "POST":
                    form = await request.form()
                    if not csrf_ok(user, form.get("csrf")) or not _same_origin(request):
                        return _plain("CSRF check failed", 403)
                    request.state.form = form
            try:
                return await handler(request, user)
            except (ValueError, CaseError) as exc:
                return self.render(request, user, "error.html", 400, message=str(exc))
            except KeyError as exc:
                return self.render(request, user, "error.html", 404, message=f"not found: {exc.args[0]}")

        return endpoint

    def routes(self) -> list[Any]:
        out: list[Any] = []
        for spec in ROUTES:
            handler = getattr(self, spec.name)
            out.append(Route(spec.path, self.wrap(spec, handler), methods=[spec.method], name=spec.name))
        out.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))
        return out

    # ---- public ---------------------------------------------------------
    async def login_form(self, request: Request, user: User | None) -> Response:
        token = secrets.token_urlsafe(24)
        response = self.render(request, None, "login.html", login_token=token,
                               next=_safe_next(request.query_params.get("next")), error="")
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure, max_age=900)
        return response

    async def login(self, request: Request, user: User | None) -> Response:
        form = await request.form()
        sent, cookie = str(form.get("login_token") or ""), request.cookies.get(LOGIN_COOKIE) or ""
        if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()) or not _same_origin(request):
            return _plain("CSRF check failed", 403)
        name, password = str(form.get("name") or "")[:100], str(form.get("password") or "")[:1000]
        found = await asyncio.to_thread(self.auth.login, name, password)
        if found is None:
            await asyncio.to_thread(self.db.audit, name or "-", "-", "login-failed", "console", "", {}, _ip(request))
            await asyncio.sleep(0.2)
            token = secrets.token_urlsafe(24)
            response: Response = self.render(request, None, "login.html", 401, login_token=token, next=_safe_next(
                str(form.get("next") or "")), error="Wrong name or password.")
            response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure, max_age=900)
            return response
        token, who = found
        await asyncio.to_thread(self.db.audit, who.name, who.role, "login", "console", "", {}, _ip(request))
        response = RedirectResponse(_safe_next(str(form.get("next") or "")) or "/campaigns", 303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=self.secure,
                            max_age=int(self.auth.max_age_s))
        response.delete_cookie(LOGIN_COOKIE)
        return response

    async def healthz(self, request: Request, user: User | None) -> Response:
        return JSONResponse({"ok": True, "accounts": self.data.n_accounts, "campaigns": len(self.data.campaigns)})

    async def logout(self, request: Request, user: User | None) -> Response:
        assert user is not None
        await asyncio.to_thread(self.auth.logout, user.token)
        await asyncio.to_thread(self.db.audit, user.name, user.role, "logout", "console", "", {}, _ip(request))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE)
        return response

    # ---- queues ---------------------------------------------------------
    async def home(self, request: Request, user: User | None) -> Response:
        return RedirectResponse("/campaigns", 303)

    async def campaigns(self, request: Request, user: User | None) -> Response:
        f = Filters.from_query(request.query_params)
        rows = await asyncio.to_thread(self.data.campaign_queue, f)
        status = {c["id"]: self.console.campaign_status(c["id"]) for c in rows[:200]}
        return self.render(request, user, "campaigns.html", f=f, rows=rows[:200], total=len(rows), status=status,
                           data=self.data)

    async def accounts(self, request: Request, user: User | None) -> Response:
        f = Filters.from_query(request.query_params)
        rows, total = await asyncio.to_thread(self.data.account_queue, f)
        for r in rows:
            d = self.console.in_force.get(r["account_id"])
            r["decision"] = d.action if d else ""
        return self.render(request, user, "accounts.html", f=f, rows=rows, total=total, data=self.data,
                           pages=(total + 49) // 50)

    # ---- campaign -------------------------------------------------------
    async def campaign(self, request: Request, user: User | None) -> Response:
        cid = request.path_params["cid"]
        camp = self.data.campaigns.get(cid)
        if camp is None:
            raise KeyError(cid)

        def gather() -> dict[str, Any]:
            hours = self.data.campaign_hours(cid)
            span = (hours[-1][0] - hours[0][0]) if hours else timedelta(0)
            bucket = timedelta(hours=1) if span <= timedelta(days=45) else timedelta(days=1)
            if bucket > timedelta(hours=1):
                merged: dict[tuple, int] = {}
                for when, model, n in hours:
                    key = (when.replace(hour=0, minute=0, second=0, microsecond=0), model)
                    merged[key] = merged.get(key, 0) + n
                hours = [(k[0], k[1], n) for k, n in sorted(merged.items())]
            return {"timeline": svg.timeline(hours, bucket, model_order=self.data.models),
                    "models": self.data.campaign_models(cid), "members": self.data.members(cid, 500),
                    "intel": self.data.campaign_intel(cid),
                    "capabilities": svg.bars(sorted((camp.get("capabilities") or {}).items(), key=lambda kv: -kv[1])),
                    "related": related_campaigns(camp, list(self.data.campaigns.values()))}

        if cid not in self._campaign_pages:  # the detection run does not change under a running console
            self._campaign_pages[cid] = await asyncio.to_thread(gather)
        ctx = dict(self._campaign_pages[cid])
        ctx["members"] = [dict(m) for m in ctx["members"]]
        for m in ctx["members"]:
            d = self.console.in_force.get(m["account_id"])
            m["decision"] = d.action if d else ""
        cases = [c for c in self.console.cases().values() if cid in c.campaigns and c.state != "merged"]
        open_cases = [c for c in self.console.cases().values() if c.state not in ("merged", "closed")]
        return self.render(request, user, "campaign.html", c=camp, status=self.console.campaign_status(cid),
                           cases=cases, open_cases=open_cases, **ctx)

    async def campaign_graph(self, request: Request, user: User | None) -> Response:
        cid = request.path_params["cid"]
        if cid not in self.data.campaigns:
            return _plain("no such campaign", 404)
        graph = await asyncio.to_thread(self.data.graph, cid)
        return Response(orjson.dumps(graph), media_type="application/json")

    async def campaign_decide(self, request: Request, user: User | None) -> Response:
        assert user is not None
        cid = request.path_params["cid"]
        form = request.state.form
        accounts = self.console.members(cid)
        await self.console.decide(user, accounts, str(form.get("action") or ""), str(form.get("note") or ""),
                                  campaign_id=cid, case_id=str(form.get("case_id") or ""), ip=_ip(request))
        return RedirectResponse(f"/campaigns/{quote(cid)}?decided=1", 303)

    async def campaign_escalate(self, request: Request, user: User | None) -> Response:
        assert user is not None
        cid = request.path_params["cid"]
        if cid not in self.data.campaigns:
            raise KeyError(cid)
        case_id = await self._escalate(request, user, campaigns=[cid], accounts=[], title=f"campaign {cid}")
        return RedirectResponse(f"/cases/{case_id}", 303)

    async def _escalate(self, request: Request, user: User, campaigns: list[str], accounts: list[str],
                        title: str) -> str:
        form = request.state.form
        note = str(form.get("note") or "").strip()
        if not note:
            raise ValueError("note: say why this is escalated")
        case_id = str(form.get("case_id") or "").strip()
        body = {"campaigns": campaigns, "accounts": accounts}
        if case_id:
            await asyncio.to_thread(self.console.change_case, user, case_id, "add", body, note, _ip(request))
        else:
            case_id = await asyncio.to_thread(self.console.change_case, user, "", "open", {**body, "title": title},
                                              note, _ip(request))
        await asyncio.to_thread(self.console.change_case, user, case_id, "state", {"to": "review"},
                                f"escalated for review: {note}", _ip(request))
        return case_id

    # ---- account --------------------------------------------------------
    async def account(self, request: Request, user: User | None, revealed: dict[str, Any] | None = None
                      ) -> Response:
        aid = request.path_params["aid"]

        def gather() -> dict[str, Any] | None:
            row = self.data.account(aid)
            if row is None:
                return None
            days = self.data.account_days(aid)
            return {"a": row, "activity": svg.timeline(days, timedelta(days=1), model_order=self.data.models),
                    "linked": self.data.linked_accounts(row),
                    "points": svg.bars(sorted(((k, v) for k, v in row["points"].items() if v), key=lambda kv: -kv[1]),
                                       fmt="{:.1f}"),
                    "samples": self.data.samples(aid)}

        ctx = await asyncio.to_thread(gather)
        if ctx is None:
            raise KeyError(aid)
        for s in ctx["samples"]:  # never raw here: redacted previews, or lengths only for roles without content
            for col in ("system_text", "user_text", "response_text", "reasoning_text"):
                if col in s:
                    text = s[col]
                    s[col] = redact(text, 300) if user is not None and user.can("content") else \
                        (f"[{len(text or ''):,} characters withheld]" if text else "")
        return self.render(request, user, "account.html", content_kept=self.data.content,
                           history=self.console.history(aid), decision=self.console.in_force.get(aid),
                           revealed=revealed, open_cases=[c for c in self.console.cases().values()
                                                          if c.state not in ("merged", "closed")], **ctx)

    async def account_decide(self, request: Request, user: User | None) -> Response:
        assert user is not None
        aid = request.path_params["aid"]
        if self.data.account(aid) is None:
            raise KeyError(aid)
        form = request.state.form
        await self.console.decide(user, [aid], str(form.get("action") or ""), str(form.get("note") or ""),
                                  case_id=str(form.get("case_id") or ""), ip=_ip(request))
        return RedirectResponse(f"/accounts/{quote(aid)}?decided=1", 303)

    async def account_escalate(self, request: Request, user: User | None) -> Response:
        assert user is not None
        aid = request.path_params["aid"]
        if self.data.account(aid) is None:
            raise KeyError(aid)
        case_id = await self._escalate(request, user, campaigns=[], accounts=[aid], title=f"account {aid}")
        return RedirectResponse(f"/cases/{case_id}", 303)

    async def account_reveal(self, request: Request, user: User | None) -> Response:
        """Raw content of the account's sample exchanges: only with a reason, and audited before it is shown."""
        assert user is not None
        aid = request.path_params["aid"]
        why = str(request.state.form.get("why") or "").strip()
        if not why:
            raise ValueError("why: say why you need the raw content (it goes into the audit log)")
        if not self.data.content:
            raise ValueError("this store keeps no content")
        samples = await asyncio.to_thread(self.data.samples, aid)
        await asyncio.to_thread(self.db.audit, user.name, user.role, "view-content", f"account:{aid}", why,
                                {"exchanges": [s["id"] for s in samples]}, _ip(request))
        return await self.account(request, user, revealed={s["id"]: s for s in samples})

    # ---- cases ----------------------------------------------------------
    async def cases(self, request: Request, user: User | None) -> Response:
        cases = sorted(self.console.cases().values(), key=lambda c: c.id, reverse=True)
        met = {c.id: self.console.criteria(c) for c in cases if c.state != "merged"}
        return self.render(request, user, "cases.html", cases=cases, met=met)

    async def case_open(self, request: Request, user: User | None) -> Response:
        assert user is not None
        form = request.state.form
        title = str(form.get("title") or "").strip()
        why = str(form.get("why") or "").strip() or "opened"
        if not title:
            raise ValueError("title: required")
        campaigns = [c for c in str(form.get("campaigns") or "").split() if c]
        unknown = [c for c in campaigns if c not in self.data.campaigns]
        if unknown:
            raise ValueError(f"unknown campaign(s): {', '.join(unknown)}")
        case_id = await asyncio.to_thread(self.console.change_case, user, "", "open",
                                          {"title": title, "campaigns": campaigns, "accounts": []}, why, _ip(request))
        return RedirectResponse(f"/cases/{case_id}", 303)

    async def case(self, request: Request, user: User | None) -> Response:
        case_id = request.path_params["case_id"]
        cases = self.console.cases()
        case = cases.get(case_id)
        if case is None:
            raise KeyError(case_id)
        ready, results = self.console.criteria(case)
        suggestions: dict[str, list[str]] = {}
        for cid in case.campaigns:
            camp = self.data.campaigns.get(cid)
            if camp:
                for other, shared in related_campaigns(camp, list(self.data.campaigns.values())):
                    if other not in case.campaigns:
                        suggestions.setdefault(other, shared)
        targets = [c for c in cases.values() if c.id != case_id and c.state != "merged"]
        return self.render(request, user, "case.html", case=case, ready=ready, results=results,
                           suggestions=suggestions, targets=targets, policy=self.console.escalation,
                           campaigns={c: self.data.campaigns.get(c) for c in case.campaigns})

    async def case_change(self, request: Request, user: User | None) -> Response:
        assert user is not None
        case_id = request.path_params["case_id"]
        form = request.state.form
        kind = str(form.get("kind") or "")
        why = str(form.get("why") or "").strip()
        if not why:
            raise ValueError("why: every change to a case says why")
        if kind in ("add", "remove"):
            campaigns = [c for c in str(form.get("campaigns") or "").split() if c]
            accounts = [a for a in str(form.get("accounts") or "").split() if a]
            if kind == "add":
                unknown = [c for c in campaigns if c not in self.data.campaigns]
                if unknown:
                    raise ValueError(f"unknown campaign(s): {', '.join(unknown)}")
            body: dict[str, Any] = {"campaigns": campaigns, "accounts": accounts}
        elif kind == "note":
            body = {"text": why}
        elif kind == "state":
            body = {"to": str(form.get("to") or "")}
            if body["to"] == "escalated":
                raise ValueError("state: escalate through the escalation package export (criteria are recorded)")
        else:
            raise ValueError(f"kind: add, remove, note or state, got {kind!r}")
        await asyncio.to_thread(self.console.change_case, user, case_id, kind, body, why, _ip(request))
        return RedirectResponse(f"/cases/{case_id}", 303)

    async def case_merge(self, request: Request, user: User | None) -> Response:
        assert user is not None
        case_id = request.path_params["case_id"]
        form = request.state.form
        into = str(form.get("into") or "")
        await asyncio.to_thread(self.console.merge_cases, user, case_id, into, str(form.get("why") or ""),
                                _ip(request))
        return RedirectResponse(f"/cases/{into}", 303)

    async def case_export(self, request: Request, user: User | None) -> Response:
        assert user is not None
        from distillguard.cases.package import build_package

        case_id = request.path_params["case_id"]
        form = request.state.form
        audience = str(form.get("audience") or "law-enforcement")
        why = str(form.get("why") or "").strip()
        if not why:
            raise ValueError("why: say why the package is exported")
        case = self.console.cases().get(case_id)
        if case is None:
            raise KeyError(case_id)
        result = await asyncio.to_thread(build_package, self.console, case, user, audience, why, _ip(request))
        return RedirectResponse(f"/cases/{case_id}?package={quote(result.zip_path.name)}", 303)

    async def case_package(self, request: Request, user: User | None) -> Response:
        assert user is not None
        case_id, name = request.path_params["case_id"], request.path_params["name"]
        path = self.console.packages_dir / case_id / name
        if "/" in name or ".." in name or not name.endswith(".zip") or not path.is_file():
            raise KeyError(name)
        await asyncio.to_thread(self.db.audit, user.name, user.role, "download-package", f"case:{case_id}", "",
                                {"package": name}, _ip(request))
        return FileResponse(path, media_type="application/zip", filename=name)

    # ---- files, audit, users -------------------------------------------
    async def decisions_file(self, request: Request, user: User | None) -> Response:
        return FileResponse(self.console.decisions_out, media_type="application/x-ndjson",
                            filename="decisions.jsonl")

    async def labels_file(self, request: Request, user: User | None) -> Response:
        from distillguard.cases.labels import labels_csv

        return Response(labels_csv(self.console.in_force), media_type="text/csv",
                        headers={"content-disposition": 'attachment; filename="labels.csv"'})

    async def validations(self, request: Request, user: User | None) -> Response:
        from distillguard.cases.validation import load_matrix

        matrix = load_matrix(self.validations_path) if self.validations_path else None
        return self.render(request, user, "validations.html", matrix=matrix)

    async def audit(self, request: Request, user: User | None) -> Response:
        target = request.query_params.get("target") or None
        entries = await asyncio.to_thread(self.db.audit_entries, target, 500)
        intact = await asyncio.to_thread(self.db.verify_audit)
        return self.render(request, user, "audit.html", entries=entries, intact=intact, target=target or "")

    async def users(self, request: Request, user: User | None) -> Response:
        return self.render(request, user, "users.html", users=self.db.users(), roles=list(PERMISSIONS))

    async def user_put(self, request: Request, user: User | None) -> Response:
        assert user is not None
        form = request.state.form
        name, role = str(form.get("name") or ""), str(form.get("role") or "")
        await asyncio.to_thread(self.auth.add_user, name, role, str(form.get("password") or ""))
        await asyncio.to_thread(self.db.audit, user.name, user.role, "user-put", f"user:{name}",
                                str(form.get("why") or ""), {"role": role}, _ip(request))
        return RedirectResponse("/users", 303)


def _plain(text: str, status: int) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _safe_next(value: str | None) -> str:
    """Only a local path (``/x``, never ``//host`` or a URL) is a place to go after login."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return ""


def _same_origin(request: Request) -> bool:
    """A browser's Origin (when sent) must be this console's own."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def create_app(console: Console, auth: Auth, *, secure_cookies: bool = False,
               validations: Path | None = None) -> Starlette:
    import contextlib

    web = ConsoleApp(console, auth, secure_cookies=secure_cookies, validations=validations)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        console.start()
        yield
        await console.stop()

    app = Starlette(routes=web.routes(), lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.web = web
    return app


class SecurityHeaders:
    """CSP (this origin only), no framing, no sniffing, no referrer to other sites, pages never cached, timing.

    Referrer-Policy is ``same-origin``: with ``no-referrer`` a browser sends ``Origin: null`` on form posts, which
    the CSRF origin check must refuse.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        static = scope["path"].startswith("/static/")

        async def wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                            (b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode())]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)
