"""Stock KerasTuner Hyperband: KerasTuner's own random sampler and brackets, the default
search's max_epochs and factor, Hyperband iterations until the budget is spent."""

from __future__ import annotations

from peerlib.common import FACTOR, MAX_EPOCHS, Job, Outcome
from peerlib.kerastuner import ENDLESS, run_tuner


def run(job: Job) -> Outcome:
    import keras_tuner

    return run_tuner(
        keras_tuner.Hyperband,
        job,
        max_epochs=MAX_EPOCHS,
        factor=FACTOR,
        hyperband_iterations=ENDLESS,
    )
