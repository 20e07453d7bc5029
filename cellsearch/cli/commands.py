"""The verbs about cells and searching: ``seeds``, ``show``, ``mutate``, ``search`` and ``analyze``.

Each function takes the parsed arguments (:mod:`cellsearch.cli.main`) and returns the exit status;
the verbs that read a store are :mod:`cellsearch.cli.store_verbs`, ``train`` is
:mod:`cellsearch.cli.train_verbs`. JAX is imported only when a verb trains (``search``, ``analyze``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import numpy as np
from rich.console import Console

from cellsearch.cell.canon import structural_hash
from cellsearch.cell.graph import load, param_count, param_count_coefficients, to_json
from cellsearch.cell.render import to_dot, to_equations, to_text
from cellsearch.cli.draw import render_image
from cellsearch.cli.inspect import show_candidate
from cellsearch.cli.progress import progress_bar
from cellsearch.cli.settings import with_settings
from cellsearch.cli.store_verbs import confirm
from cellsearch.errors import CellSearchError, ConfigError, Interrupted
from cellsearch.evolve.mutate import EditCount
from cellsearch.evolve.mutate import mutate as mutate_cell
from cellsearch.evolve.spaces import find_seed, load_space, resolve_cell, space_digest
from cellsearch.search.config import DEFAULT_DB, SearchConfig, quick_config
from cellsearch.search.confirm import confirmed
from cellsearch.search.driver import run_search
from cellsearch.search.executors import deterministic
from cellsearch.search.results import load_cell, stored_config, summarize
from cellsearch.search.runs import stop_on_signals
from cellsearch.search.steps import liveness_check
from cellsearch.store.sqlite import Store


def _emit(text: str, out: str | None) -> None:
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


# ----------------------------------------------------------------------------- cells


def seeds(args) -> int:

    space = load_space(args.space)
    print(f"# search space {space.name!r}: baseline {space.baseline}, pool seeds {', '.join(space.pool_seeds)}")
    print(f"{'name':<10} {'states':<14} {'params(n)':<14} {'n=' + str(args.hidden):>10}")
    for name in space.seeds:
        g = space.seed(name)
        a, b = param_count_coefficients(g)
        print(f"{name:<10} {','.join(g.graph['states']):<14} {f'{a}n^2+{b}n':<14} {param_count(g, args.hidden):>10}")
    return 0


def _show_graph(g, fmt: str, out: str | None) -> None:

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

        print(show_candidate(db, args.name, args.format, args.output))
        return 0
    _show_graph(g, args.format, args.output)
    return 0


def mutate(args) -> int:


    try:
        count = EditCount.parse(args.edits)
    except ValueError as e:
        raise ConfigError(f"--edits: {e}") from None
    space = load_space(args.space)
    parent = resolve_cell(args.name, args.space)
    liveness = liveness_check(SearchConfig())  # the probe a search with the default filter runs
    rng = np.random.default_rng(args.seed)
    print(f"# {args.n} children of {args.name} ({structural_hash(parent)}), seed {args.seed}, edits {count}"
          + (f" (p ~ U[0, {args.rate:g}])" if count.paper else ""))
    n_edits, verdicts = [], []
    for k in range(args.n):
        child, edits = mutate_cell(parent, rng=rng, space=space, edits=count, max_rate=args.rate)
        why = liveness(child)
        n_edits.append(len(edits))
        verdicts.append((why or "alive").split(":")[0])
        if args.quiet:
            continue
        print(f"\n## child {k + 1}: {structural_hash(child)}  ({len(edits)} edits; probe: {why or 'alive'})")
        for e in edits:
            print(f"#   {e.name} at {e.node}: {e.detail}")
        for line in to_equations(child):
            print(line)
    hist = ", ".join(f"{v}: {n_edits.count(v)}" for v in sorted(set(n_edits)))
    dead = {v: verdicts.count(v) for v in sorted(set(verdicts)) if v != "alive"}
    print(f"\n# edits per child: mean {np.mean(n_edits):.2f} ({hist})")
    print(f"# liveness probe: {verdicts.count('alive')} of {args.n} alive"
          + (" (" + ", ".join(f"{n} {v}" for v, n in dead.items()) + ")" if dead else ""))
    if args.dedup:
        from cellsearch.nn.dedup import mutation_stream_stats

        stats = mutation_stream_stats(parent, space=space, n=args.dedup, seed=args.seed)
        print(f"\n# duplicates in a stream of {stats['children']} children: "
              f"{stats['structural']} structural, {stats['functional']} functional, {stats['new']} new")
    return 0


# ----------------------------------------------------------------------------- search


def search_config(args):
    """The :class:`~cellsearch.search.config.SearchConfig` of ``cellsearch search``'s arguments."""
    base = quick_config() if args.quick else SearchConfig()
    changes = {}
    if args.space:
        changes.update(_space_setting(args.space))
    if args.pool_seeds:
        changes.update(_pool_setting(args.pool_seeds))
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
        changes["settings_per_task"] = n = args.settings_per_task
        # a rung cannot train more settings than a full evaluation has: fewer settings shrink the rungs too
        changes["screen"] = tuple((share, min(k, n)) for share, k in base.screen)
    if args.pool_size:
        changes["pool_size"] = args.pool_size
    if args.population:
        changes["population"] = args.population
    schedule = {k: v for k, v in (("steps", args.steps), ("schedule", args.schedule),
                                  ("steps_per_epoch", args.steps_per_epoch)) if v is not None}
    dtype = resolve_dtype(args.dtype)
    changes["train"] = replace(base.train, dtype=dtype, **schedule)
    changes["filter_train"] = replace(base.filter_train, dtype=dtype,
                                      **({"steps": args.filter_steps} if args.filter_steps else {}))
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    return with_settings(replace(base, **changes), args.settings)


