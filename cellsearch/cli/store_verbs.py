"""The verbs that read a store: ``top``, ``status``, ``report``, ``export`` and ``doctor``.

None of them writes a store that a search may be writing, so each can run beside a running
search. None imports JAX (``report --analyze`` trains, and imports it then).
"""

from __future__ import annotations

import json
import os
import sys
import time

from cellsearch.cli.compare import build_comparison
from cellsearch.cli.confirmations import print_summary, verification_text
from cellsearch.cli.inspect import export_cell
from cellsearch.cli.report import build_report
from cellsearch.cli.tables import export_table
from cellsearch.errors import ConfigError
from cellsearch.search.confirm import confirm as run_confirm
from cellsearch.search.confirm import confirmed, verified
from cellsearch.search.results import Scores, leaderboard, stored_config
from cellsearch.search.runs import status as store_status
from cellsearch.search.runs import writer
from cellsearch.store.doctor import check, recover
from cellsearch.store.sqlite import Store


def children_table(store, scores) -> list[str]:
    """``top --all``: one line per child, its last fate and where it got to."""
    lines = [f"{'id':>5} {'hash':<16} {'fate':<9} {'score':>7}  where"]
    for r in store.cells("origin='mutation'"):
        steps = [s for s in store.steps_of(r["hash"]) if s["kind"] in ("child", "promote")]
        if not steps:
            continue
        d, sc = steps[-1]["detail"], scores.score(r["hash"])
        if r["status"] == "screened":
            where = f"rung {d['rung']}, rank {d['rank']} of {d['of']} (rung score {d['rung_score']:.4f})"
        elif r["status"] in ("error", "diverged"):
            where = f"{d.get('stage')}: {d.get('error', '')}"[:90]
        elif r["status"] == "filtered":
            where = f"memorisation {d.get('filter', 0):.3f}"
        elif r["status"] == "hurdle":
            where = f"first task {d.get('first', 0):.4f} < bar {d.get('bar', d.get('baseline', 0)):.4f}"
        else:
            where = "promoted from rung " + str(d["promoted_from"]) if "promoted_from" in d else ""
        lines.append(f"{r['id']:>5} {r['hash']:<16} {r['status']:<9} {(f'{sc:.4f}' if sc is not None else ''):>7}  {where}")
    return lines


