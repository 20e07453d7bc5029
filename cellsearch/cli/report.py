"""``cellsearch report``: one self-contained HTML page about a search, made from its store.

The page opens offline in any browser (figures are PNGs inlined as data URIs, no script, no
server) and can be made while the search runs. Sections:

* **progress**: the best score so far against step and against wall time, every child a
  point coloured by its outcome (children that were not scored sit on a strip at 0);
* **funnel**: children per outcome, children per hour, and where the time went (compiling,
  training, the search itself);
* **tasks**: each scored cell's ratio to the baseline per task (a scatter for two tasks, a
  matrix of scatters for more);
* **leaderboard**: the best cells with their picture, equations, per-task best and ratio, and
  lineage back to the seed with the edits at each step;
* **hyperparameters**: each task's score against every hyperparameter, and their importance
  by fANOVA (Hutter et al. 2014, as Greff et al. 2015 used it; optuna's implementation,
  ``pip install 'cellsearch[report]'``; at most :data:`FANOVA_MAX` evaluations per task);
* **cheap vs full**: Kendall's tau between the hurdle stage (the first task's best) and the
  final score over the scored cells, as NAS-Bench-NLP studies report it.

This module imports nothing from JAX; matplotlib draws the figures.
"""

from __future__ import annotations

import html
import io
import json
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from cellsearch.cell.graph import from_json
from cellsearch.cell.render import to_equations
from cellsearch.cli.confirmations import report_section
from cellsearch.cli.draw import draw
from cellsearch.cli.inspect import lineage
from cellsearch.cli.pages import data_uri as _data_uri
from cellsearch.cli.pages import figure as _figure
from cellsearch.cli.pages import png as _png
from cellsearch.cli.pages import write_page
from cellsearch.errors import StorageError
from cellsearch.search.confirm import confirmed, verified
from cellsearch.search.results import Scores, leaderboard, reference_only, stored_config
from cellsearch.store.sqlite import Store

OUTCOMES = ("duplicate", "filtered", "screened", "hurdle", "diverged", "error", "scored")
COLOURS = {"duplicate": "#b0b0b0", "filtered": "#e6a23c", "screened": "#c9b8e0", "hurdle": "#9b59b6",
           "diverged": "#8b4513", "error": "#d9534f",
           "scored": "#2a7ab9", "seed": "#2e8b57", "mutation_failed": "#dddddd", "dead": "#555555"}


# ----------------------------------------------------------------------------- data


class StoreData:
    """Everything the report reads, in a few queries."""

    def __init__(self, store: Store):
        self.store = store
        self.config = stored_config(store)
        self.scores = Scores(store, self.config)
        self.reference = reference_only(store, self.config)  # the GRU kept as the scale only, if so
        self.cells = {r["hash"]: r for r in store.cells()}
        self.steps = store.steps_rows()
        self.evals = store.evaluation_rows()
        self.t0 = float(store.meta("created_at") or 0.0)
        if self.steps:
            self.t0 = min(self.t0, min(s["created_at"] for s in self.steps))

    def children(self) -> list[dict]:
        """One row per child proposed (duplicates too), at the step where its fate was decided: a
        screened child that a later step promoted takes that step's outcome, time and detail (a
        later duplicate of it stays a duplicate)."""
        last = {s["cell_hash"]: s for s in self.steps if s["kind"] == "promote"}
        out = []
        for s in self.steps:
            if s["kind"] != "child" or s["outcome"] == "mutation_failed":
                continue
            up = last.get(s["cell_hash"]) if s["outcome"] == "screened" else None
            out.append(s | {"proposed": s["step"]} if up is None else
                       up | {"proposed": s["step"], "detail": s["detail"] | up["detail"]})
        return out


# ----------------------------------------------------------------------------- figures


def best_so_far(d: StoreData) -> list[float | None]:
    """The best score of the search's own cells after each finished step (``None`` before any),
    in step order: a baseline kept as the scale only (a search from the tanh RNN) is not one."""
    best, run = [], -math.inf
    for s in d.steps:
        own = s["cell_hash"] and s["cell_hash"] != d.reference and s["outcome"] in ("scored", "seeded")
        sc = d.scores.score(s["cell_hash"]) if own else None
        if sc is not None:
            run = max(run, sc)
        best.append(run if run > -math.inf else None)
    return best


