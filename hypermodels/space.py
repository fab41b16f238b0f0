"""The search space: ranges for blocks, filters, skip and the SGD learning rate."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SKIP_MODES = ("both", "on", "off")
# The largest networks any command builds (search space, finalize, ablate).
MAX_BLOCKS = 64
MAX_FILTERS = 1024
HP_NAMES = ("blocks", "filters", "skip", "learning_rate")


@dataclass(frozen=True)
class SearchSpace:
    """What the tuner may choose. Defaults match the README.

    ``skip="both"`` searches residual (on) and plain (off) networks; "on"/"off" fix it.
    The default widths leave out 16 (clearly weaker) and 128 (4x the cost of 64 per
    epoch); the learning rates are those where SGD with momentum 0.9 neither crawls nor
    diverges on this network (docs/accuracy.md).
    """

    blocks_min: int = 1
    blocks_max: int = 4
    filters: tuple[int, ...] = (32, 64)
    skip: str = "both"
    lr_min: float = 1e-3
    lr_max: float = 1e-1

    def __post_init__(self) -> None:
        if self.blocks_min < 1 or self.blocks_max < self.blocks_min:
            raise ValueError(
                f"blocks range {self.blocks_min}:{self.blocks_max} must satisfy 1 <= min <= max"
            )
        if self.blocks_max > MAX_BLOCKS:
            raise ValueError(
                f"blocks range {self.blocks_min}:{self.blocks_max}: at most {MAX_BLOCKS}"
            )
        if any(f > MAX_FILTERS for f in self.filters):
            raise ValueError(f"filters {list(self.filters)}: at most {MAX_FILTERS} each")
        if not self.filters or any(f <= 0 for f in self.filters):
            raise ValueError(f"filters must be positive integers, got {list(self.filters)}")
        if len(set(self.filters)) != len(self.filters):
            raise ValueError(f"filters has duplicates: {list(self.filters)}")
        if self.skip not in SKIP_MODES:
            raise ValueError(f"skip must be one of {', '.join(SKIP_MODES)}, not {self.skip!r}")
        if not (self.lr_min > 0 and self.lr_max >= self.lr_min and math.isfinite(self.lr_max)):
            raise ValueError(
                f"learning-rate range {self.lr_min:g}:{self.lr_max:g} must satisfy 0 < min <= max"
            )

    def cli_defaults(self) -> dict[str, str]:
        """The --blocks/--filters/--learning-rate strings that give this space."""
        return {
            "blocks": f"{self.blocks_min}:{self.blocks_max}",
            "filters": ",".join(str(f) for f in self.filters),
            "learning_rate": f"{self.lr_min:g}:{self.lr_max:g}",
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["filters"] = list(self.filters)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SearchSpace:
        return cls(**{**d, "filters": tuple(d["filters"])})

    def largest(self) -> dict:
        """The most expensive corner, for the build check before a search."""
        return {
            "blocks": self.blocks_max,
            "filters": max(self.filters),
            "skip": self.skip != "off",
            "learning_rate": self.lr_max,
        }


def parse_int_range(text: str, name: str) -> tuple[int, int]:
    """'1:4' -> (1, 4); '2' -> (2, 2)."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            lo = hi = int(parts[0])
        elif len(parts) == 2:
            lo, hi = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"{name} must look like MIN:MAX or N, not {text!r}") from None
    return lo, hi


def parse_float_range(text: str, name: str) -> tuple[float, float]:
    """'1e-4:3e-1' -> (1e-4, 0.3); '0.01' -> (0.01, 0.01)."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            lo = hi = float(parts[0])
        elif len(parts) == 2:
            lo, hi = float(parts[0]), float(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"{name} must look like MIN:MAX or X, not {text!r}") from None
    return lo, hi


def parse_int_list(text: str, name: str) -> tuple[int, ...]:
    """'16,32,64' -> (16, 32, 64)."""
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise ValueError(f"{name} needs at least one value")
    try:
        return tuple(int(p) for p in items)
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, not {text!r}") from None


def check_hyperparameters(hp: dict) -> dict:
    """The four hyperparameters of one network, checked and with their types normalized.

    Raises ValueError naming what is wrong (the caller says where the values came from).
    """
    missing = [k for k in HP_NAMES if k not in hp]
    unknown = [k for k in hp if k not in HP_NAMES]
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise ValueError(f"{'; '.join(parts)} (needs {', '.join(HP_NAMES)})")
    blocks, filters, skip, lr = hp["blocks"], hp["filters"], hp["skip"], hp["learning_rate"]
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= MAX_BLOCKS:
        raise ValueError(f"blocks must be an integer in 1..{MAX_BLOCKS}, not {blocks!r}")
    if isinstance(filters, bool) or not isinstance(filters, int) or not 1 <= filters <= MAX_FILTERS:
        raise ValueError(f"filters must be an integer in 1..{MAX_FILTERS}, not {filters!r}")
    if not isinstance(skip, bool):
        raise ValueError(f"skip must be true or false, not {skip!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < math.inf):
        raise ValueError(f"learning_rate must be a positive number, not {lr!r}")
    return {"blocks": blocks, "filters": filters, "skip": skip, "learning_rate": float(lr)}
