"""Looking at discovered cells: lineage, metrics and pictures of a cell in a search store.

This module imports nothing from JAX.
"""

from __future__ import annotations

import json
import os

from cellsearch.errors import CellSearchError, StorageError
from cellsearch.graph import from_json, to_json
from cellsearch.results import Scores
from cellsearch.spaces import load_space
from cellsearch.storage import Store


def find_cell(store: Store, ref: str):
    row = store.cell(ref)
    if row is None:
        raise StorageError(f"no cell with id or hash {ref!r} in {store.path!r}; `cellsearch top` lists them")
    return row


def lineage(store: Store, row) -> list:
    """The chain from ``row`` back to its seed: ``[row, parent, grandparent, ..., seed]``."""
    chain, seen = [row], {row["hash"]}
    while chain[-1]["parent"]:
        parent = store.cell(chain[-1]["parent"])
        if parent is None or parent["hash"] in seen:
            break
        chain.append(parent)
        seen.add(parent["hash"])
    return chain


def describe(store: Store, ref: str) -> str:
    """Equations, score, per-task metrics and lineage of one cell, as text."""
    from cellsearch.render import to_equations

    row = find_cell(store, ref)
    scores = Scores(store)
    cfg = scores.config
    g = from_json(row["graph"])
    score = scores.score(row["hash"])
    baseline = load_space(cfg.space).baseline
    lines = [f"# cell {row['id']} ({row['hash']}): {row['origin']}, status {row['status']}"
             + (f", score {score:.4f} (min over tasks of best / {baseline}'s best)" if score is not None else "")]
    step = store.step_of(row["hash"])
    detail = step["detail"] if step is not None else {}
    if row["status"] == "error" and detail.get("error"):
        lines.append(f"# error in stage {detail.get('stage')}: {detail['error']}")
    if detail.get("stopped_at"):
        stage = detail.get("stopped_task") or (cfg.filter_task if step["outcome"] == "filtered" else cfg.tasks[0])
        lines.append(f"# {step['outcome']}: stopped at the rung after {detail['stopped_at']} steps of {stage} "
                     "(successive halving: its settings could not reach the stage's bar"
                     + (", the pool's floor)" if step["outcome"] == "scored" else ")"))
    if detail.get("grid_used_up"):
        lines.append(f"# its hyperparameter grid had fewer new settings than asked on {', '.join(detail['grid_used_up'])}"
                     " (a small grid: widen it with --set hparams.learning_rate=...)")
    if detail.get("probe_rejected"):
        dead = detail["probe_rejected"]
        lines.append(f"# proposed after {sum(dead.values())} dead sibling(s) failed the liveness probe ("
                     + ", ".join(f"{n} {why}" for why, n in sorted(dead.items())) + ") and were resampled")
    from cellsearch.confirm import summary
    from cellsearch.results import baseline_hash

    conf = summary(store, baseline_hash(cfg), cfg.tasks).get(row["hash"])
    if conf:
        per = "; ".join(f"{t} {p['mean']:.4f} [{p['lo']:.4f}, {p['hi']:.4f}] {p['verdict']}"
                        for t, p in conf["tasks"].items())
        lines.append(f"# confirmed: {conf['score']:.4f}, {conf['verdict']} against {baseline} "
                     f"({next(iter(conf['tasks'].values()))['pairs']} paired seeds, 95 % intervals: {per})")
    lines += to_equations(g)
    lines.append("")
    lines.append("# metrics (best setting per task)")
    for task in (cfg.filter_task, *cfg.tasks):
        ev = store.evaluations(row["hash"], task)
        if not ev:
            continue
        ok = [e for e in ev if e["status"] == "ok"]
        best = max(ok, key=lambda e: e["score"]) if ok else None
        n_bad = len(ev) - len(ok)
        base = store.best(scores.baseline, task)
        text = f"{task:<11} best {best['score']:.4f}" if best else f"{task:<11} no finished setting"
        if best and base:
            text += f" ({best['score'] / max(base, 1e-12):.3f} x baseline)"
        if best:
            extra = {k: v for k, v in best["metrics"].items() if k in ("accuracy", "closing_accuracy", "perplexity", "nll")}
            text += " " + " ".join(f"{k}={v:.4f}" for k, v in extra.items())
            h = best["hparams"]
            text += f"  [lr={h['learning_rate']:g} init={h['init_scale']:g} clip={h['max_grad_norm']:g} L={h['layers']}]"
        text += f"; {len(ev)} settings" + (f", {n_bad} diverged/crashed" if n_bad else "")
        lines.append(text)
    lines.append("")
    lines.append("# lineage (newest first)")
    for r in lineage(store, row):
        edits = json.loads(r["edits"])
        lines.append(f"{r['id']:>5} {r['hash']} {r['origin']}" + (f": {len(edits)} edit(s)" if edits else ""))
        for e in edits:
            lines.append(f"        {e['name']} at {e['node']}: {e['detail']}")
    return "\n".join(lines)


def show_candidate(db: str, ref: str, fmt: str = "text", out: str | None = None) -> str:
    from cellsearch.draw import render_image
    from cellsearch.render import to_dot

    with Store(db, write=False) as store:
        if fmt == "text":
            text = describe(store, ref)
        else:
            row = find_cell(store, ref)
            g = from_json(row["graph"])
            if fmt == "dot":
                text = to_dot(g)
            elif fmt == "json":
                text = to_json(g)
            else:
                path = out or f"cell-{row['hash'][:8]}.{fmt}"
                render_image(g, path)
                return f"wrote {path}"
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
        return f"wrote {out}"
    return text


def export_cell(db: str, ref: str, path: str) -> str:
    """Writes the cell as a JSON file that :func:`cellsearch.graph.load` and the flax modules read."""
    with Store(db, write=False) as store:
        row = find_cell(store, ref)
        g = from_json(row["graph"])
        g.graph["name"] = f"cell-{row['hash'][:8]}"
        with open(path, "w") as f:
            f.write(to_json(g) + "\n")
    return path


def cell_by_name(name: str, db: str | None):
    """A seed name, a cell JSON file, or a cell id/hash in the store."""
    from cellsearch.spaces import resolve_cell

    try:
        return resolve_cell(name)
    except CellSearchError:
        from cellsearch.config import DEFAULT_DB

        db = db or DEFAULT_DB
        if not os.path.exists(db):
            raise
        with Store(db, write=False) as store:
            return from_json(find_cell(store, name)["graph"])