def progress_figure(d: StoreData) -> str:
    fig, axes = _figure(11, 3.6, 2)
    best = best_so_far(d)
    for ax, xkey, label in ((axes[0], "step", "search step"), (axes[1], "created_at", "wall time (minutes)")):
        xs = [s[xkey] if xkey == "step" else (s[xkey] - d.t0) / 60 for s in d.steps]
        pts = [(x, y) for x, y in zip(xs, best, strict=True) if y is not None]
        if pts:
            ax.step(*zip(*pts, strict=True), where="post", color="black", lw=1.5, label="best so far")
        children = d.children()
        cx = [s[xkey] if xkey == "step" else (s[xkey] - d.t0) / 60 for s in children]
        for outcome in OUTCOMES:
            sel = [(x, s) for x, s in zip(cx, children, strict=True) if s["outcome"] == outcome]
            if not sel:
                continue
            ys = [d.scores.score(s["cell_hash"]) or 0.0 if outcome == "scored" else 0.0 for _, s in sel]
            ax.scatter([x for x, _ in sel], ys, s=14, color=COLOURS[outcome], label=f"{outcome} ({len(sel)})",
                       alpha=0.8, zorder=3)
        ax.set_xlabel(label)
        ax.set_ylabel("score (min over tasks of ratio to the baseline)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    axes[0].set_title("Best score against search step")
    axes[1].set_title("Best score against wall time")
    return _png(fig)


def funnel_figure(d: StoreData) -> tuple[str, dict]:
    children = d.children()
    counts = Counter(s["outcome"] for s in children)
    early = Counter(s["outcome"] for s in children if s["detail"].get("stopped_at"))
    dead = sum(sum(s["detail"].get("probe_rejected", {}).values()) for s in children)
    fig, axes = _figure(11, 3.0, 2)
    names = ["dead (probe)", *OUTCOMES]
    values = [dead, *(counts.get(o, 0) for o in OUTCOMES)]
    axes[0].barh(names, values, color=[COLOURS["dead"], *(COLOURS[o] for o in OUTCOMES)])
    for i, (o, v) in enumerate(zip(names, values, strict=True)):
        note = " resampled, never trained" if o == "dead (probe)" else \
            f" ({early[o]} stopped at a rung)" if early.get(o) else ""
        axes[0].text(v, i, f" {v}{note}", va="center", fontsize=9)
    axes[0].set_title("Outcome of every child")
    axes[0].invert_yaxis()
    compile_s = sum(e["compile_s"] for e in d.evals)
    train_s = sum(e["wall_s"] for e in d.evals) - compile_s
    span = (max(s["created_at"] for s in d.steps) - d.t0) if d.steps else 0.0
    other = max(span - compile_s - train_s, 0.0)
    parts = {"compiling": compile_s, "training": max(train_s, 0.0), "search itself": other}
    if sum(parts.values()) > 0:
        axes[1].pie(list(parts.values()), labels=[f"{k}\n{v / 60:.1f} min" for k, v in parts.items()],
                    colors=["#e6a23c", "#2a7ab9", "#b0b0b0"], startangle=90, counterclock=False)
    axes[1].set_title("Where the time went")
    n_children = sum(counts.values())
    stats = {"children": n_children, "span_s": span, "per_hour": n_children / span * 3600 if span > 0 else 0.0,
             **{o: counts.get(o, 0) for o in OUTCOMES}, "dead_at_probe": dead, "stopped_early": sum(early.values())}
    return _png(fig), stats


def tasks_figure(d: StoreData) -> str | None:
    tasks = list(d.config.tasks)
    scored = [h for h, r in d.cells.items() if r["status"] in ("scored", "seed") and d.scores.score(h) is not None]
    if not scored:
        return None
    ratios = {h: d.scores.ratios(h) for h in scored}
    if len(tasks) == 1:
        fig, ax = _figure(5, 3.2)
        ax.hist([ratios[h][tasks[0]] for h in scored], bins=20, color=COLOURS["scored"])
        ax.set_xlabel(f"{tasks[0]}: best / baseline's best")
        ax.set_title("Ratio to the baseline")
        return _png(fig)
    k = len(tasks)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(k - 1, k - 1, figsize=(3.6 * (k - 1) + 1, 3.2 * (k - 1)), squeeze=False)
    for i in range(1, k):
        for j in range(k - 1):
            ax = axes[i - 1][j]
            if j >= i:
                ax.axis("off")
                continue
            xs = [ratios[h][tasks[j]] for h in scored]
            ys = [ratios[h][tasks[i]] for h in scored]
            seeds = [d.cells[h]["status"] == "seed" for h in scored]
            ax.scatter(xs, ys, s=16, c=[COLOURS["seed"] if s else COLOURS["scored"] for s in seeds], alpha=0.8)
            ax.axvline(1, color="grey", lw=0.8, ls="--")
            ax.axhline(1, color="grey", lw=0.8, ls="--")
            ax.set_xlabel(f"{tasks[j]} ratio")
            ax.set_ylabel(f"{tasks[i]} ratio")
            ax.grid(alpha=0.3)
    fig.suptitle("Per-task ratio to the baseline (green: seeds; blue: scored children)")
    fig.tight_layout()
    return _png(fig)


FANOVA_MAX = 1000  # evaluations per task given to fANOVA (a fixed random subsample beyond)
HP_NAMES = ("learning_rate", "init_scale", "max_grad_norm", "layers", "param_budget")


def hparam_figure(d: StoreData) -> str | None:
    tasks = list(d.config.tasks)
    varying = [n for n in HP_NAMES if len({e["hparams"].get(n) for e in d.evals if e["task"] in tasks}) > 1]
    if not varying or not d.evals:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tasks), len(varying), figsize=(3.0 * len(varying) + 1, 2.6 * len(tasks)),
                             squeeze=False)
    for i, t in enumerate(tasks):
        ev = [e for e in d.evals if e["task"] == t and e["status"] != "error"]
        for j, n in enumerate(varying):
            ax = axes[i][j]
            values = sorted({e["hparams"][n] for e in ev})
            groups = [[e["score"] for e in ev if e["hparams"][n] == v] for v in values]
            if any(groups):
                ax.boxplot([g or [math.nan] for g in groups], tick_labels=[f"{v:g}" for v in values])
            ax.set_xlabel(n.replace("_", " "))
            if j == 0:
                ax.set_ylabel(f"{t} score")
            ax.grid(alpha=0.3)
    fig.suptitle("Score against each hyperparameter (every finished setting)")
    fig.tight_layout()
    return _png(fig)


