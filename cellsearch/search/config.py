"""What defines a search: :class:`SearchConfig`, the ``--quick`` preset and the calibrated filter.

The store keeps a search's :class:`SearchConfig` as JSON and refuses to resume under other
settings (:meth:`SearchConfig.identity`). The per-task facts (factory, default parameter budget,
data folder) live in one table, :data:`cellsearch.tasks.TASKS`; one evaluation's training
schedule is a :class:`cellsearch.config.TrainConfig`.

This module imports nothing from JAX: reading a store's settings (``top``, ``show``,
``export``, ``report``) stays light.

>>> cfg = quick_config(seed=3)
>>> SearchConfig.from_json(cfg.to_json()) == cfg
True
>>> cfg.identity() == quick_config(seed=3, candidates=99).identity()  # budgets may change on resume
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from cellsearch.config import TrainConfig, one_of, require
from cellsearch.errors import ConfigError
from cellsearch.evolve.mutate import EditCount
from cellsearch.evolve.spaces import DEFAULT_SPACE
from cellsearch.evolve.strategies import STRATEGIES
from cellsearch.hparams import HParamSpace
from cellsearch.tasks import TASKS

DEFAULT_DB = "cellsearch.db"  # the store's default path, for every verb
PAPER_TASKS = ("arithmetic", "xml", "ptb")  # §3.2 [I]: the paper's order; the first is the hurdle
BARS = ("lineage", "baseline")
# what a search stored before a setting existed ran as: a resumed old store keeps its behaviour
LEGACY = {"bars": "baseline", "screen": (), "admit_margin": 0.0, "filter_carry": False, "reeval_max": 0,
          "reference": "all", "continue_rungs": False, "spread_rates": False}
REFERENCES = ("matched", "all")


def default_budgets() -> dict[str, tuple[int, ...]]:
    """Each task's default recurrent parameter budget, from :data:`cellsearch.tasks.TASKS`."""
    return {name: (info.budget,) for name, info in TASKS.items() if name != "memorize"}


# The memorisation filter (§3.3), calibrated on one-edit children of every seed of both spaces
# (benchmarks/README.md, "Filter"): the grid reaches down to the rates of the tanh RNN's lineage, 0.7
# is there for CIFG (unstable at 1, too slow at 0.5 on some search seeds), and a child tries its
# parent's best rate first (filter_carry).
FILTER_HPARAMS = HParamSpace(learning_rate=(0.1, 0.3, 0.5, 0.7, 1.0), init_scale=(1.0,), max_grad_norm=(5.0,),
                             layers=(1,), param_budget=(20_000,))
