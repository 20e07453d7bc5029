"""What each ``cellsearch`` verb does (the parser is :mod:`cellsearch.cli`).

Each function takes the parsed arguments and returns the exit status. JAX is imported only
by the verbs that train (``train``, ``search``); ``seeds``, ``show``, ``mutate``, ``top``
and ``export`` stay on the graph layer and the store.
"""

from __future__ import annotations

import os
import sys

from cellsearch.config import DEFAULT_DB
from cellsearch.errors import CellSearchError, ConfigError


def parse_options(items: list[str] | None) -> dict:
    """``["max_digits=4", "seq_len=32"]`` -> ``{"max_digits": 4, "seq_len": 32}`` (numbers parsed).

    >>> parse_options(["max_digits=4", "distractor_p=0.5", "name=a"])
    {'max_digits': 4, 'distractor_p': 0.5, 'name': 'a'}
    """
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--task-opt needs KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                continue
        out[k] = v
    return out


def _emit(text: str, out: str | None) -> None:
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


# ----------------------------------------------------------------------------- cells


def seeds(args) -> int:
    from cellsearch.graph import param_count, param_count_coefficients
    from cellsearch.spaces import load_space

    space = load_space(args.space)
    print(f"# search space {space.name!r}: baseline {space.baseline}, pool seeds {', '.join(space.pool_seeds)}")
    print(f"{'name':<10} {'states':<14} {'params(n)':<14} {'n=' + str(args.hidden):>10}")
    for name in space.seeds:
        g = space.seed(name)
        a, b = param_count_coefficients(g)
        print(f"{name:<10} {','.join(g.graph['states']):<14} {f'{a}n^2+{b}n':<14} {param_count(g, args.hidden):>10}")
    return 0


def _show_graph(g, fmt: str, out: str | None) -> None:
    from cellsearch.draw import render_image
    from cellsearch.graph import to_json
    from cellsearch.render import to_dot, to_text

    if fmt == "text":
        _emit(to_text(g), out)
    elif fmt == "dot":
        _emit(to_dot(g), out)
    elif fmt == "json":
        _emit(to_json(g), out)
    else:
        path = out or f"cell.{fmt}"
        render_image(g, path)
        print(f"wrote {path}")


def show(args) -> int:
    from cellsearch.graph import load
    from cellsearch.spaces import find_seed

    if args.graph:
        _show_graph(load(args.graph), args.format, args.output)
        return 0
    if not args.name:
        raise CellSearchError("show needs a seed name, a cell id or hash from --db, or --graph FILE.json")
    try:
        g = find_seed(args.name, args.space)
    except CellSearchError:
        db = args.db or DEFAULT_DB
        if not os.path.exists(db):
            raise
        from cellsearch.inspect import show_candidate

        print(show_candidate(db, args.name, args.format, args.output))
        return 0
    _show_graph(g, args.format, args.output)
    return 0


def mutate(args) -> int:
    import numpy as np

    from cellsearch.canon import structural_hash
    from cellsearch.mutate import mutate as mutate_cell
    from cellsearch.render import to_equations
    from cellsearch.spaces import load_space, resolve_cell

    space = load_space(args.space)
    parent = resolve_cell(args.name, args.space)
    rng = np.random.default_rng(args.seed)
    print(f"# {args.n} children of {args.name} ({structural_hash(parent)}), seed {args.seed}")
    for k in range(args.n):
        child, edits = mutate_cell(parent, rng=rng, space=space)
        print(f"\n## child {k + 1}: {structural_hash(child)}")
        for e in edits:
            print(f"#   {e.name} at {e.node}: {e.detail}")
        for line in to_equations(child):
            print(line)
    if args.dedup:
        from cellsearch.dedup import mutation_stream_stats

        stats = mutation_stream_stats(parent, space=space, n=args.dedup, seed=args.seed)
        print(f"\n# duplicates in a stream of {stats['children']} children: "
              f"{stats['structural']} structural, {stats['functional']} functional, {stats['new']} new")
    return 0


# ----------------------------------------------------------------------------- training


EXPLICIT = ("preset", "lr", "init_scale", "init", "clip", "dropout", "hidden", "bptt", "epochs", "lr_decay",
            "decay_after", "seeds", "save", "max_windows")
PROTOCOL_ONLY = ("preset", "dropout", "bptt", "epochs", "lr_decay", "decay_after", "save", "max_windows")


