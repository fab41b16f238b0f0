"""Timing the precision candidates, in a process of its own (``tuning.machine.precision``).

``python -m tuning.machine.timing`` prints what ``--precision auto`` picks on this
machine and why; ``--measure POLICIES`` is the child process ``measure_in_subprocess``
starts, which prints the measured rates as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterable

from tuning.machine.precision import (
    BATCH_SIZE,
    BLOCKS,
    FILTERS,
    FLOAT32,
    ROUNDS,
    STEPS,
    cache_path,
    choose,
)


def _step_timer():
    """A Keras callback that times each training step, from its start until its loss is
    ready (which waits for an asynchronous device, a GPU)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                float(logs["loss"])
            self.seconds.append(time.perf_counter() - self._start)

    return StepTimer()


def measure_rates(
    cands: Iterable[str], rounds: int = ROUNDS, steps: int = STEPS, batch_size: int = BATCH_SIZE
) -> tuple[dict[str, float], dict[str, str]]:
    """Images/s of steady-state training steps per policy, in this process.

    Each policy builds the network and trains two batches of synthetic uint8 images
    untimed (tracing, first-touch allocations); then the policies take turns, ``rounds``
    times ``steps`` timed steps each, turned into rates by :func:`paired_rates`.
    Returns the rates and the errors of the policies that failed. Leaves Keras' global
    state cleared and its policy float32 (it is meant for a process of its own: see
    ``measure_in_subprocess``).
    """
    import keras
    import numpy as np

    from hypermodels import build_resnet
    from hypermodels.inputs import as_dataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size * steps, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, len(x))
    warm = as_dataset(x[: 2 * batch_size], y[: 2 * batch_size], batch_size, shuffle=False)
    timed = as_dataset(x, y, batch_size, shuffle=False)
    models: dict[str, keras.Model] = {}
    turns: dict[str, list[float]] = {}  # per round: the mean step of the policy's turn
    errors: dict[str, str] = {}

    def fit(policy: str, data) -> None:
        timer = _step_timer()
        try:
            models[policy].fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
        except Exception as exc:  # a policy this device cannot run is not a candidate
            errors[policy] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            del models[policy]
        else:
            if data is timed:
                turns[policy].append(sum(timer.seconds) / len(timer.seconds))

    try:
        for policy in cands:
            try:
                models[policy] = build_resnet(blocks=BLOCKS, filters=FILTERS, precision=policy)
            except Exception as exc:
                errors[policy] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                continue
            turns[policy] = []
            fit(policy, warm)
        for r in range(rounds):
            for policy in list(models)[:: 1 if r % 2 == 0 else -1]:
                if policy in models:
                    fit(policy, timed)
    finally:
        models.clear()
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy(FLOAT32)
    timed_ok = {p: t for p, t in turns.items() if p not in errors and len(t) == rounds}
    return paired_rates(timed_ok, batch_size), errors


def paired_rates(turns: dict[str, list[float]], batch_size: int) -> dict[str, float]:
    """Images/s per policy from each round's mean step.

    float32's rate is its median turn's; another policy's is float32's times the median
    over the rounds of its speed relative to float32's turn in the same round: turns next
    to each other share whatever else loads the machine, so a burst of other work that
    slows one turn does not decide. Seen here with another training sharing the 2 cores:
    each policy's own median step gave 1.77x, 3.34x and 2.13x in three runs, the paired
    rounds 1.95-2.03x in five (2.0x when idle).
    """
    rates = {p: batch_size / statistics.median(t) for p, t in turns.items()}
    if FLOAT32 in turns:
        base = turns[FLOAT32]
        for policy, t in turns.items():
            paired = statistics.median(f / o for f, o in zip(base, t, strict=True))
            rates[policy] = rates[FLOAT32] * paired
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tuning.machine.timing", description=__doc__)
    p.add_argument("--measure", help=argparse.SUPPRESS)  # the child of measure_in_subprocess
    a = p.parse_args(argv)
    if a.measure is not None:
        rates, errors = measure_rates(a.measure.split(","))
        print(json.dumps({"rates": rates, "errors": errors}), flush=True)
        return 0
    choice = choose("auto")
    print(choice.describe())
    print(json.dumps(choice.to_json()))
    print(f"cache: {cache_path() or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
