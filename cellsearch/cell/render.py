"""Printing cells: equations in the paper's notation and Graphviz DOT.

``to_equations(LSTM)`` gives lines such as ``f = sigm(W_xf x + W_hf h + b_f)`` and
``c' = f * c + i * g``: a state ``h`` read by the cell is written ``h`` and its new value
``h'``. A node gets a line of its own when it has a display name (its ``name`` attribute,
or a hand-given id such as ``f``), several consumers, or feeds an output; other nodes
are written inline. ``Linear(a, v)`` is the paper's identity-initialised layer.

This module imports nothing from JAX.
"""

from __future__ import annotations

import re

import networkx as nx

from cellsearch.cell.graph import CellGraph, consumers, edge_kind, operands, param_count_coefficients
from cellsearch.cell.ops import OPS

_AUTO_ID = re.compile(r"^(n\d+|lin_.*)$")
_PREC = {"add": 1, "sub": 1, "mul": 2}


def _fmt_num(v: float) -> str:
    return f"{v:g}"


class _Printer:
    def __init__(self, g: CellGraph):
        self.g = g
        self.names: dict[str, str] = {}
        outs = {d["state"]: n for n, d in g.nodes(data=True) if d["op"] == "output"}
        for n, d in g.nodes(data=True):
            op = d["op"]
            if op == "input":
                self.names[n] = "x"
            elif op == "state":
                self.names[n] = d["state"]
        for s, o in outs.items():
            (src,) = operands(g, o)
            if src not in self.names:  # the new state value gets the name s'
                self.names[src] = f"{s}'"
        for n, d in g.nodes(data=True):
            if n in self.names or d["op"] in ("output", "const"):
                continue
            multi = len(consumers(g, n)) > 1
            named = "name" in d or (not _AUTO_ID.match(n) and d["op"] != "linear")
            if multi or named:
                self.names[n] = d.get("name", n)

    def ref(self, n: str, prec: int = 0, right_of_sub: bool = False) -> str:
        if n in self.names:
            return self.names[n]
        return self.expr(n, prec, right_of_sub)

    def expr(self, n: str, prec: int = 0, right_of_sub: bool = False) -> str:
        g, d = self.g, self.g.nodes[n]
        op = d["op"]
        args = operands(g, n)
        if op == "const":
            return _fmt_num(d["value"])
        if op == "output":
            return self.ref(args[0])
        if OPS[op].kind == "activation":
            inner = self.ref(args[0])
            return inner if op == "identity" else f"{OPS[op].symbol}({inner})"
        if OPS[op].kind == "binary":
            p = _PREC[op]
            text = f"{self.ref(args[0], p)} {OPS[op].symbol} {self.ref(args[1], p, op == 'sub')}"
            return f"({text})" if prec > p or (prec == p and right_of_sub) else text
        if prec > 1 and self.g.nodes[n].get("scale") is None:
            return f"({self._linear(n, args)})"
        return self._linear(n, args)

    def _linear(self, n: str, args: list[str]) -> str:
        g, d = self.g, self.g.nodes[n]
        cons = consumers(g, n)
        tag = self.names.get(n) or (self.names.get(cons[0]) if len(cons) == 1 else None) or n
        tag = tag.replace("'", "")
        tag = tag[4:] if tag.startswith("lin_") else tag
        if d.get("scale") is not None and len(args) == 1:
            return f"Linear({_fmt_num(d['scale'])}, {self.ref(args[0])})"
        terms = []
        for k, u in enumerate(args):
            sym = self.names.get(u, str(k)).replace("'", "")
            arg = self.ref(u, 3)
            if edge_kind(g, u, n) == "diag":
                terms.append(f"p_{sym}{tag} * {arg}")
            else:
                terms.append(f"W_{sym}{tag} {arg}")
        if d.get("bias", True):
            terms.append(f"b_{tag}")
        return " + ".join(terms)


def to_equations(g: CellGraph) -> list[str]:
    """The cell as equations, one line per named value, in evaluation order.

    >>> from search_spaces.jozefowicz2015 import SEEDS
    >>> print("\\n".join(to_equations(SEEDS["GRU"]())))
    r = sigm(W_xr x + W_hr h + b_r)
    u = tanh(W_xu x + W_1u (r * h) + b_u)
    z = sigm(W_xz x + W_hz h + b_z)
    h' = z * h + (1 - z) * u
    """
    p = _Printer(g)
    lines = []
    for n in nx.lexicographical_topological_sort(g):
        op = g.nodes[n]["op"]
        if n in p.names and op not in ("input", "state"):
            lines.append(f"{p.names[n]} = {p.expr(n)}")
        elif op == "output":
            src = operands(g, n)[0]
            name = f"{g.nodes[n]['state']}'"
            if p.names.get(src) != name:
                lines.append(f"{name} = {p.ref(src)}")
    return lines


def to_text(g: CellGraph) -> str:
    """A header line and the equations."""

    a, b = param_count_coefficients(g)
    states = ", ".join(g.graph["states"])
    head = f"# {g.graph.get('name') or 'cell'}: states ({states}), output {g.graph['output']}, params {a}n^2 + {b}n"
    return "\n".join([head, *to_equations(g)])


_SHAPES = {"input": "box", "state": "box", "output": "doublecircle", "const": "plaintext", "linear": "box"}


def node_label(g: CellGraph, n: str, *, glyph: bool = False, newline: str = "\n",
               printer: _Printer | None = None) -> str:
    """A node's label in pictures: ``x``, ``h_prev``, ``h'``, a constant, ``Linear``
    (``Linear(a)`` for the identity-initialised layer, with a non-zero bias start), or the
    op's symbol (its picture glyph with ``glyph``, e.g. ``σ``), prefixed by the value's name in
    the equations where it has one."""
    d = g.nodes[n]
    op = d["op"]
    if op == "input":
        return "x"
    if op == "state":
        return f"{d['state']}_prev"
    if op == "output":
        return f"{d['state']}'"
    if op == "const":
        return _fmt_num(d["value"])
    if op == "linear":
        label = "Linear" if d.get("scale") is None else f"Linear({_fmt_num(d['scale'])})"
        if d.get("bias_init"):
            label += f"{newline}b={_fmt_num(d['bias_init'])}"
    else:
        label = (OPS[op].glyph if glyph else OPS[op].symbol) or op
    names = (printer or _Printer(g)).names
    return f"{names[n]}: {label}" if n in names else label


def to_dot(g: CellGraph) -> str:
    """Graphviz DOT text of the cell (no Graphviz needed to produce it)."""
    p = _Printer(g)
    out = [f'digraph "{g.graph.get("name") or "cell"}" {{', "  rankdir=BT;", '  node [fontname="Helvetica"];']
    for n, d in g.nodes(data=True):
        label = node_label(g, n, newline="\\n", printer=p)
        out.append(f'  "{n}" [label="{label}", shape={_SHAPES.get(d["op"], "ellipse")}];')
    for u, v, d in g.edges(data=True):
        attrs = []
        if g.nodes[v]["op"] == "sub":
            attrs.append(f'label="{d.get("port", 0)}"')
        if d.get("kind") == "diag":
            attrs.append("style=dashed")
        out.append(f'  "{u}" -> "{v}"' + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out)