def train(args) -> int:
    from cellsearch.spaces import resolve_cell
    from cellsearch.tasks import TASKS

    explicit = any(getattr(args, k) is not None for k in EXPLICIT)
    explicit = explicit or args.schedule == "zaremba"
    graph = resolve_cell(args.name)
    if args.layers is not None and explicit and len(args.layers) != 1:
        raise ConfigError(f"--layers takes one count with explicit settings, got {','.join(map(str, args.layers))}")
    if not args.no_compile_cache:
        from cellsearch.train import enable_compilation_cache

        enable_compilation_cache(args.compile_cache)
    if explicit and TASKS[args.task].data:
        return _train_protocol(args, graph)
    if explicit:
        bad = [k for k in PROTOCOL_ONLY if getattr(args, k) is not None] + (["schedule zaremba"]
                                                                            if args.schedule == "zaremba" else [])
        if bad:
            raise ConfigError(f"--{bad[0].replace('_', '-')} belongs to the standard protocol of ptb, nottingham and "
                              f"pianomidi, not to {args.task!r}")
    return _train_settings(args, graph, explicit)


def _train_settings(args, graph, explicit: bool) -> int:
    """The search's trainer: K sampled settings at once, or one explicit setting per seed."""
    import numpy as np

    from cellsearch.config import TrainConfig
    from cellsearch.graph import param_count
    from cellsearch.hparams import HParams, HParamSpace
    from cellsearch.progress import progress_bar
    from cellsearch.tasks import TASKS, make_task, task_options
    from cellsearch.train import train_and_evaluate

    task = make_task(args.task, **task_options(args.task, parse_options(args.task_opt), args.data_dir))
    layers = args.layers or (1,)
    budget = args.budget or TASKS[args.task].budget
    if explicit:
        if args.hidden:
            budget = layers[0] * param_count(graph, args.hidden)
        init_scale = args.init_scale or 1.0
        if args.init is not None:
            from cellsearch.hparams import hidden_size

            init_scale = args.init * float(np.sqrt(args.hidden or hidden_size(graph, budget, layers[0])))
        base = HParams(learning_rate=args.lr or 0.5, init_scale=init_scale, max_grad_norm=args.clip or 5.0,
                       layers=layers[0], param_budget=budget)
        settings = [HParams(**{**base.__dict__, "seed": s}) for s in (args.seeds or (args.seed,))]
    else:
        space = HParamSpace(layers=layers, param_budget=(budget,))
        settings = space.sample(np.random.default_rng(args.seed), args.settings, seed_base=args.seed * 1000)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size or 20, schedule=args.schedule or "fixed",
                      steps_per_epoch=args.steps_per_epoch, data_seed=args.seed)
    prog = progress_bar()
    with prog:
        tid = prog.add_task(f"{args.name} on {args.task}", total=len(settings) * args.steps)
        results = train_and_evaluate(graph, task, settings, cfg, on_steps=lambda n: prog.advance(tid, n))
    keys = [k for k in ("accuracy", "closing_accuracy", "nll", "perplexity") if k in results[0].metrics]
    head = f"{'#':>2} {'lr':>6} {'init':>5} {'clip':>5} {'L':>2} {'hidden':>6} {'status':>9} {'score':>8} " + \
        " ".join(f"{k:>10}" for k in keys)
    print(head)
    for i, r in enumerate(results):
        h = r.hparams
        vals = " ".join(f"{r.metrics.get(k, float('nan')):>10.4f}" for k in keys)
        print(f"{i:>2} {h.learning_rate:>6g} {h.init_scale:>5g} {h.max_grad_norm:>5g} {h.layers:>2} "
              f"{r.metrics.get('hidden', 0):>6} {r.status:>9} {r.score:>8.4f} {vals}")
    best = max(results, key=lambda r: r.score)
    print(f"best score {best.score:.4f} (setting {results.index(best)}); "
          f"compile {sum(r.compile_s for r in results):.1f}s, total {sum(r.wall_s for r in results):.1f}s")
    if explicit and len(results) > 1:
        import statistics

        sc = [r.score for r in results]
        print(f"over seeds {','.join(str(h.seed) for h in settings)}: score {statistics.mean(sc):.4f} "
              f"+- {statistics.stdev(sc):.4f}")
    return 0


def protocol_config(args, graph):
    """The :class:`~cellsearch.config.ProtocolConfig` of ``train``'s explicit settings."""
    import math

    from cellsearch.config import PRESETS, ProtocolConfig
    from cellsearch.hparams import hidden_size
    from cellsearch.tasks import TASKS

    cfg = PRESETS[args.preset] if args.preset else ProtocolConfig()
    layers = args.layers[0] if args.layers else cfg.layers
    hidden = args.hidden
    if hidden is None and (args.budget or not args.preset):
        hidden = hidden_size(graph, args.budget or TASKS[args.task].budget, layers)
    hidden = hidden or cfg.hidden
    init = args.init if args.init is not None else (args.init_scale / math.sqrt(hidden) if args.init_scale else None)
    from cellsearch.protocol import with_overrides

    return with_overrides(cfg, hidden=hidden, layers=layers, init=init, lr=args.lr, clip=args.clip,
                          dropout=args.dropout, batch_size=args.batch_size, bptt=args.bptt, epochs=args.epochs,
                          schedule=args.schedule, lr_decay=args.lr_decay, decay_after=args.decay_after,
                          max_windows=args.max_windows)


