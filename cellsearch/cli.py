"""The ``cellsearch`` command line: thin verbs over the library.

Verbs: ``seeds``, ``show``, ``mutate``, ``train``, ``search``, ``top``, ``export``.
Every expected failure (bad cell file, unknown seed, missing data, locked store) prints one
line ``cellsearch: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from cellsearch.errors import CellSearchError

DEFAULT_DB = "cellsearch.db"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


# ----------------------------------------------------------------------------- verbs


def cmd_seeds(args) -> int:
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


def _emit(text: str, out: str | None) -> None:
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


def _show_graph(g, fmt: str, out: str | None) -> None:
    from cellsearch.graph import to_json
    from cellsearch.render import render_image, to_dot, to_text

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


def cmd_show(args) -> int:
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


def cmd_mutate(args) -> int:
    import numpy as np

    from cellsearch.canon import structural_hash
    from cellsearch.mutate import mutate
    from cellsearch.render import to_equations
    from cellsearch.spaces import load_space, resolve_cell

    space = load_space(args.space)
    parent = resolve_cell(args.name, args.space)
    rng = np.random.default_rng(args.seed)
    print(f"# {args.n} children of {args.name} ({structural_hash(parent)}), seed {args.seed}")
    for k in range(args.n):
        child, edits = mutate(parent, rng=rng, space=space)
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


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cellsearch",
        description="Search for recurrent cells (Jozefowicz, Zaremba & Sutskever 2015) in JAX.",
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("seeds", help="list the seed cells of a search space with parameter counts")
    s.add_argument("--space", default="jozefowicz2015", help="search space (default: jozefowicz2015)")
    s.add_argument("--hidden", type=_positive_int, default=128, help="hidden size for the count column")
    s.set_defaults(func=cmd_seeds)

    s = sub.add_parser("show", help="print a cell as equations, DOT, JSON or an image")
    s.add_argument("name", nargs="?", help="a seed name, or a candidate id or hash in --db")
    s.add_argument("--graph", metavar="FILE.json", help="show the cell in this JSON file")
    s.add_argument("--format", choices=["text", "dot", "json", "svg", "png"], default="text")
    s.add_argument("-o", "--output", help="write to this file instead of stdout")
    s.add_argument("--space", default=None, help="look the seed up in this space only")
    s.add_argument("--db", default=None, help=f"search store (default: {DEFAULT_DB} if it exists)")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("mutate", help="print random children of a cell and the edits that made them")
    s.add_argument("name", help="a seed name or a cell JSON file")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same children)")
    s.add_argument("-n", type=_positive_int, default=3, help="number of children")
    s.add_argument("--space", default="jozefowicz2015", help="search space for the mutation sets")
    s.add_argument("--dedup", type=_positive_int, metavar="N", default=0,
                   help="also mutate N times and report how many children were duplicates")
    s.set_defaults(func=cmd_mutate)

    _add_more_verbs(sub)
    return p


def _add_more_verbs(sub) -> None:
    from cellsearch import cli_run

    cli_run.add_verbs(sub, _positive_int, _positive_float)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CellSearchError as e:
        print(f"cellsearch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cellsearch: interrupted; everything finished so far is saved", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
