"""Settings as plain data: how to train one evaluation, and what defines a search.

:class:`TrainConfig` (one evaluation's schedule), :class:`SearchConfig` (a whole search; the
store keeps it as JSON and refuses to resume under other settings), :func:`quick_config`
(the ``--quick`` preset) and the store's default path. The per-task facts (factory, default
parameter budget, data folder) live in one table, :data:`cellsearch.tasks.TASKS`.

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

from cellsearch.errors import ConfigError
from cellsearch.hparams import HParamSpace
from cellsearch.mutate import EditCount
from cellsearch.spaces import DEFAULT_SPACE
from cellsearch.strategies import STRATEGIES
from cellsearch.tasks import TASKS

DEFAULT_DB = "cellsearch.db"  # the store's default path, for every verb
PAPER_TASKS = ("arithmetic", "xml", "ptb")  # §3.2 [I]: the paper's order; the first is the hurdle
SCHEDULES = ("fixed", "paper")


def _require(obj, names: tuple[str, ...], ok, rule: str) -> None:
    """Raises :class:`ConfigError` naming the first of ``obj``'s fields ``names`` that breaks ``rule``."""
    for name in names:
        v = getattr(obj, name)
        if not ok(v):
            raise ConfigError(f"{type(obj).__name__}.{name} must be {rule}, got {v}")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one evaluation.

    Attributes:
      steps: step budget (``"fixed"``) or the cap on steps (``"paper"``).
      batch_size: rows per step (20 in the paper, §3.7 [S1]).
      schedule: ``"fixed"`` or ``"paper"``.
      steps_per_epoch: epoch length for ``"paper"`` (an epoch of synthetic data is arbitrary, [I]).
      patience, decay_epochs: the paper's 3 and 4 (§3.7 [P]).
      eval_every: with ``"fixed"``, validate every N steps too (0: only at the end).
      chunk: steps per compiled call (fewer host round trips).
      diverge_factor: loss above ``diverge_factor * log(classes)`` counts as diverged.
      unroll: ``lax.scan`` unroll of the time loop.
      data_seed: seed of the training batches (shared by all settings, so they see the same data).
      eval_split: ``"valid"`` or ``"test"``.
      members: settings per compiled program (0: all settings of one shape in one program).
        With ``members > 0`` every program holds exactly this many (settings of one shape
        are split into programs of ``members``, the last padded with idle members), so a
        setting's numbers do not depend on what else it is trained with (XLA's rounding
        depends on a program's shapes, and a diverging run amplifies an ulp).
      after_divergence: a setting that diverges after a validation point: ``"fail"`` (ours:
        status ``diverged``, score 0) or ``"best"`` (keep its best checkpoint's score, as
        early stopping would); the paper does not say ([I]).
      rungs, bar: successive halving within a stage. A rung ``(share, fraction)`` sits at the
        first validation point at or after ``share * steps``; there a setting whose best score
        so far is below ``fraction * bar`` stops (its result keeps its best score and
        ``stopped_at``). The search sets ``bar`` to the stage's bar (the filter's threshold;
        the hurdle times the baseline's); the fractions are derived from stored curves
        (``benchmarks/rungs.py``). Without validation points before the end (``eval_every``)
        a rung never acts.
    """

    steps: int = 500
    batch_size: int = 20
    schedule: str = "fixed"
    steps_per_epoch: int = 100
    patience: int = 3
    decay_epochs: int = 4
    eval_every: int = 0
    chunk: int = 25
    diverge_factor: float = 3.0
    unroll: int = 1
    data_seed: int = 0
    eval_split: str = "valid"
    members: int = 0
    after_divergence: str = "fail"
    rungs: tuple[tuple[float, float], ...] = ()
    bar: float = 0.0

    @property
    def validation_every(self) -> int:
        """Steps between validation points (an epoch under ``"paper"``; else ``eval_every``,
        or only at the end)."""
        return self.steps_per_epoch if self.schedule == "paper" else (self.eval_every or self.steps)

    def __post_init__(self):
        if self.after_divergence not in ("fail", "best"):
            raise ConfigError(f"after_divergence must be 'fail' or 'best', got {self.after_divergence!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _require(self, ("steps", "batch_size", "chunk", "steps_per_epoch"), lambda v: v >= 1, ">= 1")
        _require(self, ("members",), lambda v: v >= 0, ">= 0")
        for at, frac in self.rungs:
            if not (0 < at < 1 and 0 <= frac <= 1):
                raise ConfigError(f"TrainConfig.rungs: ({at}, {frac}) must be (a share of the steps in (0, 1), "
                                  "a fraction of the bar in [0, 1])")
        if self.eval_split not in ("valid", "test"):
            raise ConfigError(f"eval_split must be 'valid' or 'test', got {self.eval_split!r}")


def default_budgets() -> dict[str, tuple[int, ...]]:
    """Each task's default recurrent parameter budget, from :data:`cellsearch.tasks.TASKS`."""
    return {name: (info.budget,) for name, info in TASKS.items() if name != "memorize"}


