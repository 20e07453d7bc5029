"""Search spaces: seed cells and mutation settings, one plain Python module each.

Load one by name with :func:`cellsearch.evolve.spaces.load_space` (e.g. ``"jozefowicz2015"``).
Each module exports ``SEEDS`` (name -> builder returning a frozen cell graph),
``ACTIVATIONS``, ``BINARY_OPS``, ``MUTATIONS``, ``OPERAND_RULE``, ``BASELINE`` and
``POOL_SEEDS``. cellsearch itself never imports this package except through that loader.
"""