def importances(d: StoreData) -> dict[str, dict[str, float]] | str:
    """fANOVA importance of each hyperparameter per task (optuna), or why not."""
    try:
        import optuna
        from optuna.distributions import CategoricalDistribution
    except ImportError:
        return "install the report extra (pip install 'cellsearch[report]': optuna, scikit-learn) for fANOVA"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    for t in d.config.tasks:
        ev = [e for e in d.evals if e["task"] == t and e["status"] != "error"]
        if len(ev) > FANOVA_MAX:  # a fixed subsample keeps a huge store's report fast

            ev = [ev[i] for i in sorted(np.random.default_rng(0).choice(len(ev), FANOVA_MAX, replace=False))]
        names = [n for n in HP_NAMES if len({e["hparams"][n] for e in ev}) > 1]
        if len(ev) < 10 or not names:
            continue
        dists = {n: CategoricalDistribution(sorted({e["hparams"][n] for e in ev})) for n in names}
        study = optuna.create_study(direction="maximize")
        study.add_trials([optuna.trial.create_trial(params={n: e["hparams"][n] for n in names}, distributions=dists,
                                                    value=float(e["score"])) for e in ev])
        try:
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0))
        except (ImportError, RuntimeError, ValueError) as e:
            return f"fANOVA failed: {e}"
        out[t] = dict(imp)
    return out


