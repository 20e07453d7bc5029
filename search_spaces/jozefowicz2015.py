"""Jozefowicz, Zaremba & Sutskever 2015: the seed cells and mutation sets of the paper.

Equations as in the paper's §2 (evidence tags: ``docs/fidelity.md``). Seeds:

* ``Tanh``: ``h = tanh(W_xh x + W_hh h + b_h)``.
* ``LSTM`` (no peepholes, flax gate order i, f, g, o and carry order ``(c, h)``)::

    i = sigm(W_xi x + W_hi h + b_i)     f = sigm(W_xf x + W_hf h + b_f)
    g = tanh(W_xg x + W_hg h + b_g)     o = sigm(W_xo x + W_ho h + b_o)
    c' = f * c + i * g                  h' = o * tanh(c')

  The paper prints ``tanh`` for the output gate; it is unclear what the experiments used
  (§2.2, unverified), so it is the setting ``output_gate`` (default ``"sigmoid"``, as flax).
* ``LSTM-f`` / ``LSTM-i`` / ``LSTM-o``: no forget / input / output gate (the gate is 1).
* ``LSTM-b``: the forget-gate bias initialised to 1 (§2.3).
* ``GRU`` as in the paper (§2.4), ``z`` keeps the old state, reset applied before ``W_hh``::

    r = sigm(W_xr x + W_hr h + b_r)     z = sigm(W_xz x + W_hz h + b_z)
    u = tanh(W_xu x + W_hu (r * h) + b_u)
    h' = z * h + (1 - z) * u

* ``GRU-RA``: the reset-after GRU of cuDNN, torch and flax's ``GRUCell``
  (``u = tanh(W_xu x + b_xu + r * (W_hu h + b_hu))``); it equals ``nn.GRUCell`` exactly.
* ``MUT1``, ``MUT2``, ``MUT3`` (§2.5): ``z`` weights the new candidate. MUT1 and MUT2 add raw
  ``x`` to hidden-width values, so they need ``input_size == hidden_size``: embed to the hidden
  size (the models in :mod:`cellsearch.nn.model` always do).

References: Jozefowicz et al. 2015, ICML, §2 and §3.5.
"""

from __future__ import annotations

from cellsearch.cell.graph import CellBuilder
from cellsearch.cell.ops import PAPER_ACTIVATIONS, PAPER_BINARY_OPS

BASELINE = "GRU"  # scores are relative to the GRU (§3.1)
POOL_SEEDS = ("LSTM", "GRU")  # the pool starts with these two (§3.1)
ACTIVATIONS = PAPER_ACTIVATIONS  # §3.5 rule 1
BINARY_OPS = PAPER_BINARY_OPS  # §3.5 rule 2
MUTATIONS = (
    "swap_activation",
    "swap_binary_op",
    "insert_activation",
    "remove_node",
    "replace_with_ancestor",
    "replace_with_binary",
)
# §3.5 rule 6: the sources disagree on the operands; see cellsearch.evolve.edits.OPERAND_RULES.
OPERAND_RULE = "ancestor_and_random_ancestor"


def tanh_rnn():
    b = CellBuilder("Tanh", states=("h",))
    b.output("h", b.tanh(b.linear(b.x, "h_prev", node="lin_h"), node="h_new"))
    return b.build()


def lstm(
    name="LSTM", *, forget=True, input_gate=True, output=True, forget_bias=0.0, output_gate="sigmoid"
):
    b = CellBuilder(name, states=("c", "h"), output="h")
    x, h, c = b.x, "h_prev", "c_prev"
    g = b.tanh(b.linear(x, h, node="lin_g"), node="g")
    keep = c
    if forget:
        f = b.sigmoid(b.linear(x, h, node="lin_f", bias_init=forget_bias), node="f")
        keep = b.mul(f, c)
    write = g
    if input_gate:
        i = b.sigmoid(b.linear(x, h, node="lin_i"), node="i")
        write = b.mul(i, g)
    c_new = b.add(keep, write, node="c_new")
    b.output("c", c_new)
    out = b.tanh(c_new)
    if output:
        o = b.op(output_gate, [b.linear(x, h, node="lin_o")], node="o")
        out = b.mul(o, out)
    b.output("h", out)
    return b.build()


def gru():
    b = CellBuilder("GRU", states=("h",))
    x, h = b.x, "h_prev"
    r = b.sigmoid(b.linear(x, h, node="lin_r"), node="r")
    z = b.sigmoid(b.linear(x, h, node="lin_z"), node="z")
    u = b.tanh(b.linear(x, b.mul(r, h), node="lin_u"), node="u")
    b.output("h", b.add(b.mul(z, h), b.mul(b.sub(b.const(1.0), z), u)))
    return b.build()


def gru_reset_after():
    b = CellBuilder("GRU-RA", states=("h",))
    x, h = b.x, "h_prev"
    r = b.sigmoid(b.linear(x, h, node="lin_r"), node="r")
    z = b.sigmoid(b.linear(x, h, node="lin_z"), node="z")
    hu = b.linear(h, node="lin_hu")
    u = b.tanh(b.add(b.linear(x, node="lin_xu"), b.mul(r, hu)), node="u")
    b.output("h", b.add(b.mul(b.sub(b.const(1.0), z), u), b.mul(z, h)))
    return b.build()


def _mut_tail(b, z, u, h):
    # h' = u * z + h * (1 - z)
    b.output("h", b.add(b.mul(u, z), b.mul(h, b.sub(b.const(1.0), z))))
    return b.build()


def mut1():
    b = CellBuilder("MUT1", states=("h",))
    x, h = b.x, "h_prev"
    z = b.sigmoid(b.linear(x, node="lin_z"), node="z")
    r = b.sigmoid(b.linear(x, h, node="lin_r"), node="r")
    u = b.tanh(b.add(b.linear(b.mul(r, h), node="lin_u"), b.tanh(x)), node="u")
    return _mut_tail(b, z, u, h)


def mut2():
    b = CellBuilder("MUT2", states=("h",))
    x, h = b.x, "h_prev"
    z = b.sigmoid(b.linear(x, h, node="lin_z"), node="z")
    r = b.sigmoid(b.add(x, b.linear(h, node="lin_r")), node="r")
    u = b.tanh(b.linear(b.mul(r, h), x, node="lin_u"), node="u")
    return _mut_tail(b, z, u, h)


def mut3():
    b = CellBuilder("MUT3", states=("h",))
    x, h = b.x, "h_prev"
    z = b.sigmoid(b.linear(x, b.tanh(h), node="lin_z"), node="z")
    r = b.sigmoid(b.linear(x, h, node="lin_r"), node="r")
    u = b.tanh(b.linear(b.mul(r, h), x, node="lin_u"), node="u")
    return _mut_tail(b, z, u, h)


SEEDS = {
    "Tanh": tanh_rnn,
    "LSTM": lstm,
    "LSTM-f": lambda: lstm("LSTM-f", forget=False),
    "LSTM-i": lambda: lstm("LSTM-i", input_gate=False),
    "LSTM-o": lambda: lstm("LSTM-o", output=False),
    "LSTM-b": lambda: lstm("LSTM-b", forget_bias=1.0),
    "GRU": gru,
    "GRU-RA": gru_reset_after,
    "MUT1": mut1,
    "MUT2": mut2,
    "MUT3": mut3,
}
