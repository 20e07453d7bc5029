"""Confirmation runs shown to a person: the table ``cellsearch confirm`` prints, the winner's
curse line, and the report's section with each cell's interval per task.
"""

from __future__ import annotations

import html

from cellsearch.cli.pages import figure, png
from cellsearch.hparams import setting_text


def print_summary(conf: dict[str, dict], searched: dict[str, float | None] | None = None) -> None:
    """The confirmation table: per cell, each task's mean ratio with its 95 % interval and
    verdict, then the confirmed score and the verdict over tasks; with ``searched`` (each
    cell's search-time score) the search-time score beside it and :func:`winners_curse`."""
    searched = searched or {}
    for cell, c in sorted(conf.items(), key=lambda kv: -kv[1]["score"]):
        was = f"search-time {searched[cell]:.4f}, " if searched.get(cell) is not None else ""
        print(f"{cell}: {was}confirmed {c['score']:.4f}, {c['verdict']} ({c['steps']} steps per run): {_per_task(c)}")
    if searched:
        print(winners_curse(conf, searched))


def _per_task(c: dict) -> str:
    """Each task's mean ratio, interval, verdict and pairs, ``; ``-separated."""
    return "; ".join(f"{t} {p['mean']:.4f} [{p['lo']:.4f}, {p['hi']:.4f}] {p['verdict']} ({p['pairs']} pairs"
                     + (f", {p['left_out']} left out" if p["left_out"] else "")
                     + _failed_note(p) + _setting_note(p) + ")"
                     for t, p in c["tasks"].items())


def verification_text(v: dict | None) -> str:
    """One line on a store's verification (:func:`cellsearch.search.confirm.verified`), or nothing.

    >>> verification_text({"cell": "ab12", "among": ["ab12", "cd34"], "selected_on": 10, "seeds": 10,
    ...                    "result": None})
    'verified: ab12, the best confirmed of 2 cells on 10 seeds: no held-out pair on every task yet (10 seeds asked)'
    """
    if not v:
        return ""
    head = f"verified: {v['cell']}, the best confirmed of {len(v['among'])} cells on {v['selected_on']} seeds"
    r = v["result"]
    if r is None:
        return f"{head}: no held-out pair on every task yet ({v['seeds']} seeds asked)"
    return (f"{head}, re-trained on {v['seeds']} held-out seeds at the settings its confirmation chose: "
            f"{r['score']:.4f}, {r['verdict']}: {_per_task(r)}")


def winners_curse(conf: dict[str, dict], searched: dict[str, float | None]) -> str:
    """One line: how far the confirmed scores fell below the search-time scores (a search's best
    of a few noisy settings is biased upward) and how many cells stay at or above the baseline.

    >>> conf = {"a": {"score": 1.01, "verdict": "better"}, "b": {"score": 0.99, "verdict": "tie"}}
    >>> winners_curse(conf, {"a": 1.04, "b": 1.02})
    "winner's curse: the 2 cells' scores moved by -0.030 on average (-0.030 to -0.030) from search to confirmation; 1 of 2 stay at or above the baseline (confirmed score >= 1), 1 better beyond the seed noise"
    """
    gaps = [conf[c]["score"] - searched[c] for c in conf if searched.get(c) is not None]
    if not gaps:
        return "winner's curse: no search-time score to compare with"
    above = sum(v["score"] >= 1.0 for v in conf.values())
    better = sum(v["verdict"] == "better" for v in conf.values())
    return (f"winner's curse: the {len(gaps)} cells' scores moved by {sum(gaps) / len(gaps):+.3f} on average "
            f"({min(gaps):+.3f} to {max(gaps):+.3f}) from search to confirmation; {above} of {len(conf)} stay at or "
            f"above the baseline (confirmed score >= 1), {better} better beyond the seed noise")


def _failed_note(p: dict) -> str:
    """``, failed on 2 of 5 seeds`` for a task on which the cell diverged or crashed, else nothing."""
    return f", failed on {p['failed']} of {p['pairs']} seeds" if p.get("failed") else ""


def _setting_note(p: dict) -> str:
    """``, at lr=1 init=2 clip=5 L=1: the best of 2 settings`` for a task confirmed at several
    settings (the one it was judged at), else nothing.

    >>> _setting_note({"settings": 2, "setting": {"learning_rate": 1.0, "init_scale": 2.0, "max_grad_norm": 5.0,
    ...                                           "layers": 1}})
    ', at lr=1 init=2 clip=5 L=1: the best of 2 settings'
    """
    if p.get("settings", 1) < 2:
        return ""
    return f", at {setting_text(p['setting'])}: the best of {p['settings']} settings"


COLOURS = {"better": "#2e8b57", "tie": "#888888", "unstable": "#e69500", "worse": "#d9534f"}


def report_section(conf: dict[str, dict], tasks: tuple[str, ...], ids: dict[str, int], baseline: str,
                   check: dict | None = None) -> str:
    """The report's section: per task, each confirmed cell's mean ratio to the baseline with
    its 95 % interval (coloured by verdict, the line at 1 is the baseline), then a table, then
    the verification (``check``, :func:`cellsearch.search.confirm.verified`) if there is one."""


    if not conf:
        return ""
    cells = sorted(conf, key=lambda c: -conf[c]["score"])
    fig, axes = figure(min(4.2 * len(tasks), 12), 0.5 * len(cells) + 1.6, len(tasks))
    axes = axes if len(tasks) > 1 else [axes]
    for ax, t in zip(axes, tasks, strict=True):
        for y, c in enumerate(cells):
            p = conf[c]["tasks"][t]
            lo, hi = max(p["lo"], p["mean"] - 1), min(p["hi"], p["mean"] + 1)  # a one-pair interval is infinite
            ax.errorbar(p["mean"], y, xerr=[[p["mean"] - lo], [hi - p["mean"]]], fmt="o", capsize=4,
                        color=COLOURS[p["verdict"]])
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        ax.set_yticks(range(len(cells)), [f"cell {ids.get(c, '?')}" for c in cells])
        ax.invert_yaxis()
        ax.set_xlabel(f"ratio to {baseline} (95 % interval)")
        ax.set_title(t)
        ax.grid(alpha=0.3, axis="x")
    rows = "".join(
        f"<tr><td>cell {ids.get(c, '?')} <code>{c}</code></td><td>{conf[c]['score']:.4f}</td>"
        f"<td style='color:{COLOURS[conf[c]['verdict']]}'><b>{conf[c]['verdict']}</b></td>"
        + "".join(f"<td>{conf[c]['tasks'][t]['mean']:.4f} [{conf[c]['tasks'][t]['lo']:.4f}, "
                  f"{conf[c]['tasks'][t]['hi']:.4f}]{_failed_note(conf[c]['tasks'][t])}"
                  f"{_setting_note(conf[c]['tasks'][t])}</td>" for t in tasks)
        + "</tr>" for c in cells)
    head = "<tr><th>cell</th><th>confirmed</th><th>verdict</th>" + "".join(
        f"<th>{html.escape(t)}</th>" for t in tasks) + "</tr>"
    n = next(iter(conf.values()))
    return (f"<h2>Confirmation</h2><p>Re-trained with {next(iter(n['tasks'].values()))['pairs']} fresh seeds, "
            f"paired with {html.escape(baseline)}, {n['steps']} steps per run: better if the interval lies above 1, "
            f"worse if below, else a tie; unstable where the cell diverged on a seed on which the baseline trained.</p><img alt='confirmation' src='{png(fig)}'/><table>{head}{rows}</table>"
            + (f"<p><b>{html.escape(verification_text(check))}</b></p>" if check else ""))
