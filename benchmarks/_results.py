"""Write one benchmark's section of benchmarks/RESULTS.md between its markers, leaving the others alone."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def update_section(section: str, begin: str, end: str, path: Path = RESULTS) -> None:
    """Replace the text between ``begin`` and ``end`` (markers kept) with ``section``; append it when absent."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{begin}\n{section}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