def funnel(s) -> str:
    """The children's fates in words: ``9 scored, 6 filtered, ...`` (a screened child is one that
    its rung's ranking stopped; the rest are where its full evaluation ended)."""
    parts = [(s.scored, "scored"), (s.screened, "screened out at a rung"), (s.filtered, "filtered"),
             (s.hurdle, "below the hurdle"), (s.diverged, "diverged"), (s.errors, "errors")]
    return ", ".join(f"{n} {what}" for n, what in parts if n or what in ("scored", "filtered"))


def resolve_dtype(choice: str) -> str:
    """``--dtype``: ``auto`` is bfloat16 on an accelerator and float32 on a CPU."""
    if choice != "auto":
        return choice
    from cellsearch.nn.train import default_dtype  # asks JAX which device it has

    return default_dtype()


def _space_setting(space: str) -> dict:
    """``--space``: a built-in name, or a file (stored by absolute path and content digest)."""


    if not space.endswith(".py"):
        return {"space": space}
    path = os.path.abspath(space)
    if not os.path.isfile(path):
        raise ConfigError(f"--space: the file {space!r} does not exist")
    return {"space": path, "space_sha": space_digest(path)}


def _pool_setting(text: str) -> dict:
    """``--pool-seeds A,B``: seed names of the space, or cell JSON files (stored whole)."""


    names, cells = [], {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item.endswith(".json"):
            name = os.path.splitext(os.path.basename(item))[0]
            cells[name] = to_json(load(item), None)
            item = name
        if item in names:
            raise ConfigError(f"--pool-seeds: {item!r} is named twice")
        names.append(item)
    if not names:
        raise ConfigError("--pool-seeds: no seed given")
    return {"pool_seeds": tuple(names), "cells_json": cells}


def search(args) -> int:

    from cellsearch.nn.train import enable_compilation_cache

    cfg = search_config(args)
    if args.deterministic:

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
            if info.get("cores_before"):
                console.print(f"note: this search ran on {info['cores_before']} CPU core(s) before and runs on "
                              f"{info['cores']} now; results from here on repeat a search on {info['cores']}, not an "
                              "uninterrupted one (README, \"Repeat it\"; taskset pins the cores)")
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

    try:
        with stop_on_signals(), bar:
            s = run_search(cfg, args.db, workers=args.workers, backend=args.backend, ray_address=args.ray_address,
                           compile_cache=cache, retries=args.retries, on_event=on_event)
    except Interrupted as e:

        with Store(args.db, write=False) as store:
            k = summarize(store, stored_config(store))
        print(f"cellsearch: stopped by {e.signal}; {args.db} keeps {k.steps} steps, {k.children} children and "
              f"{k.evaluations} evaluations (the jobs in flight were dropped); run the same command to resume",
              file=sys.stderr)
        return 130 if e.signal == "SIGINT" else 143
    print(f"{s.children} children evaluated ({funnel(s)}; {s.duplicates} duplicates skipped), {s.evaluations} "
          f"evaluations, {s.steps} steps, "
          f"{s.wall_s:.0f}s this run; stopped on {s.stopped}")
    if s.stopped == "step cap":
        print(f"the search stopped on its step cap ({s.steps} steps, 20 per child asked): most proposals were "
              "duplicates or failed mutations, so the space near the pool looks exhausted; try another --seed, "
              "a larger --pool-size or more edits per child (--set edits=1-3)")
    if s.probe_rejected:
        print(f"{s.probe_rejected} dead children (liveness probe) were resampled before any training")
    if args.confirm:

        confirm(argparse.Namespace(db=args.db, k=args.confirm, seeds=5, steps=None))
    if s.best:
        h, score = s.best[0]
        what = ("a seed: no child has beaten the seeds yet" if s.best_origin.startswith("seed:")
                else "a child found by the search, " + ("above" if score > 1 else "below") + " the baseline")
        print(f"best cell {h} with score {score:.4f} ({what}); see `cellsearch top --db {args.db}` and "
              f"`cellsearch show {h} --db {args.db}`")
        print(confirmation_line(args.db, h))
    return 0


def confirmation_line(db: str, cell: str) -> str:
    """Whether a search's best cell is confirmed: its verdict from fresh paired seeds, or how to get one
    (a search-time score is a best over settings and seeds, and the top of a leaderboard is usually lucky)."""
    with Store(db, write=False) as store:
        c = confirmed(store).get(cell)
    if c is None:
        return (f"not confirmed yet: a search-time score is the best of a few settings on the search's seeds; "
                f"`cellsearch confirm -k 1 --db {db}` re-trains it and the baseline on 5 fresh paired seeds")
    per = ", ".join(f"{t} {p['mean']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}] {p['verdict']}" for t, p in c["tasks"].items())
    said = {"better": "better than the baseline", "worse": "worse than the baseline", "tie": "a tie with the baseline",
            "unstable": "unstable (it diverged on some of them)"}[c["verdict"]]
    pairs = sorted({p["pairs"] for p in c["tasks"].values()})
    n = str(pairs[0]) if len(pairs) == 1 else f"{pairs[0]}-{pairs[-1]}"
    return f"confirmed on {n} fresh paired seeds: {said} ({per})"


def analyze(args) -> int:
    from cellsearch.nn.analyze import analyze as run

    graph = load_cell(args.name, args.db)
    summary = run(graph, args.task, args.output, params_dir=args.params, data_dir=args.data_dir, steps=args.steps,
                  budget=args.budget, seed=args.seed, lr=args.lr)
    for gate, per_layer in summary["gates"].items():
        text = ", ".join(f"layer {k + 1}: {g['left']:.2f} shut / {g['right']:.2f} open" for k, g in enumerate(per_layer))
        print(f"gate {gate}: {text}")
    print(f"wrote {args.output}/saturation.png, activations.png and analysis.json")
    return 0
