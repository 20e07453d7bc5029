"""The JAX side: the compiler, the sequence model, the trainer and the population interpreter,
the standard protocol and its checkpoints, the functional hash, and the flax modules. The only
folder that imports JAX."""
