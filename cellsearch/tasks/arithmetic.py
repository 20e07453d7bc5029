"""Arithmetic (§4.2): add or subtract two numbers read with distractor letters in between.

Example from the paper: ``3e36d9-h1h39f94eeh43keg3c=-13991064.`` (3369 - 13994433).

Encoding, 40 symbols: digits ``0..9`` are tokens 0..9, letters ``a..z`` 10..35, then ``+``,
``-``, ``=``, ``.``. Each operand has 1..``max_digits`` digits, drawn uniformly, and is
negative with probability ``negative_p`` (the paper's numbers are "positive or negative",
§4.2 [S1+M]; the proportion is ours, [I]), written with a leading ``-`` (``3+-12``). After
every input character but the last, a random letter is inserted with probability
``distractor_p``, repeatedly (a geometric number; the paper's distribution is unknown,
§4.2 [I]). The model reads the row with teacher forcing and is scored on the answer
characters and the final ``.``. Rows longer than ``seq_len + 1`` are redrawn. Metric:
per-character accuracy on the answer (per-sequence is not confirmed, [I]).

Held-out problems: each problem ``(a, op, b)`` belongs to one split by a hash of its text
(``holdout`` of them, 10 % by default, split evenly between validation and test), so
validation and test questions never appear in training, however small ``max_digits`` is.
"""

from __future__ import annotations

import hashlib

import numpy as np

from cellsearch.tasks.base import Batch, Task, TaskSpec, lm_batch

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz+-=."
TOK = {c: i for i, c in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    return [TOK[c] for c in text]


def decode(tokens) -> str:
    return "".join(ALPHABET[int(t)] for t in tokens)


class Arithmetic(Task):
    def __init__(self, max_digits: int = 8, distractor_p: float = 0.3, seq_len: int | None = None,
                 negative_p: float = 0.5, holdout: float = 0.1):
        if not 1 <= max_digits <= 18:
            raise ValueError(f"max_digits must be in 1..18, got {max_digits}")
        if not 0 <= distractor_p < 1:
            raise ValueError(f"distractor_p must be in [0, 1), got {distractor_p}")
        if not 0 <= negative_p <= 1:
            raise ValueError(f"negative_p must be in [0, 1], got {negative_p}")
        if not 0 < holdout < 1:
            raise ValueError(f"holdout must be in (0, 1), got {holdout}")
        self.max_digits, self.distractor_p = max_digits, distractor_p
        self.negative_p, self.holdout = negative_p, holdout
        seq_len = seq_len or 4 * max_digits + 20
        self.spec = TaskSpec("arithmetic", len(ALPHABET), len(ALPHABET), seq_len, score="accuracy")

    def _number(self, rng: np.random.Generator) -> int:
        d = int(rng.integers(1, self.max_digits + 1))
        lo = 0 if d == 1 else 10 ** (d - 1)
        n = int(rng.integers(lo, 10**d))
        return -n if rng.uniform() < self.negative_p else n

    def split_of(self, question: str) -> str:
        """``"train"``, ``"valid"`` or ``"test"``: the split a problem belongs to.

        >>> Arithmetic().split_of("3+-12") in ("train", "valid", "test")
        True
        """
        u = int.from_bytes(hashlib.blake2b(question.encode(), digest_size=8).digest(), "little") / 2.0**64
        if u >= self.holdout:
            return "train"
        return "valid" if u < self.holdout / 2 else "test"

    def example(self, rng: np.random.Generator, split: str = "train") -> tuple[str, int]:
        """One row of ``split`` as text and the index of its first answer character."""
        while True:
            a, b = self._number(rng), self._number(rng)
            op = "+" if rng.uniform() < 0.5 else "-"
            question = f"{a}{op}{b}"
            if self.split_of(question) == split:
                break
        parts = []
        for k, ch in enumerate(question):
            parts.append(ch)
            while k < len(question) - 1 and rng.uniform() < self.distractor_p:
                parts.append(chr(ord("a") + int(rng.integers(26))))
        answer = str(a + b if op == "+" else a - b)
        text = "".join(parts) + "=" + answer + "."
        return text, len(text) - len(answer) - 1

    def train_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        return self._batch(rng, batch_size, "train")

    def _split(self, split: str) -> list[Batch]:
        rng = np.random.default_rng([self.seed, {"valid": 1, "test": 2}[split]])
        return [self._batch(rng, self.batch_size_eval, split) for _ in range(self.eval_batches_n)]

    def _batch(self, rng: np.random.Generator, batch_size: int, split: str) -> Batch:
        seqs, starts = [], []
        while len(seqs) < batch_size:
            text, start = self.example(rng, split)
            if len(text) - 1 > self.spec.seq_len:
                continue
            seqs.append(encode(text))
            starts.append(start - 1)  # target index whose token is the first answer character
        return lm_batch(seqs, starts, self.spec.seq_len, TOK["."])
