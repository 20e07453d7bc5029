"""Looking at a discovered cell: its equations, fate, metrics, confirmation and lineage in a
store (``cellsearch show``), its picture, and writing it out (``cellsearch export``).

This module imports nothing from JAX.
"""

from __future__ import annotations

import json

from cellsearch.cell.graph import from_json, to_json
from cellsearch.cell.render import to_dot, to_equations
from cellsearch.cli.confirmations import verification_text
from cellsearch.cli.draw import render_image
from cellsearch.hparams import setting_text
from cellsearch.search.confirm import confirmed, verified
from cellsearch.search.results import Scores, find_cell
from cellsearch.store.sqlite import Store


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
    row = find_cell(store, ref)
    scores = Scores(store)
    cfg = scores.config
    g = from_json(row["graph"])
    score = scores.score(row["hash"])
    baseline = scores.baseline_name
    scale = f"{baseline}'s best" + (" on as many settings" if cfg.reference == "matched" else "")
    lines = [f"# cell {row['id']} ({row['hash']}): {row['origin']}, status {row['status']}"
             + (f", score {score:.4f} (min over tasks of best / {scale})" if score is not None else "")]
    history = [s for s in store.steps_of(row["hash"]) if s["kind"] in ("child", "promote")]
    for s in history:  # the cheap-first ladder: where it stood at each rung
        d = s["detail"]
        if s["outcome"] == "screened":
            when = f"at step {s['step']}" if cfg.population == 1 else f"when step {s['step']}'s round began"
            lines.append(f"# rung {d['rung']}: rung score {d['rung_score']:.4f}, rank {d['rank']} of {d['of']} children "
                         f"there {when}" + (" (promoted later)" if s is not history[-1] else
                                            "; not (yet) among the best to earn the next rung"))
    step = history[-1] if history else store.step_of(row["hash"])
    detail = step["detail"] if step is not None else {}
    if row["status"] in ("error", "diverged") and detail.get("error"):
        lines.append(f"# {row['status']} in stage {detail.get('stage')}: {detail['error']}")
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
    conf = confirmed(store).get(row["hash"])
    if conf:
        per = "; ".join(f"{t} {p['mean']:.4f} [{p['lo']:.4f}, {p['hi']:.4f}] {p['verdict']}"
                        for t, p in conf["tasks"].items())
        lines.append(f"# confirmed: {conf['score']:.4f}, {conf['verdict']} against {baseline} "
                     f"({next(iter(conf['tasks'].values()))['pairs']} paired seeds, 95 % intervals: {per})")
    check = verified(store)
    if check and check["cell"] == row["hash"]:
        lines.append("# " + verification_text(check))
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
            text += f"  [{setting_text(best['hparams'])}]"
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
    """Writes the cell as a JSON file that :func:`cellsearch.cell.graph.load` and the flax modules read."""
    with Store(db, write=False) as store:
        row = find_cell(store, ref)
        g = from_json(row["graph"])
        g.graph["name"] = f"cell-{row['hash'][:8]}"
        with open(path, "w") as f:
            f.write(to_json(g) + "\n")
    return path
