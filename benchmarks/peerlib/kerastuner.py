"""Stock KerasTuner around the project's hypermodel: what the three KerasTuner peers share.

The keras-io getting-started way: a tuner class of KerasTuner built on the hypermodel,
``objective="val_accuracy"``, then ``tuner.search(x, y, validation_data=...)``. KerasTuner's
own sampler, scheduling and pick rule (its best trial by validation accuracy); nothing of
the project's search around it. The subclass below only watches: it notes each finished
trial's score and time, and ends the search once the budget is spent (a training still
running then stops at its next batch, and that trial is not counted).
"""

from __future__ import annotations

import contextlib

from peerlib.common import BATCH_SIZE, SPACE, Clock, Job, Outcome, Picks, deadline_callback

# Unbounded plans: the wall-clock budget is what ends every KerasTuner peer.
ENDLESS = 10**6


class BudgetSpent(Exception):
    """Raised between trials once the wall-clock budget is spent."""


def run_tuner(tuner_class, job: Job, epochs: int | None = None, **tuner_args) -> Outcome:
    """Build ``tuner_class`` on the hypermodel and search until the budget is spent."""
    import keras

    from hypermodels import ResNetHyperModel

    data = job.data
    keras.utils.set_random_seed(job.seed)
    clock = Clock(job.budget_s)
    picks = Picks(clock)

    class Watched(tuner_class):
        def pre_create_trial(self):
            if clock.expired():
                raise BudgetSpent
            super().pre_create_trial()

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            ended = self.oracle.trials[trial.trial_id]
            done = ended.status == "COMPLETED"
            picks.offer(ended.hyperparameters.values if done else None, ended.score)

    hypermodel = ResNetHyperModel(SPACE, data.mean, data.variance, job.recipe, job.precision)
    tuner = Watched(
        hypermodel,
        objective="val_accuracy",
        seed=job.seed,
        directory=str(job.work_dir),
        project_name="tuner",
        overwrite=True,
        **tuner_args,
    )
    fit = {"epochs": epochs} if epochs is not None else {}
    with contextlib.suppress(BudgetSpent):
        tuner.search(
            data.x_train,
            data.y_train,
            validation_data=(data.x_valid, data.y_valid),
            batch_size=BATCH_SIZE,
            callbacks=[deadline_callback(clock)],
            verbose=0,
            **fit,
        )
    return Outcome(picks, clock.elapsed(), "the trial's best epoch (KerasTuner's score)")
