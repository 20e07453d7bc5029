"""The ``cellsearch`` command line: the parser, what each verb does, and the pages and
pictures it writes. Imports no JAX at module level (the verbs that train import it)."""
