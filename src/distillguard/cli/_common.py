"""Helpers shared by the sub-commands: console, progress bars, error exits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

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

T = TypeVar("T")

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


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    with progress() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print an error and exit with ``code`` (1 bad input, 2 usage)."""
    console.print(f"[bold red]error:[/] {message}")
    raise click.exceptions.Exit(code)
