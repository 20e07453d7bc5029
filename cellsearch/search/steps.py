"""One step of the search, as a sequence of stages (Jozefowicz et al. §3.1-3.2).

A step either evaluates a seed (the first steps: the pool seeds and the baseline on every
task with ``init_settings`` settings), re-evaluates a pool member on new settings, or
proposes a child (strategy in :mod:`cellsearch.evolve.strategies`) and evaluates it in stages:

0. **proposal**: ``edits`` edits on a pool member (:mod:`cellsearch.evolve.mutate`); a child that
   fails the liveness probe (:mod:`cellsearch.cell.probe`) is resampled before any training,
   and the step records how many were (``probe_rejected``, by reason);
1. **dedup**: a child whose structural or functional hash is already in the store is
   recorded as a ``duplicate`` and not trained;
2. **filter**: memorisation (§3.3), best of ``filter_settings`` settings of the filter grid;
   below ``filter_threshold`` (95 %) the child is ``filtered``;
3. **hurdle**: the first task with ``settings_per_task`` settings (the parent's best
   ``carry_over`` settings among them, §3.2 [S1]); below ``hurdle`` (90 %) of the
   baseline's best over as many settings (:meth:`Search.baseline_bar`) the child stops
   (``hurdle``);
4. **all tasks**: the rest, then ``score = min over tasks of best(cell) / best(GRU)``
   (:mod:`cellsearch.search.results`) and the strategy decides whether it enters the pool (only
   above the floor, the hurdle).

Each stage trains in rungs (successive halving, :attr:`cellsearch.config.TrainConfig.rungs`)
against its bar: the filter's threshold, the hurdle times the baseline's bar on the first
task, and on every other task the pool's floor (the hurdle times the baseline's bar there:
a child below it on any task cannot enter the pool). A child whose every setting on a stage
stopped at a rung records ``stopped_at`` and ``stopped_task``.

A stage whose every setting crashed makes the child ``error`` (with the message), never a
score. Steps are generators that yield evaluation jobs (:mod:`cellsearch.search.driver` drives
them), so the store is written by the driver alone. Each step draws every random number
from ``numpy.random.default_rng([seed, step])``, so a resumed step proposes the same child.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from cellsearch.cell.canon import structural_hash
from cellsearch.cell.graph import from_json, to_json
from cellsearch.cell.probe import ProbeConfig, liveness
from cellsearch.errors import MutationFailed, SearchStopped
from cellsearch.evolve.mutate import mutate_live
from cellsearch.evolve.spaces import load_space
from cellsearch.evolve.strategies import PoolView, make_strategy
from cellsearch.hparams import HParams, seeded
from cellsearch.search.config import SearchConfig
from cellsearch.search.results import MIN_BASELINE, Scores
from cellsearch.store.sqlite import Store
from cellsearch.tasks import get_task, task_options


def filter_settings(cfg: SearchConfig, rng: np.random.Generator) -> list[HParams]:
    """The memorisation filter's settings: ``filter_settings`` different points of the filter
    grid, with their initialisation seeds derived from the search seed."""
    return [seeded(h, cfg.seed) for h in cfg.filter_hparams.sample_distinct(rng, cfg.filter_settings)]


def seed_graph(cfg: SearchConfig, space, name: str):
    """A pool seed by name: a cell given as a file (``cfg.cells_json``) or a seed of the space."""
    if name in cfg.cells_json:
        return from_json(cfg.cells_json[name])
    return space.seed(name)


def check_inputs(cfg: SearchConfig) -> None:
    """Loads the space and the pool seeds and builds every task once, so a bad space file, an
    unknown seed, a missing data file or a bad task option stops the search before it starts
    (with the message saying what to fix) instead of failing evaluations."""
    space = load_space(cfg.space)
    for n in cfg.pool_seeds:
        seed_graph(cfg, space, n)
    for t in (cfg.filter_task, *cfg.tasks):
        get_task(t, task_options(t, cfg.task_options.get(t), cfg.data_dir))


def make_job(cfg: SearchConfig, cell_hash: str, graph_json: str, task: str, settings: list[HParams],
             train, step: int) -> dict:
    """The job (:mod:`cellsearch.search.executors`) that trains a cell on ``task`` under ``settings``
    and the schedule ``train`` (a :class:`~cellsearch.config.TrainConfig`)."""
    return {"graph": graph_json, "task": task,
            "task_options": task_options(task, cfg.task_options.get(task), cfg.data_dir),
            "settings": [asdict(h) for h in settings], "train": asdict(train), "cell": cell_hash, "step": step}


def best_settings(store: Store, cell_hash: str, task: str, k: int) -> list[HParams]:
    """The cell's ``k`` best finished settings on ``task``, best first (the earlier of equal ones)."""
    ev = [e for e in store.evaluations(cell_hash, task) if e["status"] == "ok"]
    ev.sort(key=lambda e: -e["score"])
    return [HParams(**e["hparams"]) for e in ev[:k]]


