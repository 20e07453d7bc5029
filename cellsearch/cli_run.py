"""The CLI verbs that train and search: ``train``, ``search``, ``top``, ``export``."""

from __future__ import annotations

import argparse

from cellsearch.errors import ConfigError

TASK_BUDGETS = {"memorize": 20_000, "arithmetic": 20_000, "xml": 20_000, "ptb": 100_000,
                "nottingham": 20_000, "pianomidi": 20_000}


def parse_options(items: list[str] | None) -> dict:
    """``["max_digits=4", "seq_len=32"]`` -> ``{"max_digits": 4, "seq_len": 32}`` (numbers parsed)."""
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


def _int_list(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def progress_bar():
    """A rich progress bar on stderr (drawn only when stderr is a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False,
                    disable=not console.is_terminal)


def cmd_train(args) -> int:
    import numpy as np

    from cellsearch.hparams import HParamSpace
    from cellsearch.spaces import resolve_cell
    from cellsearch.tasks import make_task
    from cellsearch.train import TrainConfig, enable_compilation_cache, train_and_evaluate

    if not args.no_compile_cache:
        enable_compilation_cache(args.compile_cache)
    graph = resolve_cell(args.name)
    opts = parse_options(args.task_opt)
    if args.task in ("ptb", "nottingham", "pianomidi") and args.data_dir:
        opts.setdefault("data_dir", args.data_dir)
    task = make_task(args.task, **opts)
    budget = args.budget or TASK_BUDGETS[args.task]
    space = HParamSpace(layers=args.layers, param_budget=(budget,))
    settings = space.sample(np.random.default_rng(args.seed), args.settings, seed_base=args.seed * 1000)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, schedule=args.schedule,
                      steps_per_epoch=args.steps_per_epoch, data_seed=args.seed)
    prog = progress_bar()
    with prog:
        tid = prog.add_task(f"{args.name} on {args.task}", total=args.settings * args.steps)
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
    return 0


def add_verbs(sub, positive_int, positive_float) -> None:
    from cellsearch.tasks import TASKS

    s = sub.add_parser("train", help="train a seed cell (or a cell JSON file) on a task and print the metric per setting")
    s.add_argument("name", help="a seed name or a cell JSON file")
    s.add_argument("--task", choices=list(TASKS), default="arithmetic")
    s.add_argument("--steps", type=positive_int, default=500, help="training steps per setting (default 500)")
    s.add_argument("--settings", type=positive_int, default=4, help="hyperparameter settings, trained together (default 4)")
    s.add_argument("--seed", type=int, default=0, help="seed of the settings, parameters and data")
    s.add_argument("--budget", type=positive_int, default=None, help="recurrent parameter budget (default per task)")
    s.add_argument("--layers", type=_int_list, default=(1,), help="allowed layer counts, e.g. 1,2 (default 1)")
    s.add_argument("--batch-size", type=positive_int, default=20)
    s.add_argument("--schedule", choices=["fixed", "paper"], default="fixed")
    s.add_argument("--steps-per-epoch", type=positive_int, default=100)
    s.add_argument("--task-opt", action="append", metavar="KEY=VALUE", help="task setting, e.g. max_digits=4")
    s.add_argument("--data-dir", default=None, help="directory holding ptb/ and music/ (default ../shared/data)")
    s.add_argument("--compile-cache", default=None, help="persistent JAX compilation cache directory")
    s.add_argument("--no-compile-cache", action="store_true", help="do not use the persistent compilation cache")
    s.set_defaults(func=cmd_train)

    from cellsearch import cli_search

    cli_search.add_verbs(sub, positive_int, positive_float)
