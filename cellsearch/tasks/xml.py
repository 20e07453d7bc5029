"""Synthetic XML (§4.3): predict the next character of randomly nested tags.

Generator (quoted by a re-implementation, [S1]): at each step, with probability 1/2, or
always after 50 steps, close the most recently opened tag (or stop if none is open);
otherwise open a new tag with a random lowercase name of 2..10 letters. As literally
stated, half the documents would be empty, so a document starts with one open tag ([I]).
No whitespace is written between tags ([I]; the paper's layout is unknown).

Encoding, 29 symbols: ``a..z`` are 0..25, then ``<``, ``>``, ``/``. Rows are ``seq_len + 1``
characters of a stream of documents. Metrics: next-character accuracy on every position
(the search score) and on the predictable characters of closing tags only (the name and
``>`` after ``</``), reported as ``closing_accuracy``.
"""

from __future__ import annotations

import numpy as np

from cellsearch.tasks.base import Batch, Task, TaskSpec

LT, GT, SLASH = 26, 27, 28


class XML(Task):
    def __init__(self, seq_len: int = 64, min_name: int = 2, max_name: int = 10, max_steps: int = 50):
        self.min_name, self.max_name, self.max_steps = min_name, max_name, max_steps
        self.spec = TaskSpec("xml", 29, 29, seq_len, score="accuracy")

    def document(self, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """Tokens of one document and a 0/1 flag per token: predictable closing-tag character."""
        toks, flags, stack = [], [], []

        def open_tag():
            name = rng.integers(0, 26, int(rng.integers(self.min_name, self.max_name + 1))).tolist()
            stack.append(name)
            toks.extend([LT, *name, GT])
            flags.extend([0] * (len(name) + 2))

        open_tag()
        step = 0
        while stack:
            step += 1
            if step >= self.max_steps or rng.uniform() < 0.5:
                name = stack.pop()
                toks.extend([LT, SLASH, *name, GT])
                flags.extend([0, 0] + [1] * (len(name) + 1))
            else:
                open_tag()
        return toks, flags

    def train_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        n = self.spec.seq_len + 1
        rows, flags = [], []
        for _ in range(batch_size):
            t, f = [], []
            while len(t) < n:
                dt, df = self.document(rng)
                t += dt
                f += df
            rows.append(t[:n])
            flags.append(f[:n])
        rows, flags = np.asarray(rows, np.int32), np.asarray(flags, np.float32)
        mask = np.ones((batch_size, n - 1), np.float32)
        return Batch(rows[:, :-1], rows[:, 1:], mask, flags[:, 1:])
