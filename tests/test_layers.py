"""The import picture: the graph layer and the reading verbs never import JAX; no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NO_JAX = ["graph", "ops", "canon", "render", "mutate", "edits", "spaces", "hparams", "storage", "tasks", "config",
          "results", "inspect", "strategies", "cli", "draw", "tables", "commands", "progress", "report",
          "encoding", "queries", "runs", "doctor", "store_errors", "compare", "pages", "store_commands", "confirm",
          "steps", "schedules", "search"]


def no_jax_after(code: str) -> None:
    probe = code + "\nimport sys\nbad = sorted(m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'flax')))\n" \
                   "assert not bad, bad[:5]\n"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_graph_layer_imports_no_jax():
    no_jax_after("\n".join(f"import cellsearch.{m}" for m in NO_JAX))


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from cellsearch.search import run_search
    from tests.search_helpers import tiny_config

    db = tmp_path_factory.mktemp("nojax") / "s.db"
    run_search(tiny_config(candidates=1), str(db))
    return db


def test_top_show_export_import_no_jax(small_store, tmp_path):
    out = tmp_path / "c.json"
    no_jax_after(
        "from cellsearch.cli import main\n"
        f"assert main(['top', '--db', {str(small_store)!r}]) == 0\n"
        f"assert main(['show', '1', '--db', {str(small_store)!r}]) == 0\n"
        f"assert main(['export', '1', '--db', {str(small_store)!r}, '-o', {str(out)!r}]) == 0\n"
        "assert main(['seeds']) == 0\n")


def imports_of(path: Path) -> set[str]:
    """The cellsearch modules a module imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cellsearch"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("cellsearch")}
    return out


def test_no_import_cycles_and_no_private_names():
    pkg = ROOT / "cellsearch"
    mods = {("cellsearch." + str(p.relative_to(pkg).with_suffix("")).replace("/", ".")).replace(".__init__", ""): p
            for p in pkg.rglob("*.py")}
    graph = {m: {i for i in imports_of(p) if i in mods and i != m} for m, p in mods.items()}
    import networkx as nx

    g = nx.DiGraph([(a, b) for a, bs in graph.items() for b in bs])
    assert list(nx.simple_cycles(g)) == []
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cellsearch"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{m} imports private {private} from {node.module}"
