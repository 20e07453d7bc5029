"""Several searches side by side (``cellsearch report A.db B.db ...``), as NAS benchmarks
compare strategies: best score so far against wall time and against children evaluated,
one line per search on one chart; each search's funnel with its best confirmed score where
`cellsearch confirm` ran on it; the settings that differ; the best cells of each. One
self-contained page, like the report. Imports nothing from JAX.

Wall time is counted from each store's first step, so searches run at different times share
an axis. Stores whose settings differ only in the seed form a group (named by the settings
that tell the groups apart, usually the strategy). Where a group has several seeds, the chart
draws each seed thinly, the group's mean best-so-far as a thick line and its range across seeds
as a band, as NAS benchmarks plot strategies, and a table gives each group's best at equal
budgets (the fewest children and the shortest wall time of any store) as mean and range
over seeds, so a difference can be judged against the spread between seeds.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter

from cellsearch.cell.graph import from_json
from cellsearch.cell.render import to_equations
from cellsearch.cli.pages import figure, png, write_page
from cellsearch.cli.report import OUTCOMES, StoreData, best_so_far
from cellsearch.errors import ConfigError, StorageError
from cellsearch.search.confirm import confirmed, verified
from cellsearch.search.results import leaderboard
from cellsearch.store.sqlite import Store

MAX_STORES = 12


def _label(db: str, d: StoreData) -> str:
    return f"{os.path.basename(db)} ({d.config.strategy}, seed {d.config.seed})"


def curves(d: StoreData) -> dict[str, list[float]]:
    """A search's best-so-far curve: ``minutes`` since its first step, ``children`` evaluated
    so far, and ``best`` score, at each step that has a best."""
    out: dict[str, list[float]] = {"minutes": [], "children": [], "best": []}
    n = 0
    for s, b in zip(d.steps, best_so_far(d), strict=True):
        if s["kind"] == "child" and s["outcome"] not in ("duplicate", "mutation_failed"):
            n += 1
        if b is not None:
            out["minutes"].append((s["created_at"] - d.t0) / 60)
            out["children"].append(float(n))
            out["best"].append(b)
    return out


def _settings(data: list[StoreData], skip: tuple[str, ...] = ()) -> tuple[list[dict], list[str]]:
    """Each store's settings, flattened (less the keys ``skip``), and the keys whose values differ."""
    ids = [{k: v for k, v in _flat(json.loads(d.config.to_json())).items() if k not in skip} for d in data]
    return ids, sorted(k for k in set().union(*ids) if len({repr(i.get(k)) for i in ids}) > 1)


def groups(data: list[StoreData]) -> dict[str, list[int]]:
    """Indices of ``data`` grouped by settings other than the seed, in first-seen order, each
    group named by the settings that tell the groups apart (``strategy=aging`` is ``aging``)."""
    ids, keys = _settings(data, skip=("seed",))
    out: dict[str, list[int]] = {}
    for n, i in enumerate(ids):
        name = ", ".join(str(i.get(k)) if k == "strategy" else f"{k}={i.get(k)}" for k in keys) or "all"
        out.setdefault(name, []).append(n)
    return out


def at(c: dict[str, list[float]], axis: str, x: float) -> float | None:
    """The best-so-far score of curve ``c`` at ``x`` on ``axis`` (``minutes`` or ``children``)."""
    got = None
    for xi, b in zip(c[axis], c["best"], strict=True):
        if xi > x:
            break
        got = b
    return got


def band(cs: list[dict[str, list[float]]], axis: str, points: int = 200):
    """Mean, min and max best-so-far over the curves ``cs`` on a grid of ``axis`` from where
    every curve has a best to the longest curve's end (a search that has ended keeps its final
    best): (xs, mean, lo, hi)."""
    end = max(c[axis][-1] for c in cs)
    start = max(c[axis][0] for c in cs)
    xs = [start + (end - start) * t / (points - 1) for t in range(points)] if end > start else [start]
    vals = [[at(c, axis, x) for c in cs] for x in xs]
    return (xs, [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals])


