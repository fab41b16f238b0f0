"""A rough wall-time estimate for a search, before it starts.

Cost model: the training FLOPs of each network of the space (3x the forward pass:
forward, input gradients, weight gradients) times a rate measured here, on this machine and
at this precision, by timing a few training steps of one mid-sized network of the space,
plus each trial's start-up (building the model, tracing its train and validation steps),
timed on the same network (``tuning.retrain.calibration.calibrate`` measures both).
Hyperband draws round-0 trials uniformly, so the mean over the space is what an epoch costs
on average. Small networks run at a lower FLOP rate than the calibration network and large
ones at a higher one, so read the figure as "within a factor of about 2".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hypermodels.space import SearchSpace


def forward_flops(blocks: int, filters: int) -> float:
    """Multiply-adds x 2 for one 28x28 image through the network."""
    stem = 28 * 28 * filters * 9 * 1
    body = blocks * 2 * 14 * 14 * filters * filters * 9
    head = 7 * 7 * filters * 256 + 256 * 10
    return 2.0 * (stem + body + head)


def mean_training_flops(space: SearchSpace) -> float:
    grid = [
        forward_flops(b, f)
        for b in range(space.blocks_min, space.blocks_max + 1)
        for f in space.filters
    ]
    return 3.0 * float(np.mean(grid))


@dataclass(frozen=True)
class Calibration:
    """What a short timed training of one network of the space measured on this machine."""

    flops_per_second: float  # steady-state training FLOP rate
    trial_start_s: float  # per trial: building, tracing the train and validation steps


def estimate_seconds(
    space: SearchSpace,
    epochs: int,
    trials: int,
    n_train: int,
    n_valid: int,
    calibration: Calibration,
) -> float:
    """Plan epochs x (train + validation passes) x mean FLOPs / measured rate, plus each
    trial's start-up."""
    per_image = mean_training_flops(space)
    # validation is a forward pass only: a third of a training step's FLOPs
    per_epoch = per_image * (n_train + n_valid / 3.0) / calibration.flops_per_second
    return epochs * per_epoch + trials * calibration.trial_start_s


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
