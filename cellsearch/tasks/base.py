"""The task protocol: batches of sequences with a loss mask, and how a task is scored.

A :class:`Batch` holds ``inputs`` (``(B, T)`` int tokens, or ``(B, T, D)`` floats for dense
inputs such as piano rolls), ``targets`` (same leading shape), ``mask`` (``(B, T)``, 1 where the
position is scored) and ``mask2`` (a second mask, e.g. XML's closing tags; zeros if unused).

Every task draws its training batches from a ``numpy.random.Generator`` passed in, and its
validation and test sets from its own fixed seed, so the same seed gives the same data.
This module imports nothing from JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    mask2: np.ndarray


def stack(batches: list[Batch]) -> Batch:
    """Stacks batches along a new leading axis (for a chunk of training steps)."""
    return Batch(*(np.stack(x) for x in zip(*batches, strict=True)))


@dataclass(frozen=True)
class TaskSpec:
    """What the model and trainer need to know about a task.

    Attributes:
      name: the task's name in :data:`cellsearch.tasks.TASKS`.
      vocab_size: input vocabulary (token tasks) or input width (dense tasks).
      output_size: number of classes (softmax) or of independent Bernoulli outputs.
      seq_len: time steps per batch row.
      dense_input: inputs are float vectors, not tokens.
      output: ``"softmax"`` or ``"bernoulli"``.
      score: which metric is the task's higher-is-better score in the search.
    """

    name: str
    vocab_size: int
    output_size: int
    seq_len: int
    dense_input: bool = False
    output: str = "softmax"
    score: str = "accuracy"


def lm_batch(seqs: list[list[int]], answer_from: list[int], seq_len: int, pad: int) -> Batch:
    """Next-token batch from token lists: ``inputs = s[:-1]``, ``targets = s[1:]``, scored
    from target index ``answer_from[i]`` on (teacher forcing); padded with ``pad``, unscored."""
    b = len(seqs)
    inputs = np.full((b, seq_len), pad, np.int32)
    targets = np.full((b, seq_len), pad, np.int32)
    mask = np.zeros((b, seq_len), np.float32)
    for i, s in enumerate(seqs):
        n = len(s) - 1
        inputs[i, :n] = s[:-1]
        targets[i, :n] = s[1:]
        mask[i, answer_from[i]:n] = 1.0
    return Batch(inputs, targets, mask, np.zeros_like(mask))


class Task:
    """Base class: subclasses set ``spec`` and implement :meth:`train_batch` and :meth:`_split`."""

    spec: TaskSpec
    seed: int = 1234  # fixed seed of the validation and test sets
    eval_batches_n: int = 8
    batch_size_eval: int = 64

    def train_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        raise NotImplementedError

    def _split(self, split: str) -> list[Batch]:
        """Fixed validation/test batches; synthetic tasks draw them from a split-specific seed."""
        rng = np.random.default_rng([self.seed, {"valid": 1, "test": 2}[split]])
        return [self.train_batch(rng, self.batch_size_eval) for _ in range(self.eval_batches_n)]

    def eval_batches(self, split: str = "valid") -> list[Batch]:
        """The validation or test set as batches of **one shape** (the last, shorter batch is
        padded with unscored rows), so one compiled evaluation program reads them all."""
        if split not in ("valid", "test"):
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        cache = self.__dict__.setdefault("_eval_cache", {})
        if split not in cache:
            cache[split] = pad_to_one_shape(self._split(split))
        return cache[split]


def pad_batch(b: Batch, rows: int, steps: int) -> Batch:
    """``b`` grown to ``rows`` x ``steps`` with zeros; the added positions are unscored.

    >>> b = Batch(np.ones((2, 3), np.int32), np.ones((2, 3), np.int32), np.ones((2, 3)), np.zeros((2, 3)))
    >>> p = pad_batch(b, 4, 5)
    >>> p.inputs.shape, float(p.mask.sum())
    ((4, 5), 6.0)
    """

    def grow(a: np.ndarray) -> np.ndarray:
        out = np.zeros((rows, steps, *a.shape[2:]), a.dtype)
        out[: a.shape[0], : a.shape[1]] = a
        return out

    return Batch(*(grow(a) for a in b))


def pad_to_one_shape(batches: list[Batch]) -> list[Batch]:
    """Every batch padded to the largest rows and time steps among them."""
    if not batches:
        return batches
    rows = max(b.inputs.shape[0] for b in batches)
    steps = max(b.inputs.shape[1] for b in batches)
    return [b if b.inputs.shape[:2] == (rows, steps) else pad_batch(b, rows, steps) for b in batches]
