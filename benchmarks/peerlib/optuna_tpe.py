"""Optuna: the TPE sampler with its Hyperband pruner, each trial reporting every epoch's
validation accuracy (the pruner's resource is the epoch, 1 to the default search's
max_epochs, reduced by its factor). A trial's value is its best epoch's validation
accuracy, as KerasTuner scores one; the pick is Optuna's best completed trial (a pruned
trial is never picked).
"""

from __future__ import annotations

from peerlib.common import (
    BATCH_SIZE,
    FACTOR,
    MAX_EPOCHS,
    SPACE,
    Clock,
    Job,
    Outcome,
    Picks,
    deadline_callback,
)


def suggest(trial) -> dict:
    """The default space in Optuna's terms."""
    return {
        "blocks": trial.suggest_int("blocks", SPACE.blocks_min, SPACE.blocks_max),
        "filters": trial.suggest_categorical("filters", list(SPACE.filters)),
        "skip": trial.suggest_categorical("skip", [False, True]),
        "learning_rate": trial.suggest_float("learning_rate", SPACE.lr_min, SPACE.lr_max, log=True),
    }


def run(job: Job) -> Outcome:
    import keras
    import optuna

    from hypermodels import build_resnet
    from hypermodels.inputs import as_dataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = job.data
    keras.utils.set_random_seed(job.seed)
    clock = Clock(job.budget_s)
    picks = Picks(clock)
    train = as_dataset(data.x_train, data.y_train, BATCH_SIZE, shuffle=True)
    valid = as_dataset(data.x_valid, data.y_valid, BATCH_SIZE, shuffle=False)

    def objective(trial) -> float:
        hp = suggest(trial)
        keras.backend.clear_session()
        model = build_resnet(
            **hp, recipe=job.recipe, mean=data.mean, variance=data.variance, precision=job.precision
        )
        scores: list[float] = []
        pruned = []

        class Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                scores.append(float(logs["val_accuracy"]))
                trial.report(scores[-1], epoch + 1)
                if trial.should_prune():
                    pruned.append(epoch + 1)
                    self.model.stop_training = True

        model.fit(
            train,
            validation_data=valid,
            epochs=MAX_EPOCHS,
            shuffle=False,  # the dataset shuffles itself (hypermodels.inputs)
            verbose=0,
            callbacks=[Report(), deadline_callback(clock)],
        )
        if pruned:
            raise optuna.TrialPruned()
        return max(scores)

    def finished(study, trial) -> None:
        done = trial.state == optuna.trial.TrialState.COMPLETE
        picks.offer(trial.params if done else None, trial.value if done else None)
        if clock.expired():
            study.stop()

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=job.seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=MAX_EPOCHS, reduction_factor=FACTOR
        ),
    )
    study.optimize(objective, callbacks=[finished])
    return Outcome(picks, clock.elapsed(), "the trial's best epoch (a completed trial)")
