"""``distillguard gateway``: the enforcement proxy, and ``gateway replay`` to backtest a policy.

``distillguard gateway --upstream URL`` serves (the group runs without a
sub-command); ``distillguard gateway replay LOGS... --out OUT`` backtests.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from distillguard.cli._common import console, fail

_SERVE_OPTIONS = ("upstream", "policy_path", "keys", "state", "accounts", "detections", "store", "audit", "host",
                  "port", "upstream_key_env", "trust_forwarded", "flush_every", "fsync_ms", "no_online", "intel",
                  "group_key", "group", "limits", "online_shed", "resistance")
_LIMIT_OPTIONS = ("header_timeout", "body_timeout", "keep_alive_timeout", "max_connections",
                  "max_connections_per_client")


def server_limit_options(max_connections: int = 4096, per_client: int = 128):
    """Read deadlines and connection limits for a served app (distillguard.gateway.server.ServerLimits)."""

    def decorate(f):
        for option in reversed([
            click.option("--header-timeout", default=10.0, show_default=True, type=float,
                         help="seconds a client has to send a whole request head"),
            click.option("--body-timeout", default=60.0, show_default=True, type=float,
                         help="seconds a client has to send a whole request body, after its head"),
            click.option("--keep-alive-timeout", default=5.0, show_default=True, type=float,
                         help="seconds an idle keep-alive connection stays open"),
            click.option("--max-connections", default=max_connections, show_default=True, type=int,
                         help="open connections in all (0: no limit)"),
            click.option("--max-connections-per-client", default=per_client, show_default=True, type=int,
                         help="open connections from one client IP (0: no limit; raise it behind a proxy)"),
        ]):
            f = option(f)
        return f

    return decorate


def server_limits(opts: dict):
    """A ServerLimits from the :func:`server_limit_options` (popped from ``opts``); bad values fail the command."""
    from distillguard.gateway.server import ServerLimits

    values = [opts.pop(name) for name in _LIMIT_OPTIONS]
    try:
        return ServerLimits(header_timeout_s=values[0], body_timeout_s=values[1], keep_alive_s=values[2],
                            max_connections=values[3], max_connections_per_client=values[4])
    except ValueError as exc:
        fail(str(exc), 2)


def _intel_options(f):
    """``--intel BUNDLE`` (repeatable), ``--group-key``, ``--group``: shared indicators matched per request."""
    f = click.option("--group", type=click.Path(exists=True, dir_okay=False),
                     help="group keyring: intel objects whose signatures do not verify are dropped")(f)
    f = click.option("--group-key", type=click.Path(exists=True, dir_okay=False),
                     help="the sharing group's key (intel keygen --group-key), needed with --intel")(f)
    return click.option("--intel", multiple=True, type=click.Path(exists=True, dir_okay=False),
                        help="STIX bundle from the sharing group, matched per request (repeatable)")(f)


def _attach_intel(scorer, intel: tuple[str, ...], group_key: str | None, group: str | None, account_info) -> None:
    """Give a FusedScorer per-request indicator matching; errors name the file."""
    if not intel:
        if group_key or group:
            fail("--group-key/--group go with --intel BUNDLE", 2)
        return
    if not group_key:
        fail("--intel needs --group-key (the sharing group's key)", 2)
    import orjson

    from distillguard.gateway.intel import RequestIntel, load_bundles
    from distillguard.intel.client import TaxiiClientError, load_keyring
    from distillguard.intel.privacy import GroupKeyError, load_group_key

    try:
        key = load_group_key(group_key)
        keyring = load_keyring(group) if group else None
        objects = load_bundles(list(intel), keyring)
    except (GroupKeyError, TaxiiClientError, OSError, ValueError, orjson.JSONDecodeError) as exc:
        fail(str(exc))
    records = {a: info.record for a, info in (account_info or {}).items()}
    scorer.intel = RequestIntel(objects, key, accounts=records)
    console.print(f"intel: {len(scorer.intel)} indicator(s) from {len(intel)} bundle(s), matched per request")


def _resistance_option(f):
    return click.option("--resistance", type=click.Path(dir_okay=False),
                        help="distillation-resistance profile (docs/resistance.md): trace defence per verdict, the "
                             "engine directive (antidistillation, watermark key) on upstream requests, the key id "
                             "recorded per exchange")(f)


@click.group(invoke_without_command=True)
@click.option("--upstream", help="OpenAI-compatible base URL to forward to, e.g. http://127.0.0.1:8000")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), help="policy YAML (default: shadow mode)")
@click.option("--keys", type=click.Path(dir_okay=False), help='JSON Lines {"api_key": ..., "account_id": ...}')
@click.option("--state", default="memory", show_default=True, help="memory or redis://HOST:PORT/DB")
@click.option("--accounts", type=click.Path(dir_okay=False), help="account records (org, verified) for exemptions")
@click.option("--detections", type=click.Path(), help="a `distillguard detect` output dir (reloaded on change)")
@click.option("--store", default="gateway-data/store", show_default=True, help="store that receives the exchanges")
@click.option("--audit", default="gateway-data/audit.jsonl", show_default=True, help="append-only decision log")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--upstream-key-env", default="DISTILLGUARD_UPSTREAM_API_KEY", show_default=True,
              help="environment variable holding the key sent upstream (if set)")
@click.option("--trust-forwarded", is_flag=True, help="take the client IP from X-Forwarded-For")
@click.option("--flush-every", default=5.0, show_default=True, help="seconds between spool -> store flushes")
@click.option("--fsync-ms", default=50.0, show_default=True, help="audit fsync group-commit window (0 = every one)")
@click.option("--no-online", is_flag=True, help="score from batch detections and intel only")
@click.option("--online-shed", type=click.Choice(["sample", "off"]), default="sample", show_default=True,
              help="when online scoring falls behind: sample the exchanges of accounts without evidence (counted, "
                   "audited, named in their decisions), or fold everything until the buffer is full")
@_resistance_option
@_intel_options
@server_limit_options()
@click.pass_context
def command(ctx: click.Context, **opts) -> None:
    """OpenAI-compatible enforcement proxy (runs when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    if not opts["upstream"]:
        fail("missing option --upstream (the model server to forward to)", 2)
    opts["limits"] = server_limits(opts)
    _serve(**{k: opts[k] for k in _SERVE_OPTIONS})


def _load_policy(path: str | None):
    from distillguard.gateway.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        fail(str(exc))


def _load_resistance(path: str | None):
    """The resistance profile, or None; a bad one fails the command with file:line: field: reason (exit 1)."""
    if not path:
        return None
    from distillguard.resist.profile import ProfileError, load_profile

    try:
        profile = load_profile(path)
    except ProfileError as exc:
        fail(str(exc))
    watermark = (f"watermark key {profile.watermark_key} ({profile.apply_to})" if profile.watermark_key
                 else "no watermark")
    console.print(f"resistance profile {profile.name} (format {profile.version}, {profile.source}): {watermark}, "
                  f"directive by {profile.transport}", markup=False, highlight=False)
    return profile


def _serve(upstream: str, policy_path: str | None, keys: str | None, state: str, accounts: str | None,
           detections: str | None, store: str, audit: str, host: str, port: int, upstream_key_env: str,
           trust_forwarded: bool, flush_every: float, fsync_ms: float, no_online: bool, intel: tuple[str, ...] = (),
           group_key: str | None = None, group: str | None = None, limits=None, online_shed: str = "sample",
           resistance: str | None = None) -> None:
    from distillguard.gateway import server
    from distillguard.gateway.app import Gateway
    from distillguard.gateway.audit import AuditLog
    from distillguard.gateway.config import ConfigError, build_scorer, load_accounts, load_keys
    from distillguard.gateway.engine import Engine
    from distillguard.gateway.spool import Spool
    from distillguard.gateway.state import open_state
    from distillguard.store import Store

    policy = _load_policy(policy_path)
    profile = _load_resistance(resistance)
    try:
        key_map = load_keys(keys) if keys else None
        account_info = load_accounts(accounts) if accounts else None
        scorer = build_scorer(policy, detections, online=not no_online, accounts=account_info, background=True)
        backend = open_state(state)
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    if backend.shared:  # analysts' decisions pushed by the console through the shared state
        from distillguard.gateway.analyst import SharedDecisions

        scorer.analyst = scorer.analyst or SharedDecisions(backend)
    _attach_intel(scorer, intel, group_key, group, account_info)
    worker = scorer.worker
    if worker is not None:
        worker.set_shed(online_shed)
    spool = Spool(Store.open(store), derive=_derive())
    engine = Engine(policy, scorer, state=backend, accounts=account_info, audit=AuditLog(audit, fsync_ms=fsync_ms))
    try:
        app = Gateway(upstream, engine, keys=key_map, spool=spool, upstream_api_key=os.environ.get(upstream_key_env),
                      trust_forwarded=trust_forwarded, flush_every_s=flush_every, resistance=profile)
    except ValueError as exc:
        fail(f"{upstream_key_env}: {exc}")
    console.print(f"gateway on http://{host}:{port} -> {upstream} (policy {policy.source}, mode {policy.mode}, "
                  f"state {state.split('@')[-1]})")
    # no ProxyHeadersMiddleware: the client address is ours to judge (--trust-forwarded reads X-Forwarded-For)
    # read deadlines and connection limits: distillguard.gateway.server (uvicorn has no head/body timeout)
    server.run(app, host, port, limits, lifespan="on", proxy_headers=False)


def _duration_ms(text: str) -> int | None:
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        return None
    return int(float(match.group(1)) * {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[match.group(2)])


def _derive():
    """The per-exchange signal definitions, when the signals stage is installed."""
    try:
        from distillguard.signals import SIGNALS
    except ImportError:
        return None
    return SIGNALS


@command.command("replay")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--accounts", type=click.Path(exists=True, dir_okay=False), help="account records for exemptions")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), help="policy YAML (default: shadow mode)")
@click.option("--detections", type=click.Path(exists=True), help="a `distillguard detect` output dir")
@click.option("--context", "context_path", type=click.Path(exists=True, dir_okay=False),
              help="baselines to score against: a detect run's context.json (default: --detections' one, or the "
                   "shipped priors)")
@click.option("--decisions", "decisions_path", type=click.Path(exists=True, dir_okay=False),
              help="analysts' decisions (JSON Lines, written by the console) applied by the decision stage")
@click.option("--detect-every", "detect_every", default=None, metavar="DURATION",
              help="run batch detection on the exchanges replayed so far every DURATION of recorded time (e.g. 6h, "
                   "30m) and score with its latest run, as a deployment does on the gateway's spool")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--no-online", is_flag=True, help="score from batch detections only")
@_resistance_option
@_intel_options
def replay_command(logs: tuple[str, ...], accounts: str | None, policy_path: str | None, detections: str | None,
                   context_path: str | None, decisions_path: str | None, detect_every: str | None, out: str,
                   no_online: bool, resistance: str | None, intel: tuple[str, ...], group_key: str | None,
                   group: str | None) -> None:
    """Backtest a policy on recorded canonical exchanges (timestamp order, recorded time).

    With --resistance, decisions.csv also says what each exchange would have been served with (antidistillation
    strength, watermark key, trace defence)."""
    from distillguard.gateway.config import ConfigError, build_scorer, load_accounts
    from distillguard.gateway.engine import Engine
    from distillguard.gateway.replay import replay

    policy = _load_policy(policy_path)
    profile = _load_resistance(resistance)
    try:
        account_info = load_accounts(accounts) if accounts else None
        scorer = build_scorer(policy, detections, online=not no_online, accounts=account_info,
                              context=context_path, decisions=decisions_path)
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    _attach_intel(scorer, intel, group_key, group, account_info)
    engine = Engine(policy, scorer, accounts=account_info)
    detect = None
    if detect_every:
        from distillguard.gateway.replay import PeriodicDetection

        every_ms = _duration_ms(detect_every)
        if every_ms is None:
            fail(f"--detect-every: expected a duration such as 6h, 30m or 1d, got {detect_every!r}", 2)
        detect = PeriodicDetection(every_ms, Path(out) / "periodic", Path(accounts) if accounts else None)
    report = asyncio.run(replay(logs, engine, Path(out), detect=detect, resistance=profile))
    if detect is not None:
        console.print(f"batch detection ran {detect.runs} time(s) during the replay ({Path(out) / 'periodic'})")
    restricted = sum(1 for s in report.accounts.values() if s.first_restricted is not None)
    console.print(f"replayed {report.exchanges:,} exchanges from {len(report.accounts):,} accounts "
                  f"({restricted:,} reached throttle or block) -> {out}/decisions.csv, {out}/accounts.csv")
    if profile is not None:
        served = report.resistance
        console.print(f"resistance {profile.name}: {served.get('antidistillation', 0):,} exchange(s) with "
                      f"antidistillation, {served.get('watermark', 0):,} watermarked, "
                      f"{served.get('reasoning', 0):,} with a trace defence")
    if report.bad_lines:
        for error in report.errors:
            console.print(f"  {error}", markup=False, highlight=False)
        fail(f"{report.bad_lines} bad line(s) skipped")
