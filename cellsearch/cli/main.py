"""The ``cellsearch`` command line: every verb, its arguments and its help, in one place.

Verbs are rows of :data:`VERBS` (name, help, argument builder, implementation: a function of
:mod:`cellsearch.cli.commands`, :mod:`cellsearch.cli.store_verbs` or :mod:`cellsearch.cli.train_verbs`).
Defaults shown in the help are read from the settings' dataclasses. Every expected failure (bad cell file, unknown seed, missing
data, locked or unwritable store) prints one line ``cellsearch: error: ...`` and exits
with status 2. Building the parser imports no JAX.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable

from cellsearch.cli import commands, store_verbs, train_verbs
from cellsearch.cli.tables import FORMATS, TABLES
from cellsearch.config import DTYPES, PRESETS, PROTOCOL_SCHEDULES, SCHEDULES, TrainConfig
from cellsearch.errors import CellSearchError
from cellsearch.evolve.spaces import DEFAULT_SPACE
from cellsearch.evolve.strategies import STRATEGIES
from cellsearch.search.config import DEFAULT_DB, SearchConfig, quick_config
from cellsearch.store.sqlite import explain
from cellsearch.tasks import TASKS
from cellsearch.tasks.data import HELP as DATA_DIR_HELP

# -- argument types -------------------------------------------------------------------------------


def _number(cast, ok, rule: str):
    """An argparse type: ``cast`` the text, then check ``ok``; the message names the rule."""

    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {rule}, got {v}")
        return v

    parse.__name__ = rule  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
unit_float = _number(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def int_list(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def float_list(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or min(vals) <= 0 or len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"expected distinct positive numbers, got {text!r}")
    return vals


def int_list_0(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if min(vals) < 0 or len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0, got {text!r}")
    return vals


# -- the verbs' arguments -----------------------------------------------------------------------


def _db(s, help_: str = "the search store") -> None:
    s.add_argument("--db", default=DEFAULT_DB, help=f"{help_} (default ./{DEFAULT_DB})")


def _data_dir(s) -> None:
    s.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)


def _preset_help() -> str:
    """``--preset``'s help, from :data:`~cellsearch.config.PRESETS`."""
    def one(name, p):
        return (f"{name.removeprefix('zaremba-')}: {p.layers}x{p.hidden}, init {p.init:g}, lr {p.lr:g}, clip {p.clip:g}, "
                f"dropout {p.dropout:g}, bptt {p.bptt}, {p.epochs} epochs, decay {p.lr_decay:.3g} after epoch "
                f"{p.decay_after}")

    return "Zaremba et al. 2014's settings (" + "; ".join(one(n, p) for n, p in PRESETS.items()) + \
        "); other flags override its values"


def _dtype(s) -> None:
    s.add_argument("--dtype", choices=("auto", *DTYPES), default="auto",
                   help="the computation dtype of training: bfloat16 is mixed precision (float32 parameters, loss and "
                        "optimiser); auto (the default) is bfloat16 on an accelerator, float32 on a CPU")


def _compile_cache(s) -> None:
    s.add_argument("--compile-cache", default=None, help="persistent JAX compilation cache (default ~/.cache/cellsearch/jax)")
    s.add_argument("--no-compile-cache", action="store_true", help="do not use the persistent compilation cache")


def args_seeds(s) -> None:
    s.add_argument("--space", default=DEFAULT_SPACE, help=f"search space (default {DEFAULT_SPACE})")
    s.add_argument("--hidden", type=positive_int, default=128, help="hidden size for the count column")


def args_show(s) -> None:
    s.add_argument("name", nargs="?", help="a seed name, or a candidate id or hash in --db")
    s.add_argument("--graph", metavar="FILE.json", help="show the cell in this JSON file")
    s.add_argument("--format", choices=["text", "dot", "json", "svg", "png"], default="text")
    s.add_argument("-o", "--output", help="write to this file instead of stdout")
    s.add_argument("--space", default=None, help="look the seed up in this space only")
    s.add_argument("--db", default=None, help=f"search store (default ./{DEFAULT_DB} if it exists)")