def kendall(d: StoreData) -> tuple[float, float, int] | None:
    """Kendall's tau (and p-value) between the first task's best and the final score."""
    from scipy.stats import kendalltau

    first = d.config.tasks[0]
    pairs = [(d.scores.best.get((h, first)), d.scores.score(h)) for h, r in d.cells.items()
             if r["status"] in ("scored", "seed")]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if len(pairs) < 3:
        return None
    tau, p = kendalltau([a for a, _ in pairs], [b for _, b in pairs])
    return (float(tau), float(p), len(pairs)) if math.isfinite(tau) else None


# ----------------------------------------------------------------------------- page


def _leaderboard_html(d: StoreData, k: int) -> str:

    rows = leaderboard(d.store, d.config, k)
    if not rows:
        return "<p>No cell has a score on every task yet.</p>"
    out = []
    for rank, r in enumerate(rows, 1):
        g = from_json(d.cells[r["hash"]]["graph"])
        if r["origin"] == "mutation":
            g.graph["name"] = f"cell {r['id']}"
        pic = _cell_picture(g)
        per = "".join(f"<tr><td>{html.escape(t)}</td><td>{_f(r['tasks'][t])}</td><td>{_f(r['ratios'][t])}</td></tr>"
                      for t in d.config.tasks)
        chain = []
        for c in lineage(d.store, d.cells[r["hash"]]):
            edits = json.loads(c["edits"])
            ed = "; ".join(f"{e['name']} at {e['node']}: {e['detail']}" for e in edits)
            chain.append(f"<li><code>{c['id']}</code> {html.escape(c['origin'])}"
                         + (f" <span class='edits'>{html.escape(ed)}</span>" if ed else "") + "</li>")
        out.append(f"""<div class="cell"><h3>#{rank}: cell {r['id']} <code>{r['hash']}</code> score {r['score']:.4f}
{' (in the pool)' if r['in_pool'] else ''}</h3>
<div class="row"><img class="pic" alt="cell {r['id']}" src="{pic}"/>
<div><pre>{html.escape(chr(10).join(to_equations(g)))}</pre>
<table><tr><th>task</th><th>best</th><th>/ baseline</th></tr>{per}</table>
<p>Lineage (newest first):</p><ol class="lineage">{''.join(chain)}</ol></div></div></div>""")
    return "\n".join(out)


def _cell_picture(g) -> str:

    buf = io.BytesIO()
    draw(g, buf, fmt="png", dpi=80)
    return _data_uri(buf.getvalue())


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _analysis_html(d: StoreData, k: int) -> str:
    """Gate saturation of the ``k`` best cells, each trained here on the first task."""
    from cellsearch.nn.analyze import analyze  # trains: JAX only when asked for

    task = d.config.tasks[0]
    out = [f"<p>Each cell trained here on {html.escape(task)} (one setting, 1,000 steps), then run on its "
           "validation data. Karpathy et al. 2015: per unit, the fraction of steps a gate is below 0.1 against the "
           "fraction above 0.9.</p>"]
    for r in leaderboard(d.store, d.config, k):
        with tempfile.TemporaryDirectory() as tmp:
            summary = analyze(from_json(d.cells[r["hash"]]["graph"]), task, tmp,
                              data_dir=d.config.data_dir, budget=d.config.budgets.get(task, (None,))[0])
            pics = [Path(tmp) / f for f in ("saturation.png", "activations.png")]
            imgs = "".join(f"<img alt='{p.stem}' src='{_data_uri(p.read_bytes())}'/>" for p in pics if p.exists())
        gates = ", ".join(summary["gates"]) or "none"
        out.append(f"<h3>cell {r['id']} <code>{r['hash']}</code> (gates: {html.escape(gates)})</h3>{imgs}")
    return "\n".join(out)


