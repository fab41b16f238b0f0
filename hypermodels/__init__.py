"""The searchable model: a functional-API ResNet for 28x28 grayscale images."""

from __future__ import annotations

from typing import Any

from hypermodels.space import SearchSpace

__all__ = ["ResNetHyperModel", "SearchSpace", "build_resnet", "count_adds", "inference_copy"]


def __getattr__(name: str) -> Any:
    # The model code imports TensorFlow (seconds); the space does not, so a CLI can
    # validate its flags and fail fast before paying for that import.
    if name in ("ResNetHyperModel", "build_resnet", "count_adds", "inference_copy"):
        from hypermodels import resnet

        return getattr(resnet, name)
    raise AttributeError(f"module 'hypermodels' has no attribute {name!r}")
