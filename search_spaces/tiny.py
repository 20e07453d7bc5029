"""A tiny space for tests and demos: the tanh RNN, the GRU and a small gated cell.

Same mutation sets as the paper, fewer and smaller seeds, so a search on it is quick.
"""

from __future__ import annotations

from cellsearch.cell.graph import CellBuilder
from search_spaces.jozefowicz2015 import ACTIVATIONS, BINARY_OPS, MUTATIONS, OPERAND_RULE, gru, tanh_rnn  # noqa: F401 (§3.5 sets)

BASELINE = "GRU"
POOL_SEEDS = ("Tanh", "GRU")


def gated():
    """``z = sigm(W_xz x + W_hz h + b_z)``, ``h' = z * h + (1 - z) * tanh(W_xu x + b_u)``."""
    b = CellBuilder("Gated", states=("h",))
    z = b.sigmoid(b.linear(b.x, "h_prev", node="lin_z"), node="z")
    u = b.tanh(b.linear(b.x, node="lin_u"), node="u")
    b.output("h", b.add(b.mul(z, "h_prev"), b.mul(b.sub(b.const(1.0), z), u)))
    return b.build()


# "Broken" on purpose: the GRU without its update path (h' = u); searches should find better.
def damaged():
    b = CellBuilder("Damaged", states=("h",))
    u = b.tanh(b.linear(b.x, "h_prev", node="lin_u"), node="u")
    b.output("h", b.mul(u, b.sigmoid(b.linear(b.x, node="lin_g"), node="g")))
    return b.build()


SEEDS = {"Tanh": tanh_rnn, "GRU": gru, "Gated": gated, "Damaged": damaged}
