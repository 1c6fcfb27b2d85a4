"""Shared helpers for benchmarks: medians, tables, and the sections of docs/performance.md.

Each benchmark owns one section of docs/performance.md between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` markers and rewrites only that section, so
benchmarks can run separately or together (`make bench`) without clobbering each other.
"""

from __future__ import annotations

import platform
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
HEADER = """# Performance

Every figure here is produced by a benchmark in `bench/` and written by it, with the exact
command. Machines are shared and noisy: figures are medians, and comparisons are ratios measured
side by side in the same run. `make bench` runs them all.
"""


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line() -> str:
    import os

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]},"
        f" {datetime.now(UTC).strftime('%Y-%m-%d')}"
    )


def write_section(name: str, body: str, *, path: Path = PERFORMANCE_MD) -> None:
    """Replace (or append) the section for benchmark ``name`` in docs/performance.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
