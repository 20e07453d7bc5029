"""Saved runs on disk: a trained cell's folder (``cell.json``, ``params.msgpack``, ``run.json``).

Two writers share one format: the standard protocol (:func:`cellsearch.nn.protocol.run_protocol`
with ``save_dir``) writes the best and the last parameters and its :class:`RunState` after every
epoch, so a killed run resumes there; the search's trainer (``train --save``, ``confirm --save``)
writes a run's final parameters, setting and result (:func:`save_trained`). :func:`load_run`
reads either (``GraphCell.from_saved`` and ``cellsearch analyze --params`` use it). Every file is
written to a temporary name and renamed, so a kill never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

import jax
import numpy as np
from flax import serialization

from cellsearch.cell.graph import CellGraph, from_json, to_json
from cellsearch.config import ProtocolConfig
from cellsearch.errors import ConfigError, DataError


@dataclass
class RunState:
    """What a protocol run has done; saved after every epoch so a killed run resumes there."""

    epoch: int = 0
    lr: float = 0.0
    best_valid: float = math.inf
    since_best: int = 0
    decay_left: int = -1
    history: list[dict] = field(default_factory=list)
    done: bool = False


def tree_to_bytes(tree) -> bytes:
    return serialization.msgpack_serialize(jax.tree.map(np.asarray, tree))


def bytes_to_tree(blob: bytes):
    """A parameter tree from :func:`tree_to_bytes`, its ``layers`` a list again (msgpack keeps
    lists as dicts keyed '0', '1', ...)."""
    tree = serialization.msgpack_restore(blob)
    if isinstance(tree.get("layers"), dict):
        tree = {**tree, "layers": [tree["layers"][k] for k in sorted(tree["layers"], key=int)]}
    return tree


def write_files(d: str, files: dict[str, bytes]) -> None:
    """Writes ``files`` (name -> bytes) into ``d``, each to a temporary name, then renamed."""
    os.makedirs(d, exist_ok=True)
    for name, blob in files.items():
        tmp = os.path.join(d, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, os.path.join(d, name))


def save_protocol_run(d: str, graph: CellGraph, task: str, cfg: ProtocolConfig, state: RunState, params, best,
                      result: dict | None = None) -> None:
    """A protocol run after an epoch: the cell, the best and the last parameters, its state."""
    write_files(d, {"cell.json": to_json(graph).encode() + b"\n", "params.msgpack": tree_to_bytes(best),
                    "last.msgpack": tree_to_bytes(params),
                    "run.json": json.dumps({"task": task, "config": asdict(cfg), "state": asdict(state),
                                            "result": result}, indent=1).encode()})


def resume_protocol_run(d: str, graph: CellGraph, task: str, cfg: ProtocolConfig):
    """``(state, last params, best params)`` of the run saved in ``d`` (as NumPy trees), or
    ``None`` if ``d`` holds none; a run of another cell, task or settings is refused."""
    if not os.path.exists(os.path.join(d, "run.json")):
        return None
    saved = load_run(d)
    if saved.config != cfg or saved.task != task or to_json(saved.graph) != to_json(graph):
        raise ConfigError(f"{d!r} holds a run with another cell, task or settings; pass another --save folder")
    with open(os.path.join(d, "last.msgpack"), "rb") as f:
        last = bytes_to_tree(f.read())
    return saved.state, last, saved.params


def save_trained(d: str, graph: CellGraph, task: str, result, train: dict) -> None:
    """Saves a run of the search's trainer (``train --save`` on any task, confirmation runs): cell,
    final parameters (``keep_params``), setting, schedule and result, as :func:`load_run` reads."""
    meta = {"kind": "settings", "task": task, "hidden": int(result.metrics["hidden"]), "hparams": asdict(result.hparams),
            "train": train, "result": {"status": result.status, "score": result.score,
                                       "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}}}
    write_files(d, {"cell.json": to_json(graph).encode() + b"\n", "params.msgpack": tree_to_bytes(result.params),
                    "run.json": json.dumps(meta, indent=1).encode()})


@dataclass
class SavedRun:
    """A saved run: the cell, its parameters (``{"embed", "layers": [cell params per layer],
    "out"}``), its hidden size, task and result; ``config`` and ``state`` for a run of the
    standard protocol, ``settings`` (the setting and schedule) for a run of the search's trainer."""

    graph: CellGraph
    params: dict
    config: ProtocolConfig | None
    task: str
    state: RunState | None
    result: dict | None
    hidden: int = 0
    settings: dict | None = None

    def cell_params(self, layer: int = 0) -> dict:
        """One layer's cell parameters, in :func:`cellsearch.nn.compile.compile_cell`'s layout."""
        return self.params["layers"][layer]


def load_run(d: str) -> SavedRun:
    """Reads a run saved with ``cellsearch train ... --save DIR`` (or ``confirm --save``)."""
    try:
        with open(os.path.join(d, "run.json")) as f:
            meta = json.load(f)
        with open(os.path.join(d, "cell.json")) as f:
            graph = from_json(f.read())
        with open(os.path.join(d, "params.msgpack"), "rb") as f:
            params = bytes_to_tree(f.read())
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{d!r} is not a saved cellsearch run (cell.json, params.msgpack, run.json): {e}") from None
    if meta.get("kind") == "settings":
        return SavedRun(graph, params, None, meta["task"], None, meta.get("result"), int(meta["hidden"]),
                        {"hparams": meta["hparams"], "train": meta["train"]})
    cfg = ProtocolConfig(**meta["config"])
    return SavedRun(graph, params, cfg, meta["task"], RunState(**meta["state"]), meta.get("result"), cfg.hidden)
