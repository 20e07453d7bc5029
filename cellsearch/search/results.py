"""Reading a search's results: scores, the leaderboard and the summary, as functions of a store.

A cell's score is ``min over tasks of best(cell, task) / reference(cell, task)`` (§3.1), where
``best`` is the highest score among the cell's finished settings on the task (a diverged
setting counts as 0; a crashed one is not a result). The reference is the baseline's best: over
every setting it trained (``reference="all"``, the paper's), or (``"matched"``, the default)
over as many settings as the cell trained and every setting the two share, so that a cell with
4 settings is not read against a best over 12. Scores are computed from the store on demand,
from one query, so they always reflect the baseline's latest evaluations.

The baseline is the one the search stored (:func:`baseline_of`), so reading a store needs no
search space file. :func:`load_cell` finds a cell by seed name, file or store id.

This module imports nothing from JAX: ``top``, ``show``, ``export`` and ``report`` use it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cellsearch.cell.canon import structural_hash
from cellsearch.cell.graph import CellGraph, from_json
from cellsearch.errors import CellSearchError, StorageError
from cellsearch.evolve.spaces import load_space, resolve_cell
from cellsearch.search.config import DEFAULT_DB, SearchConfig
from cellsearch.store.sqlite import Store

# A baseline best below this is no basis for a ratio: the search refuses to score against it.
MIN_BASELINE = 1e-6


def stored_config(store: Store) -> SearchConfig:
    """The settings of the search in ``store``."""
    text = store.meta("config")
    if text is None:
        raise StorageError(f"{store.path!r} holds no search yet (no settings stored)")
    return SearchConfig.from_json(text)


def baseline_of(store: Store) -> tuple[str, str]:
    """The baseline's ``(name, structural hash)``, as the search stored it when it started (a store
    written before it was stored: from its search space, which must then be importable)."""
    text = store.meta("baseline")
    if text:
        d = json.loads(text)
        return d["name"], d["hash"]
    space = load_space(stored_config(store).space)
    return space.baseline, structural_hash(space.seed(space.baseline))


def ratio(mine: float | None, base: float | None) -> float | None:
    """``mine / base``, or ``None`` when either is missing or the baseline is (near) zero.

    >>> ratio(0.5, 0.25), ratio(0.5, 0.0), ratio(None, 0.5)
    (2.0, None, None)
    """
    if mine is None or base is None or base < MIN_BASELINE:
        return None
    return mine / base


def first_best(results: list[tuple[str, float]], n: int) -> float:
    """The best over a cell's **first** ``n`` settings on a task, given its results there in the
    order stored (``(hp_key, score)``, as :meth:`~cellsearch.store.sqlite.Store.results_table`
    reads them: a diverged setting counts 0, a crashed one is not a setting; 0 if it has none), as a
    child's best is over its ``n``: what the hurdle and the pool's entry compare at equal settings
    (:meth:`cellsearch.search.steps.Search.bar`).

    >>> first_best([("a", 0.4), ("b", 0.0), ("c", 0.9)], 2), first_best([], 4)
    (0.4, 0.0)
    """
    return max((v for _, v in results[:n]), default=0.0)


class Scores:
    """Every cell's best per task, read once; :meth:`score` and :meth:`ratios` from it."""

    def __init__(self, store: Store, config: SearchConfig | None = None):
        self.config = config or stored_config(store)
        self.baseline_name, self.baseline = baseline_of(store)
        self.results = store.results_table()  # {(cell, task): [(hp_key, score), ...] in the order stored}
        self.best = {k: max(v for _, v in rs) for k, rs in self.results.items()}  # {(cell, task): best}

    def reference(self, cell_hash: str, task: str) -> float | None:
        """What the cell's best on ``task`` is divided by: the baseline's best, over all its
        settings (``reference="all"``) or, ``"matched"``, over its first ``n`` (``n`` the cell's
        number of settings there) and every setting the cell also trained (same grid point, same
        seed: the carried-over ones). A child that carries the baseline's best setting is read
        against it; a child with 4 settings is not read against a best over 12, which rises with
        every re-evaluation of the baseline (benchmarks/README.md, "The quick start")."""
        base = self.results.get((self.baseline, task))
        if not base or self.config.reference == "all" or cell_hash == self.baseline:
            return self.best.get((self.baseline, task))
        mine = self.results.get((cell_hash, task), [])
        shared = {k for k, _ in mine}
        return max(v for i, (k, v) in enumerate(base) if i < len(mine) or k in shared) if mine else None

    def first(self, cell_hash: str, task: str, n: int) -> float:
        """The cell's best on ``task`` over its **first** ``n`` settings (:func:`first_best`)."""
        return first_best(self.results.get((cell_hash, task), []), n)

    def ratios(self, cell_hash: str) -> dict[str, float | None]:
        return {t: ratio(self.best.get((cell_hash, t)), self.reference(cell_hash, t)) for t in self.config.tasks}

    def score(self, cell_hash: str) -> float | None:
        """The cell's score, or ``None`` if a task has no result (or no baseline to divide by)."""
        r = list(self.ratios(cell_hash).values())
        return None if any(v is None for v in r) else min(r)


