"""Cell pictures: Graphviz's ``dot`` when installed, else a layered layout in pure Python
drawn with matplotlib (:func:`render_image`).

:func:`layout` places the nodes in layers by longest path from the sources: the input ``x``
and the previous states on the top row (``x`` first, then the states in the cell's order),
the new states on the bottom row in the same order, every other node on the row after its
deepest operand. Within a row, nodes are ordered by the mean position of their operands
(two barycentre sweeps), which keeps edges short and crossings few. :func:`draw` writes an
SVG, PNG or PDF with matplotlib: linear layers as boxes (``Linear(a)`` for the paper's
identity-initialised ones), activations as ellipses, ``+ × −`` as circles, and the two edges
into a ``−`` labelled ``+`` (the minuend) and ``−`` (the subtrahend). Peephole (diagonal)
edges are dashed.

This module imports nothing from JAX; matplotlib is imported when a picture is drawn.
"""

from __future__ import annotations

import shutil
import subprocess

import networkx as nx

from cellsearch.cell.graph import CellGraph, operands
from cellsearch.cell.render import node_label, to_dot
from cellsearch.errors import CellSearchError

_COLOUR = {"input": "#dbe9f6", "state": "#fde2c8", "output": "#fde2c8", "linear": "#e8e8e8", "const": "#ffffff",
           "binary": "#ffffff", "activation": "#e6f4e0"}


def layout(g: CellGraph) -> dict[str, tuple[float, float]]:
    """Node -> (x, y): x the position in its row, y the row (0 at the top).

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> pos = layout(SEEDS["LSTM"]())
    >>> pos["x"][1] == pos["c_prev"][1] == 0 and pos["h"][1] == pos["c"][1] == max(y for _, y in pos.values())
    True
    >>> pos["x"][0] < pos["c_prev"][0] < pos["h_prev"][0] and pos["c"][0] < pos["h"][0]
    True
    """
    states = list(g.graph["states"])
    ops = {n: d["op"] for n, d in g.nodes(data=True)}
    depth: dict[str, int] = {}
    for n in nx.topological_sort(g):
        preds = list(g.predecessors(n))
        depth[n] = 0 if not preds or ops[n] in ("input", "state") else 1 + max(depth[p] for p in preds)
    for n, op in ops.items():  # constants sit just above the node that reads them
        if op == "const":
            depth[n] = max(0, min((depth[v] for v in g.successors(n)), default=1) - 1)
    bottom = max(depth.values()) if depth else 0
    for n, op in ops.items():
        if op == "output":
            depth[n] = bottom
    rows: dict[int, list[str]] = {}
    for n in nx.topological_sort(g):
        rows.setdefault(depth[n], []).append(n)

    def state_rank(n: str) -> float:
        op = ops[n]
        if op == "input":
            return -1.0
        return float(states.index(g.nodes[n]["state"])) if op in ("state", "output") else 0.0

    x: dict[str, float] = {}
    for r in sorted(rows):
        if r == 0:
            rows[r].sort(key=lambda n: (ops[n] not in ("input", "state"), state_rank(n)))
        for i, n in enumerate(rows[r]):
            x[n] = float(i)
    for _ in range(2):  # barycentre sweeps, down then up
        for r in sorted(rows)[1:]:
            bary = {n: sum(x[p] for p in g.predecessors(n)) / max(1, g.in_degree(n)) for n in rows[r]}
            if r == bottom:
                rows[r].sort(key=lambda n: (ops[n] == "output", state_rank(n) if ops[n] == "output" else bary[n]))
            else:
                rows[r].sort(key=lambda n: bary[n])
            for i, n in enumerate(rows[r]):
                x[n] = float(i)
    width = max(len(v) for v in rows.values())
    pos = {}
    for r, ns in rows.items():
        offset = (width - len(ns)) / 2
        for i, n in enumerate(ns):
            pos[n] = (offset + i, float(r))
    return pos


