"""The analyst console (``distillguard console``): queues, campaign and account pages, decisions, cases.

See docs/console.md. :func:`build` wires the pieces (used by the command, the tests and the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Built:
    app: Any
    console: Any
    auth: Any
    db: Any
    data: Any


def build(store: str | Path, detections: str | Path | None, *, db: str | None = None, data_dir: str | Path =
          "console-data", state: str | None = None, decisions_out: str | Path | None = None,
          escalation: str | Path | None = None, validations: str | Path | None = None, secure_cookies: bool = False,
          idle_s: float = 1800.0, max_age_s: float = 12 * 3600.0, repush_s: float = 600.0) -> Built:
    from distillguard.cases.criteria import load_policy
    from distillguard.console.app import create_app
    from distillguard.console.auth import Auth
    from distillguard.console.data import ConsoleData
    from distillguard.console.db import ConsoleDB
    from distillguard.console.service import Console

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    database = ConsoleDB(db or f"sqlite:///{data_dir / 'console.sqlite'}")
    backend = None
    if state:
        from distillguard.gateway.state import open_state

        backend = open_state(state)
    data = ConsoleData(store, detections)
    console = Console(database, data, decisions_out=Path(decisions_out or data_dir / "decisions.jsonl"),
                      state=backend, escalation=load_policy(escalation), packages_dir=data_dir / "packages",
                      repush_s=repush_s)
    auth = Auth(database, idle_s=idle_s, max_age_s=max_age_s)
    app = create_app(console, auth, secure_cookies=secure_cookies,
                     validations=Path(validations) if validations else None)
    return Built(app, console, auth, database, data)


__all__ = ["Built", "build"]