def build_report(db: str, out: str = "report.html", *, top: int = 10, analyze: int = 0,
                 refresh: int | None = None) -> str:
    """Writes the report of the store ``db`` to ``out`` and returns its path; ``analyze`` K
    adds the gate saturation of the K best cells (trains each: needs JAX, takes minutes);
    ``refresh`` N makes the page reload itself every N seconds (``report --watch``). The
    file is replaced atomically, so a browser never reads half a page."""
    t0 = time.perf_counter()
    with Store(db, write=False) as store:
        if store.meta("config") is None:
            raise StorageError(f"{db!r} holds no search yet (no settings stored); run `cellsearch search --db {db}`")
        d = StoreData(store)
        cfg = d.config
        funnel_png, stats = funnel_figure(d) if d.steps else (None, {"children": 0, "per_hour": 0.0})
        sections = [f"<h2>Progress</h2><img alt='progress' src='{progress_figure(d)}'/>" if d.steps else
                    "<h2>Progress</h2><p>No finished step yet.</p>"]
        kpis = (f"<span class='kpi'><b>{stats['children']}</b> children</span>"
                f"<span class='kpi'><b>{stats.get('scored', 0)}</b> scored</span>"
                f"<span class='kpi'><b>{stats['per_hour']:.0f}</b> children per hour</span>"
                f"<span class='kpi'><b>{stats.get('dead_at_probe', 0)}</b> dead at the probe (never trained)</span>"
                f"<span class='kpi'><b>{stats.get('stopped_early', 0)}</b> stopped at a rung</span>")
        sections.append("<h2>Funnel and time</h2>" + kpis + (f"<img alt='funnel' src='{funnel_png}'/>" if funnel_png
                                                             else ""))
        tf = tasks_figure(d)
        sections.append("<h2>Tasks: ratio to the baseline</h2>" + (f"<img alt='tasks' src='{tf}'/>" if tf else
                                                                    "<p>No scored cell yet.</p>"))
        sections.append(f"<h2>Leaderboard</h2>{_leaderboard_html(d, top)}")
        hf = hparam_figure(d)
        imp = importances(d)
        if isinstance(imp, str):
            imp_html = f"<p>{html.escape(imp)}</p>"
        elif imp:
            names = sorted({n for v in imp.values() for n in v})
            imp_html = ("<p>fANOVA importance (share of the score's variance):</p><table><tr><th>task</th>"
                        + "".join(f"<th>{n}</th>" for n in names) + "</tr>"
                        + "".join(f"<tr><td>{t}</td>" + "".join(f"<td>{v.get(n, 0):.2f}</td>" for n in names) + "</tr>"
                                  for t, v in imp.items()) + "</table>")
        else:
            imp_html = "<p>Too few evaluations for fANOVA (10 per task needed).</p>"
        sections.append("<h2>Hyperparameters</h2>" + (f"<img alt='hyperparameters' src='{hf}'/>" if hf else
                                                       "<p>No hyperparameter varied yet.</p>") + imp_html)
        kt = kendall(d)
        sections.append("<h2>Cheap vs full</h2>" + (
            f"<p>Kendall's tau between the hurdle stage ({html.escape(cfg.tasks[0])} best) and the final score: "
            f"<b>{kt[0]:.3f}</b> (p = {kt[1]:.2g}) over {kt[2]} scored cells.</p>" if kt else
            "<p>Fewer than 3 scored cells.</p>"))

        conf = report_section(confirmed(store), cfg.tasks, {h: r["id"] for h, r in d.cells.items()},
                              d.scores.baseline_name, verified(store))
        if conf:
            sections.insert(4, conf)  # after the leaderboard
        if analyze:
            sections.append(f"<h2>Inside the best cells</h2>{_analysis_html(d, analyze)}")
    title = f"cellsearch report: {db}"
    meta = (f"space {cfg.space}, tasks {', '.join(cfg.tasks)}, strategy {cfg.strategy}, seed {cfg.seed}; "
            f"made {time.strftime('%Y-%m-%d %H:%M')} in {time.perf_counter() - t0:.1f} s")
    if refresh:
        meta += f"; live: the search is running, this page reloads every {refresh} s"
    return write_page(out, title, meta, sections, refresh)
