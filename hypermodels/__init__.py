"""The searchable model: a functional-API ResNet for 28x28 grayscale images.

A leaf package: it imports nothing from ``tuning``. Modules, bottom up: ``space`` and
``recipe`` (plain values, no TensorFlow), ``inputs`` (the tf.data pipeline), ``augment``
and ``optim`` (the recipe's Keras parts), ``batchnorm`` (the fused kernel), ``resnet``
(the network and its KerasTuner HyperModel).
"""

from __future__ import annotations

from typing import Any

from hypermodels.recipe import Recipe
from hypermodels.space import SearchSpace

__all__ = [
    "Recipe",
    "ResNetHyperModel",
    "SearchSpace",
    "build_resnet",
    "count_adds",
    "inference_copy",
]


def __getattr__(name: str) -> Any:
    # The model code imports TensorFlow (seconds); the space does not, so a CLI can
    # validate its flags and fail fast before paying for that import.
    if name in ("ResNetHyperModel", "build_resnet", "count_adds", "inference_copy"):
        from hypermodels import resnet

        return getattr(resnet, name)
    raise AttributeError(f"module 'hypermodels' has no attribute {name!r}")
