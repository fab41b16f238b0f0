"""The search engine: KerasTuner's Hyperband, crash-safe, single or distributed.

The public face of the package; nothing outside it imports its modules directly.
Modules, bottom up: ``oracle`` (atomic Hyperband oracle), ``callbacks`` (per-epoch records,
atomic checkpoints), ``results`` (trials.csv, best.json), ``progress`` (console lines),
``hparams`` (TensorBoard), ``role``, ``strategy``, ``worker`` and ``chief`` (distributed
search), ``tuner`` (KerasTuner hooks only) and ``driver`` (the orchestrator).

The names that need TensorFlow are imported on first use, so a command can validate its
flags before paying for that import.
"""

from __future__ import annotations

from typing import Any

from tuning.engine.role import free_port, resolve_cluster

__all__ = [
    "ResNetHyperband",
    "free_port",
    "frozen_startup_objects",
    "resolve_cluster",
    "run_search",
    "trial_training_set",
]


def __getattr__(name: str) -> Any:
    if name == "run_search":
        from tuning.engine.driver import run_search

        return run_search
    if name == "trial_training_set":
        from tuning.engine.driver import trial_training_set

        return trial_training_set
    if name == "ResNetHyperband":
        from tuning.engine.tuner import ResNetHyperband

        return ResNetHyperband
    if name == "frozen_startup_objects":
        from tuning.engine.tuner import frozen_startup_objects

        return frozen_startup_objects
    raise AttributeError(f"module 'tuning.engine' has no attribute {name!r}")
