"""Tasks: the :data:`TASKS` table and :func:`make_task`.

``memorize`` (the filter), ``arithmetic``, ``xml``, ``ptb`` and the music sets
``nottingham`` and ``pianomidi``. Options are keyword settings of each task's class
(e.g. ``make_task("arithmetic", max_digits=4)``); every synthetic task also takes
``eval_batches`` and ``eval_batch_size`` (its validation set: 8 batches of 64 rows by default).
No module here imports JAX.
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
    options = dict(options)
    n_eval = options.pop("eval_batches", None)
    eval_size = options.pop("eval_batch_size", None)
    try:
        task = TASKS[name](**options)
    except TypeError as e:
        raise ConfigError(f"task {name!r}: bad option ({e})") from None
    if n_eval is not None:  # size of the synthetic validation/test sets
        task.eval_batches_n = int(n_eval)
    if eval_size is not None:
        task.batch_size_eval = int(eval_size)
    return task
