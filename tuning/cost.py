"""A rough wall-time estimate for a search, before it starts.

Cost model: the training FLOPs of each network of the space (3x the forward pass:
forward, input gradients, weight gradients) times a rate measured here, on this machine and
at this precision, by timing a few training steps of one mid-sized network of the space.
Hyperband draws round-0 trials uniformly, so the mean over the space is what an epoch costs
on average. Small networks run at a lower FLOP rate than the calibration network and large
ones at a higher one, so read the figure as "within a factor of about 2".
"""

from __future__ import annotations

import math
import time

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


def calibrate(
    space: SearchSpace, batch_size: int, precision: str | None = None, steps: int = 3
) -> float:
    """Training FLOPs per second of a mid-sized network of the space, measured now."""
    import keras

    from hypermodels import build_resnet

    blocks = (space.blocks_min + space.blocks_max) // 2
    filters = sorted(space.filters)[len(space.filters) // 2]
    model = build_resnet(
        blocks=blocks, filters=filters, skip=True, learning_rate=1e-3, precision=precision
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size * (steps + 1), 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, len(x))
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(x[batch_size:], y[batch_size:], batch_size=batch_size, epochs=1, verbose=0)
    seconds = time.perf_counter() - t0
    del model
    keras.backend.clear_session()
    return 3.0 * forward_flops(blocks, filters) * batch_size * steps / seconds


def estimate_seconds(
    space: SearchSpace, epochs: int, n_train: int, n_valid: int, flops_per_second: float
) -> float:
    """Plan epochs x (train + validation passes) x mean FLOPs / measured rate."""
    per_image = mean_training_flops(space)
    # validation is a forward pass only: a third of a training step's FLOPs
    per_epoch = per_image * (n_train + n_valid / 3.0) / flops_per_second
    return epochs * per_epoch


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
