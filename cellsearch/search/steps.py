"""One step of the search, as a sequence of stages (Jozefowicz et al. §3.1-3.2).

A step either evaluates a seed (the first steps: the pool seeds and the baseline on every
task with ``init_settings`` settings), re-evaluates a pool member on new settings, promotes a
screened child (:mod:`cellsearch.search.ladder`), or proposes a child (strategy in
:mod:`cellsearch.evolve.strategies`) and evaluates it in stages:

0. **proposal**: ``edits`` edits on a pool member (:mod:`cellsearch.evolve.mutate`); a child that
   fails the liveness probe (:mod:`cellsearch.cell.probe`) is resampled before any training,
   and the step records how many were (``probe_rejected``, by reason);
1. **dedup**: a child whose structural or functional hash is already in the store is
   recorded as a ``duplicate`` and not trained;
2. **filter**: memorisation (§3.3) with ``filter_settings`` settings of the filter grid, the
   parent's best filter setting first (the lineage's learning rate: the pool seeds train the
   whole filter grid in their seed step); below ``filter_threshold`` (95 %) the child is
   ``filtered``; its job stops once one setting passes (``filter_train.stop_on_pass``);
3. **screen** (with a ladder, ``SearchConfig.screen``): the child trains its rung 0 and stops,
   ``screened``, with its rung score and rank; a later step promotes it when it ranks among the
   best of the children at its rung (:mod:`cellsearch.search.ladder`), up the rungs to (each
   stage of a promoted child continues the rung's settings from their kept training states,
   ``continue_rungs``: :meth:`Search._carry`)
4. **the hurdle**: the first task with ``settings_per_task`` settings (the parent's best
   ``carry_over`` settings among them, §3.2 [S1]); below ``hurdle`` (90 %) of its bar the child
   stops (``hurdle``). The bar is the baseline's best over as many settings
   (:meth:`Search.baseline_bar`) under the paper's bars (``bars="baseline"``), and the lower of
   that and its parent's (:meth:`Search.first_best`) under ``bars="lineage"``, so a lineage below
   the GRU can climb;
5. **all tasks**: the rest, then ``score = min over tasks of best(cell) / best(GRU)``
   (:mod:`cellsearch.search.results`), and :meth:`Search.admit` decides whether it enters the pool.

Each stage trains in rungs (successive halving within a setting,
:attr:`cellsearch.config.TrainConfig.rungs`) against its bar: the filter's threshold, the
hurdle's bar on the first task, the pool's floor on the others. A child whose every setting on a
stage stopped at a rung records ``stopped_at`` and ``stopped_task``.

A stage whose every setting crashed makes the child ``error`` (with the message), one whose every
setting diverged makes it ``diverged`` (naming the stage): never a score. Steps are generators that
yield evaluation jobs (:mod:`cellsearch.search.driver` drives them), so the store is written by the
driver alone. Each step draws every random number from ``numpy.random.default_rng([seed, step])``
and reads only what finished before it, so a resumed step does what it did.
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
from cellsearch.config import TrainConfig
from cellsearch.errors import MutationFailed, SearchStopped
from cellsearch.evolve.mutate import mutate_live
from cellsearch.evolve.spaces import load_space
from cellsearch.evolve.strategies import PoolView, make_strategy
from cellsearch.hparams import HParams, seeded
from cellsearch.search.config import SearchConfig
from cellsearch.search.ladder import Ladder
from cellsearch.search.results import MIN_BASELINE, Scores, first_best
from cellsearch.search.schedules import round_start
from cellsearch.store.sqlite import Store
from cellsearch.tasks import get_task, task_options


def filter_settings(cfg: SearchConfig, rng: np.random.Generator, carry: list[HParams] = ()) -> list[HParams]:
    """The memorisation filter's settings, ``filter_settings`` different points of the filter grid
    with their initialisation seeds derived from the search seed: ``carry`` first (the parent's
    best, with ``filter_carry``), then points drawn at random."""
    if not carry:
        return [seeded(h, cfg.seed) for h in cfg.filter_hparams.sample_distinct(rng, cfg.filter_settings)]
    out = [seeded(h, cfg.seed) for h in carry][: cfg.filter_settings]
    points = cfg.filter_hparams.points()
    drawn = [seeded(points[i], cfg.seed) for i in rng.permutation(len(points))]
    return out + [h for h in drawn if h not in out][: cfg.filter_settings - len(out)]


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
             train, step: int, store_as: str | None = None) -> dict:
    """The job (:mod:`cellsearch.search.executors`) that trains a cell on ``task`` under ``settings``
    and the schedule ``train`` (a :class:`~cellsearch.config.TrainConfig`); its results are stored
    under ``store_as`` (a screen rung's task name) or ``task``."""
    return {"graph": graph_json, "task": task,
            "task_options": task_options(task, cfg.task_options.get(task), cfg.data_dir),
            "settings": [asdict(h) for h in settings], "train": asdict(train), "cell": cell_hash, "step": step,
            **({"store_as": store_as} if store_as else {})}


def stage_train(cfg: SearchConfig, task: str, bar: float = 0.0, *, steps: int | None = None, settings: int = 0,
                continued: int = 0) -> TrainConfig:
    """The schedule a stage trains ``task`` under: the task's, with the stage's ``bar`` (without
    one, 0, the task's rungs stop nothing); a screen rung (``steps``) trains its ``settings`` in
    one program for its steps, without rungs or bar; a stage that continues ``continued`` kept
    states runs programs of that many members (the rung's, not compiled again)."""
    train = replace(cfg.train_config(task), bar=bar)
    if steps is not None:
        train = replace(train, steps=steps, members=settings, rungs=(), bar=0.0)
    return replace(train, members=continued) if continued else train


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
        self.ladder = Ladder(config, store, self.baseline) if config.screen else None
        self.used_up: dict[int, set[str]] = {}  # step -> tasks whose grid ran out of new settings

    # -- scores and bars -------------------------------------------------------------------------

    def score(self, cell_hash: str) -> float | None:
        """The cell's score (:class:`cellsearch.search.results.Scores`); ``None`` if a task has no result."""
        return Scores(self.store, self.cfg).score(cell_hash)

    def first_best(self, cell_hash: str, task: str, n: int) -> float:
        """A cell's best over its **first** ``n`` settings on ``task`` (those of the step that
        evaluated it: :func:`cellsearch.search.results.first_best`), from its own results alone."""
        return first_best(self.store.results_table(cell_hash, task).get((cell_hash, task), []), n)

    def baseline_bar(self, task: str, n: int) -> float:
        """What the hurdle compares a child with: the baseline's best over its first ``n`` settings
        on ``task`` (:meth:`first_best`). The baseline's overall best is not used: it is a best over
        more settings, and it rises each time the baseline is re-evaluated as a pool member, so a
        child's fate would depend on when it was proposed."""
        return self.first_best(self.baseline, task, n)

    def bar(self, task: str, parent: str | None) -> float:
        """The hurdle's bar on ``task``: the hurdle times the baseline's bar, or (``bars="lineage"``)
        times the lower of the baseline's and the parent's, over ``settings_per_task`` settings."""
        n = self.cfg.settings_per_task
        base = self.baseline_bar(task, n)
        if self.cfg.bars == "lineage" and parent is not None:
            base = min(base, self.first_best(parent, task, n))
        return self.cfg.hurdle * base

    def first_score(self, cell_hash: str) -> float:
        """The cell's score over its first ``settings_per_task`` settings per task, against the
        baseline's over as many (:meth:`first_best`): a child and its parent compared at equal
        settings."""
        n = self.cfg.settings_per_task
        ratios = [self.first_best(cell_hash, t, n) / max(self.baseline_bar(t, n), MIN_BASELINE) for t in self.cfg.tasks]
        return min(ratios)

    def admit(self, cell_hash: str, score: float, parent: str | None = None) -> tuple[list[str], list[str]]:
        """The strategy's pool change for a scored child. Under the paper's bars a child below the
        pool's floor (the hurdle, as a ratio to the baseline) never enters, even while the pool is
        not full; under ``bars="lineage"`` a child also enters when it beats its parent, at equal
        settings (:meth:`first_score`), by more than ``admit_margin`` (the seed noise)."""
        enter = score >= self.cfg.hurdle
        if not enter and self.cfg.bars == "lineage" and parent is not None:
            enter = self.first_score(cell_hash) > self.first_score(parent) * (1 + self.cfg.admit_margin)
        if not enter:
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
                  replicates: bool = False, stored: str | None = None) -> list[HParams]:
        """``n`` settings not evaluated for this cell and task (stored as ``stored``, a screen rung's
        name, if given) by an earlier step: ``carry`` first, then random grid points (with
        ``spread_rates``, learning rates the cell has not tried on the task first). A setting's
        seed is derived from its grid point, so it is stable; a resumed step chooses exactly the
        settings it chose before. With ``replicates`` (re-evaluations) a point drawn again is
        trained with a new seed (:func:`~cellsearch.hparams.seeded`'s replicate 1, 2, ...), so
        re-evaluating samples seed noise and never runs out of settings; without, a grid that is
        used up gives fewer settings, and the step's detail says so (``grid_used_up``)."""
        space = self.cfg.hparam_space(task)
        done = self.store.done_keys(cell_hash, stored or task, before_step=step)
        out: list[HParams] = []
        for h in carry:
            if h.key() not in done and h not in out and len(out) < n:
                out.append(h)

        def admit(h: HParams, got: list[HParams]) -> HParams | None:
            r, s = 0, seeded(h, self.cfg.seed)
            while replicates and (s.key() in done or s in got):
                r += 1
                s = seeded(h, self.cfg.seed, r)
            return None if s.key() in done or s in got else s

        out = space.draw(rng, n, spread_rates=self.cfg.spread_rates, have=out, admit=admit,
                         tried_rates=tuple({json.loads(k)["learning_rate"] for k in done}))
        if len(out) < n:
            self.used_up.setdefault(step, set()).add(task)
        return out

    def _evaluate(self, cell_hash, graph_json, task, settings, step, bar: float = 0.0, *, steps: int | None = None,
                  stored: str | None = None, keep_state: bool = False,
                  resume_from: str | None = None) -> Generator[dict, list[dict], tuple]:
        """Yields the job for the settings not in the store; returns ``(best, failure)``: the
        failure is ``None``, ``("error", message)`` when no setting of the cell on this task
        finished, or ``("diverged", message)`` when every one diverged. With a ``bar`` (the
        stage's), the task's rungs stop settings that cannot reach it; ``steps`` and ``stored``
        train a screen rung (its steps, one program of its settings) stored under its name, and
        ``keep_state`` keeps its settings' training states. With ``resume_from`` (the rung below's
        name) the settings with a kept state there continue it, and every setting trains in
        programs of as many members as they are (the rung's program, not compiled again)."""
        name = stored or task
        done = self.store.done_keys(cell_hash, name)
        todo = [h for h in settings if h.key() not in done]
        if todo:
            kept = self.store.states(cell_hash, resume_from) if resume_from else {}
            kept = {h.key(): kept[h.key()] for h in todo if h.key() in kept}
            train = stage_train(self.cfg, task, bar, steps=steps, settings=len(settings), continued=len(kept))
            job = make_job(self.cfg, cell_hash, graph_json, task, todo, train, step, stored)
            if kept:
                job = {**job, "resume": kept, "resume_from": resume_from}
            yield {**job, "keep_state": True} if keep_state else job
        best = self.store.best(cell_hash, name)
        if best is None:
            return None, ("error", self.store.first_error(cell_hash, name) or "no setting was evaluated")
        st = self.store.statuses(cell_hash, name)
        if not st.get("ok"):
            return best, ("diverged", f"all {sum(st.values())} of its settings diverged on {name}")
        return best, None

    def _rung(self, cell_hash: str, task: str) -> dict:
        """Where a stopped child stopped: ``{"stopped_at": step, "stopped_task": task}`` when
        every one of its settings on ``task`` was stopped at a rung (the latest such rung), else
        ``{}``."""
        ev = self.store.evaluations(cell_hash, task)
        at = [e["metrics"].get("stopped_at") for e in ev if e["status"] == "ok"]
        return {"stopped_at": max(at), "stopped_task": task} if at and all(at) else {}

    # -- steps -----------------------------------------------------------------------------------

    def step(self, k: int) -> Generator[dict, list[dict], Outcome]:
        """Step ``k``: its jobs, then its :class:`Outcome`; a step whose cell had fewer new
        settings left on a task than it asked for says so in its detail (``grid_used_up``)."""
        rng = np.random.default_rng([self.cfg.seed, k])
        promotion = self._promotion(k)
        if k < self.n_init:
            o = yield from self._seed_step(k, rng)
        elif promotion is not None:
            self.ladder.busy.add(promotion)
            try:
                o = yield from self._promote_step(k, *promotion, rng)
            finally:
                self.ladder.busy.discard(promotion)
        else:
            proposal = self.strategy.propose(self.view, rng)
            if proposal[0] == "reeval" and self.cfg.reeval_max and \
                    self.store.reevaluations(proposal[1], before=k) >= self.cfg.reeval_max:
                proposal = ("child", proposal[1], 1)  # re-evaluated enough: a child of it instead
            if proposal[0] == "reeval":
                o = yield from self._reeval_step(k, proposal[1], rng)
            else:
                o = yield from self._child_step(k, proposal[1], proposal[2], rng)
        used = sorted(self.used_up.pop(k, ()))
        if used:
            o.detail["grid_used_up"] = used
        return o

    def decided_from(self, k: int) -> int:
        """The ladder's decisions at step ``k`` read the steps before this one: ``k`` itself, or
        under ``population > 1`` the first step of ``k``'s round (:mod:`cellsearch.search.ladder`)."""
        return k if self.cfg.population == 1 else round_start(self.n_init, self.cfg.population, k)

    def _promotion(self, k: int) -> tuple[str, int] | None:
        """The screened child step ``k`` promotes and the rung it earns, or ``None`` (it proposes):
        one at a time the best due that no live step is promoting; in a population round, the
        round's ``i``-th step makes the ``i``-th promotion due before the round."""
        if self.ladder is None or k < self.n_init:
            return None
        if self.cfg.population == 1:
            return self.ladder.promotion(k)
        k0 = self.decided_from(k)
        due = self.ladder.due(k0)
        return due[k - k0] if k - k0 < len(due) else None

    def promotion_pending(self, k: int) -> bool:
        """Whether step ``k`` would promote a screened child (a search whose children are all
        proposed still runs these steps, so its best children get their full evaluation)."""
        return self._promotion(k) is not None

    def promotions_due(self, k0: int) -> int:
        """How many promotions are due by the steps before ``k0`` (a population round's first)."""
        return len(self.ladder.due(k0)) if self.ladder else 0

    def _seed_step(self, k, rng):
        from cellsearch.nn.dedup import functional_hash  # JAX: the seed and child steps hash by function

        name = list(self.seed_graphs)[k]
        g = self.seed_graphs[name]
        h, js = structural_hash(g), to_json(g, None)
        self.store.add_cell(h, js, functional_hash=functional_hash(g), parent=None, edits=[], origin=f"seed:{name}",
                            status="seed", step=k)
        for t in self.cfg.tasks:
            yield from self._evaluate(h, js, t, self._settings(h, t, self.cfg.init_settings, rng, k), k)
        if h in self.seed_hashes and self.cfg.filter_carry:  # a parent: its best filter setting is its lineage's
            grid = [seeded(p, self.cfg.seed) for p in self.cfg.filter_hparams.points()]
            yield from self._evaluate(h, js, self.cfg.filter_task, grid, k)
        if self.ladder and h == self.baseline:  # the scale of every rung score
            for rung in self.ladder.rungs:
                for t in self.ladder.tasks:
                    own = best_settings(self.store, h, t, rung.settings)
                    yield from self._evaluate(h, js, t, own, k, steps=rung.steps[t], stored=rung.task(t))
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
        from cellsearch.nn.dedup import functional_hash  # JAX: the seed and child steps hash by function

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
        # stage 2: memorisation filter (§3.3), the lineage's best filter setting first
        ft = self.cfg.filter_task
        carry = best_settings(self.store, parent_hash, ft, 1) if self.cfg.filter_carry else []
        best, failure = yield from self._evaluate(h, js, ft, filter_settings(self.cfg, rng, carry), k,
                                                  self.cfg.filter_threshold)
        if failure:
            return self._failed("child", h, me, ft, failure)
        if best < self.cfg.filter_threshold:
            return Outcome("child", h, "filtered", {**me, "filter": best, **self._rung(h, ft)}, ("filtered", None))
        if self.ladder:
            return (yield from self._screen("child", k, h, js, parent_hash, 0, me, rng))
        return (yield from self._full("child", k, h, js, parent_hash, me, rng))

    def _promote_step(self, k, h, rung, rng):
        row = self.store.cell(h)
        me = {"parent": row["parent"], "promoted_from": rung - 1}
        if rung < self.ladder.top:
            return (yield from self._screen("promote", k, h, row["graph"], row["parent"], rung, me, rng))
        return (yield from self._full("promote", k, h, row["graph"], row["parent"], me, rng, from_rung=rung - 1))

    def _carry(self, h: str, parent: str, task: str, from_rung: int | None) -> tuple[list[HParams], str | None]:
        """A stage's first settings on ``task`` and where they continue from: the parent's best
        ``carry_over``; for a promoted child (``from_rung``) with ``continue_rungs``, the settings
        of the rung below first (they continue its kept states) and that rung's name."""
        carry = best_settings(self.store, parent, task, self.cfg.carry_over)
        if from_rung is None or not self.cfg.continues or task not in self.ladder.tasks:
            return carry, None
        below = self.ladder.rungs[from_rung].task(task)
        return [HParams(**e["hparams"]) for e in self.store.evaluations(h, below)] + carry, below

    def _failed(self, kind: str, h: str, me: dict, stage: str, failure: tuple[str, str]) -> Outcome:
        """A child that failed on a stage: ``error`` (every setting crashed) or ``diverged``."""
        what, msg = failure
        return Outcome(kind, h, what, {**me, "stage": stage, "error": msg}, (what, None))

    def _screen(self, kind, k, h, js, parent, r, me, rng):
        """Rung ``r`` of the ladder: the parent's best settings first (above rung 0, the rung
        below's, continued: :meth:`_carry`), at the rung's steps; the child stops ``screened`` with
        its rung score and its rank among the children there."""
        rung = self.ladder.rungs[r]
        for t in self.ladder.tasks:
            carry, below = self._carry(h, parent, t, r - 1 if r else None)
            settings = self._settings(h, t, rung.settings, rng, k, carry, stored=rung.task(t))
            _, failure = yield from self._evaluate(h, js, t, settings, k, steps=rung.steps[t], stored=rung.task(t),
                                                   keep_state=self.cfg.continues, resume_from=below)
            if failure:
                return self._failed(kind, h, me, rung.task(t), failure)
        score = self.ladder.score(h, r)
        rank, n = self.ladder.rank(score, r, self.decided_from(k))
        return Outcome(kind, h, "screened", {**me, "rung": r, "rung_score": score, "rank": rank, "of": n},
                       ("screened", None))

    def _full(self, kind, k, h, js, parent, me, rng, from_rung: int | None = None):
        """The full evaluation: the hurdle on the first task, then every other task, the score and
        the pool (stages 4 and 5 of the module docstring); a child promoted from rung
        ``from_rung`` continues that rung's settings (:meth:`_carry`)."""
        first, rest = self.cfg.tasks[0], self.cfg.tasks[1:]
        n = self.cfg.settings_per_task
        bar = self.bar(first, parent)
        carry, below = self._carry(h, parent, first, from_rung)
        best, failure = yield from self._evaluate(h, js, first, self._settings(h, first, n, rng, k, carry), k, bar,
                                                  resume_from=below)
        if failure:
            return self._failed(kind, h, me, first, failure)
        if best < bar:
            return Outcome(kind, h, "hurdle", {**me, "first": best, "bar": bar, **self._rung(h, first)},
                           ("hurdle", None))
        # every other task, then the score. A task's bar is the pool's floor: below it on any task,
        # the child's score is below the floor, so its rungs may stop settings that cannot reach it.
        stopped = {}
        for t in rest:
            carry, below = self._carry(h, parent, t, from_rung)
            _, failure = yield from self._evaluate(h, js, t, self._settings(h, t, n, rng, k, carry), k,
                                                   self.bar(t, parent), resume_from=below)
            if failure:
                return self._failed(kind, h, me, t, failure)
            stopped = stopped or self._rung(h, t)
        score = self.score(h)
        if score is None:  # cannot happen once the baseline is checked; never store a made-up score
            return self._failed(kind, h, me, "score", ("error", "no score relative to the baseline"))
        me = {**me, **stopped}
        if self.defer_admit:
            return Outcome(kind, h, "scored", {**me, "score": score}, ("scored", score))
        add, remove = self.admit(h, score, parent)
        return Outcome(kind, h, "scored", {**me, "score": score, "pooled": bool(add)}, ("scored", score), add, remove)