# Successive halving in the filter (share of the steps, fraction of the threshold): derived by
# benchmarks/rungs.py from the filter curves of the seeds and of live children (benchmarks/README.md,
# "Rungs"); at a quarter of the steps some settings that end above 95 % are still at chance.
FILTER_RUNGS = ((0.5, 0.3), (0.75, 0.55))
# Successive halving in ``--quick``'s task stages (the hurdle task against hurdle x the baseline's
# bar, the others against the pool's floor): derived by ``benchmarks/rungs.py --hurdle-bar`` from
# the curves of a --quick store, 0.9 of the lowest fraction of the bar that a setting ending at or
# above the bar had reached at each rung (benchmarks/README.md, "Rungs").
QUICK_TASK_RUNGS = ((0.2, 0.8), (0.6, 0.85))


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (the store refuses to resume under other settings,
    except the budget fields ``candidates`` and ``hours`` and the data folder).

    Unverified details of the paper are marked [I] and are settings here; departures from
    it are listed in the README's fidelity section.
    """

    space: str = DEFAULT_SPACE  # a built-in space's name, or a user's FILE.py
    space_sha: str = ""  # SHA-256 of a space file (an edited file is another space)
    pool_seeds: tuple[str, ...] = ()  # the starting pool (default: the space's POOL_SEEDS); names or cells_json keys
    cells_json: dict[str, str] = field(default_factory=dict)  # name -> graph JSON of pool seeds given as files
    tasks: tuple[str, ...] = PAPER_TASKS
    strategy: str = "paper"
    seed: int = 0
    candidates: int | None = 100  # children to evaluate (duplicates not counted)
    hours: float | None = None  # wall-clock budget; whichever of the two ends first
    pool_size: int = 100  # §3.1 top-100 list
    settings_per_task: int = 20  # §3.2: 20 random settings per task
    init_settings: int = 20  # settings for the pool seeds and the baseline at the start
    # departure: a cell's random settings on a task draw learning rates it has not tried there yet
    # first (HParamSpace.sample's spread_rates), so the baseline and the start cover the rates that
    # decide their scores; independent draws (the paper's) made one search's GRU miss its best rates
    # (benchmarks/README.md, "Settings a search starts from")
    spread_rates: bool = True
    reeval_prob: float = 0.5  # [I] re-evaluate vs mutate (the paper's split is unknown)
    # departure: a cell is re-evaluated at most this often (0: no limit); past it, the step proposes a
    # child of it instead. A small pool (a search from one seed) otherwise spends most of its time
    # re-training the same two cells, and a cell's best over ever more settings only creeps up
    # (benchmarks/README.md, "Rediscovery")
    reeval_max: int = 2
    carry_over: int = 2  # §3.2 [S1]: the parent's best settings tried on the child
    # departure (§3.5 is "paper": each computation node edited with p ~ U[0, mutation_rate]): one edit
    # per child (EXAMM's default; cellsearch.evolve.mutate.EditCount; benchmarks/README.md, "Children that live")
    edits: str = "1"
    mutation_rate: float = 1.0  # with edits="paper": per-node edit probability p ~ U[0, mutation_rate]
    probe: bool = True  # resample children that fail the liveness probe (cellsearch.cell.probe) before training
    filter_task: str = "memorize"
    filter_threshold: float = 0.95  # §3.3
    filter_settings: int = 2  # departure: best of 2 settings of the filter grid, see FILTER_HPARAMS
    # the paper's carry-over (§3.2) in the filter too: a child's first filter setting is its parent's best
    # (the pool seeds train the whole filter grid), so a lineage keeps its learning rate
    filter_carry: bool = True
    hurdle: float = 0.9  # §3.2: 90 % of the GRU's best on the first task
    # departure (issue 32): "lineage" judges a child against its parent too, so a search climbs from a
    # start below the GRU: it earns the later tasks at the hurdle times the lower of the GRU's and its
    # parent's bar, and enters the pool when it beats its parent by more than admit_margin (or
    # reaches the hurdle); "baseline" is the paper's: the GRU's bar alone
    bars: str = "lineage"
    admit_margin: float = 0.02  # a setting's seed noise, relative (benchmarks/README.md, "Lineage bars")
    # what a cell's best on a task is divided by (cellsearch.search.results.Scores): "all" is the
    # paper's, the baseline's best over every setting it ever trained; departure, "matched": its best
    # over as many settings as the cell trained (its first ones) and every setting the cell shares
    # with it (the carried-over ones), so a cell's score does not fall each time the baseline, a
    # pool member, is re-evaluated (benchmarks/README.md, "The quick start")
    reference: str = "matched"
    # cheap-first screening across children (ASHA): rungs below the full evaluation, each (share of a
    # task's steps, settings per task, the parent's best first); the best 1/eta of the children at a
    # rung, ranked against each other, earn the next; () is off (cellsearch.search.ladder)
    screen: tuple[tuple[float, int], ...] = ((0.05, 2), (0.2, 5))
    screen_tasks: int = 0  # the tasks a rung trains: the first k of `tasks` (0: all)
    # a promoted child's next stage continues its rung's settings where the rung stopped, in programs
    # of the rung's member count: the numbers of training them from scratch in such a program, without
    # compiling or training their first steps again (cellsearch.nn.resume; benchmarks/README.md,
    # "Cheap-first screening": 6 % less time a promoted child on this CPU); the store keeps each rung
    # setting's training state for it
    continue_rungs: bool = True  # per-cell jit only: see continues
    eta: int = 3
    aging_population: int = 20
    aging_sample: int = 5
    random_walk: int = 3
    # >1: children are evaluated P at a time through the population interpreter, in rounds
    # (cellsearch.search.schedules.Rounds); 1: one compiled program per cell
    population: int = 1
    hparams: HParamSpace = HParamSpace()
    filter_hparams: HParamSpace = FILTER_HPARAMS
    budgets: dict[str, tuple[int, ...]] = field(default_factory=default_budgets)
    # the default preset's final rung: 10,000 steps per setting, at which the paper's arithmetic starts to
    # rank cells (benchmarks/README.md, "The default preset"); its screen rungs keep a child affordable
    train: TrainConfig = TrainConfig(steps=10_000, batch_size=20, members=4, eval_every=500)
    filter_train: TrainConfig = TrainConfig(steps=4000, batch_size=32, chunk=250, eval_every=1000, members=2,
                                            rungs=FILTER_RUNGS, stop_on_pass=True)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: str | None = None

    def __post_init__(self):
        one_of("strategy", self.strategy, STRATEGIES)
        if not self.tasks:
            raise ConfigError("a search needs at least one task")
        for t in (*self.tasks, self.filter_task):
            if t not in TASKS:
                raise ConfigError(f"unknown task {t!r}; tasks: {', '.join(TASKS)}")
        twice = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if twice:
            raise ConfigError(f"task {twice[0]!r} is named twice in the task list {','.join(self.tasks)}")
        if self.filter_task in self.tasks:
            raise ConfigError(f"the filter task {self.filter_task!r} cannot also be a scored task")
        if self.candidates is not None and self.candidates < 0:
            raise ConfigError(f"candidates must be >= 0, got {self.candidates}")
        if self.hours is not None and not self.hours > 0:
            raise ConfigError(f"hours must be > 0, got {self.hours}")
        require(self, ("pool_size", "settings_per_task", "init_settings", "filter_settings", "population"),
                 lambda v: v >= 1, ">= 1")
        require(self, ("reeval_max",), lambda v: v >= 0, ">= 0 (0: no limit)")
        try:
            EditCount.parse(self.edits)
        except ValueError as e:
            raise ConfigError(f"SearchConfig.edits: {e}") from None
        one_of("bars", self.bars, BARS)
        one_of("reference", self.reference, REFERENCES)
        if not 0 <= self.admit_margin < 1:
            raise ConfigError(f"admit_margin must be in [0, 1), got {self.admit_margin}")
        for share, n in self.screen:
            if not (0 < share <= 1 and 1 <= n <= self.settings_per_task):
                raise ConfigError(f"SearchConfig.screen: ({share}, {n}) must be (a share of the steps in (0, 1], a "
                                  f"number of settings in 1..settings_per_task={self.settings_per_task})")
        require(self, ("eta",), lambda v: v >= 2, ">= 2")
        require(self, ("screen_tasks",), lambda v: 0 <= v <= len(self.tasks), f"in 0..{len(self.tasks)}")
        if self.filter_settings > self.filter_hparams.grid_size():
            raise ConfigError(f"filter_settings ({self.filter_settings}) exceeds the filter grid's "
                              f"{self.filter_hparams.grid_size()} points")

    @property
    def continues(self) -> bool:
        """Whether a promoted child continues its rung's kept training states: ``continue_rungs``
        under per-cell jit. A population search (``population > 1``) trains every stage from
        scratch: the interpreter's programs keep no training states."""
        return self.continue_rungs and self.population == 1

    def train_config(self, task: str) -> TrainConfig:
        """The training schedule of one evaluation on ``task`` (the filter has its own)."""
        return replace(self.filter_train if task == self.filter_task else self.train, data_seed=self.seed)

    def hparam_space(self, task: str) -> HParamSpace:
        """The grid settings are drawn from for ``task`` (the filter has its own grid)."""
        if task == self.filter_task:
            return self.filter_hparams
        return replace(self.hparams, param_budget=self.budgets.get(task, self.hparams.param_budget))

    # -- JSON ----------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SearchConfig:
        d = json.loads(text)
        known = {f.name for f in fields(cls)}
        d = {**LEGACY, **{k: v for k, v in d.items() if k in known}}
        d["tasks"] = tuple(d["tasks"])
        d["screen"] = tuple(tuple(r) for r in d["screen"])
        d["pool_seeds"] = tuple(d.get("pool_seeds", ()))
        for k in ("hparams", "filter_hparams"):
            d[k] = HParamSpace(**{f: tuple(v) for f, v in d[k].items()})
        for k in ("train", "filter_train"):
            d[k] = TrainConfig(**{**d[k], "rungs": tuple(tuple(r) for r in d[k].get("rungs", ()))})
        d["budgets"] = {t: tuple(v) for t, v in d["budgets"].items()}
        return cls(**d)

    def identity(self) -> dict:
        """The fields a resumed search must share with the original."""
        d = json.loads(self.to_json())
        for k in ("candidates", "hours", "data_dir"):
            d.pop(k)
        return d



