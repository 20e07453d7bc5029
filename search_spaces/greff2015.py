"""Greff et al. 2015/2017, "LSTM: A Search Space Odyssey": the peephole LSTM and its eight variants.

Vanilla LSTM (Greff et al. 2015, §2), carry ``(c, h)``; peepholes ``p_*``
are learned vectors (``kind="diag"`` operands of a linear node)::

    z = tanh(W_z x + R_z h + b_z)                    # block input
    i = sigm(W_i x + R_i h + p_i * c + b_i)          # input gate
    f = sigm(W_f x + R_f h + p_f * c + b_f)          # forget gate
    c' = z * i + c * f
    o = sigm(W_o x + R_o h + p_o * c' + b_o)         # output gate peeks at the new cell
    h' = tanh(c') * o

Variants (§6.4): NIG (i = 1), NFG (f = 1), NOG (o = 1), NIAF (no block-input tanh),
NOAF (no output tanh), CIFG (f = 1 - i), NP (no peepholes) and FGR (full gate recurrence:
every gate also reads all three gates of the previous step, so ``i, f, o`` become states;
the exact form is from memory in the sources, §6.4 [M]).

References: Greff et al., IEEE TNNLS 28(10), 2017.
"""

from __future__ import annotations

from cellsearch.cell.graph import CellBuilder
from search_spaces.jozefowicz2015 import ACTIVATIONS, BINARY_OPS, MUTATIONS, OPERAND_RULE  # noqa: F401 (§3.5 sets)

BASELINE = "Vanilla"  # Greff's reference: scores are relative to the vanilla peephole LSTM
POOL_SEEDS = ("Vanilla", "CIFG")


def peephole_lstm(name="Vanilla", *, nig=False, nfg=False, nog=False, niaf=False, noaf=False,
                  cifg=False, np_=False, fgr=False):
    states = ("c", "h", "i", "f", "o") if fgr else ("c", "h")
    b = CellBuilder(name, states=states, output="h")
    x, h, c = b.x, "h_prev", "c_prev"
    rec = ("i_prev", "f_prev", "o_prev") if fgr else ()

    def gate(tag, peep):
        args = [x, h, *rec] + ([] if np_ else [(peep, "diag")])
        return b.sigmoid(b.linear(*args, node=f"lin_{tag}"), node=f"g{tag}" if fgr else tag)

    zin = b.linear(x, h, node="lin_z")
    z = zin if niaf else b.tanh(zin, node="z")
    i = None if nig else gate("i", c)
    if cifg:
        f = b.sub(b.const(1.0), i, node="f") if i is not None else None
    else:
        f = None if nfg else gate("f", c)
    write = z if i is None else b.mul(z, i)
    keep = c if f is None else b.mul(c, f)
    c_new = b.add(write, keep, node="c_new")
    b.output("c", c_new)
    out = c_new if noaf else b.tanh(c_new)
    o = None if nog else gate("o", c_new)
    b.output("h", out if o is None else b.mul(out, o))
    if fgr:
        for s, node in (("i", i), ("f", f), ("o", o)):
            b.output(s, node)
    return b.build()


SEEDS = {
    "Vanilla": peephole_lstm,
    "NIG": lambda: peephole_lstm("NIG", nig=True),
    "NFG": lambda: peephole_lstm("NFG", nfg=True),
    "NOG": lambda: peephole_lstm("NOG", nog=True),
    "NIAF": lambda: peephole_lstm("NIAF", niaf=True),
    "NOAF": lambda: peephole_lstm("NOAF", noaf=True),
    "CIFG": lambda: peephole_lstm("CIFG", cifg=True),
    "NP": lambda: peephole_lstm("NP", np_=True),
    "FGR": lambda: peephole_lstm("FGR", fgr=True),
}
