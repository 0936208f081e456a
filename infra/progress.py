"""Per-node progress on a console: a live table on a terminal, lines in CI logs.

Shared by everything that watches a pipeline run (``local-run`` on this
machine, ``run --follow`` / ``status --follow`` on AWS), so a user reads
the same table whichever way the pipeline runs. The caller owns polling:
it hands :meth:`Progress.update` the current rows whenever it has them,
because where rows come from (memory, or rate-limited AWS APIs) decides how
often that can be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.live import Live
from rich.table import Table

# Status words, upper-case; shown lower-case with spaces.
STYLE = {
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "RUNNING": "cyan",
    "QUEUED": "blue",
    "NOT_RUN": "yellow",
    "CANCELLED": "yellow",
}


# Not worth a line in a log until something happens.
IDLE = frozenset({"NOT_RUN", "PENDING"})


@dataclass(frozen=True, slots=True)
class Row:
    """One node as displayed."""

    name: str
    status: str
    seconds: float | None = None
    link: str | None = None  # e.g. the node's log stream in the AWS console


def word(status: str) -> str:
    """``NOT_RUN`` -> ``not run``."""
    return status.lower().replace("_", " ")


def table(title: str, rows: Sequence[Row], *, links: bool = False) -> Table:
    """The node table; ``links`` adds a column of clickable links (terminals only)."""
    result = Table(title=title, title_justify="left")
    result.add_column("node")
    result.add_column("status")
    result.add_column("seconds", justify="right")
    if links:
        result.add_column("logs")
    for row in rows:
        style = STYLE.get(row.status, "dim")
        cells = [
            row.name,
            f"[{style}]{word(row.status)}[/]",
            "" if row.seconds is None else f"{row.seconds:.1f}",
        ]
        if links:
            cells.append(f"[link={row.link}]logs[/link]" if row.link else "")
        result.add_row(*cells)
    return result


class Progress:
    """Shows rows as they change: a live table on a terminal, else one line per change.

    A CI log cannot redraw, so off a terminal every status change is one
    line (``node: status``), with the seconds and link once a node has
    finished: the log reads as the run's story.
    """

    def __init__(self, console: Console, title: str, *, links: bool = False) -> None:
        self.console, self.title, self.links = console, title, links
        self._live: Live | None = None
        self._seen: dict[str, str] = {}

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(self, rows: Sequence[Row]) -> None:
        if self._live is not None:
            self._live.update(table(self.title, rows, links=self.links))
            return
        for row in rows:
            seen = self._seen.get(row.name)
            if seen == row.status or (seen is None and row.status in IDLE):
                continue
            self._seen[row.name] = row.status
            line = f"{row.name}: {word(row.status)}"
            if row.status in ("SUCCEEDED", "FAILED") and row.seconds is not None:
                line += f" after {row.seconds:.1f}s"
            if row.status in ("SUCCEEDED", "FAILED") and row.link:
                line += f" (logs: {row.link})"
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)
