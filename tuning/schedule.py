"""The learning rate of a retraining, as one value: ``Schedule``.

The finalizer, the ablation, the confirmation and the benchmarks all hold their schedule as
a ``Schedule`` (constant, or warm-up + cosine decay to zero from a peak derived from the
searched rate), so how a searched rate becomes the rate trained at is written once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuning.errors import UsageError

SCHEDULES = ("cosine", "constant")
DEFAULT_SCHEDULE = "cosine"  # the finalizer's learning-rate schedule
DEFAULT_WARMUP_EPOCHS = 1
# The finalizer's (peak) learning rate = scale x the searched rate, at most DEFAULT_MAX_LR:
# trials run at a constant rate, while warm-up + cosine decay tolerates a higher peak.
DEFAULT_LR_SCALE = 4.0  # measured: docs/accuracy.md, "The finalizer's peak rate"
DEFAULT_MAX_LR = 0.1
# ... and at least DEFAULT_MIN_LR: a network searched at a low rate still decays from the
# 0.05-0.1 plateau where the final recipe trains best (docs/accuracy.md, phases 7 and 8).
DEFAULT_MIN_LR = 0.05
# Those three describe a search whose trials ran at a constant rate. After trials that ran
# the final schedule's shape themselves (--trial-schedule budget: warm-up + cosine from the
# searched rate), the searched rate already is a peak, measured as one: the finalizer and the
# confirmation then train at it, without scale, floor or cap.
PEAK_RULES: dict[str, dict[str, float]] = {  # Schedule's fields, by the trials' schedule
    "constant": {"lr_scale": DEFAULT_LR_SCALE, "max_lr": DEFAULT_MAX_LR, "min_lr": DEFAULT_MIN_LR},
    "budget": {"lr_scale": 1.0, "max_lr": math.inf, "min_lr": 0.0},
}


@dataclass(frozen=True)
class Schedule:
    """The learning rate of a retraining: constant, or warm-up + cosine decay to 0.

    Its peak is ``lr_scale`` x the searched rate, at least ``min_lr`` and at most ``max_lr``
    (the cap has the last word, so a low --max-lr alone stays valid). Hyperband trials run
    at a constant rate, while warm-up + cosine decay tolerates a higher peak
    (docs/accuracy.md), but not beyond a rate where SGD with momentum starts to diverge.
    The floor is there because a short constant-rate trial favours lower rates than a long
    decaying training does: 4 x a low searched rate is still below the rates the final
    recipe trains best at.
    """

    kind: str = "constant"
    warmup_epochs: int = 0
    lr_scale: float = 1.0
    max_lr: float = math.inf
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {self.kind!r}")
        if self.warmup_epochs < 0:
            raise UsageError(f"--warmup-epochs must be non-negative, not {self.warmup_epochs}")
        if not 0 < self.lr_scale <= 1000:
            raise UsageError(f"--lr-scale must be in (0, 1000], not {self.lr_scale}")
        if not 0 < self.max_lr <= math.inf:
            raise UsageError(f"--max-lr must be a positive number, not {self.max_lr}")
        if not 0 <= self.min_lr < math.inf:
            raise UsageError(f"--min-lr must be a non-negative number, not {self.min_lr}")

    def peak(self, searched: float) -> tuple[float, str]:
        """The rate trained at (the schedule's peak) and how it was derived."""
        scaled = self.lr_scale * searched
        rate = min(max(scaled, self.min_lr), self.max_lr)
        if self.lr_scale == 1 and rate == searched:
            return rate, f"{rate:.4g}"
        how = f"{self.lr_scale:g} x the searched {searched:.4g}"
        if rate < scaled:
            how += f", capped by --max-lr {self.max_lr:g}"
        elif rate > scaled:
            how += f" = {scaled:.4g}, raised to --min-lr {self.min_lr:g}"
            how += f", capped by --max-lr {self.max_lr:g}" if rate < self.min_lr else ""
        return rate, f"{rate:.4g} ({how})"

    def check_epochs(self, epochs: int) -> None:
        """A warm-up longer than the training would be cut short without a word: refused."""
        if self.kind == "cosine" and self.warmup_epochs > epochs:
            raise UsageError(
                f"--warmup-epochs {self.warmup_epochs} is longer than the training "
                f"({epochs} epoch{'s' if epochs != 1 else ''}); give at most {epochs}"
            )

    def describe(self, searched: float, epochs: int | None = None) -> str:
        text = self.peak(searched)[1]
        if self.kind != "cosine":
            return f"constant {text}"
        if epochs is not None and self.warmup_epochs >= epochs:
            return f"{self.warmup_epochs}-epoch warm-up to {text}, the whole training (no decay)"
        return f"{self.warmup_epochs}-epoch warm-up + cosine decay from {text}"


def peak_text(trial_schedule: str) -> str:
    """The default peak rule after trials of ``trial_schedule``, in words."""
    rule = PEAK_RULES[trial_schedule]
    if rule == PEAK_RULES["budget"]:
        return "the searched rate"
    return (f"{rule['lr_scale']:g} x the searched rate, at least {rule['min_lr']:g} and at "
            f"most {rule['max_lr']:g}")  # fmt: skip


def final_schedule(trial_schedule: str) -> Schedule:
    """The finalizer's default schedule after trials of ``trial_schedule`` (the
    confirmation trains under it too)."""
    return Schedule(DEFAULT_SCHEDULE, DEFAULT_WARMUP_EPOCHS, **PEAK_RULES[trial_schedule])