def args_mutate(s) -> None:
    s.add_argument("name", help="a seed name or a cell JSON file")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same children)")
    s.add_argument("-n", type=positive_int, default=3, help="number of children")
    s.add_argument("--space", default=DEFAULT_SPACE, help="search space for the mutation sets")
    s.add_argument("--dedup", type=positive_int, metavar="N", default=0,
                   help="also mutate N times and report how many children were duplicates")
    full = SearchConfig()
    s.add_argument("--edits", default=full.edits,
                   help=f"edits per child: K, K-L (drawn uniformly) or 'paper' (§3.5: every computation node with "
                        f"p ~ U[0, --rate]); default {full.edits}, as the search")
    s.add_argument("--rate", type=unit_float, default=full.mutation_rate,
                   help=f"with --edits paper: the largest per-node edit probability (default {full.mutation_rate:g})")
    s.add_argument("--quiet", action="store_true", help="print only the summary (with -n in the hundreds)")


def args_train(s) -> None:
    s.add_argument("name", help="a seed name, a cell JSON file, or a cell id/hash in --db")
    s.add_argument("--db", default=None, help=f"search store for cell ids (default ./{DEFAULT_DB} if it exists)")
    s.add_argument("--task", choices=list(TASKS), default="arithmetic")
    s.add_argument("--seed", type=int, default=0, help="seed of the settings, parameters and data")
    s.add_argument("--task-opt", action="append", metavar="KEY=VALUE", help="task setting, e.g. max_digits=4")
    _data_dir(s)
    _compile_cache(s)
    _dtype(s)
    g = s.add_argument_group("sampled settings (the default: K settings drawn from the search's grid, trained at once)")
    tc = TrainConfig()
    g.add_argument("--steps", type=positive_int, default=tc.steps, help=f"training steps per setting (default {tc.steps})")
    g.add_argument("--settings", type=positive_int, default=4, help="settings, trained together (default 4)")
    g.add_argument("--steps-per-epoch", type=positive_int, default=tc.steps_per_epoch,
                   help=f"epoch length under --schedule paper (default {tc.steps_per_epoch})")
    e = s.add_argument_group(
        "explicit settings (any of these trains one setting; on ptb, nottingham and pianomidi under the standard "
        "protocol: streams with the state carried, whole-split evaluation, dropout)")
    e.add_argument("--preset", choices=list(PRESETS), default=None, help=_preset_help())
    e.add_argument("--lr", type=positive_float, default=None, help="learning rate (plain SGD)")
    e.add_argument("--lr-grid", type=float_list, default=None, metavar="A,B,C",
                   help="standard protocol: probe each rate for one epoch at a fixed rate and train at the one with "
                        "the lowest validation NLL (each cell at its own rate)")
    e.add_argument("--lr-probe-windows", type=positive_int, default=None, metavar="N",
                   help="with --lr-grid: probe on the first N training windows instead of a whole epoch")
    init = e.add_mutually_exclusive_group()
    init.add_argument("--init-scale", type=positive_float, default=None,
                      help="weights in U[-s/sqrt(hidden), s/sqrt(hidden)] (the search's scale)")
    init.add_argument("--init", type=positive_float, default=None, help="weights in U[-init, init] (Zaremba's bound)")
    e.add_argument("--clip", type=positive_float, default=None, help="maximum gradient norm")
    e.add_argument("--dropout", type=unit_float, default=None, help="dropout on the non-recurrent connections")
    size = e.add_mutually_exclusive_group()
    size.add_argument("--hidden", type=positive_int, default=None, help="hidden size")
    size.add_argument("--budget", type=positive_int, default=None, help="recurrent parameter budget (default per task)")
    e.add_argument("--layers", type=int_list, default=None, help="layers (sampled: allowed counts, e.g. 1,2; default 1)")
    e.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"rows per step (default {tc.batch_size}; the standard protocol's {PRESETS['zaremba-small'].batch_size})")
    e.add_argument("--bptt", type=positive_int, default=None, help="time steps per window (standard protocol)")
    e.add_argument("--epochs", type=positive_int, default=None, help="epochs (standard protocol)")
    e.add_argument("--schedule", choices=PROTOCOL_SCHEDULES, default=None,
                   help="fixed rate; paper (§3.7: 3 epochs without improvement, then halve for 4 more); zaremba "
                        "(multiply by --lr-decay each epoch after --decay-after)")
    e.add_argument("--lr-decay", type=unit_float, default=None, help="zaremba schedule's factor per epoch")
    e.add_argument("--decay-after", type=non_negative_int, default=None, help="zaremba schedule: epochs at full rate")
    e.add_argument("--seeds", type=int_list_0, default=None, help="run each seed, e.g. 0,1,2: mean and spread")
    e.add_argument("--max-windows", type=positive_int, default=None,
                   help="cap on training windows per epoch (quick checks; default the whole stream)")
    e.add_argument("--save", metavar="DIR", default=None,
                   help="write the parameters and the cell to DIR (each seed to DIR/seed-N with --seeds), for "
                        "GraphCell.from_saved, on every task; under the standard protocol the best epoch's, and a "
                        "run started again with the same DIR resumes after its last finished epoch")


