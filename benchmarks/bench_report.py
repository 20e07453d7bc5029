"""Seconds to render ``cellsearch report`` from a large synthetic store (``--cells`` cells).

The store is written through the real :class:`cellsearch.store.sqlite.Store` API: the seeds with
their evaluations, then children with random outcomes (filtered, hurdle, scored, duplicate,
error), each with the evaluations its stage would have, on the search's hyperparameter grid.

    python bench_report.py --cells 5000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict

import numpy as np

from common import device


def synthetic_store(path: str, n: int, seed: int = 0) -> None:
    from cellsearch.cell.canon import structural_hash
    from cellsearch.cell.graph import to_json
    from cellsearch.evolve.mutate import mutate
    from cellsearch.evolve.spaces import load_space
    from cellsearch.hparams import seeded
    from cellsearch.search.config import quick_config
    from cellsearch.store.sqlite import Store

    rng = np.random.default_rng(seed)
    cfg = quick_config()
    space = load_space(cfg.space)
    seeds = {name: space.seed(name) for name in ("LSTM", "GRU")}
    graphs = [mutate(seeds[("LSTM", "GRU")[k % 2]], rng=rng, space=space, max_rate=0.3)[0] for k in range(40)]
    t0 = time.time() - 3600

    def result(task, quality):
        (h,) = cfg.hparam_space(task).sample(rng, 1)
        h = seeded(h, int(rng.integers(1 << 30)))
        score = float(np.clip(quality + 0.05 * rng.normal(), 0, 1))
        return {"hparams": asdict(h), "hp_key": h.key(), "status": "ok", "score": score, "metrics": {"score": score},
                "wall_s": 1.0, "compile_s": 0.3}

    with Store(path) as st:
        st.set_meta("config", cfg.to_json())
        for k, (name, g) in enumerate(seeds.items()):
            h = structural_hash(g)
            st.add_cell(h, to_json(g, None), functional_hash=h, parent=None, edits=[], origin=f"seed:{name}",
                        status="seed", step=k)
            for t in cfg.tasks:
                st.add_evaluations(h, t, [result(t, 0.5) for _ in range(8)], k)
            st.finish_step(k, "seed", h, "seeded", {}, ("seed", None), [h])
        for k in range(2, n + 2):
            g = graphs[k % len(graphs)]
            h = f"{k:016x}"
            outcome = rng.choice(["filtered", "hurdle", "scored", "duplicate", "error"], p=[0.6, 0.1, 0.2, 0.07, 0.03])
            st.add_cell(h, to_json(g, None), functional_hash=h, parent=structural_hash(seeds["GRU"]),
                        edits=[{"name": "replace_activation", "node": "u", "detail": "tanh -> relu"}],
                        origin="mutation", status=str(outcome), step=k)
            tasks = {"filtered": ["memorize"], "hurdle": ["memorize", "arithmetic"], "error": ["memorize"],
                     "scored": ["memorize", *cfg.tasks], "duplicate": []}[str(outcome)]
            for t in tasks:
                st.add_evaluations(h, t, [result(t, 0.45 + 0.1 * rng.uniform()) for _ in range(2)], k)
            st.finish_step(k, "child", h, str(outcome), {}, (str(outcome), None))
            st.conn.execute("UPDATE steps SET created_at=? WHERE step=?", (t0 + k * 3600 / n, k))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=5000)
    args = ap.parse_args()
    from cellsearch.cli.report import build_report

    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "s.db")
        t = time.perf_counter()
        synthetic_store(db, args.cells)
        made = time.perf_counter() - t
        t = time.perf_counter()
        build_report(db, os.path.join(d, "r.html"))
        wall = time.perf_counter() - t
        size = os.path.getsize(os.path.join(d, "r.html"))
    print(json.dumps({"device": device(), "cells": args.cells, "store_s": round(made, 1), "report_s": round(wall, 2),
                      "html_bytes": size}))


if __name__ == "__main__":
    main()
