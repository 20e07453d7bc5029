"""Tasks: the :data:`TASKS` table and :func:`make_task`.

``memorize`` (the filter), ``arithmetic``, ``xml``, ``ptb`` and the music sets
``nottingham`` and ``pianomidi``. Options are keyword settings of each task's class
(e.g. ``make_task("arithmetic", max_digits=4)``). No module here imports JAX.
"""

from __future__ import annotations

from collections.abc import Callable

from cellsearch.errors import ConfigError
from cellsearch.tasks.arithmetic import Arithmetic
from cellsearch.tasks.base import Batch, Task, TaskSpec
from cellsearch.tasks.memorize import Memorize
from cellsearch.tasks.music import Music
from cellsearch.tasks.ptb import PTB
from cellsearch.tasks.xml import XML

TASKS: dict[str, Callable[..., Task]] = {
    "memorize": Memorize,
    "arithmetic": Arithmetic,
    "xml": XML,
    "ptb": PTB,
    "nottingham": lambda **kw: Music("nottingham", **kw),
    "pianomidi": lambda **kw: Music("pianomidi", **kw),
}

__all__ = ["TASKS", "Batch", "Task", "TaskSpec", "make_task"]


def make_task(name: str, **options) -> Task:
    """Builds a task by name; unknown names and options raise :class:`ConfigError`."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    try:
        return TASKS[name](**options)
    except TypeError as e:
        raise ConfigError(f"task {name!r}: bad option ({e})") from None
