"""``distillguard console``: the analyst console (web), and ``console user`` to add users."""

from __future__ import annotations

import os

import click

from distillguard.cli._common import EXIT_BAD_INPUT, EXIT_USAGE, console, fail


@click.group(invoke_without_command=True)
@click.option("--store", type=click.Path(exists=True, file_okay=False), help="the store detection ran on")
@click.option("--detections", type=click.Path(exists=True, file_okay=False),
              help="a `distillguard detect` output dir (accounts.csv, campaigns.json, links.json)")
@click.option("--db", help="sqlite:///FILE (default: DATA/console.sqlite) or postgresql://...")
@click.option("--data", "data_dir", default="console-data", show_default=True,
              help="folder for the console's database, decisions file and escalation packages")
@click.option("--state", help="the gateways' shared state (redis://...): decisions are pushed there")
@click.option("--decisions-out", type=click.Path(dir_okay=False),
              help="JSON Lines decisions file for detect/gateway --decisions (default: DATA/decisions.jsonl)")
@click.option("--escalation", type=click.Path(exists=True, dir_okay=False), help="escalation criteria policy (YAML)")
@click.option("--validations", type=click.Path(exists=True, dir_okay=False),
              help="STIX objects pulled from the hub: detectors and members' validation reports")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--secure-cookies", is_flag=True, help="mark cookies Secure (behind HTTPS)")
@click.option("--idle-minutes", default=30.0, show_default=True, help="sessions end after this long idle")
@click.pass_context
def command(ctx: click.Context, store: str | None, detections: str | None, db: str | None, data_dir: str,
            state: str | None, decisions_out: str | None, escalation: str | None, validations: str | None,
            host: str, port: int, secure_cookies: bool, idle_minutes: float) -> None:
    """Web console: review, decide, revoke, escalate (runs when no sub-command is given)."""
    ctx.obj = {"db": db, "data_dir": data_dir}
    if ctx.invoked_subcommand is not None:
        return
    if not store:
        fail("missing option --store", EXIT_USAGE)
    import uvicorn

    from distillguard.cases.criteria import CriteriaError
    from distillguard.console import build

    try:
        built = build(store, detections, db=db, data_dir=data_dir, state=state, decisions_out=decisions_out,
                      escalation=escalation, validations=validations, secure_cookies=secure_cookies,
                      idle_s=idle_minutes * 60)
    except (CriteriaError, ValueError, OSError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if not built.db.users():
        console.print("no console user yet: add one with `distillguard console user NAME --role lead`")
    console.print(f"console on http://{host}:{port} ({built.data.n_accounts:,} accounts, "
                  f"{len(built.data.campaigns):,} campaigns; decisions -> {built.console.decisions_out})")
    uvicorn.run(built.app, host=host, port=port, log_level="warning", proxy_headers=False)


@command.command("user")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "analyst", "lead", "legal"]), required=True)
@click.option("--password-env", default="DG_CONSOLE_PASSWORD", show_default=True,
              help="read the password from this variable (else prompted)")
@click.pass_context
def user_command(ctx: click.Context, name: str, role: str, password_env: str) -> None:
    """Add a user, or set a user's role and password (ends the user's sessions)."""
    from pathlib import Path

    from distillguard.console.auth import Auth
    from distillguard.console.db import ConsoleDB

    opts = ctx.obj or {}
    data_dir = Path(opts.get("data_dir") or "console-data")
    data_dir.mkdir(parents=True, exist_ok=True)
    db = ConsoleDB(opts.get("db") or f"sqlite:///{data_dir / 'console.sqlite'}")
    password = os.environ.get(password_env) or click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        Auth(db).add_user(name, role, password)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    db.audit("cli", "lead", "user-put", f"user:{name}", "distillguard console user", {"role": role})
    console.print(f"user {name}: {role}")