def curves_figure(labels: list[str], allc: list[dict[str, list[float]]], grouped: dict[str, list[int]]) -> str:
    """The best-so-far chart of the stores' curves ``allc`` (:func:`curves`), grouped as :func:`groups`."""
    fig, axes = figure(11, 3.8, 2)
    several = any(len(ix) > 1 for ix in grouped.values())
    for g, (name, ix) in enumerate(grouped.items()):
        pairs = [(i, allc[i]) for i in ix if allc[i]["best"]]
        cs = [c for _, c in pairs]
        for ax, x in ((axes[0], "minutes"), (axes[1], "children")):
            for i, c in pairs:
                if several:
                    ax.step(c[x], c["best"], where="post", lw=0.8, alpha=0.35, color=f"C{g}")
                else:
                    ax.step(c[x], c["best"], where="post", lw=1.5, label=labels[i])
            if several and cs:
                xs, mean, lo, hi = band(cs, x)
                ax.plot(xs, mean, lw=2.2, color=f"C{g}", label=f"{name} (mean of {len(cs)})")
                ax.fill_between(xs, lo, hi, color=f"C{g}", alpha=0.15, lw=0)
    for ax, xl, title in ((axes[0], "wall time (minutes)", "Best score against wall time"),
                          (axes[1], "children evaluated", "Best score against children")):
        ax.set_xlabel(xl)
        ax.set_ylabel("best score so far (ratio to the baseline)")
        ax.axhline(1.0, color="#999", lw=0.8, ls="--")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    # the seeding phase (pool seeds before the baseline) can sit far below where strategies differ:
    # the y axis starts at the lowest best once children are evaluated, and says so
    allc = [c for c in allc if c["best"]]
    later = [b for c in allc for n, b in zip(c["children"], c["best"], strict=True) if n >= 1]
    if later and min(b for c in allc for b in c["best"]) < min(later):
        lo, hi = min(later), max(later)
        pad = max(hi - lo, 0.01) * 0.15
        for ax in axes:
            ax.set_ylim(lo - pad, hi + pad)
        axes[0].text(0.01, 0.01, "the seeds' phase is below the chart", transform=axes[0].transAxes,
                     fontsize=7, color="#666", va="bottom")
    axes[1].legend(fontsize=8, loc="lower right")
    return png(fig)


def confirmed_best(d: StoreData) -> tuple[float, str] | None:
    """The best confirmed score in a store and its verdict (``cellsearch confirm``), or None."""
    conf = confirmed(d.store)
    if not conf:
        return None
    best = max(conf.values(), key=lambda c: c["score"])
    return best["score"], best["verdict"]


def _verified(d: StoreData) -> str:
    """``; verified 1.0074 (tie)`` where the store's pick was verified on held-out seeds
    (``cellsearch confirm --verify``), else nothing."""
    v = verified(d.store)
    return f"; verified {v['result']['score']:.4f} ({v['result']['verdict']})" if v and v["result"] else ""


def _funnel_row(label: str, d: StoreData) -> str:
    children = d.children()
    counts = Counter(s["outcome"] for s in children)
    dead = sum(sum(s["detail"].get("probe_rejected", {}).values()) for s in children)
    span = (max(s["created_at"] for s in d.steps) - d.t0) if d.steps else 0.0
    rate = len(children) / span * 3600 if span > 0 else 0.0
    best = max((b for b in best_so_far(d) if b is not None), default=None)
    conf = confirmed_best(d)
    conf_text = "-" if conf is None else f"{conf[0]:.4f} ({conf[1]})" + _verified(d)
    cells = [len(children), *(counts.get(o, 0) for o in OUTCOMES), dead, f"{span / 60:.1f}", f"{rate:.0f}",
             "-" if best is None else f"{best:.4f}", conf_text]
    return f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _across_seeds(data: list[StoreData], allc: list[dict[str, list[float]]], grouped: dict[str, list[int]]) -> str:
    if not all(c["best"] for c in allc):
        return "<p>A store has no best score yet.</p>"
    n_eq = min(c["children"][-1] for c in allc)
    m_eq = min(c["minutes"][-1] for c in allc)

    def stat(vals: list[float | None]) -> str:
        v = [x for x in vals if x is not None]
        if not v:
            return "-"
        return f"{sum(v) / len(v):.4f}" + (f" [{min(v):.4f}, {max(v):.4f}]" if len(v) > 1 else "")

    head = ("<tr><th>group</th><th>seeds</th><th>best at the end</th>"
            f"<th>best after {n_eq:.0f} children</th><th>best after {m_eq:.1f} min</th><th>scored children</th>"
            "<th>minutes</th></tr>")
    rows = []
    for name, ix in grouped.items():
        cs = [allc[i] for i in ix]
        scored = [sum(s["outcome"] == "scored" for s in data[i].children()) for i in ix]
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{', '.join(str(data[i].config.seed) for i in ix)}</td>"
                    f"<td>{stat([c['best'][-1] for c in cs])}</td>"
                    f"<td>{stat([at(c, 'children', n_eq) for c in cs])}</td>"
                    f"<td>{stat([at(c, 'minutes', m_eq) for c in cs])}</td>"
                    f"<td>{sum(scored) / len(scored):.1f}</td>"
                    f"<td>{sum(c['minutes'][-1] for c in cs) / len(cs):.1f}</td></tr>")
    return ("<p>Mean over each group's seeds, with the range [min, max] across them; two groups differ "
            "beyond the noise only where their ranges do not overlap (a search-time best, before "
            "confirmation).</p><table>" + head + "".join(rows) + "</table>")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v
    return out


