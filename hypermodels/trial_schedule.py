"""How a Hyperband trial's learning rate moves over the trial's own epochs.

``constant`` (KerasTuner's way, and this project's first): the searched rate throughout.
A short constant-rate trial favours networks that learn fast at that rate, while the final
training warms up and decays to zero over many epochs (short-horizon bias, Wu et al. 2018).

``budget``: the final recipe's schedule compressed to the trial's own budget (Li et al.
2020, "Budgeted training"): a linear warm-up over the first tenth of the trial's steps,
then cosine decay to zero at its last epoch, from the searched rate as the peak. A trial
that Hyperband continues goes on from its parent's weights with a warm-up and decay of
its own over the epochs it adds (a warm restart).

No TensorFlow here: a command validates its flags before paying for that import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TRIAL_SCHEDULES = ("constant", "budget")
# Of a budgeted trial's steps; the finalizer warms up over 1 of its 32-36 epochs (3%), but
# one epoch of a 1-epoch trial would leave no decay at all.
WARMUP_FRACTION = 0.1


def budget_steps(epochs: int, steps_per_epoch: int) -> tuple[int, int]:
    """(all steps, warm-up steps) of a budgeted training of ``epochs`` epochs."""
    total = max(1, epochs) * max(1, steps_per_epoch)
    return total, max(1, math.ceil(WARMUP_FRACTION * total))


@dataclass(frozen=True)
class TrialSchedule:
    """A trial's schedule kind and how many optimizer steps an epoch of a trial takes."""

    kind: str = "constant"
    steps_per_epoch: int = 1

    def __post_init__(self) -> None:
        if self.kind not in TRIAL_SCHEDULES:
            raise ValueError(
                f"trial schedule must be one of {', '.join(TRIAL_SCHEDULES)}, not {self.kind!r}"
            )
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps per epoch must be positive, not {self.steps_per_epoch}")

    def steps(self, values: dict) -> tuple[int, int] | None:
        """A trial's (all steps, warm-up steps) from its KerasTuner values (``tuner/epochs``,
        ``tuner/initial_epoch``); None for a constant rate, or outside a Hyperband trial (a
        build check has no epochs)."""
        if self.kind == "constant" or "tuner/epochs" not in values:
            return None
        epochs = int(values["tuner/epochs"]) - int(values.get("tuner/initial_epoch") or 0)
        return budget_steps(epochs, self.steps_per_epoch)
