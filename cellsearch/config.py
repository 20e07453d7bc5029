"""Training settings as plain data: one evaluation's schedule and the standard protocol.

:class:`TrainConfig` (how the search's trainer runs one evaluation, :mod:`cellsearch.nn.train`),
:class:`ProtocolConfig` (one run of the standard final-evaluation protocol,
:mod:`cellsearch.nn.protocol`), Zaremba et al. 2014's settings (:data:`PRESETS`), and §3.7's
learning-rate schedule (:func:`paper_schedule`), which both trainers follow. The settings of a whole
search are :class:`cellsearch.search.config.SearchConfig`.

This module imports nothing but the errors: reading a store's settings stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellsearch.errors import ConfigError

SCHEDULES = ("fixed", "paper")
DTYPES = ("float32", "bfloat16")  # the computation dtypes of training
PROTOCOL_SCHEDULES = ("fixed", "zaremba", "paper")


def require(obj, names: tuple[str, ...], ok, rule: str) -> None:
    """Raises :class:`ConfigError` naming the first of ``obj``'s fields ``names`` that breaks ``rule``."""
    for name in names:
        v = getattr(obj, name)
        if not ok(v):
            raise ConfigError(f"{type(obj).__name__}.{name} must be {rule}, got {v}")


def one_of(name: str, value, choices) -> None:
    """Raises :class:`ConfigError` naming the setting ``name`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")



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
      dtype: the computation dtype of the model: ``"float32"``, or ``"bfloat16"`` for mixed
        precision on accelerators (the parameters, the loss, the softmax and the optimiser stay
        float32; :func:`cellsearch.nn.model.forward`).
      rungs, bar: successive halving within a stage. A rung ``(share, fraction)`` sits at the
        first validation point at or after ``share * steps``; there a setting whose best score
        so far is below ``fraction * bar`` stops (its result keeps its best score and
        ``stopped_at``). The search sets ``bar`` to the stage's bar (the filter's threshold;
        the hurdle times the baseline's); the fractions are derived from stored curves
        (``benchmarks/rungs.py``). Without validation points before the end (``eval_every``)
        a rung never acts.
      stop_on_pass: with a ``bar``, the whole job (every setting) stops at the first validation
        point where one setting's best reaches the bar, each keeping its best so far and
        ``stopped_at``: for a pass/fail stage (the memorisation filter), whose verdict more
        training cannot change. On the children that pass it saved 22 % of the filter's steps and
        a quarter of its seconds (benchmarks/README.md, "Filter").
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
    dtype: str = "float32"
    stop_on_pass: bool = False

    @property
    def validation_every(self) -> int:
        """Steps between validation points (an epoch under ``"paper"``; else ``eval_every``,
        or only at the end)."""
        return self.steps_per_epoch if self.schedule == "paper" else (self.eval_every or self.steps)

    def __post_init__(self):
        one_of("after_divergence", self.after_divergence, ("fail", "best"))
        one_of("schedule", self.schedule, SCHEDULES)
        require(self, ("steps", "batch_size", "chunk", "steps_per_epoch"), lambda v: v >= 1, ">= 1")
        require(self, ("members",), lambda v: v >= 0, ">= 0")
        for at, frac in self.rungs:
            if not (0 < at < 1 and 0 <= frac <= 1):
                raise ConfigError(f"TrainConfig.rungs: ({at}, {frac}) must be (a share of the steps in (0, 1), "
                                  "a fraction of the bar in [0, 1])")
        one_of("dtype", self.dtype, DTYPES)
        one_of("eval_split", self.eval_split, ("valid", "test"))


def paper_schedule(since_best: int, decay_left: int, patience: int = 3, decay_epochs: int = 4
                   ) -> tuple[int, bool, bool]:
    """§3.7's schedule after a validation point: when validation has not improved for ``patience``
    epochs, halve the learning rate every epoch for ``decay_epochs`` more, then stop.

    ``since_best`` counts the epochs since the best validation score (0 if this one is the best),
    ``decay_left`` the halvings left (-1 before the decay starts). Returns ``(decay_left, halve,
    stop)``: the new count, whether to halve the rate for the next epoch, whether to stop.

    >>> state, trace = -1, []
    >>> for since in (0, 1, 2, 3, 4, 5, 6, 7):
    ...     state, halve, stop = paper_schedule(since, state)
    ...     trace.append("stop" if stop else "halve" if halve else "-")
    >>> trace
    ['-', '-', '-', 'halve', 'halve', 'halve', 'halve', 'stop']
    """
    if decay_left < 0 and since_best >= patience:
        decay_left = decay_epochs
    if decay_left == 0:
        return 0, False, True
    if decay_left > 0:
        return decay_left - 1, True, False
    return decay_left, False, False


@dataclass(frozen=True)
class ProtocolConfig:
    """One run of the standard final-evaluation protocol (:mod:`cellsearch.nn.protocol`, whose
    docstring defines each field); ``max_windows`` caps the training windows per epoch
    (``None``: the whole stream), for quick checks. The defaults are Zaremba et al. 2014's small,
    non-regularised model (:data:`PRESETS` ``["zaremba-small"]``)."""

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
    patience: int = 3  # the "paper" schedule's (§3.7)
    decay_epochs: int = 4
    eval_batch_size: int = 1
    seed: int = 0
    max_windows: int | None = None

    def __post_init__(self):
        one_of("schedule", self.schedule, PROTOCOL_SCHEDULES)
        require(self, ("hidden", "layers", "batch_size", "bptt", "epochs", "eval_batch_size"), lambda v: v >= 1, ">= 1")
        require(self, ("init", "lr", "clip"), lambda v: v > 0, "> 0")
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
    "zaremba-small": ProtocolConfig(),  # 2x200, init 0.1, lr 1, clip 5, bptt 20, 13 epochs, decay 0.5 after 4
    "zaremba-medium": ProtocolConfig(hidden=650, layers=2, init=0.05, lr=1.0, clip=5.0, dropout=0.5, batch_size=20,
                                     bptt=35, epochs=39, lr_decay=0.8, decay_after=6),
    "zaremba-large": ProtocolConfig(hidden=1500, layers=2, init=0.04, lr=1.0, clip=10.0, dropout=0.65,
                                    batch_size=20, bptt=35, epochs=55, lr_decay=1 / 1.15, decay_after=14),
}
PUBLISHED = {"zaremba-small": (120.7, 114.5), "zaremba-medium": (86.2, 82.7), "zaremba-large": (82.2, 78.4)}