def _differences(labels: list[str], data: list[StoreData]) -> str:
    ids, keys = _settings(data)
    if not keys:
        return "<p>The searches share every setting (other than where they were stored).</p>"
    head = "<tr><th>search</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>"
    rows = "".join(f"<tr><td>{html.escape(lb)}</td>" + "".join(f"<td>{html.escape(str(i.get(k)))}</td>" for k in keys)
                   + "</tr>" for lb, i in zip(labels, ids, strict=True))
    return f"<table>{head}{rows}</table>"


def _best_cells(label: str, d: StoreData, k: int) -> str:

    rows = leaderboard(d.store, d.config, k)
    if not rows:
        return f"<h3>{html.escape(label)}</h3><p>No scored cell yet.</p>"
    items = "".join(f"<div class='cell'><b>cell {r['id']} <code>{r['hash']}</code> score {r['score']:.4f}</b> "
                    f"({html.escape(r['origin'])})<pre>{html.escape(chr(10).join(to_equations(from_json(d.cells[r['hash']]['graph']))))}</pre></div>"
                    for r in rows)
    return f"<h3>{html.escape(label)}</h3>{items}"


def build_comparison(dbs: list[str], out: str = "compare.html", *, top: int = 3) -> str:
    """Writes the side-by-side page of the stores ``dbs`` (2 to :data:`MAX_STORES`) to ``out``."""
    if len(dbs) < 2:
        raise ConfigError("a comparison needs two or more stores")
    if len(dbs) > MAX_STORES:
        raise ConfigError(f"at most {MAX_STORES} stores on one comparison, got {len(dbs)}")
    if len(set(map(os.path.abspath, dbs))) < len(dbs):
        raise ConfigError("a store is named twice")
    stores = []
    try:
        for db in dbs:
            st = Store(db, write=False)
            stores.append(st)
            if st.meta("config") is None:
                raise StorageError(f"{db!r} holds no search yet (no settings stored)")
        data = [StoreData(st) for st in stores]
        labels = [_label(db, d) for db, d in zip(dbs, data, strict=True)]
        allc, grouped = [curves(d) for d in data], groups(data)
        head = "<tr><th>search</th><th>proposed (duplicates too)</th>" + "".join(f"<th>{o}</th>" for o in OUTCOMES) + \
            "<th>dead at the probe</th><th>minutes</th><th>children per hour</th><th>best score</th>" \
            "<th>best confirmed (verdict)</th></tr>"
        sections = [
            "<h2>Best score so far</h2><img alt='best so far' src='" + curves_figure(labels, allc, grouped) + "'/>",
            *(["<h2>Across seeds</h2>" + _across_seeds(data, allc, grouped)]
              if any(len(ix) > 1 for ix in grouped.values()) else []),
            "<h2>Funnels</h2><table>" + head + "".join(_funnel_row(lb, d) for lb, d in zip(labels, data, strict=True))
            + "</table>",
            "<h2>Settings that differ</h2>" + _differences(labels, data),
            "<h2>Best cells</h2>" + "".join(_best_cells(lb, d, top) for lb, d in zip(labels, data, strict=True)),
        ]
    finally:
        for st in stores:
            st.close()
    return write_page(out, f"cellsearch: {len(dbs)} searches compared", ", ".join(dbs), sections)