# The memorisation filter (§3.3), calibrated: see ``benchmarks/README.md`` ("Filter").
# Learning rates 0.5 and 1 (before: 1 and 2, calibrated on LSTM and GRU alone): on 35 live 1-3-edit
# children of LSTM and GRU, best of {0.5, 1} passed 15, best of {1, 2} 12 (benchmarks/README.md, "Children").
FILTER_HPARAMS = HParamSpace(learning_rate=(0.5, 1.0), init_scale=(1.0,), max_grad_norm=(5.0,), layers=(1,),
                             param_budget=(20_000,))
# Successive halving in the filter (share of the steps, fraction of the threshold): derived by
# benchmarks/rungs.py from the filter curves of the seeds and of live children; at a quarter of the
# steps some settings that end above 95 % are still at chance, so the first rung is at half.
FILTER_RUNGS = ((0.5, 0.3), (0.75, 0.55))
# Successive halving in ``--quick``'s task stages (the hurdle task against hurdle x the baseline's
# bar, the others against the pool's floor): derived by ``benchmarks/rungs.py --hurdle-bar`` from
# the 72 curves per task of a --quick store (seeds and children, 5 validation points of 1,500
# steps): every setting that ended at or above the bar was at >= 0.906 (arithmetic) and >= 0.934
# (XML) of it after 300 steps and >= 0.951 after 900; 0.9 of those, rounded down to 0.05. Failing
# settings end just below the bar, so this saves little (3 of 30 on arithmetic); it stops the dead.
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
    reeval_prob: float = 0.5  # [I] re-evaluate vs mutate (the paper's split is unknown)
    carry_over: int = 2  # §3.2 [S1]: the parent's best settings tried on the child
    # departure (§3.5 is "paper": each computation node edited with p ~ U[0, mutation_rate]):
    # one edit per child (EXAMM's default), see cellsearch.mutate.EditCount and benchmarks/README.md
    # ("Children"): of live children, 8 of 12 with one edit passed the filter, 9 of 23 with 2-3
    edits: str = "1"
    mutation_rate: float = 1.0  # with edits="paper": per-node edit probability p ~ U[0, mutation_rate]
    probe: bool = True  # resample children that fail the liveness probe (cellsearch.probe) before training
    filter_task: str = "memorize"
    filter_threshold: float = 0.95  # §3.3
    filter_settings: int = 2  # departure: best of the whole filter grid (2 settings), see FILTER_HPARAMS
    hurdle: float = 0.9  # §3.2: 90 % of the GRU's best on the first task
    aging_population: int = 20
    aging_sample: int = 5
    random_walk: int = 3
    # >1: children are evaluated P at a time through the population interpreter, in rounds
    # (cellsearch.schedules.Rounds); 1: one compiled program per cell
    population: int = 1
    hparams: HParamSpace = HParamSpace()
    filter_hparams: HParamSpace = FILTER_HPARAMS
    budgets: dict[str, tuple[int, ...]] = field(default_factory=default_budgets)
    train: TrainConfig = TrainConfig(steps=1000, batch_size=20, members=4)
    filter_train: TrainConfig = TrainConfig(steps=4000, batch_size=32, chunk=250, eval_every=1000, members=2,
                                            rungs=FILTER_RUNGS)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: str | None = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
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
        _require(self, ("pool_size", "settings_per_task", "init_settings", "filter_settings", "population"),
                 lambda v: v >= 1, ">= 1")
        try:
            EditCount.parse(self.edits)
        except ValueError as e:
            raise ConfigError(f"SearchConfig.edits: {e}") from None
        if self.filter_settings > self.filter_hparams.grid_size():
            raise ConfigError(f"filter_settings ({self.filter_settings}) exceeds the filter grid's "
                              f"{self.filter_hparams.grid_size()} points")

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
        d = {k: v for k, v in d.items() if k in known}
        d["tasks"] = tuple(d["tasks"])
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


