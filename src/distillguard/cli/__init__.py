"""The ``distillguard`` command line.

Each sub-command lives in its own module (``distillguard.cli.<name>``) exposing a
``command`` click object; the group imports them lazily so ``distillguard --help``
stays fast and one broken stage cannot take the others down.

Exit codes: 0 success, 1 bad input or partial failure (reported), 2 usage error.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

# sub-command name -> module under distillguard.cli
_COMMANDS: dict[str, str] = {
    "simulate": "simulate",
    "ingest": "ingest",
    "summary": "summary",
    "detect": "detect",
    "eval": "evaluate",
    "train": "train",
    "intel": "intel",
    "gateway": "gateway",
    "demo": "demo",
    "lab": "lab", "provenance": "provenance",  # distillation resistance (resist/, lab/)
    "console": "console",
    "cases": "cases",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, module in _COMMANDS.items()
                      if importlib.util.find_spec(f"distillguard.cli.{module}") is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None or importlib.util.find_spec(f"distillguard.cli.{module}") is None:
            return None
        return importlib.import_module(f"distillguard.cli.{module}").command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="distillguard")
def main() -> None:
    """Detect, attribute, contain and share intelligence about adversarial distillation."""
