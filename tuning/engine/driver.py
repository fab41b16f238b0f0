"""The search, step by step: data, run directory, checks, tuner, trials, summary.

:func:`run_search` reads as the list of steps; each step is a function below it. The
search reads only the training files; the test set is left to the finalizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shlex
import time

from hypermodels.space import SearchSpace
from tuning.config import VALID_FRACTION, Cluster, FinalizeConfig, SearchConfig
from tuning.data import Splits, load_splits, stratified_take
from tuning.engine.budget import Deadline, describe_sizing, size_to_budget
from tuning.engine.confirm import TrainingData, run_confirmation
from tuning.engine.hparams import write_hparams_config
from tuning.engine.results import summary_table
from tuning.engine.role import apply_cluster
from tuning.engine.strategy import make_strategy
from tuning.engine.worker import (
    check_worker_definition,
    run_worker,
    wait_for_run_file,
)
from tuning.errors import ProjectError, UsageError
from tuning.faults import fault_point
from tuning.kt_internals import set_client_timeout
from tuning.machine.cost import Calibration, estimate_seconds, format_duration
from tuning.machine.memory import check_fits
from tuning.machine.precision import PrecisionChoice, choose
from tuning.plan import Plan, hyperband_plan
from tuning.retrain.calibration import calibrate
from tuning.rundir import records
from tuning.rundir.folders import (
    RUN_FILE,
    prepare_search_dir,
    provenance,
    read_run,
    refuse_unusable_search_dir,
)
from tuning.rundir.lock import RunLock
from tuning.rundir.resume import SearchInterrupted
from tuning.show.insight_plots import console_lines


def run_search(config: SearchConfig, cluster: Cluster | None = None) -> list[dict]:
    """Run (or resume) a Hyperband search; returns the rows of trials.csv.

    ``cluster`` makes this process the chief or a worker of a distributed search; the
    chief returns the rows, a worker an empty list.
    """
    started = time.monotonic()  # a --time-budget counts from here
    cluster = cluster or Cluster()
    if cluster.role == "worker" and config.overwrite:
        raise UsageError("--overwrite is for the chief (or a single search), not a worker")
    with contextlib.ExitStack() as held:  # the run directory's lock, until the end
        precision = choose_precision(config, cluster)
        policy = precision.policy
        splits = load_splits(config.data_dir, config.seed, VALID_FRACTION, config.subset)
        strategy = make_strategy(config.strategy, config.cpu_replicas)  # before TF places anything
        config, measured = fit_to_budget(config, cluster, splits, policy)
        definition = config.definition(splits.source.sha256, policy)
        hypermodel = preflight(config, splits, policy)  # a refused search leaves nothing behind
        status = claim_run_dir(config, cluster, definition, held)
        x_train, y_train = trial_training_set(splits, config.trial_images, config.seed)
        plan = hyperband_plan(config.max_epochs, config.factor, config.hyperband_iterations)
        sizes = {**splits.sizes(), "trial_train": int(len(y_train))}
        announce(config, cluster, splits, sizes, status, precision, plan)
        if status in ("new", "overwritten"):
            write_run_file(config, definition, splits, sizes, plan, precision)
        tuner = build_tuner(config, cluster, status, hypermodel, strategy, plan)
        if cluster.role == "single":
            print_estimate(config.space, config.batch_size, policy, plan, sizes, measured)
        fit_args = trial_fit_args(config, splits)
        if cluster.role == "worker":
            return run_worker(tuner, cluster, x_train, y_train, fit_args)
        train = (x_train, y_train)
        return train_and_confirm(config, tuner, cluster, plan, status, splits, train, fit_args,
                                 policy, started)  # fmt: skip


def train_and_confirm(config, tuner, cluster, plan, status, splits, train, fit_args, policy,
                      started) -> list[dict]:  # fmt: skip
    """The trials, then the confirmation stage, within the time budget if there is one."""
    finished_before = tuner.finished_trials()
    if finished_before:
        print(f"resuming: {finished_before} trials already finished", flush=True)
    t0 = time.perf_counter()
    with Deadline(config.time_budget_min, tuner.stop, started) as deadline:
        fault_point("search.before_trials")
        rows = run_trials(tuner, cluster, plan, *train, fit_args, deadline)
        elapsed = time.perf_counter() - t0
        if deadline.expired:
            print(
                f"time budget used: {tuner.finished_trials()} of {plan.trials} trials finished "
                f"(an interrupted one saved); rerun the same command with a larger --time-budget "
                "to continue",
                flush=True,
            )
        elif tuner.finished_trials() == finished_before and status == "resume":
            print(f"search in {config.run_dir} is already complete; no trial to run.")
        else:
            print(f"search finished in {elapsed / 60:.1f} min")
        print_summary(config, rows)
        confirm(config, rows, splits, train, policy, deadline)
    print_next(config, rows)
    return rows


def fit_to_budget(config: SearchConfig, cluster: Cluster, splits, policy: str):
    """With --time-budget: a new run's plan sized to it, a recorded run's plan kept.

    Returns the config and the calibration sizing measured (None where it measured none),
    which the printed estimate then reuses.
    """
    if config.time_budget_min is None:
        return config, None
    if cluster.role != "single":
        raise UsageError("--time-budget is for a single search, not --role chief or worker")
    recorded = {} if config.overwrite else read_run(config.run_dir).get("definition") or {}
    if recorded:
        kept = dataclasses.replace(
            config,
            max_epochs=recorded.get("max_epochs", config.max_epochs),
            trial_images=recorded.get("trial_images", config.trial_images),
            hyperband_iterations=recorded.get("hyperband_iterations", config.hyperband_iterations),
        )
        print(f"time budget {config.time_budget_min:g} min: continuing the plan recorded in "
              f"{RUN_FILE} (max_epochs={kept.max_epochs})", flush=True)  # fmt: skip
        return kept, None
    measured = calibrate(config.space, config.batch_size, policy)
    sized, seconds = size_to_budget(config, measured, len(splits.y_train), len(splits.y_valid))
    print(describe_sizing(sized, seconds), flush=True)
    return sized, measured


def choose_precision(config: SearchConfig, cluster: Cluster) -> PrecisionChoice:
    """``--precision auto`` is decided once per run, by measurement (``tuning.machine.precision``).

    A worker takes its chief's choice and a resumed run its own, as recorded in run.json:
    two machines, or two days, near the margin could otherwise decide differently, and
    the run's definition would no longer match.
    """
    if config.precision != "auto" or (config.overwrite and cluster.role != "worker"):
        return choose(config.precision)
    if cluster.role == "worker":
        recorded = wait_for_run_file(config.run_dir, cluster)
    else:
        recorded = read_run(config.run_dir)
    previous = recorded.get("precision_choice")
    if isinstance(previous, dict) and previous.get("requested") == "auto":
        rates = {str(k): float(v) for k, v in (previous.get("rates") or {}).items()}
        return PrecisionChoice(str(previous["policy"]), "auto", rates, cached=True)
    return choose(config.precision)


def claim_run_dir(config: SearchConfig, cluster: Cluster, definition: dict, held) -> str:
    """A worker checks the chief's definition; anyone else locks and prepares the run dir.

    One process per run directory (``tuning.rundir.lock``): the lock, entered into ``held`` for
    the rest of the search, is taken before anything in the directory is written or
    deleted. Workers take none: they write trial folders for the chief that holds it.
    """
    if cluster.role == "worker":
        check_worker_definition(config.run_dir, definition, cluster)
        return "worker"
    refuse_unusable_search_dir(config.run_dir)  # no lock file in a folder we may not use
    held.enter_context(RunLock(config.run_dir, what=f"search ({cluster.role})"))
    return prepare_search_dir(config.run_dir, definition, config.overwrite)


def trial_training_set(splits: Splits, trial_images: int | None, seed: int):
    """The training images every trial sees: all of the split, or a fixed stratified part.

    Training on part of the split makes each trial cheaper while validation still uses
    the whole validation split, so the ranking stays as precise; the finalizer retrains
    on everything.
    """
    if trial_images is None or trial_images >= len(splits.y_train):
        return splits.x_train, splits.y_train
    x, y, _, _ = stratified_take(splits.x_train, splits.y_train, trial_images, seed + 3)
    return x, y


def announce(config, cluster, splits, sizes, status, precision, plan: Plan) -> None:
    """What the search will do, before it does it: data, directory, plan, TensorBoard."""
    each = (
        f" (each trial trains on {sizes['trial_train']})"
        if sizes["trial_train"] < sizes["train"]
        else ""
    )
    print(f"data: {splits.source.describe()}; train {sizes['train']}{each}, valid {sizes['valid']}")
    role = "" if cluster.role == "single" else f"; {cluster.role} {cluster.tuner_id}"
    print(f"run directory: {config.run_dir} ({status}); precision {precision.describe()}" + role)
    print(
        f"Hyperband plan (max_epochs={config.max_epochs}, factor={config.factor}, "
        f"iterations={config.hyperband_iterations}; trial schedule {config.trial_schedule}):"
    )
    print(plan.format(sizes["trial_train"]))
    logdir = shlex.quote(str(config.run_dir / "tensorboard"))
    print(f"TensorBoard: tensorboard --logdir {logdir}", flush=True)


def write_run_file(config: SearchConfig, definition, splits, sizes, plan, precision) -> None:
    records.atomic_write_json(
        config.run_dir / RUN_FILE,
        {
            "definition": definition,
            "data": splits.source.to_dict(),
            "sizes": sizes,
            "plan": {"trials": plan.trials, "epochs": plan.epochs},
            "precision_choice": precision.to_json(),
            **provenance(),
        },
    )


def preflight(config: SearchConfig, splits, policy: str):
    """The hypermodel, once the largest network of the space fits in memory and builds."""
    from hypermodels.resnet import ResNetHyperModel
    from hypermodels.trial_schedule import TrialSchedule

    largest = config.space.largest()
    images = min(config.trial_images or len(splits.y_train), len(splits.y_train))
    schedule = TrialSchedule(config.trial_schedule, math.ceil(images / config.batch_size))
    warning = check_fits(largest["blocks"], largest["filters"], config.batch_size,
                         "the largest network of the space", images=images)  # fmt: skip
    if warning:
        print(warning, flush=True)
    hypermodel = ResNetHyperModel(config.space, splits.mean, splits.variance, config.recipe, policy,
                                  schedule)  # fmt: skip
    params = build_check(hypermodel, config.space)
    print(f"build check: the largest network of the space has {params:,} parameters", flush=True)
    return hypermodel


def build_tuner(config: SearchConfig, cluster: Cluster, status: str, hypermodel, strategy, plan):
    """TensorFlow set up for this process and the tuner ready."""
    from tuning.engine.tuner import ResNetHyperband
    from tuning.rundir.repair import repair_run

    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if status == "resume":
        repair_run(config.run_dir)
    apply_cluster(cluster)  # KerasTuner reads its variables when the tuner is built
    if cluster.role == "worker":
        set_client_timeout(cluster.chief_timeout)
    if cluster.role != "worker":
        write_hparams_config(config.run_dir / "tensorboard", config.space)
    return ResNetHyperband(
        hypermodel,
        objective="val_accuracy",
        max_epochs=config.max_epochs,
        factor=config.factor,
        hyperband_iterations=config.hyperband_iterations,
        sampler=config.sampler,
        seed=config.seed,
        max_consecutive_failed_trials=config.max_consecutive_failures,
        directory=str(config.directory),
        project_name=config.project_name,
        overwrite=False,
        planned_trials=plan.trials,
        planned_epochs=plan.epochs,
        prune_checkpoints=config.prune_checkpoints,
        resume_every_s=config.resume_every_s,
        distribution_strategy=strategy,
    )


def build_check(hypermodel, space: SearchSpace) -> int:
    """Build the largest network of the space once, so a broken setup fails in seconds."""
    import keras
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, value in space.largest().items():
        hp.Fixed(name, value)
    try:
        model = hypermodel.build(hp)
    except Exception as exc:
        raise ProjectError(f"the build check failed: {type(exc).__name__}: {exc}") from None
    params = model.count_params()
    del model
    keras.backend.clear_session()
    return params


def print_estimate(space, batch_size: int, policy: str, plan: Plan, sizes: dict,
                   measured: Calibration | None = None) -> None:  # fmt: skip
    measured = measured or calibrate(space, batch_size, policy)
    estimate = estimate_seconds(
        space, plan.epochs, plan.trials, sizes["trial_train"], sizes["valid"], measured
    )
    print(
        f"estimated wall time: about {format_duration(estimate)} for the whole plan on "
        f"this machine ({measured.flops_per_second / 1e9:.1f} GFLOP/s and "
        f"{measured.trial_start_s:.1f} s start-up per trial measured; rough, within a "
        "factor of ~2)",
        flush=True,
    )


def trial_fit_args(config: SearchConfig, splits) -> dict:
    """What every trial's ``fit`` gets besides the training arrays."""
    import keras

    return dict(
        validation_data=(splits.x_valid, splits.y_valid),
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=[
            keras.callbacks.TensorBoard(
                log_dir=str(config.run_dir / "tensorboard"), write_graph=False
            )
        ],
        verbose=config.verbose,
    )


