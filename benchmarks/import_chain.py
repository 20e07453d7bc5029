"""The longest chain of module-level imports inside the package (issue 33's measure of how deep the
layers are): ``python benchmarks/import_chain.py [ROOT] [--library]``.

Reads the source with ``ast`` (nothing is imported): an import inside a function or under
``if TYPE_CHECKING`` does not count. ``--library`` leaves out the command line (``cellsearch.cli``
and ``__main__``). ROOT is a checkout (default: this one), so an old commit's worktree can be
measured the same way.
"""

from __future__ import annotations

import argparse
import ast
import functools
import pathlib


def module_deps(root: pathlib.Path) -> dict[str, set[str]]:
    """Each module of ``root/cellsearch`` and the package modules it imports at module level."""
    files = {}
    for p in (root / "cellsearch").rglob("*.py"):
        name = ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        files[name] = p
    deps = {}
    for name, p in files.items():
        base = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        out = set()
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for n in ast.walk(node) if isinstance(node, (ast.Try, ast.If)) else [node]:
                if isinstance(n, ast.Import):
                    out |= {a.name for a in n.names}
                elif isinstance(n, ast.ImportFrom):
                    m = n.module or ""
                    if n.level:
                        parts = base.split(".")
                        m = ".".join(parts[: len(parts) - n.level + 1] + ([m] if m else []))
                    out |= {f"{m}.{a.name}" if f"{m}.{a.name}" in files else m for a in n.names}
        deps[name] = {d for d in out if d in files and d != name}
    return deps


def longest_chain(deps: dict[str, set[str]], starts) -> tuple[str, ...]:
    @functools.lru_cache(None)
    def longest(name: str, seen: frozenset) -> tuple[str, ...]:
        tails = [longest(d, seen | {name}) for d in deps[name] if d not in seen]
        return (name, *max(tails, key=len, default=()))

    return max((longest(m, frozenset()) for m in starts), key=len)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(pathlib.Path(__file__).resolve().parent.parent))
    ap.add_argument("--library", action="store_true", help="leave out the command line")
    args = ap.parse_args()
    deps = module_deps(pathlib.Path(args.root))
    starts = [m for m in deps if not (args.library and (m.startswith("cellsearch.cli") or m.endswith("__main__")))]
    chain = longest_chain(deps, starts)
    print(f"{len(chain) - 1} imports deep: " + " -> ".join(chain))


if __name__ == "__main__":
    main()
