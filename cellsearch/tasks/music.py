"""Polyphonic music (§4.5): Nottingham and Piano-midi.de piano rolls, 88 notes per step.

Files ``Nottingham.mat`` / ``Piano_midi.mat`` (Boulanger-Lewandowski et al. 2012, MATLAB
export) are read from ``music/`` in the data folder (:mod:`cellsearch.tasks.data`).
Each step is an 88-dim binary vector (MIDI 21..108); the model reads step ``t`` and predicts
step ``t + 1`` with 88 independent Bernoulli outputs. Training rows are windows of
``seq_len + 1`` steps from random sequences (shorter sequences are padded and masked).
Metric: NLL per time step, summed over the 88 notes (as Boulanger-Lewandowski and Chung);
the higher-is-better score is ``exp(-NLL)`` ([I]). Music checks generalisation; the paper
did not search on it.
"""

from __future__ import annotations

import numpy as np

from cellsearch.errors import DataError
from cellsearch.tasks.base import Batch, Task, TaskSpec
from cellsearch.tasks.data import find_dir

SETS = {"nottingham": "Nottingham.mat", "pianomidi": "Piano_midi.mat"}


def load_mat(path) -> dict[str, list[np.ndarray]]:
    if not path.is_file():
        raise DataError(f"music file {path.name!r} not found in {path.parent}; put the "
                        "Boulanger-Lewandowski .mat files there, or pass --data-dir DIR")
    from scipy.io import loadmat  # scipy takes a moment to import: only for music

    try:
        m = loadmat(str(path))
        out = {s: [np.asarray(q, np.float32) for q in m[f"{s}data"][0]] for s in ("train", "valid", "test")}
    except Exception as e:  # scipy raises many kinds for a bad file
        raise DataError(f"{path} is not a piano-roll .mat file with train/valid/test data: {e}") from None
    if any(q.ndim != 2 or q.shape[1] != 88 for qs in out.values() for q in qs):
        raise DataError(f"{path}: every sequence must be a (T, 88) piano roll")
    return out


class Music(Task):
    def __init__(self, which: str = "nottingham", data_dir=None, seq_len: int = 64, eval_seqs: int = 40):
        self.data = load_mat(find_dir(data_dir, "music") / SETS[which])
        self.eval_seqs = eval_seqs
        self.spec = TaskSpec(which, 88, 88, seq_len, dense_input=True, output="bernoulli", score="exp_neg_nll")

    def _window(self, seq: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = self.spec.seq_len
        w = seq[start:start + t + 1]
        n = len(w) - 1
        x = np.zeros((t, 88), np.float32)
        y = np.zeros((t, 88), np.float32)
        m = np.zeros((t,), np.float32)
        x[:n], y[:n], m[:n] = w[:-1], w[1:], 1.0
        return x, y, m

    def train_batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        seqs = self.data["train"]
        rows = []
        for _ in range(batch_size):
            s = seqs[int(rng.integers(len(seqs)))]
            start = int(rng.integers(0, max(1, len(s) - self.spec.seq_len - 1)))
            rows.append(self._window(s, start))
        x, y, m = (np.stack(a) for a in zip(*rows, strict=True))
        return Batch(x, y, m, np.zeros_like(m))

    def _split(self, split: str) -> list[Batch]:
        rows = []
        for s in self.data[split][: self.eval_seqs]:  # every window of the first sequences
            for start in range(0, max(1, len(s) - 1), self.spec.seq_len):
                rows.append(self._window(s, start))
        out = []
        for k in range(0, len(rows), 32):
            x, y, m = (np.stack(a) for a in zip(*rows[k:k + 32], strict=True))
            out.append(Batch(x, y, m, np.zeros_like(m)))
        return out
