"""The search's cost calibration: a short timed training of one network of the space.

It trains a network, so it sits with retraining (``retrain``) rather than beside the pricing
in ``tuning.machine.cost``, which only multiplies what it measures. Seeded like every
training here, so ``--deterministic`` holds from the command line (issue 25.1).
"""

from __future__ import annotations

import time

import numpy as np

from hypermodels.recipe import Recipe
from hypermodels.space import SearchSpace
from tuning.machine.cost import Calibration, forward_flops
from tuning.retrain.training import TrainingSettings, retrain
from tuning.schedule import Schedule


def calibrate(
    space: SearchSpace, batch_size: int, precision: str | None = None, steps: int = 4
) -> Calibration:
    """Time a mid-sized network of the space: its start-up, then ``steps`` training steps.

    Timestamps are taken inside ``fit`` (after each batch and at the epoch's end), so the
    rate is the steady state and neither the first step's tracing nor the input
    pipeline's teardown after ``fit`` counts as training. It lives here, not beside the
    pricing in ``tuning.machine.cost``, because it trains a network.
    """
    import keras  # late: TensorFlow's import takes seconds

    blocks = (space.blocks_min + space.blocks_max) // 2
    filters = sorted(space.filters)[len(space.filters) // 2]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size * (steps + 1), 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, len(x))
    batch_ends: list[float] = []
    epoch_end: list[float] = []
    stamps = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_ends.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: epoch_end.append(time.perf_counter()),
    )
    t0 = time.perf_counter()
    hp = {"blocks": blocks, "filters": filters, "skip": True, "learning_rate": 1e-3}
    settings = TrainingSettings(0, None, batch_size, Recipe(), precision, None)
    trained = retrain(hp, settings, Schedule(), (x, y), epochs=1, seed=0,
                      validation=(x[:batch_size], y[:batch_size]), callbacks=[stamps])  # fmt: skip
    del trained
    keras.backend.clear_session()
    step = (batch_ends[-1] - batch_ends[0]) / steps
    # First step: build + trace + one step; validation: trace + one forward pass (1/3 step).
    start = (batch_ends[0] - t0 - step) + (epoch_end[0] - batch_ends[-1] - step / 3.0)
    rate = 3.0 * forward_flops(blocks, filters) * batch_size / step
    return Calibration(flops_per_second=rate, trial_start_s=max(0.0, start))
