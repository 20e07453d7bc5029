"""The one progress display of the command line: a rich bar on stderr.

Drawn only when stderr is a terminal; elsewhere (logs, CI) the verbs print plain lines.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(label: str = "{task.description}", *, info: bool = False) -> Progress:
    """A bar with a label, done/total, elapsed and remaining time; ``info`` adds a text
    column fed by ``update(..., info=...)``."""
    console = Console(stderr=True)
    cols = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if info:
        cols.append(TextColumn("{task.fields[info]}"))
    cols += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*cols, console=console, transient=False, disable=not console.is_terminal)