def _cast(text: str, like: Any, key: str):
    """``text`` as the type of ``like`` (the field's current value)."""
    try:
        if isinstance(like, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if key.endswith("rungs"):  # SHARE:FRACTION,...
            return tuple((float(a), float(b)) for a, _, b in (v.strip().partition(":") for v in text.split(","))
                         if a) if text.strip().lower() not in ("", "none") else ()
        if isinstance(like, tuple):
            kind = type(like[0]) if like else str
            return tuple(_cast(v.strip(), kind(), key) for v in text.split(",") if v.strip())
        if like is None:
            return None if text.lower() == "none" else float(text) if "." in text else int(text)
        if isinstance(like, int | float | str):
            return type(like)(text)
    except ValueError:
        raise ConfigError(f"--set {key}={text}: expected {type(like).__name__}"
                          + (f" (comma-separated {type(like[0]).__name__}s)" if isinstance(like, tuple) and like else "")
                          ) from None
    raise ConfigError(f"--set {key}: this field ({type(like).__name__}) cannot be set from the command line")


SETTABLE = frozenset(f.name for f in fields(SearchConfig)) - {"budgets", "task_options", "cells_json"}


def with_settings(cfg: SearchConfig, items: list[str]) -> SearchConfig:
    """``cfg`` with ``--set KEY=VALUE`` items applied: a field of :class:`SearchConfig`
    (``hurdle=0.8``, ``edits=1``, ``reeval_prob=0.3``), or a field of one of its parts with
    a dot (``filter_hparams.learning_rate=0.3,1,2``, ``train.steps=800``). Lists are
    comma-separated; the result is checked as any config is.

    >>> with_settings(SearchConfig(), ["hurdle=0.8", "filter_hparams.learning_rate=0.3,1"]).filter_hparams.learning_rate
    (0.3, 1.0)
    """
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        head, _, sub = key.partition(".")
        if head not in SETTABLE:
            raise ConfigError(f"--set: unknown setting {head!r}; settings: {', '.join(sorted(SETTABLE))}")
        current = getattr(cfg, head)
        if sub:
            if not hasattr(current, "__dataclass_fields__") or sub not in current.__dataclass_fields__:
                raise ConfigError(f"--set: {head!r} has no field {sub!r}")
            value = replace(current, **{sub: _cast(text.strip(), getattr(current, sub), key)})
        else:
            if hasattr(current, "__dataclass_fields__"):
                raise ConfigError(f"--set: {head!r} has parts; set one with {head}.FIELD=VALUE")
            value = _cast(text.strip(), current, key)
        cfg = replace(cfg, **{head: value})
    return cfg


def quick_config(**overrides) -> SearchConfig:
    """``--quick``: a small, meaningful search on a 2-core laptop CPU in about 10 minutes.

    Arithmetic with up to 3 digits and XML with short rows and 1-3 letter tag names,
    10k-parameter cells, 4 settings per task (one compiled program each) of 1,500 steps with a
    validation point every 300, the calibrated memorisation filter and 16 children. Children
    get one edit, as in the default preset.

    The task steps are chosen so that the tasks separate cells (``benchmarks/README.md``,
    "Do --quick's tasks separate cells?"): over 3 search seeds the tanh RNN's best on arithmetic
    is 0.88 of the GRU's at 600 steps, 0.85 at 1,200 and 0.81 at 1,500, while the gated cells
    stay at 0.91-1.00 of it.
    """
    base = dict(
        tasks=("arithmetic", "xml"),
        candidates=16,
        pool_size=20,
        settings_per_task=4,
        init_settings=4,
        reeval_prob=0.2,
        hparams=HParamSpace(layers=(1,), learning_rate=(0.5, 1.0, 2.0, 3.0), init_scale=(0.5, 1.0, 2.0),
                            max_grad_norm=(1.0, 5.0, 10.0)),
        budgets={"arithmetic": (10_000,), "xml": (10_000,), "ptb": (50_000,), "nottingham": (10_000,),
                 "pianomidi": (10_000,)},
        train=TrainConfig(steps=1500, batch_size=32, chunk=100, eval_every=300, members=4, rungs=QUICK_TASK_RUNGS),
        task_options={"arithmetic": {"max_digits": 3}, "xml": {"seq_len": 32, "min_name": 1, "max_name": 3}},
    )
    base.update(overrides)
    return SearchConfig(**base)


# ----------------------------------------------------------------------------- final evaluation


PROTOCOL_SCHEDULES = ("fixed", "zaremba", "paper")


@dataclass(frozen=True)
class ProtocolConfig:
    """One run of the standard final-evaluation protocol (:mod:`cellsearch.protocol`, whose
    docstring defines each field); ``max_windows`` caps the training windows per epoch
    (``None``: the whole stream), for quick checks."""

    hidden: int = 200
    layers: int = 2
    init: float = 0.1
    lr: float = 1.0
    clip: float = 5.0
    dropout: float = 0.0
    batch_size: int = 20
    bptt: int = 20
    epochs: int = 13
    schedule: str = "zaremba"
    lr_decay: float = 0.5
    decay_after: int = 4
    eval_batch_size: int = 1
    seed: int = 0
    max_windows: int | None = None

    def __post_init__(self):
        if self.schedule not in PROTOCOL_SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(PROTOCOL_SCHEDULES)}, got {self.schedule!r}")
        _require(self, ("hidden", "layers", "batch_size", "bptt", "epochs", "eval_batch_size"), lambda v: v >= 1, ">= 1")
        _require(self, ("init", "lr", "clip"), lambda v: v > 0, "> 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay}")

    def lr_at(self, epoch: int) -> float:
        """The ``zaremba``/``fixed`` learning rate of epoch ``epoch`` (counted from 1).

        >>> [PRESETS["zaremba-small"].lr_at(e) for e in (1, 4, 5, 6)]
        [1.0, 1.0, 0.5, 0.25]
        """
        if self.schedule != "zaremba":
            return self.lr
        return self.lr * self.lr_decay ** max(0, epoch - self.decay_after)


# Zaremba, Sutskever & Vinyals 2014, Table 1, with the settings of their code as the TensorFlow
# PTB tutorial reproduces it (init bound, clip, bptt, decay): small is non-regularised.
PRESETS: dict[str, ProtocolConfig] = {
    "zaremba-small": ProtocolConfig(hidden=200, layers=2, init=0.1, lr=1.0, clip=5.0, dropout=0.0, batch_size=20,
                                    bptt=20, epochs=13, lr_decay=0.5, decay_after=4),
    "zaremba-medium": ProtocolConfig(hidden=650, layers=2, init=0.05, lr=1.0, clip=5.0, dropout=0.5, batch_size=20,
                                     bptt=35, epochs=39, lr_decay=0.8, decay_after=6),
    "zaremba-large": ProtocolConfig(hidden=1500, layers=2, init=0.04, lr=1.0, clip=10.0, dropout=0.65,
                                    batch_size=20, bptt=35, epochs=55, lr_decay=1 / 1.15, decay_after=14),
}
PUBLISHED = {"zaremba-small": (120.7, 114.5), "zaremba-medium": (86.2, 82.7), "zaremba-large": (82.2, 78.4)}
