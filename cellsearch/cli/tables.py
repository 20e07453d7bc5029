"""A search store as flat tables, for pandas, DeepCAVE and the like.

``evaluations``: one row per (cell, task, setting) with the cell's id, hash, origin and fate,
every hyperparameter as a column (``hp_*``), every numeric metric (``m_*``), the status, the
score, the times and the step. ``cells``: one row per cell with its lineage, fate, score
(relative to the baseline, :mod:`cellsearch.search.results`), per-task best, and its equations.
Written as CSV (standard library) or Parquet (``pip install 'cellsearch[data]'``: pandas and
pyarrow). This module imports nothing from JAX.
"""

from __future__ import annotations

import csv
import json

from cellsearch.cell.graph import from_json
from cellsearch.cell.render import to_equations
from cellsearch.config import one_of
from cellsearch.errors import ConfigError
from cellsearch.search.results import Scores
from cellsearch.store.sqlite import Store

TABLES = ("evaluations", "cells", "confirmations")
FORMATS = ("csv", "parquet")


def evaluation_rows(store: Store) -> list[dict]:
    cells = {r["hash"]: r for r in store.cells()}
    rows = []
    for e in store.evaluation_rows():
        c = cells.get(e["cell_hash"])
        row = {"cell_id": c["id"] if c else None, "cell_hash": e["cell_hash"], "origin": c["origin"] if c else None,
               "cell_status": c["status"] if c else None, "task": e["task"]}
        row |= {f"hp_{k}": v for k, v in e["hparams"].items()}
        metrics = e["metrics"]
        row |= {f"m_{k}": v for k, v in metrics.items() if isinstance(v, int | float)}
        row |= {"status": e["status"], "score": e["score"], "error": metrics.get("error"), "wall_s": e["wall_s"],
                "compile_s": e["compile_s"], "step": e["step"], "created_at": e["created_at"]}
        rows.append(row)
    return rows


def cell_rows(store: Store) -> list[dict]:

    sc = Scores(store)
    tasks = (sc.config.filter_task, *sc.config.tasks)
    rows = []
    for r in store.cells():
        row = {"id": r["id"], "hash": r["hash"], "parent": r["parent"], "origin": r["origin"], "status": r["status"],
               "step": r["step"], "score": sc.score(r["hash"]), "edits": len(json.loads(r["edits"]))}
        row |= {f"best_{t}": sc.best.get((r["hash"], t)) for t in tasks}
        row |= {f"ratio_{t}": v for t, v in sc.ratios(r["hash"]).items()}
        row["equations"] = "; ".join(to_equations(from_json(r["graph"])))
        rows.append(row)
    return rows


def confirmation_rows(store: Store) -> list[dict]:
    """One row per confirmation run (``cellsearch confirm``): cell, task, seed, its setting
    (``hp_*``), score and status."""

    ids = {r["hash"]: r["id"] for r in store.cells()}
    return [{"cell_id": ids.get(r["cell_hash"]), "cell_hash": r["cell_hash"], "task": r["task"], "seed": r["seed"],
             "steps": r["steps"], **{f"hp_{k}": v for k, v in r["hparams"].items()}, "status": r["status"],
             "score": r["score"], "wall_s": r["wall_s"], "created_at": r["created_at"]} for r in store.confirmations()]


def export_table(db: str, table: str, path: str, fmt: str | None = None) -> int:
    """Writes ``table`` of the store ``db`` to ``path``; returns the number of rows."""
    one_of("table", table, TABLES)
    fmt = fmt or ("parquet" if path.endswith(".parquet") else "csv")
    one_of("format", fmt, FORMATS)
    with Store(db, write=False) as store:
        rows = {"evaluations": evaluation_rows, "cells": cell_rows, "confirmations": confirmation_rows}[table](store)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    try:
        if fmt == "csv":
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                w.writerows(rows)
        else:
            try:
                import pandas as pd
            except ImportError:
                raise ConfigError("--format parquet needs pandas and pyarrow: pip install 'cellsearch[data]'") from None
            pd.DataFrame(rows, columns=columns).to_parquet(path, index=False)
    except OSError as e:
        raise ConfigError(f"cannot write {path!r}: {e.strerror}") from None
    return len(rows)