def top(args) -> int:

    with Store(args.db, write=False) as store:
        cfg = stored_config(store)
        if args.all:
            print("\n".join(children_table(store, Scores(store, cfg))))
            return 0
        rows = leaderboard(store, cfg, args.k)
        counts = store.counts()
        conf_rows = confirmed(store)
        check = verified(store)
    if not rows:
        print(f"no scored cells yet in {args.db}")
        return 0
    tasks = cfg.tasks
    print(f"{'rank':>4} {'id':>5} {'hash':<16} {'score':>7} " + " ".join(f"{t[:10]:>10}" for t in tasks)
          + f" {'evals':>5} {'pool':>4}" + (" confirmed verdict" if conf_rows else "") + " origin")
    for i, r in enumerate(rows, 1):
        per = " ".join(f"{(r['tasks'][t] if r['tasks'][t] is not None else float('nan')):>10.4f}" for t in tasks)
        c = conf_rows.get(r["hash"])
        conf = (f" {c['score']:>9.4f} {c['verdict']:>7}" if c else f" {'':>9} {'':>7}") if conf_rows else ""
        print(f"{i:>4} {r['id']:>5} {r['hash']:<16} {r['score']:>7.4f} {per} {r['evaluations']:>5} "
              f"{'yes' if r['in_pool'] else '':>4}{conf} {r['origin']}")
    print("# steps: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if check:
        print("# " + verification_text(check))
    return 0


def confirm(args) -> int:

    def on_event(kind, info):
        if kind == "verify":
            print(f"verifying {info['cell']}, the best confirmed of the top {info['among']}, and the baseline on "
                  f"held-out seeds: {info['runs']} runs, {info['done']} already stored", file=sys.stderr, flush=True)
        elif kind == "start":
            print(f"confirming {info['cells'] - 1} cells and the baseline: {info['runs']} runs, {info['done']} already "
                  f"stored", file=sys.stderr, flush=True)
        else:
            at = f" (setting {info['setting'] + 1})" if info.get("setting") else ""
            print(f"run {info['i']}/{info['runs']}: {info['cell']} on {info['task']}, seed {info['seed']}{at}: "
                  f"{info['status']} {info['score']:.4f}", file=sys.stderr, flush=True)

    cells = [c.strip() for c in (getattr(args, "cells", None) or "").split(",") if c.strip()]
    conf = run_confirm(args.db, k=args.k, seeds=args.seeds, steps=args.steps, save=getattr(args, 'save', None), cells=cells,
                       settings=getattr(args, "settings", 1), verify=getattr(args, "verify", 0), on_event=on_event)
    with Store(args.db, write=False) as store:
        scores = Scores(store)
        searched = {c: scores.score(c) for c in conf}
        check = verified(store)
    print_summary(conf, searched)
    if check:
        print(verification_text(check))
    return 0


def report(args) -> int:

    dbs = args.dbs or [args.db]
    if len(dbs) > 1:
        if args.watch is not None:
            raise ConfigError("--watch follows one store; compare stores without it")

        path = build_comparison(dbs, args.output, top=args.top or 3)
        print(f"wrote {path}: {len(dbs)} searches side by side; open it in a browser (it needs no network)")
        return 0
    db = dbs[0]
    if args.watch is None:
        path = build_report(db, args.output, top=args.top or 10, analyze=args.analyze)
        print(f"wrote {path}; open it in a browser (it needs no network)")
        return 0

    try:
        while True:
            running = writer(db) is not None
            path = build_report(db, args.output, top=args.top or 10, refresh=args.watch if running else None)
            if not running:
                print(f"wrote {path}: no search is running on {db}, so this is the last update", flush=True)
                return 0
            print(f"{time.strftime('%H:%M:%S')} wrote {path} (the search is running; the page reloads itself, "
                  f"next update in {args.watch} s; Ctrl-C stops watching)", flush=True)
            time.sleep(args.watch)
    except KeyboardInterrupt:
        print(f"stopped watching; {args.output} holds the last update", file=sys.stderr)
        return 0


def status(args) -> int:


    st = store_status(args.db)
    if args.json:
        print(json.dumps({k: v for k, v in st.items() if k != "lines"}, indent=1, default=str))
    else:
        print("\n".join(st["lines"]))
    return 0


def doctor(args) -> int:

    problems = check(args.db)
    if not problems and not args.output:
        print(f"{args.db} is sound (SQLite's integrity check passed)")
        return 0
    if problems:
        print(f"{args.db} is damaged; SQLite's integrity check says:\n  " + "\n  ".join(problems[:5]))
    holder = writer(args.db)
    if holder:
        print(f"note: a search is writing {args.db} ({holder}); the copy is of the store as it is now")
    out = args.output or os.path.splitext(args.db)[0] + ".recovered.db"
    got = recover(args.db, out)
    print(f"copied into {out}: " + ", ".join(f"{v['rows']} {t} rows" + (f" ({v['unreadable']} unreadable)"
                                                                         if v["unreadable"] else "")
                                             for t, v in got.items()))
    left = check(out)
    print(f"{out} is {'sound' if not left else 'still damaged: ' + left[0]}; resume the search on it with the same "
          f"command and --db {out} (steps whose rows were lost run again)")
    return 1 if problems else 0


def export(args) -> int:
    if args.table:

        n = export_table(args.db, args.table, args.output, args.format)
        print(f"wrote {args.output}: {n} rows of {args.table}")
        return 0
    if not args.ref:
        raise ConfigError("export needs a cell id or hash, or --table evaluations|cells")

    path = export_cell(args.db, args.ref, args.output)
    print(f"wrote {path}; load it with cellsearch.load_cell({path!r})")
    return 0
