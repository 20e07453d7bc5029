"""The paper's space (``jozefowicz2015``: its seeds, sets and operand rule) with two more edits that
can build a gate: ``add_gate`` (a learned sigmoid gate on an operand, ``u * sigm(W_x x + W_h h + b)``)
and ``add_linear`` (a new full linear layer on an operand). From the tanh RNN the paper's six edits
add no weight matrix but the near-identity Linear(a), so gating is four or more edits away; here it
is one (``cellsearch.evolve.edits``)."""

from search_spaces.jozefowicz2015 import ACTIVATIONS, BASELINE, BINARY_OPS, MUTATIONS, OPERAND_RULE, POOL_SEEDS, SEEDS

MUTATIONS = (*MUTATIONS, "add_gate", "add_linear")

__all__ = ["ACTIVATIONS", "BASELINE", "BINARY_OPS", "MUTATIONS", "OPERAND_RULE", "POOL_SEEDS", "SEEDS"]
