"""Helpers shared by the sub-commands: console, progress bars, error exits."""

from __future__ import annotations

import re
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE = 0, 1, 2


def progress() -> Progress:
    """A progress bar on stderr that degrades to nothing when not a terminal."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print an error and exit with ``code`` (1 bad input, 2 usage)."""
    console.print(f"[bold red]error:[/] {message}")
    raise click.exceptions.Exit(code)


class ByteSize(click.ParamType):
    """A memory size for DuckDB's ``memory_limit``: a number and a unit (``5GB``, ``512MiB``, ``1.5 GB``) or a
    share of the machine's RAM (``50%``). Anything else is a usage error, not a failed query later."""

    name = "size"
    _UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    _SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)", re.IGNORECASE)
    _SHARE = re.compile(r"(\d+(?:\.\d+)?)\s*%")
    MINIMUM = 64 * 2**20  # below this DuckDB cannot run detection's queries at all

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        share = self._SHARE.fullmatch(text)
        if share:
            if not 0 < float(share[1]) <= 100:
                self.fail(f"{value!r}: a share of RAM must be above 0% and at most 100%", param, ctx)
            return f"{share[1]}%"
        size = self._SIZE.fullmatch(text)
        if size is None:
            self.fail(f"{value!r} is not a size: give a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
                      "e.g. 5GB or 512MiB, or a share of RAM, e.g. 50%", param, ctx)
        unit = size[2].lower()
        if float(size[1]) * self._UNITS[unit] < self.MINIMUM:
            self.fail(f"{value!r} is too small: at least 64MiB", param, ctx)
        return size[1] + (unit[0].upper() + unit[1:-1] + "B" if len(unit) > 1 else "B")  # 512mib -> 512MiB