def quick_config(**overrides) -> SearchConfig:
    """``--quick``: a small, meaningful search on a laptop CPU (its time is in the README).

    Arithmetic with up to 3 digits and XML with short rows and 1-3 letter tag names,
    10k-parameter cells, 4 settings per task (one compiled program each) of 1,500 steps with a
    validation point every 300; the memorisation filter with the lineage's learning rate; every
    child first screened on both tasks with its parent's 2 best settings at 300 steps, the best
    third of the children there earning the full evaluation (``benchmarks/README.md``, "Cheap-first
    screening"); bars relative to the lineage; 30 children of one edit each. This rung cannot see
    a gate's gain, which shows only after 600-900 steps: a search from a weak start (the tanh RNN)
    climbs with ``--set screen=0.6:4`` (4 settings at 900 steps, about 3x the rung's cost; same
    section and "Rediscovery").

    The task steps are chosen so that the tasks separate the tanh RNN from the gated cells
    (``benchmarks/README.md``, "Do --quick's tasks separate cells?"); the learning rates reach
    down to 0.1, where the tanh RNN's lineage trains. The initial scales are 1-3: at 1,500 steps
    the GRU learns XML only from a scale of 2 (with lr 2-3) or 3 (lr 0.5-3), and the 0.5 of the
    grid before 2026-12-07 trained almost no cell's XML ("Settings a search starts from").
    """
    base = dict(
        tasks=("arithmetic", "xml"),
        candidates=30,
        pool_size=20,
        settings_per_task=4,
        init_settings=4,
        reeval_prob=0.2,
        hparams=HParamSpace(layers=(1,), learning_rate=(0.1, 0.3, 0.5, 1.0, 2.0, 3.0), init_scale=(1.0, 2.0, 3.0),
                            max_grad_norm=(1.0, 5.0, 10.0)),
        budgets={name: (info.quick_budget,) for name, info in TASKS.items() if name != "memorize"},
        train=TrainConfig(steps=1500, batch_size=32, chunk=100, eval_every=300, members=4, rungs=QUICK_TASK_RUNGS),
        task_options={"arithmetic": {"max_digits": 3}, "xml": {"seq_len": 32, "min_name": 1, "max_name": 3}},
        screen=((0.2, 2),),
    )
    base.update(overrides)
    return SearchConfig(**base)
