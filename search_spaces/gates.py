"""The paper's space (``jozefowicz2015``: its seeds, sets and operand rule) with three more edits that
can build a gate: ``add_gate`` (a learned sigmoid gate on an operand, ``u * sigm(W_x x + W_h h + b)``),
``add_linear`` (a new full linear layer on an operand) and ``add_mix`` (a learned convex mix of a
node with one of its ancestors, ``z * u + (1 - z) * v``: with the state, the GRU's update gate).
From the tanh RNN the paper's six edits add no weight matrix but the near-identity Linear(a), so
gating is four or more edits away; here it is one (``cellsearch.evolve.edits``)."""

from search_spaces.jozefowicz2015 import ACTIVATIONS, BASELINE, BINARY_OPS, MUTATIONS, OPERAND_RULE, POOL_SEEDS, SEEDS

MUTATIONS = (*MUTATIONS, "add_gate", "add_linear", "add_mix")

__all__ = ["ACTIVATIONS", "BASELINE", "BINARY_OPS", "MUTATIONS", "OPERAND_RULE", "POOL_SEEDS", "SEEDS"]
