"""Memorisation (the cheap filter, §3.3): read 5 symbols out of 26, then reproduce them.

Encoding: letters are tokens 0..25 and ``=`` is 26. A row is ``s1 .. s5 = s1 .. s5``; the model
reads it shifted by one (teacher forcing) and is scored on the 5 symbols after ``=``.
Metric: per-symbol accuracy; a candidate passes the filter at 95 % (§3.3).
"""

from __future__ import annotations

import numpy as np

from cellsearch.tasks.base import Batch, Task, TaskSpec, lm_batch

SEP = 26


class Memorize(Task):
    def __init__(self, length: int = 5, symbols: int = 26):
        self.length, self.symbols = length, symbols
        self.spec = TaskSpec("memorize", symbols + 1, symbols + 1, 2 * length, score="accuracy")

    def train_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        seqs, starts = [], []
        for _ in range(batch_size):
            s = rng.integers(0, self.symbols, self.length).tolist()
            seqs.append(s + [SEP] + s)
            starts.append(self.length)  # target index of the first reproduced symbol
        return lm_batch(seqs, starts, self.spec.seq_len, SEP)
