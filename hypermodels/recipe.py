"""The training recipe around the four searched hyperparameters, as one value.

Everything in a :class:`Recipe` is an option with a measured default (docs/accuracy.md):
SGD momentum and Nesterov, decoupled weight decay, label smoothing and data augmentation
inside the model. It travels as one value from the flags to the model, so a new option
is added in one place instead of as a keyword argument through every layer.

This module imports no Keras: a command validates its flags with it before paying for
TensorFlow's import. The Keras parts live in ``hypermodels.augment`` (the augmentation
layers) and ``hypermodels.optim`` (loss, optimizer, learning-rate schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

AUGMENTATIONS = ("flip", "translate", "erase")
# Keras' batch-normalization momentum (the lab's), and that of runs recorded without one.
KERAS_BN_MOMENTUM = 0.99


def parse_augment(text: str | None) -> tuple[str, ...]:
    """``"flip,translate"`` -> ("flip", "translate"); ``"none"`` or "" -> ()."""
    if text is None:
        return ()
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown {', '.join(unknown)} (choose from {', '.join(AUGMENTATIONS)} or none)"
        )
    return tuple(n for n in AUGMENTATIONS if n in names)  # canonical order


@dataclass(frozen=True)
class Recipe:
    """How a network of the family is trained, apart from its learning rate.

    The defaults are the lab's: plain SGD, no regularization, no augmentation.
    Values are validated here; the messages name the setting, not a flag, so the
    command line (``tuning.cli``) can say which flag it was.
    """

    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0  # decoupled, kernels only
    label_smoothing: float = 0.0
    augment: tuple[str, ...] = ()
    # Batch normalization's moving-average momentum, Keras' default (the lab's); PyTorch's
    # default momentum 0.1 is 0.9 here.
    bn_momentum: float = KERAS_BN_MOMENTUM

    def __post_init__(self) -> None:
        for name in ("momentum", "weight_decay", "label_smoothing", "bn_momentum"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(f"{name} must be in [0, 1), not {value}")
        unknown = [n for n in self.augment if n not in AUGMENTATIONS]
        if unknown:
            choices = ", ".join(AUGMENTATIONS)
            raise ValueError(f"unknown {', '.join(unknown)} (choose from {choices})")
        object.__setattr__(self, "augment", tuple(self.augment))

    def to_dict(self) -> dict:
        """As recorded in run.json and the reports (augment as a list)."""
        return {
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "label_smoothing": self.label_smoothing,
            "augment": list(self.augment),
            "bn_momentum": self.bn_momentum,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        """Read back ``to_dict``; settings a record lacks take the lab's (off) value."""
        names = ("momentum", "nesterov", "weight_decay", "label_smoothing", "bn_momentum")
        known = {k: d[k] for k in names if d.get(k) is not None}
        return cls(**known, augment=tuple(d.get("augment") or ()))

    def describe(self) -> str:
        """``momentum 0.9, weight decay 0, label smoothing 0, augment none``"""
        momentum = f"momentum {self.momentum:g}" + (" (Nesterov)" if self.nesterov else "")
        return (
            f"{momentum}, weight decay {self.weight_decay:g}, label smoothing "
            f"{self.label_smoothing:g}, augment {','.join(self.augment) or 'none'}, "
            f"batch-norm momentum {self.bn_momentum:g}"
        )
