"""What one training epoch costs for each network of the default search space.

Times real training steps (batch 256 by default) and validation batches for every
(blocks, filters) pair, extrapolates to a full epoch on the 48k/12k split, and prints
what the default Hyperband plan costs on this machine: the plan's epochs times the
mean epoch time over the space (round-0 trials are drawn uniformly from it).

    python benchmarks/epoch_cost.py [--steps 6] [--blocks 1:4] [--filters 16,32,64,128]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from hypermodels import build_resnet  # noqa: E402
from hypermodels.space import parse_int_list, parse_int_range  # noqa: E402
from tuning.config import DEFAULT_FACTOR, DEFAULT_MAX_EPOCHS  # noqa: E402
from tuning.plan import hyperband_plan  # noqa: E402


def time_config(blocks, filters, batch, steps, n_train, n_valid, rng):
    model = build_resnet(blocks=blocks, filters=filters, skip=True, learning_rate=0.01)
    x = rng.integers(0, 256, (batch * (steps + 2), 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, len(x))
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    t0 = time.perf_counter()
    model.fit(x[2 * batch :], y[2 * batch :], batch_size=batch, epochs=1, verbose=0)
    train_step = (time.perf_counter() - t0) / steps
    model.predict(x[:batch], batch_size=batch, verbose=0)  # warm-up
    t0 = time.perf_counter()
    model.predict(x[: batch * 2], batch_size=batch, verbose=0)
    eval_step = (time.perf_counter() - t0) / 2
    epoch = train_step * math.ceil(n_train / batch) + eval_step * math.ceil(n_valid / batch)
    return train_step, epoch, model.count_params()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--blocks", default="1:4")
    p.add_argument("--filters", default="16,32,64,128")
    a = p.parse_args()
    lo, hi = parse_int_range(a.blocks, "--blocks")
    filters = parse_int_list(a.filters, "--filters")
    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("blocks filters  params     s/step  epoch (48k train + 12k valid)")
    epochs = []
    for b in range(lo, hi + 1):
        for f in filters:
            step, epoch, params = time_config(b, f, a.batch_size, a.steps, 48000, 12000, rng)
            epochs.append(epoch)
            print(f"{b:>6} {f:>7} {params:>9,} {step:>8.3f}  {epoch:>7.1f} s")
    plan = hyperband_plan(DEFAULT_MAX_EPOCHS, DEFAULT_FACTOR)
    mean = float(np.mean(epochs))
    print(f"mean epoch over the space: {mean:.1f} s")
    print(
        f"default plan: {plan.trials} trials, {plan.epochs} epochs -> about "
        f"{plan.epochs * mean / 3600:.1f} h on this machine (range "
        f"{plan.epochs * min(epochs) / 3600:.1f}-{plan.epochs * max(epochs) / 3600:.1f} h)"
    )


if __name__ == "__main__":
    main()
