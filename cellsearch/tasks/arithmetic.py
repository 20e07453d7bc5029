"""Arithmetic (§4.2): add or subtract two numbers read with distractor letters in between.

Example from the paper: ``3e36d9-h1h39f94eeh43keg3c=-13991064.`` (3369 - 13994433).

Encoding, 40 symbols: digits ``0..9`` are tokens 0..9, letters ``a..z`` 10..35, then ``+``,
``-``, ``=``, ``.``. Each operand has 1..``max_digits`` digits, drawn uniformly, and is
non-negative; the result may be negative. After every input character but the last, a random
letter is inserted with probability ``distractor_p``, repeatedly (a geometric number; the
paper's distribution is unknown, §4.2 [I]). The model reads the row with teacher forcing and
is scored on the answer characters and the final ``.``. Rows longer than ``seq_len + 1`` are
redrawn. Metric: per-character accuracy on the answer (per-sequence is not confirmed, [I]).
"""

from __future__ import annotations

import numpy as np

from cellsearch.tasks.base import Batch, Task, TaskSpec, lm_batch

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz+-=."
TOK = {c: i for i, c in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    return [TOK[c] for c in text]


def decode(tokens) -> str:
    return "".join(ALPHABET[int(t)] for t in tokens)


class Arithmetic(Task):
    def __init__(self, max_digits: int = 8, distractor_p: float = 0.3, seq_len: int | None = None):
        if not 1 <= max_digits <= 18:
            raise ValueError(f"max_digits must be in 1..18, got {max_digits}")
        self.max_digits, self.distractor_p = max_digits, distractor_p
        seq_len = seq_len or 4 * max_digits + 16
        self.spec = TaskSpec("arithmetic", len(ALPHABET), len(ALPHABET), seq_len, score="accuracy")

    def _number(self, rng: np.random.Generator) -> int:
        d = int(rng.integers(1, self.max_digits + 1))
        lo = 0 if d == 1 else 10 ** (d - 1)
        return int(rng.integers(lo, 10**d))

    def example(self, rng: np.random.Generator) -> tuple[str, int]:
        """One row as text and the index of its first answer character."""
        a, b = self._number(rng), self._number(rng)
        op = "+" if rng.uniform() < 0.5 else "-"
        question = f"{a}{op}{b}"
        parts = []
        for k, ch in enumerate(question):
            parts.append(ch)
            while k < len(question) - 1 and rng.uniform() < self.distractor_p:
                parts.append(chr(ord("a") + int(rng.integers(26))))
        answer = str(a + b if op == "+" else a - b)
        text = "".join(parts) + "=" + answer + "."
        return text, len(text) - len(answer) - 1

    def train_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        seqs, starts = [], []
        while len(seqs) < batch_size:
            text, start = self.example(rng)
            if len(text) - 1 > self.spec.seq_len:
                continue
            seqs.append(encode(text))
            starts.append(start - 1)  # target index whose token is the first answer character
        return lm_batch(seqs, starts, self.spec.seq_len, TOK["."])
