"""The paper's §5.2 tables at a budget this machine can run, and its §5.1 findings checked.

(a) The search-time score of the ten seed cells on arithmetic, XML and PTB: the best of the
    same settings per cell (vmapped), over ``--seeds`` seeds (mean and spread), and the ratio
    to the GRU. Arithmetic with ``max_digits`` 8 (long operands, so that remembering matters:
    the forget gate is needed) and XML with 1-3 letter tag names (the budget at which XML ranks
    cells, see ``xml_ranking.py``).
(b) PTB perplexity under the standard protocol (:mod:`cellsearch.nn.protocol`, Zaremba 2014's
    non-regularised setting at ``--ptb-hidden`` and ``--ptb-epochs``).
(c) Nottingham and Piano-midi NLL per time step (Boulanger-Lewandowski's protocol).

Then each §5.1 finding of ``shared/docs/jozefowicz2015.md`` is marked holds / does not hold
at this budget: the GRU beats the LSTM on arithmetic and XML; LSTM-b beats the LSTM; removing
the forget gate hurts most, the input gate next, the output gate least (LSTM-f < LSTM-i <
LSTM-o); MUT1 matches or beats the GRU on arithmetic and XML.

    python paper_tables.py                 # the default budget: a few hours on a 2-core CPU
    python paper_tables.py --size small --skip b --ptb-runs RUN...   # about an hour, (b) from saved runs
    python paper_tables.py --smoke         # a minute: checks the script, numbers mean nothing

``--ptb-runs`` fills table (b) from ``cellsearch train CELL --task ptb --preset zaremba-small
--save DIR`` runs (their test perplexity, the cell's name from the saved cell), so the hour-long
standard-protocol trainings are run once, in the background, and reused here; it also prints
them one per row (validation perplexity per epoch), and ``--curves FILE`` draws those curves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from common import device, table

CELLS = ["Tanh", "LSTM", "LSTM-f", "LSTM-i", "LSTM-o", "LSTM-b", "GRU", "MUT1", "MUT2", "MUT3"]
SIZES = {
    "default": {"arithmetic": dict(budget=20_000, steps=4000, opts={"max_digits": 8}),
                "xml": dict(budget=10_000, steps=2000, opts={"seq_len": 32, "min_name": 1, "max_name": 3}),
                "ptb": dict(budget=40_000, steps=1000, opts={"eval_tokens": 20_000}),
                "ptb_hidden": 200, "ptb_epochs": 6, "music_hidden": 100, "music_epochs": 10},
    # about an hour for (a) and (c) on one core of this 2-core CPU; (b) from saved zaremba-small runs
    # arithmetic at 4 digits: at 8 digits and 4000 steps no cell learns (LSTM 0.28, chance level)
    "small": {"arithmetic": dict(budget=20_000, steps=3000, opts={"max_digits": 4}),
              "xml": dict(budget=10_000, steps=1000, opts={"seq_len": 32, "min_name": 1, "max_name": 3}),
              "ptb": dict(budget=40_000, steps=500, opts={"eval_tokens": 20_000}),
              "ptb_hidden": 200, "ptb_epochs": 6, "music_hidden": 100, "music_epochs": 2},
    "smoke": {"arithmetic": dict(budget=2_000, steps=20, opts={"max_digits": 2}),
              "xml": dict(budget=2_000, steps=20, opts={"seq_len": 16, "min_name": 1, "max_name": 3}),
              "ptb": dict(budget=2_000, steps=10, opts={"eval_tokens": 500}),
              "ptb_hidden": 16, "ptb_epochs": 1, "music_hidden": 8, "music_epochs": 1, "max_windows": 20},
}
ZAREMBA_SMALL_VALID = 120.7  # Zaremba et al. 2014, Table 1, non-regularised LSTM (test 114.5)
SETTINGS = [(0.5, 1.0), (1.0, 1.0), (2.0, 1.0)]  # (learning rate, init scale), the same for every cell


class Log:
    """Results as JSON lines: printed, appended to ``path`` if given, and read back from it
    so an interrupted run (or a second one with more tables) trains only what is missing.
    With ``report`` nothing is trained: a result missing from the log stays missing."""

    def __init__(self, path: str | None, report: bool = False):
        self.path, self.report, self.done = path, report, {}
        if path and os.path.exists(path):
            for line in open(path):
                if line.startswith('{"table"'):
                    r = json.loads(line)
                    self.done[(r["table"], r["task"], r["cell"], r["seed"])] = r["score" if r["table"] == "a" else "test"]

    def get(self, *key):
        return self.done.get(key)

    def put(self, table_, task, cell, seed, value) -> None:
        line = json.dumps({"table": table_, "task": task, "cell": cell, "seed": seed,
                           "score" if table_ == "a" else "test": value})
        print(line, flush=True)
        self.done[(table_, task, cell, seed)] = value
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")


def table_a(cells, seeds, size, data_dir, log):
    from cellsearch.config import TrainConfig
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.hparams import HParams
    from cellsearch.nn.train import train_and_evaluate
    from cellsearch.tasks import make_task, task_options

    out: dict[str, dict[str, list[float]]] = {}
    for t in ("arithmetic", "xml", "ptb"):
        p = size[t]
        task = make_task(t, **task_options(t, p["opts"], data_dir))
        for c in cells:
            for s in range(seeds):
                if (best := log.get("a", t, c, s)) is not None:
                    out.setdefault(c, {}).setdefault(t, []).append(best)
                    continue
                if log.report:
                    continue
                hs = [HParams(learning_rate=lr, init_scale=sc, max_grad_norm=5.0, param_budget=p["budget"],
                              seed=1000 * s + i) for i, (lr, sc) in enumerate(SETTINGS)]
                cfg = TrainConfig(steps=p["steps"], batch_size=20 if t == "ptb" else 32, chunk=50, data_seed=s)
                best = max(r.score for r in train_and_evaluate(find_seed(c), task, hs, cfg))
                out.setdefault(c, {}).setdefault(t, []).append(best)
                log.put("a", t, c, s, best)
    return out


def table_bc(cells, seeds, size, data_dir, tasks, log):
    from dataclasses import replace

    from cellsearch.config import PRESETS
    from cellsearch.evolve.spaces import find_seed
    from cellsearch.nn.protocol import run_protocol, stream_data

    out: dict[str, dict[str, list[float]]] = {}
    for t in tasks:
        data = stream_data(t, data_dir)
        if t == "ptb":
            base = replace(PRESETS["zaremba-small"], hidden=size["ptb_hidden"], epochs=size["ptb_epochs"])
        else:
            base = replace(PRESETS["zaremba-small"], hidden=size["music_hidden"], layers=1, epochs=size["music_epochs"],
                           bptt=50, batch_size=16, decay_after=size["music_epochs"] // 2)
        base = replace(base, max_windows=size.get("max_windows"))
        for c in cells:
            for s in range(seeds):
                k = "b" if t == "ptb" else "c"
                if (v := log.get(k, t, c, s)) is None:
                    if log.report:
                        continue
                    r = run_protocol(find_seed(c), data, replace(base, seed=s))
                    v = r["test"]["perplexity"] if t == "ptb" else r["test"]["nll"]
                    log.put(k, t, c, s, v)
                out.setdefault(c, {}).setdefault(t, []).append(v)
    return out


def read_runs(dirs) -> list[dict]:
    """Saved ``cellsearch train --task ptb --save`` runs: per run the cell's name (from the
    saved cell), its hidden size, the validation perplexity per epoch, and the best validation
    epoch's valid and test perplexity. A run that has not finished is refused by name."""
    from pathlib import Path

    runs = []
    for d in dirs:
        run = json.loads((Path(d) / "run.json").read_text())
        if run.get("task") != "ptb" or "test" not in (run.get("result") or {}):
            raise SystemExit(f"{d}: not a finished PTB run (run.json has no test result)")
        name = json.loads((Path(d) / "cell.json").read_text()).get("name") or Path(d).parent.name
        r = run["result"]
        runs.append({"cell": name, "hidden": run["config"]["hidden"], "valid": r["valid"]["perplexity"],
                     "test": r["test"]["perplexity"], "curve": [e["valid"]["perplexity"] for e in r["history"]]})
    return runs