def run_trials(tuner, cluster: Cluster, plan: Plan, x_train, y_train, fit_args,
               deadline: Deadline | None = None) -> list[dict]:  # fmt: skip
    """Train the plan's trials here, or serve them to workers as the chief."""
    from tuning.engine.chief import Chief

    try:
        with tuner.stop:  # Ctrl-C: finish and save the current epoch, then stop
            if cluster.role == "chief":
                tuner.save()
                Chief(tuner, cluster, plan.trials).serve()
            else:
                tuner.search(x_train, y_train, **fit_args)
    except SearchInterrupted:
        if deadline is None or not deadline.expired:
            raise  # Ctrl-C: the command says how to resume
    except RuntimeError as exc:
        if tuner.oracle.consecutive_failures() < tuner.oracle.max_consecutive_failed_trials:
            raise
        tuner.write_results()
        raise ProjectError(
            f"search stopped: {str(exc).splitlines()[0]} See trials.csv for each "
            "failure's reason (a learning-rate range that is too high is the usual cause)."
        ) from None
    return tuner.write_results()


def finalize_command(run_dir, data_dir: str | None) -> str:
    cmd = ["python", "-m", "tuning.finalize", "--run-dir", str(run_dir)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    return shlex.join(cmd)


def print_summary(config: SearchConfig, rows: list[dict]) -> None:
    print(summary_table(rows))
    for line in console_lines(rows):  # importance, skip on/off (observational), history
        print(line)
    disk = sum(r["disk_mb"] or 0 for r in rows)
    if rows:
        print(
            f"disk: {disk:.1f} MB in trial folders and logs ({disk / len(rows):.1f} MB per trial)"
        )
    print(f"results: {config.run_dir / 'trials.csv'}, {config.run_dir / 'best.json'}")


def confirm(config: SearchConfig, rows: list[dict], splits: Splits, train, policy: str,
            deadline: Deadline | None = None) -> None:  # fmt: skip
    """The last stage: retrain the top configurations from scratch (``engine.confirm``).

    Only the single process or the chief gets here (workers returned); with
    ``--confirm-top 0`` it only writes best.json, naming Hyperband's best as before.
    """
    seen = train if config.confirm_images is None else trial_training_set(
        splits, config.confirm_images, config.seed
    )  # fmt: skip
    data = TrainingData(*seen, splits.x_valid, splits.y_valid, splits.mean, splits.variance,
                        trial_images=len(train[1]))  # fmt: skip
    run_confirmation(config, rows, data, policy, deadline)


def print_next(config: SearchConfig, rows: list[dict]) -> None:
    if records.best_row(rows) is None:
        return
    best = config.run_dir / "best.json"
    picked = records.read_json(best).get("hyperparameters") if best.is_file() else None
    searched = (picked or {}).get("learning_rate")
    if searched is not None:  # what the searched rate becomes, said before anyone trains
        rate = FinalizeConfig().schedule_for(config.trial_schedule).peak(searched)[1]
        print(f"finalize's learning rate for the pick: warm-up to {rate}, then cosine decay")
    print(f"next: {finalize_command(config.run_dir, config.data_dir)}")
