"""What a Hyperband search will cost, computed before it starts.

The formulas are KerasTuner's own (``keras_tuner.oracles.HyperbandOracle``), written
out here so the plan can be printed without building an oracle; a test checks that the
two agree. ``math.log`` is used exactly as KerasTuner uses it, rounding quirks included
(``math.log(27, 3)`` is slightly above 3, so that bracket gets one more trial).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Round:
    iteration: int
    bracket: int
    round: int
    trials: int
    initial_epoch: int  # continuation trials resume from here
    epochs: int  # ... and train up to here

    @property
    def new_epochs(self) -> int:
        return self.trials * (self.epochs - self.initial_epoch)


def num_brackets(max_epochs: int, factor: int) -> int:
    epochs, brackets = float(max_epochs), 0
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    return brackets


def bracket_size(max_epochs: int, factor: int, bracket: int, round_num: int) -> int:
    bracket0_end_size = math.ceil(1 + math.log(max_epochs, factor))
    return math.ceil(bracket0_end_size / (bracket + 1) * factor ** (bracket - round_num))


def round_epochs(max_epochs: int, factor: int, bracket: int, round_num: int) -> int:
    return math.ceil(max_epochs / factor ** (bracket - round_num))


def hyperband_rounds(max_epochs: int, factor: int, iterations: int = 1) -> list[Round]:
    """Every round of every bracket, in the order KerasTuner runs them."""
    rounds = []
    for it in range(iterations):
        for b in reversed(range(num_brackets(max_epochs, factor))):
            for r in range(b + 1):
                rounds.append(
                    Round(
                        iteration=it,
                        bracket=b,
                        round=r,
                        trials=bracket_size(max_epochs, factor, b, r),
                        initial_epoch=0 if r == 0 else round_epochs(max_epochs, factor, b, r - 1),
                        epochs=round_epochs(max_epochs, factor, b, r),
                    )
                )
    return rounds


@dataclass(frozen=True)
class Plan:
    rounds: tuple[Round, ...]

    @property
    def trials(self) -> int:
        return sum(r.trials for r in self.rounds)

    @property
    def epochs(self) -> int:
        return sum(r.new_epochs for r in self.rounds)

    def format(self, train_images: int | None = None) -> str:
        lines = ["bracket  round  trials  epochs (from -> to)  epochs trained"]
        for r in self.rounds:
            lines.append(
                f"{r.bracket:>7}  {r.round:>5}  {r.trials:>6}  "
                f"{r.initial_epoch:>8} -> {r.epochs:<8}  {r.new_epochs:>14}"
            )
        total = f"total: {self.trials} trials, {self.epochs} epochs of training"
        if train_images:
            total += f" ({self.epochs * train_images:,} image passes)"
        lines.append(total)
        return "\n".join(lines)


def hyperband_plan(max_epochs: int, factor: int, iterations: int = 1) -> Plan:
    return Plan(tuple(hyperband_rounds(max_epochs, factor, iterations)))
