"""Training state that a later run continues: what a run keeps of each setting, and its bytes.

A screen rung trains a child's settings for a share of a task's steps. When the child is
promoted, the next stage continues those settings from where the rung stopped instead of training
them again from scratch (``SearchConfig.continue_rungs``, :mod:`cellsearch.search.ladder`). A
setting's state is its parameters, its bookkeeping (learning rate, best validation point and
curve, status), the steps done and the position of the training data stream. Continued under the
same schedule with more steps, in a program of the same member count, a setting ends exactly where
one run of the full steps ends, bit for bit (``tests/nn/test_resume.py``).

States travel as bytes (NumPy's ``.npz`` with a JSON header), so the store keeps them without
reading them and a job carries them to any worker. This module imports nothing from JAX.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from typing import Any

import numpy as np

from cellsearch.config import TrainConfig
from cellsearch.errors import ConfigError

# What a continued run must share with the run that made the state: everything that decides the
# training of a step and where validation points fall; the steps, the member count, the rungs and
# the bar may differ (a rung trains fewer steps, without the stage's bar).
MUST_MATCH = ("batch_size", "schedule", "steps_per_epoch", "patience", "decay_epochs", "eval_every", "chunk",
              "diverge_factor", "unroll", "data_seed", "eval_split", "after_divergence", "dtype")


def encode(leaves: list[np.ndarray], member: dict, done: int, data: dict, train: TrainConfig) -> bytes:
    """One setting's state as bytes: its parameters' leaves (in the tree's flattening order), its
    bookkeeping ``member``, the steps ``done``, the data stream's ``data`` (a NumPy bit
    generator's state) and the schedule ``train`` it was trained under."""
    header = {"member": member, "done": int(done), "data": data, "train": asdict(train), "leaves": len(leaves)}
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
             **{f"leaf{i}": np.asarray(a) for i, a in enumerate(leaves)})
    return buf.getvalue()


def decode(blob: bytes) -> dict[str, Any]:
    """The state :func:`encode` wrote: ``{"leaves", "member", "done", "data", "train"}``."""
    with np.load(io.BytesIO(blob)) as z:
        header = json.loads(z["header"].tobytes().decode())
        header["leaves"] = [z[f"leaf{i}"] for i in range(header["leaves"])]
    return header


def check(state: dict, cfg: TrainConfig) -> None:
    """Raises :class:`~cellsearch.errors.ConfigError` unless a run under ``cfg`` can continue
    ``state``: the same schedule in every field of :data:`MUST_MATCH`, and no fewer steps than
    were done."""
    made = state["train"]
    for name in MUST_MATCH:
        if made.get(name) != getattr(cfg, name):
            raise ConfigError(f"cannot continue a training state made with {name}={made.get(name)!r} under "
                              f"{name}={getattr(cfg, name)!r}: a continued run must train as the run that made it")
    if state["done"] > cfg.steps:
        raise ConfigError(f"cannot continue a training state at {state['done']} steps to {cfg.steps} steps")


def group_key(state: dict) -> str:
    """Settings whose states share this key were trained together (the same steps done and the
    same data stream), so they continue together in one program."""
    return json.dumps([state["done"], state["data"]], sort_keys=True)
