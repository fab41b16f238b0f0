"""benchmarks/peers.py's parts: the project's search beside stock tuners, same space, data
and minutes.

Modules: ``common`` (the only one importing ``tuning``: defaults, data, clock, picks),
``ours`` (the default ``tuning.search`` as a subprocess), ``kerastuner`` (stock KerasTuner
around the hypermodel) with ``hyperband``, ``random_search`` and ``bayesian``, ``optuna_tpe``
(TPE + Hyperband pruner), ``yardstick`` (scoring a pick), ``table`` (the CSVs), ``runner``
(the benchmark loop), ``report`` (regret per searcher, the plot) and ``cli`` (the flags).
"""