def args_search(s) -> None:
    full, quick = SearchConfig(), quick_config()
    s.add_argument("--quick", action="store_true",
                   help="a small search for a laptop CPU, with tasks that separate cells at its budget (its time "
                        "on 2 cores is in the README)")
    s.add_argument("--space", default=None,
                   help=f"search space: a built-in name or your own FILE.py, checked as the built-in ones "
                        f"(default {DEFAULT_SPACE})")
    s.add_argument("--pool-seeds", default=None, metavar="A,B",
                   help="the starting pool: seeds of the space and/or cell JSON files (default the space's POOL_SEEDS)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", dest="settings",
                   help="any other search setting, e.g. edits=1, hurdle=0.8, reeval_prob=0.3, "
                        "filter_hparams.learning_rate=0.5,1,2, train.steps=800 (repeatable; stored with the search)")
    s.add_argument("--tasks", default=None, help="comma-separated tasks; the first is the hurdle "
                   f"(default {','.join(full.tasks)}; --quick: {','.join(quick.tasks)})")
    budget = s.add_argument_group("budget (whichever ends first; a resumed search counts what the store holds)")
    budget.add_argument("--candidates", type=non_negative_int, default=None, metavar="N",
                        help=f"children to evaluate (default {full.candidates}; --quick {quick.candidates})")
    budget.add_argument("--hours", type=positive_float, default=None, metavar="H", help="wall-clock hours")
    s.add_argument("--strategy", choices=list(STRATEGIES), default=None, help="paper (default), aging or random")
    _db(s)
    s.add_argument("--workers", type=positive_int, default=1, help="evaluations in parallel (default 1)")
    s.add_argument("--population", type=positive_int, default=None, metavar="P",
                   help="evaluate P children together through the population interpreter (one compiled program "
                        "per size class instead of one per cell), in rounds of P steps, screened as a per-cell "
                        "search is; default 1 (per-cell jit)")
    s.add_argument("--backend", choices=["local", "ray"], default="local", help="local processes or a Ray cluster")
    s.add_argument("--ray-address", default=None, help="Ray cluster address (e.g. auto); default: a local Ray")
    s.add_argument("--deterministic", action="store_true",
                   help="deterministic XLA GPU kernels, so a GPU search repeats (slower; a CPU search repeats "
                        "on the same number of cores, see README)")
    s.add_argument("--retries", type=non_negative_int, default=1,
                   help="times a job lost to its worker is sent again (default 1)")
    s.add_argument("--seed", type=int, default=None, help="search seed (default 0); same seed, same search")
    s.add_argument("--confirm", type=positive_int, default=None, metavar="K",
                   help="as the last stage, confirm the top K cells (`cellsearch confirm -k K`, 5 seeds)")
    s.add_argument("--settings-per-task", type=positive_int, default=None,
                   help=f"settings per task per evaluation (default {full.settings_per_task}; "
                        f"--quick {quick.settings_per_task})")
    s.add_argument("--pool-size", type=positive_int, default=None, help="size of the pool of best cells")
    s.add_argument("--steps", type=positive_int, default=None,
                   help=f"training steps per evaluation, or their cap under --schedule paper (default "
                        f"{full.train.steps}; --quick {quick.train.steps})")
    s.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="fixed: --steps steps (default); paper: epochs until 3 without improvement, then "
                        "halve the rate for 4 more (§3.7)")
    s.add_argument("--steps-per-epoch", type=positive_int, default=None,
                   help=f"epoch length under --schedule paper (default {full.train.steps_per_epoch})")
    s.add_argument("--filter-steps", type=positive_int, default=None,
                   help=f"training steps of the memorisation filter (default {full.filter_train.steps})")
    _data_dir(s)
    _compile_cache(s)
    _dtype(s)


