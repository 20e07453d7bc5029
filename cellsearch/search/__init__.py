"""The search: its settings, the driver and its schedules, a step's stages, the executors,
results and scores, the run record, and confirmation. Imports no JAX at module level (jobs
train through :mod:`cellsearch.search.executors`)."""
