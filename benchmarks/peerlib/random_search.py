"""KerasTuner RandomSearch: independent draws, each trained for Hyperband's max_epochs."""

from __future__ import annotations

from peerlib.common import MAX_EPOCHS, Job, Outcome
from peerlib.kerastuner import ENDLESS, run_tuner


def run(job: Job) -> Outcome:
    import keras_tuner

    return run_tuner(keras_tuner.RandomSearch, job, epochs=MAX_EPOCHS, max_trials=ENDLESS)
