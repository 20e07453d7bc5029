"""The house plan, checked from the folders: each folder is a layer and imports only the layers
below it, only ``cellsearch/nn/`` imports JAX at module level, nothing imports in a cycle, no module
is shadowed by a name of its package, and the reading verbs run without loading JAX.

The layers, bottom up (``docs/architecture.md`` draws them):

0. ``errors``, ``config``, ``hparams``: shared leaves;
1. ``cell/`` (the graph) and ``tasks/`` (the data), independent of each other;
2. ``evolve/`` (edits, spaces, strategies) and ``store/`` (SQLite), independent of each other;
3. ``nn/``: the JAX side;
4. ``search/``;
5. ``cli/``.

The front door (``cellsearch/__init__.py``) and ``__main__`` may import anything.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import cellsearch

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "cellsearch"
RANK = {"": 0, "cell": 1, "tasks": 1, "evolve": 2, "store": 2, "nn": 3, "search": 4, "cli": 5}
JAX = ("jax", "jaxlib", "flax", "optax")
# imports a function may make when it runs, not before: JAX (the verbs that train), and optional
# or heavy libraries that only some verbs need
LAZY = (*JAX, "cellsearch.nn", "matplotlib", "optuna", "sklearn", "pandas", "pyarrow", "ray", "scipy", "torch",
        "search_spaces")


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(("cellsearch", *p.relative_to(PKG).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = p
    return out


def folder(module: str) -> str:
    """The layer folder of a module (``""`` for the top-level leaves)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else ""


def imports(path: Path, *, top_level_only: bool = False) -> list[tuple[str, int, bool]]:
    """``(module, line, inside a function)`` for every import of ``path`` (``if TYPE_CHECKING:``
    blocks skipped)."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:  # a submodule, else the module itself
                names = {f"{child.module}.{a.name}" for a in child.names} & set(MODULES) or {child.module}
                out.extend((n, child.lineno, in_function) for n in sorted(names))
            visit(child, inner)

    visit(tree, False)
    return [i for i in out if not (top_level_only and i[2])]


MODULES = modules()
EXEMPT = {"cellsearch", "cellsearch.__main__"}


def test_each_folder_imports_only_the_layers_below_it():
    wrong = []
    for m, p in MODULES.items():
        if m in EXEMPT:
            continue
        mine = folder(m)
        for target, line, _ in imports(p):
            if target not in MODULES:
                continue
            theirs = folder(target)
            if theirs != mine and RANK[theirs] >= RANK[mine]:
                wrong.append(f"{p.relative_to(ROOT)}:{line} ({mine or 'leaf'}, layer {RANK[mine]}) imports {target} "
                             f"({theirs or 'leaf'}, layer {RANK[theirs]})")
    assert not wrong, "\n".join(wrong)


def test_only_the_jax_folder_imports_jax_at_module_level():
    wrong = []
    for m, p in MODULES.items():
        if folder(m) == "nn" or m in EXEMPT:
            continue
        for target, line, _ in imports(p, top_level_only=True):
            if target.split(".")[0] in JAX or target.startswith("cellsearch.nn"):
                wrong.append(f"{p.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_imports_inside_functions_are_only_the_lazy_ones():
    """An import inside a function hides a dependency from the reader; only JAX (for the verbs that
    train) and optional or heavy libraries are imported late."""
    wrong = [f"{p.relative_to(ROOT)}:{line} imports {target} inside a function"
             for m, p in MODULES.items() for target, line, inner in imports(p)
             if inner and not target.startswith(LAZY)]
    assert not wrong, f"{len(wrong)} late imports:\n" + "\n".join(wrong)


def test_no_import_cycles_and_no_private_names():
    g = nx.DiGraph()
    for m, p in MODULES.items():
        for target, _line, _ in imports(p):
            if target in MODULES and target != m:
                g.add_edge(m, target)
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cellsearch"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{m} imports private {private} from {node.module}"
    assert list(nx.simple_cycles(g)) == []
    longest = nx.dag_longest_path(g)
    print(f"longest import chain: {len(longest)} modules: {' -> '.join(longest)}")


def test_no_module_is_shadowed_by_a_name_of_its_package():
    """``cellsearch.evolve.mutate`` is the module, whatever the package exports (a function named
    like its module would hide it: ``import cellsearch.x.mutate as m`` would bind the function)."""
    for info in pkgutil.walk_packages(cellsearch.__path__, "cellsearch."):
        if info.name == "cellsearch.__main__":  # runs the command line when imported
            continue
        mod = importlib.import_module(info.name)
        parent, _, leaf = info.name.rpartition(".")
        assert getattr(sys.modules[parent], leaf) is mod, f"{parent}.{leaf} is not the module {info.name}"
    assert callable(cellsearch.mutate)  # the front door's function: no module cellsearch.mutate exists


def test_every_module_says_its_concern_first():
    for m, p in MODULES.items():
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc and doc.splitlines()[0].strip(), f"{m} has no docstring naming its concern"


def no_jax_after(code: str) -> None:
    probe = code + "\nimport sys\nbad = sorted(m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'flax')))\n" \
                   "assert not bad, bad[:5]\n"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_every_module_outside_the_jax_folder_imports_no_jax():
    no_jax_after("\n".join(f"import {m}" for m in MODULES if folder(m) != "nn" and m not in EXEMPT) + "\nimport cellsearch")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from cellsearch.search.driver import run_search
    from tests.search_helpers import tiny_config

    db = tmp_path_factory.mktemp("nojax") / "s.db"
    run_search(tiny_config(candidates=1), str(db))
    return db


def test_top_show_export_import_no_jax(small_store, tmp_path):
    out = tmp_path / "c.json"
    no_jax_after(
        "from cellsearch.cli.main import main\n"
        f"assert main(['top', '--db', {str(small_store)!r}]) == 0\n"
        f"assert main(['show', '1', '--db', {str(small_store)!r}]) == 0\n"
        f"assert main(['export', '1', '--db', {str(small_store)!r}, '-o', {str(out)!r}]) == 0\n"
        "assert main(['seeds']) == 0\n")