def args_top(s) -> None:
    _db(s)
    s.add_argument("-k", type=positive_int, default=10, help="rows (default 10)")
    s.add_argument("--all", action="store_true",
                   help="every child, whatever its fate: where a screened one stopped (rung and rank), where a "
                        "failed one failed")


def args_export(s) -> None:
    s.add_argument("ref", metavar="ID|HASH", nargs="?", help="a cell to write as JSON for the flax modules")
    s.add_argument("-o", "--output", required=True, help="the file to write")
    s.add_argument("--table", choices=TABLES, default=None,
                   help="instead of a cell, a table of the store: one row per evaluation, or per cell")
    s.add_argument("--format", choices=FORMATS, default=None,
                   help="csv or parquet (default: by the file's extension, else csv)")
    _db(s)


def args_report(s) -> None:
    s.add_argument("dbs", nargs="*", metavar="DB", help="stores to compare side by side (two or more); one store "
                   "is the same as --db")
    _db(s)
    s.add_argument("--watch", type=positive_int, nargs="?", const=30, default=None, metavar="SECONDS",
                   help="keep the report current while a search runs: write it every SECONDS (default 30) and "
                        "make the page reload itself, until the search ends")
    s.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default report.html)")
    s.add_argument("-k", "--top", type=positive_int, default=None,
                   help="cells on the leaderboard (default 10; a comparison shows 3 per search)")
    s.add_argument("--analyze", type=non_negative_int, default=0, metavar="K",
                   help="also train the K best cells on the first task and show their gate saturation (default 0)")


def args_confirm(s) -> None:
    _db(s)
    s.add_argument("-k", type=positive_int, default=5, help="cells to confirm: the top k besides the baseline (default 5)")
    s.add_argument("--seeds", type=positive_int, default=5,
                   help="fresh paired seeds (initialisation and data order) per cell and task (default 5, at least 2)")
    s.add_argument("--steps", type=positive_int, default=None,
                   help="training steps per run (default the search's; longer is allowed)")
    s.add_argument("--save", metavar="DIR", default=None,
                   help="keep every run's parameters in DIR/<cell>/<task>/seed-<s> (GraphCell.from_saved)")
    s.add_argument("--cells", default=None, metavar="ID,ID",
                   help="confirm these cells too (ids or hashes, e.g. a seed to compare the winners with)")
    s.add_argument("--settings", type=positive_int, default=1, metavar="N",
                   help="each cell and the baseline at their best N distinct stored settings per task, each judged "
                        "at the best of them on the fresh seeds (default 1; runs already stored are kept)")
    s.add_argument("--verify", type=non_negative_int, default=0, metavar="N",
                   help="then re-train the best confirmed of the top k and the baseline, at the settings chosen "
                        "above, on N held-out seeds: an unbiased verdict on the search's final answer (default 0: "
                        "none; one pick per store)")