def _train_protocol(args, graph) -> int:
    """The standard protocol (Zaremba 2014 / Boulanger-Lewandowski 2012), one run per seed."""
    import os
    import statistics
    from dataclasses import replace

    from rich.console import Console

    from cellsearch.config import PUBLISHED
    from cellsearch.progress import progress_bar
    from cellsearch.protocol import groups, run_protocol, stream_data, windows

    if args.task_opt:
        raise ConfigError("--task-opt does not apply to the standard protocol (it reads the whole splits)")
    base = protocol_config(args, graph)
    data = stream_data(args.task, args.data_dir)
    metric = "nll" if data.dense else "perplexity"
    seeds = args.seeds or (args.seed,)
    console = Console(stderr=True)
    n_win = sum(sum(1 for _ in windows(r, ln, base.bptt)) for r, ln in groups(data, "train", base.batch_size))
    if base.max_windows:
        n_win = min(n_win, base.max_windows)
    console.print(f"{args.name} on {args.task}: {base.layers}x{base.hidden}, init {base.init:g}, lr {base.lr:g} "
                  f"({base.schedule}), clip {base.clip:g}, dropout {base.dropout:g}, batch {base.batch_size}, "
                  f"bptt {base.bptt}, {base.epochs} epochs of {n_win} windows; seeds {','.join(map(str, seeds))}")
    results = []
    for s in seeds:
        cfg = replace(base, seed=s)
        save = args.save and (os.path.join(args.save, f"seed-{s}") if len(seeds) > 1 else args.save)
        bar = progress_bar(f"seed {s}" + " {task.description}", info=True)
        with bar:
            tid = bar.add_task("", total=cfg.epochs * n_win, info="")

            def on_epoch(row, tid=tid, bar=bar, s=s):
                line = (f"seed {s} epoch {row['epoch']:>2}/{base.epochs} lr {row['lr']:.4g} train {metric} "
                        f"{row['train'][metric]:.2f} valid {metric} {row['valid'][metric]:.2f} ({row['seconds']:.0f}s)")
                bar.update(tid, completed=row["epoch"] * n_win, info=f"valid {row['valid'][metric]:.2f}")
                console.print(line)

            r = run_protocol(graph, data, cfg, save_dir=save or None, on_epoch=on_epoch,
                             on_window=lambda n, tid=tid, bar=bar: bar.advance(tid, n))
        results.append(r)
        print(f"seed {s}: valid {metric} {r['valid'][metric]:.2f}, test {metric} {r['test'][metric]:.2f} "
              f"after {r['epochs']} epochs" + (f"; saved to {save}" if save else ""))
    if len(results) > 1:
        for split in ("valid", "test"):
            v = [r[split][metric] for r in results]
            print(f"{split} {metric}: {statistics.mean(v):.2f} +- {statistics.stdev(v):.2f} over {len(v)} seeds")
    if args.preset in PUBLISHED and args.task == "ptb":
        pv, pt = PUBLISHED[args.preset]
        print(f"published ({args.preset}, Zaremba et al. 2014, LSTM): valid {pv} / test {pt}")
    return 0


# ----------------------------------------------------------------------------- search


