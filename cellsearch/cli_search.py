"""CLI verbs ``search``, ``top`` and ``export``."""

from __future__ import annotations


def _build_config(args):
    from dataclasses import replace

    from cellsearch.search import PAPER_TASKS, SearchConfig, quick_config

    base = quick_config() if args.quick else SearchConfig()
    changes = {}
    if args.space:
        changes["space"] = args.space
    if args.tasks:
        changes["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    elif not args.quick:
        changes["tasks"] = PAPER_TASKS
    if args.strategy:
        changes["strategy"] = args.strategy
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.hours is not None:
        changes["hours"] = args.hours
        changes["candidates"] = args.candidates  # None unless both are given
    elif args.candidates is not None:
        changes["candidates"] = args.candidates
    if args.settings_per_task:
        changes["settings_per_task"] = args.settings_per_task
    if args.pool_size:
        changes["pool_size"] = args.pool_size
    if args.steps:
        changes["train"] = replace(base.train, steps=args.steps)
    if args.filter_steps:
        changes["filter_train"] = replace(base.filter_train, steps=args.filter_steps)
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    return replace(base, **changes)


def cmd_search(args) -> int:
    from cellsearch.search import run_search
    from cellsearch.train import enable_compilation_cache

    cfg = _build_config(args)
    cache = None if args.no_compile_cache else enable_compilation_cache(args.compile_cache)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("[bold]search[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn(), console=console)
    state = {"tid": None, "start": 0}

    def on_event(kind, info):
        if kind == "start":
            state["tid"] = bar.add_task("search", total=info["target"], completed=info["children"], info="starting")
            state["start"] = info["children"]
            if info["resumed_steps"]:
                console.print(f"resuming: {info['resumed_steps']} steps and {info['children']} children already in {args.db}")
            return
        best = info["best"]
        done = info["children"] - state["start"]
        rate = done / max(info["elapsed"], 1e-9) * 3600
        text = f"best {best:.3f} · {rate:.0f} children/h · step {info['step']} {info['kind']}:{info['outcome']}" \
            if best is not None else f"step {info['step']} {info['kind']}:{info['outcome']}"
        bar.update(state["tid"], completed=info["children"], info=text)
        if not console.is_terminal:
            console.print(f"step {info['step']:>4} {info['kind']:<6} {info['outcome']:<11} children {info['children']}"
                          + (f" best {best:.4f}" if best is not None else ""))

    with bar:
        summary = run_search(cfg, args.db, workers=args.workers, backend=args.backend, ray_address=args.ray_address,
                             compile_cache=cache, on_event=on_event)
    print(f"{summary.children} children evaluated ({summary.scored} scored, {summary.filtered} filtered, "
          f"{summary.duplicates} duplicates skipped), {summary.evaluations} evaluations, {summary.steps} steps, "
          f"{summary.wall_s:.0f}s this run; stopped on {summary.stopped}")
    if summary.best:
        h, s = summary.best[0]
        print(f"best cell {h} with score {s:.4f}; see `cellsearch top --db {args.db}` and `cellsearch show {h} --db {args.db}`")
    return 0


def cmd_top(args) -> int:
    from cellsearch.search import SearchConfig, leaderboard
    from cellsearch.storage import Store

    with Store(args.db, write=False) as store:
        cfg = SearchConfig.from_json(store.meta("config"))
        rows = leaderboard(store, cfg, args.k)
        counts = store.counts()
    if not rows:
        print(f"no scored cells yet in {args.db}")
        return 0
    tasks = cfg.tasks
    print(f"{'rank':>4} {'id':>5} {'hash':<16} {'score':>7} " + " ".join(f"{t[:10]:>10}" for t in tasks)
          + f" {'evals':>5} {'pool':>4} origin")
    for i, r in enumerate(rows, 1):
        per = " ".join(f"{(r['tasks'][t] if r['tasks'][t] is not None else float('nan')):>10.4f}" for t in tasks)
        print(f"{i:>4} {r['id']:>5} {r['hash']:<16} {r['score']:>7.4f} {per} {r['evaluations']:>5} "
              f"{'yes' if r['in_pool'] else '':>4} {r['origin']}")
    print("# steps: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_export(args) -> int:
    from cellsearch.inspect import export_cell

    path = export_cell(args.db, args.ref, args.output)
    print(f"wrote {path}; load it with cellsearch.load({path!r}) or GraphCell.from_graph(...)")
    return 0


def add_verbs(sub, positive_int, positive_float) -> None:
    from cellsearch.strategies import STRATEGIES

    s = sub.add_parser("search", help="run (or resume) an architecture search into an SQLite store")
    s.add_argument("--quick", action="store_true", help="a small search that runs on a laptop CPU in about 5 minutes")
    s.add_argument("--space", default=None, help="search space (default jozefowicz2015)")
    s.add_argument("--tasks", default=None, help="comma-separated tasks; the first is the hurdle "
                   "(default arithmetic,xml,ptb; --quick: arithmetic,xml)")
    budget = s.add_argument_group("budget (whichever ends first; a resumed search counts what the store holds)")
    budget.add_argument("--candidates", type=int, default=None, metavar="N", help="children to evaluate (default 100; --quick 12)")
    budget.add_argument("--hours", type=positive_float, default=None, metavar="H", help="wall-clock hours")
    s.add_argument("--strategy", choices=STRATEGIES, default=None, help="paper (default), aging or random")
    s.add_argument("--db", default="cellsearch.db", help="the SQLite store (default ./cellsearch.db)")
    s.add_argument("--workers", type=positive_int, default=1, help="evaluations in parallel (default 1)")
    s.add_argument("--backend", choices=["local", "ray"], default="local", help="local processes or a Ray cluster")
    s.add_argument("--ray-address", default=None, help="Ray cluster address (e.g. auto); default: a local Ray")
    s.add_argument("--seed", type=int, default=None, help="search seed (default 0); same seed, same search")
    s.add_argument("--settings-per-task", type=positive_int, default=None, help="settings per task per evaluation")
    s.add_argument("--pool-size", type=positive_int, default=None, help="size of the pool of best cells")
    s.add_argument("--steps", type=positive_int, default=None, help="training steps per evaluation")
    s.add_argument("--filter-steps", type=positive_int, default=None, help="training steps of the memorisation filter")
    s.add_argument("--data-dir", default=None, help="directory holding ptb/ (default ../shared/data)")
    s.add_argument("--compile-cache", default=None, help="persistent JAX compilation cache (default ~/.cache/cellsearch/jax)")
    s.add_argument("--no-compile-cache", action="store_true")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("top", help="leaderboard of a search store")
    s.add_argument("--db", default="cellsearch.db")
    s.add_argument("-k", type=positive_int, default=10, help="rows (default 10)")
    s.set_defaults(func=cmd_top)

    s = sub.add_parser("export", help="write a discovered cell to a JSON file the flax modules load")
    s.add_argument("ref", metavar="ID|HASH")
    s.add_argument("-o", "--output", required=True, help="the JSON file to write")
    s.add_argument("--db", default="cellsearch.db")
    s.set_defaults(func=cmd_export)