def args_status(s) -> None:
    _db(s)
    s.add_argument("--json", action="store_true", help="print the status as JSON")


def args_doctor(s) -> None:
    _db(s)
    s.add_argument("-o", "--output", default=None, metavar="NEW.db",
                   help="where to copy the readable rows (default <db>.recovered.db; with a sound store, a copy "
                        "is made only if this is given)")


def args_analyze(s) -> None:
    s.add_argument("name", help="a seed name, a cell JSON file, or a cell id/hash in --db")
    s.add_argument("--task", choices=list(TASKS), default="arithmetic")
    s.add_argument("--params", metavar="DIR", default=None, help="a run saved by `train --save DIR` (else train here)")
    s.add_argument("-o", "--output", default="analysis", help="folder for the pictures (default ./analysis)")
    s.add_argument("--steps", type=positive_int, default=1000, help="training steps when training here (default 1000)")
    s.add_argument("--budget", type=positive_int, default=None, help="recurrent parameter budget (default per task)")
    s.add_argument("--lr", type=positive_float, default=1.0, help="learning rate when training here (default 1)")
    s.add_argument("--seed", type=int, default=0)
    _data_dir(s)
    s.add_argument("--db", default=None, help=f"search store for cell ids (default ./{DEFAULT_DB} if it exists)")


# name, help, arguments, implementation
VERBS: list[tuple[str, str, Callable, Callable]] = [
    ("seeds", "list the seed cells of a search space with parameter counts", args_seeds, commands.seeds),
    ("show", "print a cell as equations, DOT, JSON or an image", args_show, commands.show),
    ("mutate", "print random children of a cell and the edits that made them", args_mutate, commands.mutate),
    ("train", "train a seed cell (or a cell JSON file) on a task and print the metric per setting", args_train,
     train_verbs.train),
    ("search", "run (or resume) an architecture search into an SQLite store", args_search, commands.search),
    ("top", "leaderboard of a search store", args_top, store_verbs.top),
    ("confirm", "re-train the top cells and the baseline with fresh paired seeds: mean ratio, 95 % interval and "
     "verdict (better / tie / worse, or unstable where the cell diverged) per task", args_confirm, store_verbs.confirm),
    ("status", "whether a search is running on a store, its progress against its budget and the time left",
     args_status, store_verbs.status),
    ("report", "one self-contained HTML page about a search (progress, funnel, tasks, leaderboard with pictures, "
     "hyperparameters), kept current with --watch; or several searches side by side (report A.db B.db)",
     args_report, store_verbs.report),
    ("analyze", "train a cell (or load a saved run) and draw its gates' saturation and every node's activations",
     args_analyze, commands.analyze),
    ("export", "write a discovered cell as JSON for the flax modules, or the store's evaluations or cells "
     "as CSV/Parquet", args_export, store_verbs.export),
    ("doctor", "check a store's integrity and copy every readable row of a damaged one into a new store",
     args_doctor, store_verbs.doctor),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cellsearch",
                                description="Search for recurrent cells (Jozefowicz, Zaremba & Sutskever 2015) in JAX.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, help_, add_args, impl in VERBS:
        s = sub.add_parser(name, help=help_.replace("%", "%%"), description=help_)
        add_args(s)
        s.set_defaults(impl=impl)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.impl(args)
    except CellSearchError as e:
        print(f"cellsearch: error: {e}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:  # a store failed while a verb read or wrote it
        print(f"cellsearch: error: {explain(getattr(args, 'db', None) or '?', e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cellsearch: interrupted; everything finished so far is saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
