"""The cell graph layer: the op table, the networkx schema and its validation, the canonical
hash, equations and DOT, the parameter layout, and the liveness probe. Imports no JAX."""
