"""Evolution: the edits and the mutation driver, search spaces and their seeds, and the search
strategies. Imports no JAX."""
