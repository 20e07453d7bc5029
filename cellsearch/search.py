"""The search (Jozefowicz et al. §3.1-3.2): pool, staged evaluation, scoring, resume.

One step of the search either re-evaluates a pool member on new settings, or proposes a
child (strategy in :mod:`cellsearch.strategies`) and evaluates it in stages:

1. **dedup**: a child whose structural or functional hash is already in the store is
   recorded as a ``duplicate`` and not trained;
2. **filter**: memorisation (§3.3) with ``filter_settings`` setting(s); below
   ``filter_threshold`` (95 %) the child is ``filtered``;
3. **hurdle**: the first task with ``settings_per_task`` settings (the parent's best
   ``carry_over`` settings among them, §3.2 [S1]); below ``hurdle`` (90 %) of the baseline's
   best the child stops (``hurdle``);
4. **all tasks**: the rest, then ``score = min over tasks of best(cell) / best(GRU)`` and the
   strategy decides whether it enters the pool.

The first steps evaluate the pool seeds (LSTM, GRU) and the baseline on every task with
``init_settings`` settings. Each step draws every random number from
``numpy.random.default_rng([seed, step])``, so a search is reproducible with one worker and
a resumed step proposes the same child; evaluations already in the store are read back,
never repeated. Steps are generators that yield evaluation jobs, so ``workers`` steps can be
in flight at once while the driver alone writes the store.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from cellsearch.canon import structural_hash
from cellsearch.errors import ConfigError, MutationFailed, StorageError
from cellsearch.graph import from_json, to_json
from cellsearch.hparams import HParams, HParamSpace
from cellsearch.mutate import mutate
from cellsearch.spaces import load_space
from cellsearch.storage import Store
from cellsearch.strategies import STRATEGIES, make_strategy
from cellsearch.train import TrainConfig

PAPER_TASKS = ("arithmetic", "xml", "ptb")  # §3.2 [I]: the paper's order; the first is the hurdle


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (the store refuses to resume under other settings,
    except the budget fields ``candidates`` and ``hours``).

    Unverified details of the paper are marked [I] and are settings here.
    """

    space: str = "jozefowicz2015"
    tasks: tuple[str, ...] = PAPER_TASKS
    strategy: str = "paper"
    seed: int = 0
    candidates: int | None = 100  # children to evaluate (duplicates not counted)
    hours: float | None = None  # wall-clock budget; whichever of the two ends first
    pool_size: int = 100  # §3.1 top-100 list
    settings_per_task: int = 20  # §3.2: 20 random settings per task
    init_settings: int = 20  # settings for the pool seeds and the baseline at the start
    reeval_prob: float = 0.5  # [I] re-evaluate vs mutate (the paper's split is unknown)
    carry_over: int = 2  # §3.2 [S1]: the parent's best settings tried on the child
    mutation_rate: float = 1.0  # §3.5: per-node edit probability p ~ U[0, mutation_rate]
    filter_task: str = "memorize"
    filter_threshold: float = 0.95  # §3.3
    filter_settings: int = 1  # §3.3 [M]: one setting
    hurdle: float = 0.9  # §3.2: 90 % of the GRU's best on the first task
    aging_population: int = 20
    aging_sample: int = 5
    random_walk: int = 3
    hparams: HParamSpace = HParamSpace()
    filter_hparams: HParamSpace = HParamSpace(learning_rate=(1.0, 2.0, 3.0), init_scale=(1.0,),
                                              max_grad_norm=(5.0,), layers=(1,), param_budget=(20_000,))
    budgets: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "arithmetic": (20_000,), "xml": (20_000,), "ptb": (100_000,), "nottingham": (20_000,), "pianomidi": (20_000,)})
    train: TrainConfig = TrainConfig(steps=1000, batch_size=20)
    filter_train: TrainConfig = TrainConfig(steps=3000, batch_size=32, chunk=100)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: str | None = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        from cellsearch.tasks import TASKS

        if not self.tasks:
            raise ConfigError("a search needs at least one task")
        for t in (*self.tasks, self.filter_task):
            if t not in TASKS:
                raise ConfigError(f"unknown task {t!r}; tasks: {', '.join(TASKS)}")
        if self.candidates is not None and self.candidates < 0:
            raise ConfigError(f"candidates must be >= 0, got {self.candidates}")
        if self.hours is not None and not self.hours > 0:
            raise ConfigError(f"hours must be > 0, got {self.hours}")
        for name in ("pool_size", "settings_per_task", "init_settings", "filter_settings"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    # -- JSON ----------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SearchConfig:
        d = json.loads(text)
        d["tasks"] = tuple(d["tasks"])
        for k in ("hparams", "filter_hparams"):
            d[k] = HParamSpace(**{f: tuple(v) for f, v in d[k].items()})
        for k in ("train", "filter_train"):
            d[k] = TrainConfig(**d[k])
        d["budgets"] = {t: tuple(v) for t, v in d["budgets"].items()}
        return cls(**d)

    def identity(self) -> dict:
        """The fields a resumed search must share with the original."""
        d = json.loads(self.to_json())
        for k in ("candidates", "hours", "data_dir"):
            d.pop(k)
        return d


def quick_config(**overrides) -> SearchConfig:
    """``--quick``: a small, meaningful search on a laptop CPU in about 5 minutes.

    Arithmetic with up to 3 digits and XML with short rows, 10k-parameter cells, 4 settings
    per task (one compiled program each), a 3,000-step memorisation filter and 16 children.
    Two departures from the paper keep it meaningful at this size: children are milder
    (``mutation_rate`` 0.3: about a third as many edits) and the filter passes at 90 %
    (3,000 steps take the LSTM itself only to about 95 %).
    """
    base = dict(
        tasks=("arithmetic", "xml"),
        candidates=16,
        mutation_rate=0.3,
        filter_threshold=0.9,
        pool_size=20,
        settings_per_task=4,
        init_settings=4,
        reeval_prob=0.2,
        hparams=HParamSpace(layers=(1,), learning_rate=(0.5, 1.0, 2.0, 3.0), init_scale=(0.5, 1.0, 2.0),
                            max_grad_norm=(1.0, 5.0, 10.0)),
        filter_hparams=HParamSpace(learning_rate=(2.0,), init_scale=(1.0,), max_grad_norm=(5.0,), layers=(1,),
                                   param_budget=(20_000,)),
        budgets={"arithmetic": (10_000,), "xml": (10_000,), "ptb": (50_000,)},
        train=TrainConfig(steps=600, batch_size=32, chunk=100),
        filter_train=TrainConfig(steps=3000, batch_size=32, chunk=100),
        task_options={"arithmetic": {"max_digits": 3}, "xml": {"seq_len": 32}},
    )
    base.update(overrides)
    return SearchConfig(**base)


# ----------------------------------------------------------------------------- views and steps


class PoolView:
    """Read access to the pool and scores, shared by the strategies and the steps."""

    def __init__(self, search: Search):
        self.s = search

    def pool(self) -> list[str]:
        return self.s.store.pool()

    def seed_hashes(self) -> list[str]:
        return list(self.s.seed_hashes)

    def pool_scores(self) -> dict[str, float]:
        return {h: self.s.score(h) or 0.0 for h in self.pool()}


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
        self.view = PoolView(self)
        names = list(dict.fromkeys([*self.space.pool_seeds, self.space.baseline]))
        self.seed_graphs = {n: self.space.seed(n) for n in names}
        self.seed_hashes = [structural_hash(self.seed_graphs[n]) for n in self.space.pool_seeds]
        self.baseline = structural_hash(self.seed_graphs[self.space.baseline])
        self.n_init = len(names)

    # -- scores ----------------------------------------------------------------------------------

    def score(self, cell_hash: str) -> float | None:
        """``min over tasks of best(cell, task) / best(baseline, task)`` (§3.1); ``None`` if a
        task has no evaluation yet."""
        ratios = []
        for t in self.cfg.tasks:
            mine, base = self.store.best(cell_hash, t), self.store.best(self.baseline, t)
            if mine is None or base is None:
                return None
            ratios.append(mine / max(base, 1e-12))
        return min(ratios)

    # -- jobs ------------------------------------------------------------------------------------

    def _settings(self, cell_hash: str, task: str, n: int, rng, step: int, carry: list[HParams] = ()) -> list[HParams]:
        """``n`` settings not evaluated for this cell and task by an earlier step: ``carry``
        first, then random grid points. A setting's seed is derived from its grid point, so
        it is stable; a resumed step chooses exactly the settings it chose before."""
        space = self.cfg.filter_hparams if task == self.cfg.filter_task else replace(
            self.cfg.hparams, param_budget=self.cfg.budgets.get(task, self.cfg.hparams.param_budget))
        done = self.store.done_keys(cell_hash, task, before_step=step)
        out: list[HParams] = []
        for h in carry:
            if h.key() not in done and h not in out and len(out) < n:
                out.append(h)
        for _ in range(50 * n):
            if len(out) >= n:
                break
            (h,) = space.sample(rng, 1)
            h = self._seeded(h)
            if h.key() not in done and h not in out:
                out.append(h)
        return out

    def _seeded(self, h: HParams) -> HParams:
        point = json.dumps({f.name: getattr(h, f.name) for f in fields(h) if f.name != "seed"}, sort_keys=True)
        digest = hashlib.sha256(f"{self.cfg.seed}:{point}".encode()).digest()
        return replace(h, seed=int.from_bytes(digest[:4], "little") & 0x7FFFFFFF)

    def task_options(self, task: str) -> dict:
        opts = dict(self.cfg.task_options.get(task, {}))
        if task in ("ptb", "nottingham", "pianomidi") and self.cfg.data_dir:
            opts.setdefault("data_dir", self.cfg.data_dir)
        return opts

    def check_tasks(self) -> None:
        """Builds every task once, so a missing data file stops the search before it starts
        (with the message saying where to put it) instead of failing every evaluation."""
        from cellsearch.executors import _task

        for t in (self.cfg.filter_task, *self.cfg.tasks):
            _task(t, self.task_options(t))

    def _job(self, cell_hash: str, graph_json: str, task: str, settings: list[HParams], step: int) -> dict:
        opts = self.task_options(task)
        cfg = self.cfg.filter_train if task == self.cfg.filter_task else self.cfg.train
        return {"graph": graph_json, "task": task, "task_options": opts, "settings": [asdict(h) for h in settings],
                "train": asdict(replace(cfg, data_seed=self.cfg.seed)), "cell": cell_hash, "step": step}

    def _evaluate(self, cell_hash, graph_json, task, settings, step) -> Generator[dict, list[dict], tuple]:
        """Yields the job for the settings not in the store; returns (best, all errored)."""
        done = self.store.done_keys(cell_hash, task)
        todo = [h for h in settings if h.key() not in done]
        if todo:
            yield self._job(cell_hash, graph_json, task, todo, step)
        return self.store.best(cell_hash, task), self.store.all_errors(cell_hash, task)

    def _best_settings(self, cell_hash: str, task: str, k: int) -> list[HParams]:
        ev = [e for e in self.store.evaluations(cell_hash, task) if e["status"] == "ok"]
        ev.sort(key=lambda e: -e["score"])
        return [HParams(**e["hparams"]) for e in ev[:k]]

    # -- steps -----------------------------------------------------------------------------------

    def step(self, k: int) -> Generator[dict, list[dict], Outcome]:
        rng = np.random.default_rng([self.cfg.seed, k])
        if k < self.n_init:
            return (yield from self._seed_step(k, rng))
        proposal = self.strategy.propose(self.view, rng)
        if proposal[0] == "reeval":
            return (yield from self._reeval_step(k, proposal[1], rng))
        return (yield from self._child_step(k, proposal[1], proposal[2], rng))

    def _seed_step(self, k, rng):
        name = list(self.seed_graphs)[k]
        g = self.seed_graphs[name]
        h, js = structural_hash(g), to_json(g, None)
        from cellsearch.dedup import functional_hash

        self.store.add_cell(h, js, functional_hash=functional_hash(g), parent=None, edits=[], origin=f"seed:{name}",
                            status="seed", step=k)
        for t in self.cfg.tasks:
            yield from self._evaluate(h, js, t, self._settings(h, t, self.cfg.init_settings, rng, k), k)
        add = [h] if h in self.seed_hashes else []
        return Outcome("seed", h, "seeded", {"name": name}, ("seed", None), pool_add=add)

    def _reeval_step(self, k, h, rng):
        row = self.store.cell(h)
        for t in self.cfg.tasks:
            yield from self._evaluate(h, row["graph"], t, self._settings(h, t, self.cfg.settings_per_task, rng, k), k)
        score = self.score(h)
        return Outcome("reeval", h, "reevaluated", {"score": score}, (row["status"], score))

    def _child_step(self, k, parent_hash, n_mut, rng):
        from cellsearch.dedup import functional_hash

        parent = from_json(self.store.cell(parent_hash)["graph"])
        edits = []
        try:
            child = parent
            for _ in range(n_mut):
                child, e = mutate(child, rng=rng, space=self.space, max_rate=self.cfg.mutation_rate)
                edits += [x.to_dict() for x in e]
        except MutationFailed as e:
            return Outcome("child", None, "mutation_failed", {"parent": parent_hash, "error": str(e)})
        h, js = structural_hash(child), to_json(child, None)
        mine = self.store.cells("hash=? AND step=?", (h, k))  # our own row from before a crash
        if self.store.has_structure(h) and not mine:
            return Outcome("child", h, "duplicate", {"parent": parent_hash, "layer": "structural"})
        fh = functional_hash(child)
        twin = self.store.functional_twin(fh)
        if twin is not None and twin != h:
            self.store.add_cell(h, js, functional_hash=fh, parent=parent_hash, edits=edits, origin="mutation",
                                status="duplicate", step=k)
            return Outcome("child", h, "duplicate", {"parent": parent_hash, "layer": "functional", "twin": twin})
        self.store.add_cell(h, js, functional_hash=fh, parent=parent_hash, edits=edits, origin="mutation",
                            status="candidate", step=k)
        # stage 1: memorisation filter (§3.3)
        ft = self.cfg.filter_task
        best, err = yield from self._evaluate(h, js, ft, self._settings(h, ft, self.cfg.filter_settings, rng, k), k)
        if err:
            return Outcome("child", h, "error", {"stage": ft}, ("error", None))
        if best < self.cfg.filter_threshold:
            return Outcome("child", h, "filtered", {"filter": best}, ("filtered", None))
        # stage 2: the first task must reach hurdle x the baseline's best (§3.2)
        first, rest = self.cfg.tasks[0], self.cfg.tasks[1:]
        carry = self._best_settings(parent_hash, first, self.cfg.carry_over)
        best, err = yield from self._evaluate(h, js, first, self._settings(h, first, self.cfg.settings_per_task, rng,
                                                                          k, carry), k)
        if err:
            return Outcome("child", h, "error", {"stage": first}, ("error", None))
        base = self.store.best(self.baseline, first) or 0.0
        if best < self.cfg.hurdle * base:
            return Outcome("child", h, "hurdle", {"first": best, "baseline": base}, ("hurdle", None))
        # stage 3: every other task, then the score
        for t in rest:
            carry = self._best_settings(parent_hash, t, self.cfg.carry_over)
            yield from self._evaluate(h, js, t, self._settings(h, t, self.cfg.settings_per_task, rng, k, carry), k)
        score = self.score(h) or 0.0
        add, remove = self.strategy.admit(self.view, h, score)
        return Outcome("child", h, "scored", {"score": score, "pooled": bool(add)}, ("scored", score), add, remove)


# ----------------------------------------------------------------------------- driver


@dataclass
class SearchSummary:
    steps: int
    children: int
    scored: int
    duplicates: int
    filtered: int
    evaluations: int
    new_evaluations: int  # results trained in this run (a resumed run repeats none)
    wall_s: float
    best: list[tuple[str, float]]
    stopped: str


def _children_done(store: Store) -> int:
    row = store.conn.execute("SELECT COUNT(*) FROM steps WHERE kind='child' AND outcome NOT IN "
                             "('duplicate', 'mutation_failed')").fetchone()
    return int(row[0])


def open_store(path: str, config: SearchConfig) -> Store:
    """Opens (or creates) the store for ``config``; refuses a store made by other settings."""
    store = Store(path)
    saved = store.meta("config")
    if saved is None:
        store.set_meta("config", config.to_json())
        return store
    old = SearchConfig.from_json(saved).identity()
    new = config.identity()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        store.close()
        raise StorageError(f"the store {path!r} holds a search with other settings ({', '.join(diff)} differ); "
                           "resume it with the same settings or pass another --db")
    return store


def run_search(
    config: SearchConfig,
    db: str = "cellsearch.db",
    *,
    workers: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
    compile_cache: str | None = None,
    on_event: Callable[[str, dict], None] | None = None,
) -> SearchSummary:
    """Runs (or resumes) a search until ``config.candidates`` children are evaluated or
    ``config.hours`` pass. Every result is in the store ``db`` as soon as it exists.

    ``on_event(kind, info)`` is called with ``"step"`` after each finished step (for progress
    displays) and ``"start"`` once.
    """
    from cellsearch.executors import make_executor

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    store = open_store(db, config)
    t0 = time.perf_counter()
    executor = None
    try:
        search = Search(config, store)
        search.check_tasks()
        executor = make_executor(backend, workers, address=ray_address, cache_dir=compile_cache)
        finished = store.finished_steps()
        target = config.candidates
        max_steps = search.n_init + (20 * target + 20 if target is not None else 10**9)
        deadline = t0 + config.hours * 3600 if config.hours else math.inf
        next_k = 0
        running: dict[Any, tuple[int, Generator, dict]] = {}  # handle -> (step, generator, job)
        in_flight: set[int] = set()
        if on_event:
            on_event("start", {"resumed_steps": len(finished), "children": _children_done(store), "target": target})

        def can_start() -> bool:
            if time.perf_counter() > deadline or next_k >= max_steps:
                return False
            if target is None or next_k < search.n_init:
                return True
            # seed steps must finish before children are scored against the baseline
            if any(k < search.n_init for k in in_flight):
                return False
            return _children_done(store) + len([k for k in in_flight if k >= search.n_init]) < target

        def advance(k: int, gen: Generator, value) -> None:
            try:
                job = gen.send(value)
            except StopIteration as stop:
                o: Outcome = stop.value
                store.finish_step(k, o.kind, o.cell, o.outcome, o.detail, o.status, o.pool_add, o.pool_remove)
                in_flight.discard(k)
                if on_event:
                    on_event("step", {"step": k, "kind": o.kind, "outcome": o.outcome, "cell": o.cell,
                                      "children": _children_done(store), "target": target,
                                      "best": _best_score(search), "elapsed": time.perf_counter() - t0})
                return
            running[executor.submit(job)] = (k, gen, job)

        stopped, trained = "budget", 0
        while True:
            while len(in_flight) < workers and can_start():
                while next_k in finished:
                    next_k += 1
                if not can_start():
                    break
                k, next_k = next_k, next_k + 1
                in_flight.add(k)
                advance(k, search.step(k), None)
            if not running:
                if not in_flight:
                    stopped = "time" if time.perf_counter() > deadline else "budget"
                    break
                continue
            handle, results = executor.wait()
            k, gen, job = running.pop(handle)
            store.add_evaluations(job["cell"], job["task"], results, k)
            trained += len(results)
            advance(k, gen, results)
        return _summary(search, time.perf_counter() - t0, stopped, trained)
    finally:
        if executor is not None:
            executor.close()
        store.close()


def _best_score(search: Search) -> float | None:
    scores = [search.score(r["hash"]) for r in search.store.cells("status IN ('scored', 'seed')")]
    scores = [s for s in scores if s is not None]
    return max(scores) if scores else None


def leaderboard(store: Store, config: SearchConfig | None = None, k: int = 10) -> list[dict]:
    """The ``k`` best cells that have a score on every task, best first."""
    config = config or SearchConfig.from_json(store.meta("config"))
    search = Search(config, store)
    rows = []
    for r in store.cells("status IN ('scored', 'seed')"):
        s = search.score(r["hash"])
        if s is None:
            continue
        per_task = {t: store.best(r["hash"], t) for t in config.tasks}
        n_eval = store.conn.execute("SELECT COUNT(*) FROM evaluations WHERE cell_hash=?", (r["hash"],)).fetchone()[0]
        rows.append({"id": r["id"], "hash": r["hash"], "score": s, "origin": r["origin"], "tasks": per_task,
                     "evaluations": n_eval, "in_pool": r["hash"] in set(store.pool())})
    rows.sort(key=lambda d: (-d["score"], d["id"]))
    return rows[:k]


def _summary(search: Search, wall: float, stopped: str, trained: int) -> SearchSummary:
    st = search.store
    c = st.counts()
    n_eval = st.conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    best = [(d["hash"], d["score"]) for d in leaderboard(st, search.cfg, 5)]
    return SearchSummary(
        steps=len(st.finished_steps()), children=_children_done(st), scored=c.get("child:scored", 0),
        duplicates=c.get("child:duplicate", 0), filtered=c.get("child:filtered", 0), evaluations=n_eval,
        new_evaluations=trained, wall_s=wall, best=best, stopped=stopped)