def short(v: float, places: int = 1) -> str:
    """A perplexity for a table or a label: fixed point, or ``4e+07`` once it has diverged."""
    return f"{v:.{places}f}" if v < 1e4 else f"{v:.0e}"


def runs_table(runs) -> str:
    """The saved runs one per row: hidden size, best valid, test, valid perplexity per epoch."""
    rows = [{"cell": r["cell"], "hidden": r["hidden"], "best valid": f"{r['valid']:.1f}", "test": f"{r['test']:.1f}",
             "valid per epoch": " ".join(short(v) for v in r["curve"])} for r in runs]
    return table(rows, ["cell", "hidden", "best valid", "test", "valid per epoch"])


def plot_curves(runs, path: str, top: float = 300.0) -> None:
    """Validation perplexity per epoch of each saved run, one line per run, written to
    ``path`` (PNG, SVG or PDF by its suffix). The y axis is logarithmic and cut at ``top``
    (a diverging epoch is drawn at the edge, its value written above)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.2), dpi=120)
    off: dict[int, int] = {}  # values already written above the edge at each epoch
    for r in sorted(runs, key=lambda r: r["test"]):
        xs = range(1, len(r["curve"]) + 1)
        ys = [min(v, top) for v in r["curve"]]
        (line,) = ax.plot(xs, ys, marker="o", ms=3, lw=1.5, label=f"{r['cell']} (test {r['test']:.4g})")
        for x, v in zip(xs, r["curve"], strict=True):
            if v > top:  # off the chart: a triangle at the edge, with its value
                ax.plot([x], [top], marker="^", ms=7, color=line.get_color())
                off[x] = off.get(x, 0) + 1
                ax.annotate(short(v, 0), (x, top), textcoords="offset points",
                            xytext=(0, -2 + 9 * off[x]), ha="center", fontsize=7, color=line.get_color())
    ax.axhline(ZAREMBA_SMALL_VALID, color="grey", ls="--", lw=1,
               label=f"Zaremba et al. 2014's small LSTM (valid {ZAREMBA_SMALL_VALID})")
    ax.set_yscale("log")
    ax.set_ylim(top=top * 1.4)  # room above the edge for the values off the chart
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks([t for t in (100, 110, 120, 130, 150, 175, 200, 250, 300) if t <= top])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation perplexity")
    ax.set_title("PTB, zaremba-small protocol at the LSTM 2x200's parameter count", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def mean(v):
    return statistics.mean(v) if v else float("nan")


def findings(a: dict, bc: dict) -> list[tuple[str, str]]:
    """Each §5.1 finding that the tables can check, with a verdict: ``holds``, ``does not
    hold``, or ``within the seed spread`` (table (a): a difference of means smaller than the
    larger of the two cells' standard deviations over seeds decides nothing)."""
    m = {c: {t: mean(v) for t, v in d.items()} for c, d in a.items()}
    sd = {c: {t: statistics.pstdev(v) for t, v in d.items()} for c, d in a.items()}

    def above(x, y, t) -> int:  # +1: x's score beyond y's, -1: below, 0: within the spread
        diff = m[x][t] - m[y][t]
        return 0 if abs(diff) <= max(sd[x][t], sd[y][t]) else (1 if diff > 0 else -1)

    def verdict(signs, want=1) -> str:
        if all(s == want for s in signs):
            return "holds"
        return "does not hold" if any(s == -want for s in signs) else "within the seed spread"

    def both(*cells, tasks=("arithmetic", "xml")):  # tasks that every one of ``cells`` has
        return [t for t in tasks if all(c in m and t in m[c] for c in cells)]

    got = []
    ppl = {c: mean(d["ptb"]) for c, d in bc.items() if d.get("ptb")}
    if {"GRU", "LSTM"} <= set(ppl):
        got.append(("the LSTM beats the GRU on language modelling (b: lower test perplexity)",
                    "holds" if ppl["LSTM"] < ppl["GRU"] else "does not hold"))
    if {"LSTM-b", "LSTM"} <= set(ppl):
        got.append(("LSTM-b beats the LSTM on language modelling (b)",
                    "holds" if ppl["LSTM-b"] < ppl["LSTM"] else "does not hold"))
    for t in both("GRU", "LSTM"):
        got.append((f"GRU beats the LSTM on {t} (a)", verdict([above("GRU", "LSTM", t)])))
    for t in both("LSTM-b", "LSTM", tasks=("arithmetic", "xml", "ptb")):
        got.append((f"LSTM-b beats the LSTM on {t} (a)", verdict([above("LSTM-b", "LSTM", t)])))
    for t in both("LSTM-f", "LSTM-i", "LSTM-o"):
        got.append((f"forget > input > output gate on {t} (LSTM-f < LSTM-i < LSTM-o)",
                    verdict([above("LSTM-f", "LSTM-i", t), above("LSTM-i", "LSTM-o", t)], want=-1)))
    for t in both("MUT1", "GRU"):
        got.append((f"MUT1 matches or beats the GRU on {t} (a)",
                    "does not hold" if above("MUT1", "GRU", t) == -1 else "holds"))
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--smoke", action="store_true", help="the same as --size smoke")
    ap.add_argument("--size", default="default", choices=sorted(SIZES), help="the budget (see SIZES)")
    ap.add_argument("--ptb-runs", nargs="*", default=[], metavar="DIR",
                    help="fill table (b) from these saved `cellsearch train --save` runs")
    ap.add_argument("--curves", default=None, metavar="FILE",
                    help="draw the --ptb-runs runs' validation perplexity per epoch to FILE (.png, .svg)")
    ap.add_argument("--skip", default="", help="tables to skip, e.g. b,c")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--log", default=None, metavar="FILE",
                    help="append results to FILE and reuse those already there (resume, or add tables)")
    ap.add_argument("--music-seeds", type=int, default=None, help="seeds for table (c) (default --seeds)")
    ap.add_argument("--report", action="store_true", help="train nothing: the tables from --log alone")
    args = ap.parse_args()
    name = "smoke" if args.smoke else args.size
    size = SIZES[name]
    cells = args.cells.split(",")
    print(f"# device: {device()}; size {name}: {json.dumps(size)}")
    t0 = time.perf_counter()
    log = Log(args.log, report=args.report)
    a = table_a(cells, args.seeds, size, args.data_dir, log) if "a" not in args.skip else {}
    bc = table_bc(cells, args.seeds, size, args.data_dir, ["ptb"] if "b" not in args.skip else [], log)
    if "c" not in args.skip:
        bc_music = table_bc(cells, args.music_seeds or args.seeds, size, args.data_dir, ["nottingham", "pianomidi"], log)
        for c, d in bc_music.items():
            bc.setdefault(c, {}).update(d)
    runs = read_runs(args.ptb_runs)
    if runs:
        print(runs_table(runs))
        print()
    if args.curves:
        if not runs:
            raise SystemExit("--curves draws the --ptb-runs runs: give their directories")
        plot_curves(runs, args.curves)
        print(f"# curves written to {args.curves}")
    for r in runs:  # table (b) from the saved runs
        bc.setdefault(r["cell"], {}).setdefault("ptb", []).append(r["test"])
    cells += [c for c in bc if c not in cells]
    rows = []
    for c in cells:
        row = {"cell": c}
        for t, v in a.get(c, {}).items():
            row[f"{t} (a)"] = f"{mean(v):.4g} ± {statistics.pstdev(v):.2g}"
        for t, v in bc.get(c, {}).items():
            row["ptb test ppl (b)" if t == "ptb" else f"{t} test nll (c)"] = f"{mean(v):.4g} ± {statistics.pstdev(v):.2g}"
        if "GRU" in a and a.get(c):
            row["vs GRU (a)"] = f"{min(mean(a[c][t]) / mean(a['GRU'][t]) for t in a[c]):.3f}"
        rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    print()
    print(table(rows, cols))
    print()
    for text, verdict in findings(a, bc):
        print(f"- {text}: {verdict}")
    print(f"\n# {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