def _style(op: str) -> tuple[str, str]:
    if op in ("input", "state", "output", "linear", "const"):
        return ("round" if op != "const" else "square"), _COLOUR[op]
    return ("circle" if op in ("add", "mul", "sub") else "round"), _COLOUR["binary" if op in ("add", "mul", "sub")
                                                                          else "activation"]


def draw(g: CellGraph, path, *, fmt: str | None = None, dpi: int = 120):
    """Writes a picture of the cell to ``path`` (``.svg``, ``.png`` or ``.pdf``, or a binary
    file object with ``fmt``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    pos = layout(g)
    width = max(x for x, _ in pos.values()) + 1
    height = max(y for _, y in pos.values()) + 1
    fig, ax = plt.subplots(figsize=(max(4.0, 1.5 * width), max(3.0, 1.0 * height + 0.8)))
    ax.set_xlim(-0.8, width - 0.2)
    ax.set_ylim(height - 0.4, -0.9)
    ax.axis("off")
    ax.set_title(g.graph.get("name") or "cell", fontsize=12, fontweight="bold")
    boxes = {}
    for n, (x, y) in pos.items():
        d = g.nodes[n]
        op = d["op"]
        label = node_label(g, n, glyph=True)
        shape, colour = _style(op)
        boxstyle = {"round": "round,pad=0.35", "square": "square,pad=0.2", "circle": "circle,pad=0.25"}[shape]
        lw = 2.0 if op == "output" else 1.0
        boxes[n] = ax.text(x, y, label, ha="center", va="center", fontsize=10, zorder=3,
                           bbox={"boxstyle": boxstyle, "fc": colour, "ec": "#333333", "lw": lw})
    fig.canvas.draw()  # sizes of the boxes, so arrows stop at their edges
    for u, v, e in g.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        arrow = FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, lw=1.0,
                                color="#444444", linestyle="--" if e.get("kind") == "diag" else "-",
                                patchA=boxes[u].get_bbox_patch(), patchB=boxes[v].get_bbox_patch(),
                                connectionstyle="arc3,rad=0.08" if abs(x1 - x0) > 0.01 else "arc3", zorder=2)
        ax.add_patch(arrow)
        if g.nodes[v]["op"] == "sub":
            sign = operand_signs(g, v)[u]
            t = 0.72
            ax.text(x0 + t * (x1 - x0) + 0.12, y0 + t * (y1 - y0), sign, fontsize=11, fontweight="bold",
                    color="#b03030", ha="center", va="center", zorder=4)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format=fmt)
    plt.close(fig)
    return path


def operand_signs(g: CellGraph, node: str) -> dict[str, str]:
    """For a ``sub`` node: operand -> ``"+"`` or ``"−"`` (which one is subtracted)."""
    a, b = operands(g, node)
    return {a: "+", b: "−"}


def render_image(g: CellGraph, path: str, *, engine: str = "auto") -> str:
    """Writes an SVG, PNG or PDF (by extension): with Graphviz's ``dot`` when it is installed
    (``engine="auto"`` or ``"dot"``), else with the pure-Python layout of
    :mod:`cellsearch.cli.draw` (``"python"``), so a fresh machine draws cells too."""
    fmt = path.rsplit(".", 1)[-1].lower()
    if fmt not in ("svg", "png", "pdf"):
        raise CellSearchError(f"cannot render {path!r}: use a .svg, .png or .pdf file name")
    if engine not in ("auto", "dot", "python"):
        raise CellSearchError(f"engine must be auto, dot or python, got {engine!r}")
    dot = shutil.which("dot") if engine != "python" else None
    if dot is None and engine == "dot":
        raise CellSearchError("Graphviz's `dot` program is not installed; use engine 'auto' or 'python'")
    try:
        if dot is not None:
            subprocess.run([dot, f"-T{fmt}", "-o", path], input=to_dot(g), text=True, check=True)
        else:
            draw(g, path)
    except OSError as e:
        raise CellSearchError(f"cannot write {path!r}: {e.strerror}") from None
    return path