def search_config(args):
    """The :class:`~cellsearch.config.SearchConfig` of ``cellsearch search``'s arguments."""
    from dataclasses import replace

    from cellsearch.config import SearchConfig, quick_config

    base = quick_config() if args.quick else SearchConfig()
    changes = {}
    if args.space:
        changes["space"] = args.space
    if args.tasks:
        changes["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
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
    if args.population:
        changes["population"] = args.population
    train = {k: v for k, v in (("steps", args.steps), ("schedule", args.schedule),
                               ("steps_per_epoch", args.steps_per_epoch)) if v is not None}
    if train:
        changes["train"] = replace(base.train, **train)
    if args.filter_steps:
        changes["filter_train"] = replace(base.filter_train, steps=args.filter_steps)
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    return replace(base, **changes)


def search(args) -> int:
    from rich.console import Console

    from cellsearch.progress import progress_bar
    from cellsearch.search import run_search
    from cellsearch.train import enable_compilation_cache

    cfg = search_config(args)
    if args.deterministic:
        from cellsearch.executors import deterministic

        deterministic()
    cache = None if args.no_compile_cache else enable_compilation_cache(args.compile_cache)
    console = Console(stderr=True)
    bar = progress_bar("[bold]search[/]", info=True)
    state = {"tid": None, "start": 0}

    def on_event(kind, info):
        if kind == "start":
            state["tid"] = bar.add_task("search", total=info["target"], completed=info["children"], info="starting")
            state["start"] = info["children"]
            if info["resumed_steps"]:
                console.print(f"resuming: {info['resumed_steps']} steps and {info['children']} children already in "
                              f"{args.db}")
            if info["unfinished"]:
                console.print(f"retrying {len(info['unfinished'])} step(s) whose jobs were lost before: "
                              f"{', '.join(map(str, info['unfinished'][:10]))}")
            return
        if kind == "retry":
            console.print(f"step {info['step']}: the {info['task']} job was lost ({info['reason']}); "
                          f"sending it again (try {info['try']})")
            return
        if kind == "abandoned":
            console.print(f"step {info['step']}: the {info['task']} job was lost again ({info['reason']}); "
                          "nothing stored, a resumed search will run this step again")
            return
        best = info["best"]
        done = info["children"] - state["start"]
        rate = done / max(info["elapsed"], 1e-9) * 3600
        text = f"best {best:.3f} · {rate:.0f} children/h · step {info['step']} {info['kind']}:{info['outcome']}" \
            if best is not None else f"step {info['step']} {info['kind']}:{info['outcome']}"
        bar.update(state["tid"], completed=info["children"], info=text)
        if not console.is_terminal:
            line = f"step {info['step']:>4} {info['kind']:<6} {info['outcome']:<11} children {info['children']}"
            if best is not None:
                line += f" best {best:.4f}"
            if info["outcome"] == "error":
                line += f" ({info['detail'].get('stage')}: {info['detail'].get('error')})"
            console.print(line)

    with bar:
        s = run_search(cfg, args.db, workers=args.workers, backend=args.backend, ray_address=args.ray_address,
                       compile_cache=cache, retries=args.retries, on_event=on_event)
    print(f"{s.children} children evaluated ({s.scored} scored, {s.filtered} filtered, {s.hurdle} below the hurdle, "
          f"{s.errors} errors; {s.duplicates} duplicates skipped), {s.evaluations} evaluations, {s.steps} steps, "
          f"{s.wall_s:.0f}s this run; stopped on {s.stopped}")
    if s.best:
        h, score = s.best[0]
        print(f"best cell {h} with score {score:.4f}; see `cellsearch top --db {args.db}` and "
              f"`cellsearch show {h} --db {args.db}`")
    return 0


def top(args) -> int:
    from cellsearch.results import leaderboard, stored_config
    from cellsearch.storage import Store

    with Store(args.db, write=False) as store:
        cfg = stored_config(store)
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


def _cell_by_name(name: str, db: str | None):
    """A seed name, a cell JSON file, or a cell id/hash in the store."""
    from cellsearch.spaces import resolve_cell

    try:
        return resolve_cell(name)
    except CellSearchError:
        db = db or DEFAULT_DB
        if not os.path.exists(db):
            raise
        from cellsearch.graph import from_json
        from cellsearch.inspect import find_cell
        from cellsearch.storage import Store

        with Store(db, write=False) as store:
            return from_json(find_cell(store, name)["graph"])


def analyze(args) -> int:
    from cellsearch.analyze import analyze as run

    graph = _cell_by_name(args.name, args.db)
    summary = run(graph, args.task, args.output, params_dir=args.params, data_dir=args.data_dir, steps=args.steps,
                  budget=args.budget, seed=args.seed, lr=args.lr)
    for gate, per_layer in summary["gates"].items():
        text = ", ".join(f"layer {k + 1}: {g['left']:.2f} shut / {g['right']:.2f} open" for k, g in enumerate(per_layer))
        print(f"gate {gate}: {text}")
    print(f"wrote {args.output}/saturation.png, activations.png and analysis.json")
    return 0


def report(args) -> int:
    from cellsearch.report import build_report

    path = build_report(args.db, args.output, top=args.top, analyze=args.analyze)
    print(f"wrote {path}; open it in a browser (it needs no network)")
    return 0


def export(args) -> int:
    if args.table:
        from cellsearch.tables import export_table

        n = export_table(args.db, args.table, args.output, args.format)
        print(f"wrote {args.output}: {n} rows of {args.table}")
        return 0
    if not args.ref:
        raise ConfigError("export needs a cell id or hash, or --table evaluations|cells")
    from cellsearch.inspect import export_cell

    path = export_cell(args.db, args.ref, args.output)
    print(f"wrote {path}; load it with cellsearch.load({path!r}) or GraphCell.from_graph(...)")
    return 0
