"""Penn Treebank word-level language modelling (§4.4), Mikolov's preprocessed files.

Files ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` are read from ``ptb/`` in the data
folder (:mod:`cellsearch.tasks.data`: ``--data-dir``, else ``$CELLSEARCH_DATA``, else
``~/.local/share/cellsearch/data``). Nothing is ever downloaded. Tokens: split each line on whitespace and
add ``<eos>``; the vocabulary (10,000 words) comes from the training file.

Training rows are windows of ``seq_len + 1`` tokens at random offsets of the training
stream, each starting from a zero state (the paper's 32-35 step truncated BPTT carried the
state across batches; windows keep batches independent, [I]). Validation and test are the
first ``eval_tokens`` tokens of their files, cut into consecutive windows.

Metrics: per-word NLL (nats) and perplexity ``exp(NLL)``; the search's higher-is-better
score is ``exp(-NLL) = 1 / perplexity`` ([I]: the paper's search score is unknown).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from cellsearch.errors import DataError
from cellsearch.tasks.base import Batch, Task, TaskSpec
from cellsearch.tasks.data import find_dir

FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")


def read_words(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(
            f"PTB file {path.name!r} not found in {path.parent}; put Mikolov's ptb.train.txt, "
            "ptb.valid.txt and ptb.test.txt (from simple-examples/data) there, or pass --data-dir DIR"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    words = []
    for line in text.splitlines():
        words.extend(line.split())
        words.append("<eos>")
    if len(words) < 100:
        raise DataError(f"{path} holds only {len(words)} tokens; is it the PTB file?")
    return words


class PTB(Task):
    def __init__(self, data_dir=None, seq_len: int = 35, eval_tokens: int = 20_000, eval_batch: int = 20):
        self.dir = find_dir(data_dir, "ptb")
        train, valid, test = (read_words(self.dir / f) for f in FILES)
        counts = Counter(train)
        self.vocab = sorted(counts, key=lambda w: (-counts[w], w))
        self.index = {w: i for i, w in enumerate(self.vocab)}
        for name, words in (("ptb.valid.txt", valid), ("ptb.test.txt", test)):
            unknown = next((w for w in words if w not in self.index), None)
            if unknown is not None:
                raise DataError(f"{self.dir / name}: word {unknown!r} is not in the training vocabulary; "
                                "the files must be Mikolov's preprocessed PTB (rare words as <unk>)")
        self.train_ids = np.asarray([self.index[w] for w in train], np.int32)
        # whole splits, for the standard protocol (cellsearch.nn.protocol)
        self.ids = {"train": self.train_ids, "valid": np.asarray([self.index[w] for w in valid], np.int32),
                    "test": np.asarray([self.index[w] for w in test], np.int32)}
        self.split_ids = {s: np.asarray([self.index[w] for w in ws[:eval_tokens + 1]], np.int32)
                          for s, ws in (("valid", valid), ("test", test))}
        self.eval_batch = eval_batch
        v = len(self.vocab)
        self.spec = TaskSpec("ptb", v, v, seq_len, score="exp_neg_nll")

    def train_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        t = self.spec.seq_len
        starts = rng.integers(0, len(self.train_ids) - t - 1, batch_size)
        rows = np.stack([self.train_ids[s:s + t + 1] for s in starts])
        mask = np.ones((batch_size, t), np.float32)
        return Batch(rows[:, :-1], rows[:, 1:], mask, np.zeros_like(mask))

    def _split(self, split: str) -> list[Batch]:
        ids, t, b = self.split_ids[split], self.spec.seq_len, self.eval_batch
        n_rows = (len(ids) - 1) // t
        rows = np.stack([ids[i * t:i * t + t + 1] for i in range(n_rows)])
        out = []
        for k in range(0, n_rows, b):  # the last, shorter batch is padded by eval_batches
            r = rows[k:k + b]
            mask = np.ones((len(r), t), np.float32)
            out.append(Batch(r[:, :-1], r[:, 1:], mask, np.zeros_like(mask)))
        return out