def score(store: Store, cell_hash: str, config: SearchConfig | None = None) -> float | None:
    """One cell's score (see :class:`Scores`)."""
    return Scores(store, config).score(cell_hash)


def reference_only(store: Store, config: SearchConfig | None = None) -> str | None:
    """The baseline's hash when it is not one of the starting pool's seeds (a search from the tanh
    RNN: the GRU is then the scale scores are read on, not one of the search's cells), else ``None``."""
    config = config or stored_config(store)
    name, hash_ = baseline_of(store)
    names = config.pool_seeds
    if not names:
        try:
            names = load_space(config.space).pool_seeds
        except CellSearchError:  # a space file since moved: count the baseline as the search's own
            return None
    return None if name in names else hash_


def leaderboard(store: Store, config: SearchConfig | None = None, k: int = 10, *, own: bool = False) -> list[dict]:
    """The ``k`` best cells that have a score on every task, best first; with ``own``, only the
    search's own cells (its children and starting seeds: not a baseline kept as the reference)."""
    sc = Scores(store, config)
    pool = set(store.pool())
    n_eval = store.evaluation_counts()
    skip = reference_only(store, sc.config) if own else None
    rows = []
    for r in store.cells("status IN ('scored', 'seed')"):
        s = sc.score(r["hash"])
        if s is None or r["hash"] == skip:
            continue
        rows.append({"id": r["id"], "hash": r["hash"], "score": s, "origin": r["origin"],
                     "tasks": {t: sc.best.get((r["hash"], t)) for t in sc.config.tasks},
                     "ratios": sc.ratios(r["hash"]), "evaluations": n_eval.get(r["hash"], 0),
                     "in_pool": r["hash"] in pool})
    rows.sort(key=lambda d: (-d["score"], d["id"]))
    return rows[:k]


def best_score(store: Store, config: SearchConfig | None, *, skip: str | None) -> float | None:
    """The best score of the search's own cells so far, seeds or scored children (``None`` before
    any), leaving out ``skip`` (the baseline kept as the reference, :func:`reference_only`: a
    search computes it once, since this runs after every step)."""
    sc = Scores(store, config)
    scores = (sc.score(r["hash"]) for r in store.cells("status IN ('scored', 'seed')") if r["hash"] != skip)
    return max((s for s in scores if s is not None), default=None)


@dataclass
class SearchSummary:
    """What a search did: its steps, its children's fates (a child's last fate: one screened and
    later promoted counts where its full evaluation ended), its evaluations and best cells."""

    steps: int
    children: int
    scored: int
    duplicates: int
    filtered: int
    hurdle: int
    errors: int
    evaluations: int
    new_evaluations: int  # results trained in this run (a resumed run repeats none)
    wall_s: float
    best: list[tuple[str, float]]
    stopped: str
    probe_rejected: int = 0  # children the liveness probe rejected (resampled, never trained)
    best_origin: str = ""  # the best cell's origin ("seed:GRU", "mutation")
    screened: int = 0  # children stopped at a screen rung (cheap-first screening)
    diverged: int = 0  # children whose every setting of a stage diverged
    promoted: int = 0  # steps that promoted a screened child


def summarize(store: Store, config: SearchConfig, wall: float = 0.0, stopped: str = "", trained: int = 0
              ) -> SearchSummary:
    """Counts of a search's outcomes and its five best cells."""
    fates = store.child_fates()
    board = leaderboard(store, config, 5, own=True)
    best = [(d["hash"], d["score"]) for d in board]
    return SearchSummary(
        steps=len(store.finished_steps()), children=store.children_done(), scored=fates.get("scored", 0),
        duplicates=store.counts().get("child:duplicate", 0), filtered=fates.get("filtered", 0),
        hurdle=fates.get("hurdle", 0), errors=fates.get("error", 0), evaluations=sum(store.evaluation_counts().values()),
        new_evaluations=trained, wall_s=wall, best=best, stopped=stopped,
        probe_rejected=sum(store.probe_rejections().values()), best_origin=board[0]["origin"] if board else "",
        screened=fates.get("screened", 0), diverged=fates.get("diverged", 0),
        promoted=sum(n for k, n in store.counts().items() if k.startswith("promote:")))


def find_cell(store: Store, ref: str):
    """A cell's row in ``store`` by numeric id, full hash or unique hash prefix."""
    row = store.cell(str(ref))
    if row is None:
        raise StorageError(f"no cell with id or hash {ref!r} in {store.path!r}; `cellsearch top` lists them")
    return row


def load_cell(ref: str | int, db: str | None = None) -> CellGraph:
    """A cell graph by reference: a seed name (``"LSTM"``), a cell JSON file (``cellsearch export``
    writes one), or a cell's id or hash in the store ``db`` (default ``./cellsearch.db``).

    >>> load_cell("GRU").graph["name"]
    'GRU'
    """
    ref = str(ref)
    try:
        return resolve_cell(ref)
    except CellSearchError:
        db = db or DEFAULT_DB
        if not os.path.exists(db):
            raise
        with Store(db, write=False) as store:
            return from_json(find_cell(store, ref)["graph"])
