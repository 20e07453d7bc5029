"""What ``cellsearch train`` does: sampled settings as the search trains them, or one explicit
setting under the standard protocol (:mod:`cellsearch.nn.protocol`) on PTB and music.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import asdict, replace

import numpy as np
from rich.console import Console

from cellsearch.cell.graph import param_count
from cellsearch.cell.params import bound, hidden_size, init_scale_of
from cellsearch.cli.commands import resolve_dtype
from cellsearch.cli.progress import progress_bar
from cellsearch.config import PRESETS, PUBLISHED, ProtocolConfig, TrainConfig
from cellsearch.errors import ConfigError
from cellsearch.hparams import HParams, HParamSpace
from cellsearch.search.results import load_cell
from cellsearch.tasks import TASKS, make_task, task_options


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


EXPLICIT = ("preset", "lr", "lr_grid", "init_scale", "init", "clip", "dropout", "hidden", "bptt", "epochs", "lr_decay",
            "decay_after", "seeds", "save", "max_windows")
PROTOCOL_ONLY = ("preset", "lr_grid", "lr_probe_windows", "dropout", "bptt", "epochs", "lr_decay", "decay_after", "max_windows")


def train(args) -> int:

    explicit = any(getattr(args, k) is not None for k in EXPLICIT)
    explicit = explicit or args.schedule == "zaremba"
    graph = load_cell(args.name, args.db)
    if args.layers is not None and explicit and len(args.layers) != 1:
        raise ConfigError(f"--layers takes one count with explicit settings, got {','.join(map(str, args.layers))}")
    if not args.no_compile_cache:
        from cellsearch.nn.train import enable_compilation_cache

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

    from cellsearch.nn.train import train_and_evaluate

    task = make_task(args.task, **task_options(args.task, parse_options(args.task_opt), args.data_dir))
    layers = args.layers or (1,)
    budget = args.budget or TASKS[args.task].budget
    if explicit:
        if args.hidden:
            budget = layers[0] * param_count(graph, args.hidden)
        init_scale = args.init_scale
        if args.init is not None:
            init_scale = init_scale_of(args.init, args.hidden or hidden_size(graph, budget, layers[0]))
        given = {"learning_rate": args.lr, "init_scale": init_scale, "max_grad_norm": args.clip}
        base = replace(HParams(), layers=layers[0], param_budget=budget, **{k: v for k, v in given.items() if v is not None})
        settings = [replace(base, seed=s) for s in (args.seeds or (args.seed,))]
    else:
        space = HParamSpace(layers=layers, param_budget=(budget,))
        settings = space.sample(np.random.default_rng(args.seed), args.settings, seed_base=args.seed * 1000,
                                spread_rates=True)  # K settings, K different learning rates while any is left
    given = {"batch_size": args.batch_size, "schedule": args.schedule}
    cfg = TrainConfig(steps=args.steps, steps_per_epoch=args.steps_per_epoch, data_seed=args.seed,
                      dtype=resolve_dtype(args.dtype),
                      **{k: v for k, v in given.items() if v is not None})
    prog = progress_bar()
    with prog:
        tid = prog.add_task(f"{args.name} on {args.task}", total=len(settings) * args.steps)
        results = train_and_evaluate(graph, task, settings, cfg, on_steps=lambda n: prog.advance(tid, n),
                                     keep_params=bool(args.save))
    keys = [k for k in ("accuracy", "closing_accuracy", "nll", "perplexity") if k in results[0].metrics]
    head = f"{'#':>2} {'lr':>6} {'init':>5} {'clip':>5} {'L':>2} {'hidden':>6} {'status':>9} {'score':>8} " + \
        " ".join(f"{k:>10}" for k in keys)
    print(head)
    for i, r in enumerate(results):
        h = r.hparams
        vals = " ".join(f"{r.metrics.get(k, float('nan')):>10.4f}" for k in keys)
        print(f"{i:>2} {h.learning_rate:>6g} {h.init_scale:>5g} {h.max_grad_norm:>5g} {h.layers:>2} "
              f"{r.metrics.get('hidden', 0):>6} {r.status:>9} {r.score:>8.4f} {vals}")
    if args.save:
        from cellsearch.nn.checkpoint import save_trained

        for r in results:  # each seed's run (one setting per seed with explicit settings)
            d = os.path.join(args.save, f"seed-{r.hparams.seed}") if len(results) > 1 else args.save
            if r.params is None:
                print(f"seed {r.hparams.seed}: {r.status}, nothing to save")
                continue
            save_trained(d, graph, args.task, r, asdict(cfg))
            print(f"saved to {d}; load it with GraphCell.from_saved({d!r})")
    best = max(results, key=lambda r: r.score)
    print(f"best score {best.score:.4f} (setting {results.index(best)}); "
          f"compile {sum(r.compile_s for r in results):.1f}s, total {sum(r.wall_s for r in results):.1f}s")
    if explicit and len(results) > 1:
        sc = [r.score for r in results]
        print(f"over seeds {','.join(str(h.seed) for h in settings)}: score {statistics.mean(sc):.4f} "
              f"+- {statistics.stdev(sc):.4f}")
    return 0


def protocol_config(args, graph):
    """The :class:`~cellsearch.config.ProtocolConfig` of ``train``'s explicit settings."""
    cfg = PRESETS[args.preset] if args.preset else ProtocolConfig()
    layers = args.layers[0] if args.layers else cfg.layers
    hidden = args.hidden
    if hidden is None and (args.budget or not args.preset):
        hidden = hidden_size(graph, args.budget or TASKS[args.task].budget, layers)
    hidden = hidden or cfg.hidden
    init = args.init if args.init is not None else (bound(args.init_scale, hidden) if args.init_scale else None)

    changes = dict(hidden=hidden, layers=layers, init=init, lr=args.lr, clip=args.clip, dropout=args.dropout,
                   batch_size=args.batch_size, bptt=args.bptt, epochs=args.epochs, schedule=args.schedule,
                   lr_decay=args.lr_decay, decay_after=args.decay_after, max_windows=args.max_windows)
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})  # the flags given override


def _train_protocol(args, graph) -> int:
    """The standard protocol (Zaremba 2014 / Boulanger-Lewandowski 2012), one run per seed."""
    from cellsearch.nn.protocol import groups, run_protocol, stream_data, windows

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
    if args.lr_grid:
        from cellsearch.nn.lr_choice import choose_lr, save_choice

        def on_probe(p):
            console.print(f"probe lr {p['lr']:g}: {p['status']}, valid nll {p['valid_nll']:.4f}")

        lr, probes = choose_lr(graph, data, replace(base, seed=seeds[0]), args.lr_grid,
                               probe_windows=args.lr_probe_windows, on_probe=on_probe)
        console.print(f"chose lr {lr:g} (lowest validation NLL after the probe's first epoch"
                      + (f", {args.lr_probe_windows} windows" if args.lr_probe_windows else "") + ")")
        base = replace(base, lr=lr)
        if args.save:
            save_choice(args.save, lr, probes, args.lr_probe_windows)
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