def liveness_check(cfg: SearchConfig) -> Callable:
    """The liveness probe at the filter's first initialisation scale and parameter budget."""

    h = cfg.filter_hparams
    pc = ProbeConfig(budget=h.param_budget[0], init_scale=min(h.init_scale), seed=cfg.seed)
    return lambda g: liveness(g, pc)


@dataclass
class Outcome:
    kind: str
    cell: str | None
    outcome: str
    detail: dict = field(default_factory=dict)
    status: tuple[str, float | None] | None = None
    pool_add: list[str] = field(default_factory=list)
    pool_remove: list[str] = field(default_factory=list)


class Search:
    """A search bound to a store; :meth:`step` builds the generator of step ``k``."""

    def __init__(self, config: SearchConfig, store: Store):
        self.cfg, self.store = config, store
        self.space = load_space(config.space)
        self.strategy = make_strategy(config)
        pool = config.pool_seeds or self.space.pool_seeds
        names = list(dict.fromkeys([*pool, self.space.baseline]))
        self.seed_graphs = {n: seed_graph(config, self.space, n) for n in names}
        self.seed_hashes = list(dict.fromkeys(structural_hash(self.seed_graphs[n]) for n in pool))
        self.baseline = structural_hash(self.seed_graphs[self.space.baseline])
        if store.meta("baseline") is None:  # readers take the baseline from the store, not from the space
            store.set_meta("baseline", json.dumps({"name": self.space.baseline, "hash": self.baseline}))
        self.n_init = len(names)
        self.view = PoolView(store, lambda: Scores(store, config), self.seed_hashes)
        self.defer_admit = config.population > 1  # rounds admit their children at the round's end
        self.probe = liveness_check(config) if config.probe else None
        self.used_up: dict[int, set[str]] = {}  # step -> tasks whose grid ran out of new settings

    def score(self, cell_hash: str) -> float | None:
        """The cell's score (:class:`cellsearch.search.results.Scores`); ``None`` if a task has no result."""
        return Scores(self.store, self.cfg).score(cell_hash)

    def baseline_bar(self, task: str, n: int) -> float:
        """What the hurdle compares a child with: the baseline's best over its **first** ``n``
        settings on ``task`` (those of its seed step, in the order they were stored; a
        diverged setting counts 0), as a child's best is over its ``n`` settings. The
        baseline's overall best is not used: it is a best over more settings, and it rises
        each time the baseline is re-evaluated as a pool member, so a child's fate would
        depend on when it was proposed."""
        ev = self.store.evaluations(self.baseline, task)[:n]
        return max((e["score"] for e in ev if e["status"] == "ok"), default=0.0)

    def admit(self, cell_hash: str, score: float) -> tuple[list[str], list[str]]:
        """The strategy's pool change for a scored child; a child below the pool's floor (the
        hurdle, as a ratio to the baseline) never enters, even while the pool is not full."""
        if not score >= self.cfg.hurdle:
            return [], []
        return self.strategy.admit(self.view, cell_hash, score)

    def check_baseline(self) -> None:
        """Raises :class:`SearchStopped` if the baseline has no usable result on a task."""
        name = self.space.baseline
        for t in self.cfg.tasks:
            st = self.store.statuses(self.baseline, t)
            best = self.store.best(self.baseline, t)
            if not st or (best is not None and best >= MIN_BASELINE):
                continue
            n = sum(st.values())
            if best is None:
                why = f"all {n} of its settings crashed ({self.store.first_error(self.baseline, t)})"
            elif st.get("diverged", 0) == n - st.get("error", 0):
                why = f"all {n} of its settings diverged or crashed"
            else:
                why = f"its best score is {best:.3g}"
            raise SearchStopped(f"the baseline {name} failed on task {t!r}: {why}; no score relative to it would "
                                "mean anything, so the search stopped (everything stored is kept). Try milder "
                                "settings for this task (lower learning rates, fewer steps) with another --db")

    # -- jobs ------------------------------------------------------------------------------------

    def _settings(self, cell_hash: str, task: str, n: int, rng, step: int, carry: list[HParams] = (),
                  replicates: bool = False) -> list[HParams]:
        """``n`` settings not evaluated for this cell and task by an earlier step: ``carry``
        first, then random grid points. A setting's seed is derived from its grid point, so
        it is stable; a resumed step chooses exactly the settings it chose before. With
        ``replicates`` (re-evaluations) a point drawn again is trained with a new seed
        (:func:`~cellsearch.hparams.seeded`'s replicate 1, 2, ...), so re-evaluating samples
        seed noise and never runs out of settings; without, a grid that is used up gives
        fewer settings, and the step's detail says so (``grid_used_up``)."""
        space = self.cfg.hparam_space(task)
        done = self.store.done_keys(cell_hash, task, before_step=step)
        out: list[HParams] = []
        for h in carry:
            if h.key() not in done and h not in out and len(out) < n:
                out.append(h)
        for _ in range(50 * n):
            if len(out) >= n:
                break
            (h,) = space.sample(rng, 1)
            r, s = 0, seeded(h, self.cfg.seed)
            while replicates and (s.key() in done or s in out):
                r += 1
                s = seeded(h, self.cfg.seed, r)
            if s.key() not in done and s not in out:
                out.append(s)
        if len(out) < n:
            self.used_up.setdefault(step, set()).add(task)
        return out

    def _job(self, cell_hash: str, graph_json: str, task: str, settings: list[HParams], step: int,
             bar: float = 0.0) -> dict:
        train = replace(self.cfg.train_config(task), bar=bar)  # without a bar (0) the rungs stop nothing
        return make_job(self.cfg, cell_hash, graph_json, task, settings, train, step)

    def _evaluate(self, cell_hash, graph_json, task, settings, step, bar: float = 0.0
                  ) -> Generator[dict, list[dict], tuple]:
        """Yields the job for the settings not in the store; returns (best, error message or
        ``None``): an error when no setting of the cell on this task finished. With a ``bar``
        (the stage's), the task's rungs stop settings that cannot reach it."""
        done = self.store.done_keys(cell_hash, task)
        todo = [h for h in settings if h.key() not in done]
        if todo:
            yield self._job(cell_hash, graph_json, task, todo, step, bar)
        best = self.store.best(cell_hash, task)
        if best is None:
            return None, self.store.first_error(cell_hash, task) or "no setting was evaluated"
        return best, None

    def _rung(self, cell_hash: str, task: str) -> dict:
        """Where a stopped child stopped: ``{"stopped_at": step, "stopped_task": task}`` when
        every one of its settings on ``task`` was stopped at a rung (the latest such rung), else
        ``{}``."""
        ev = self.store.evaluations(cell_hash, task)
        at = [e["metrics"].get("stopped_at") for e in ev if e["status"] == "ok"]
        return {"stopped_at": max(at), "stopped_task": task} if at and all(at) else {}

    def _best_settings(self, cell_hash: str, task: str, k: int) -> list[HParams]:
        return best_settings(self.store, cell_hash, task, k)

    # -- steps -----------------------------------------------------------------------------------

    def step(self, k: int) -> Generator[dict, list[dict], Outcome]:
        """Step ``k``: its jobs, then its :class:`Outcome`; a step whose cell had fewer new
        settings left on a task than it asked for says so in its detail (``grid_used_up``)."""
        rng = np.random.default_rng([self.cfg.seed, k])
        if k < self.n_init:
            o = yield from self._seed_step(k, rng)
        else:
            proposal = self.strategy.propose(self.view, rng)
            if proposal[0] == "reeval":
                o = yield from self._reeval_step(k, proposal[1], rng)
            else:
                o = yield from self._child_step(k, proposal[1], proposal[2], rng)
        used = sorted(self.used_up.pop(k, ()))
        if used:
            o.detail["grid_used_up"] = used
        return o

    def _seed_step(self, k, rng):
        from cellsearch.nn.dedup import functional_hash

        name = list(self.seed_graphs)[k]
        g = self.seed_graphs[name]
        h, js = structural_hash(g), to_json(g, None)
        self.store.add_cell(h, js, functional_hash=functional_hash(g), parent=None, edits=[], origin=f"seed:{name}",
                            status="seed", step=k)
        for t in self.cfg.tasks:
            yield from self._evaluate(h, js, t, self._settings(h, t, self.cfg.init_settings, rng, k), k)
        add = [h] if h in self.seed_hashes else []
        return Outcome("seed", h, "seeded", {"name": name}, ("seed", None), pool_add=add)

    def _reeval_step(self, k, h, rng):
        row = self.store.cell(h)
        for t in self.cfg.tasks:
            yield from self._evaluate(h, row["graph"], t, self._settings(h, t, self.cfg.settings_per_task, rng, k,
                                                                         replicates=True), k)
        score = self.score(h)
        return Outcome("reeval", h, "reevaluated", {"score": score}, (row["status"], score))

    def _child_step(self, k, parent_hash, n_mut, rng):
        from cellsearch.nn.dedup import functional_hash

        parent = from_json(self.store.cell(parent_hash)["graph"])
        try:
            child, applied, dead = mutate_live(parent, rng=rng, space=self.space, accept=self.probe, walk=n_mut,
                                               max_rate=self.cfg.mutation_rate, edits=self.cfg.edits)
        except MutationFailed as e:
            return Outcome("child", None, "mutation_failed", {"parent": parent_hash, "error": str(e)})
        edits = [x.to_dict() for x in applied]
        h, js = structural_hash(child), to_json(child, None)
        dead_kinds = dict(Counter(why.split(":")[0] for why in dead))
        me = {"parent": parent_hash, **({"probe_rejected": dead_kinds} if dead_kinds else {})}
        mine = self.store.cells("hash=? AND step=?", (h, k))  # our own row from before a crash
        if self.store.has_structure(h) and not mine:
            return Outcome("child", h, "duplicate", {**me, "layer": "structural"})
        fh = functional_hash(child)
        twin = self.store.functional_twin(fh)
        if twin is not None and twin != h:
            self.store.add_cell(h, js, functional_hash=fh, parent=parent_hash, edits=edits, origin="mutation",
                                status="duplicate", step=k)
            return Outcome("child", h, "duplicate", {**me, "layer": "functional", "twin": twin})
        self.store.add_cell(h, js, functional_hash=fh, parent=parent_hash, edits=edits, origin="mutation",
                            status="candidate", step=k)

        def failed(stage: str, msg: str) -> Outcome:
            return Outcome("child", h, "error", {**me, "stage": stage, "error": msg}, ("error", None))

        # stage 1: memorisation filter (§3.3)
        ft = self.cfg.filter_task
        best, err = yield from self._evaluate(h, js, ft, filter_settings(self.cfg, rng), k, self.cfg.filter_threshold)
        if err:
            return failed(ft, err)
        if best < self.cfg.filter_threshold:
            return Outcome("child", h, "filtered", {**me, "filter": best, **self._rung(h, ft)}, ("filtered", None))
        # stage 2: the first task must reach hurdle x the baseline's best (§3.2)
        first, rest = self.cfg.tasks[0], self.cfg.tasks[1:]
        carry = self._best_settings(parent_hash, first, self.cfg.carry_over)
        base = self.baseline_bar(first, self.cfg.settings_per_task)
        best, err = yield from self._evaluate(h, js, first, self._settings(h, first, self.cfg.settings_per_task, rng,
                                                                          k, carry), k, self.cfg.hurdle * base)
        if err:
            return failed(first, err)
        if best < self.cfg.hurdle * base:
            return Outcome("child", h, "hurdle", {**me, "first": best, "baseline": base, **self._rung(h, first)},
                           ("hurdle", None))
        # stage 3: every other task, then the score. A task's bar is the pool's floor (the hurdle
        # times the baseline's best over as many settings): below it on any task, the child's
        # score is below the floor, so its rungs may stop settings that cannot reach it.
        stopped = {}
        for t in rest:
            carry = self._best_settings(parent_hash, t, self.cfg.carry_over)
            bar = self.cfg.hurdle * self.baseline_bar(t, self.cfg.settings_per_task)
            _, err = yield from self._evaluate(h, js, t, self._settings(h, t, self.cfg.settings_per_task, rng, k,
                                                                         carry), k, bar)
            if err:
                return failed(t, err)
            stopped = stopped or self._rung(h, t)
        score = self.score(h)
        if score is None:  # cannot happen once the baseline is checked; never store a made-up score
            return failed("score", "no score relative to the baseline")
        me = {**me, **stopped}
        if self.defer_admit:
            return Outcome("child", h, "scored", {**me, "score": score}, ("scored", score))
        add, remove = self.admit(h, score)
        return Outcome("child", h, "scored", {**me, "score": score, "pooled": bool(add)},
                       ("scored", score), add, remove)
