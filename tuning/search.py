"""``python -m tuning.search``: Hyperband over blocks, filters, skip and learning rate.

The CLI is a thin shell over :func:`run_search`, which tests call directly.
The search reads only the training files; the test set is left to the finalizer.
"""

from __future__ import annotations

import datetime as _dt
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hypermodels.space import SKIP_MODES, SearchSpace
from tuning import records
from tuning.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DIRECTORY,
    DEFAULT_FACTOR,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_MOMENTUM,
    DEFAULT_PROJECT,
    DEFAULT_RESUME_EVERY_S,
    DEFAULT_SEED,
    DEFAULT_TRIAL_IMAGES,
    VALID_FRACTION,
    SearchConfig,
    add_data_args,
    add_precision_arg,
    add_recipe_args,
    parse_augment_arg,
    space_from_args,
    versions,
)
from tuning.cost import calibrate, estimate_seconds, format_duration
from tuning.distributed import (
    DEFAULT_CHIEF_TIMEOUT,
    DEFAULT_WORKER_TIMEOUT,
    ROLES,
    STRATEGIES,
    Chief,
    Cluster,
    check_worker_definition,
    make_strategy,
    resolve_cluster,
    set_client_timeout,
)
from tuning.errors import ArgumentParser, ProjectError, UsageError, run_cli
from tuning.plan import hyperband_plan
from tuning.precision import resolve as resolve_precision

RUN_FILE = "run.json"


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        records.atomic_write_text(directory / ".write-check", "ok\n")
        (directory / ".write-check").unlink()
    except OSError as exc:
        raise ProjectError(f"run directory {directory} is not writable ({exc.strerror})") from None


def prepare_run_dir(run_dir: Path, definition: dict, overwrite: bool) -> str:
    """Make run_dir ready: "new", "resume" (same definition) or "overwritten"."""
    state = "new"
    if run_dir.exists() and any(run_dir.iterdir()):
        run_file = run_dir / RUN_FILE
        if not run_file.is_file():
            if not overwrite:
                raise UsageError(
                    f"{run_dir} exists and is not a search run of this tool; "
                    "choose another --project-name/--directory or pass --overwrite"
                )
        else:
            old = records.read_json(run_file).get("definition", {})
            diffs = _differences(old, definition)
            if not diffs:
                _check_writable(run_dir)
                return "resume"
            if not overwrite:
                raise UsageError(
                    f"{run_dir} holds a search with a different definition ("
                    + "; ".join(diffs)
                    + "); use another --project-name, or --overwrite to delete it"
                )
        n_trials = len(list(run_dir.glob("trial_*")))
        print(
            f"--overwrite: deleting {run_dir} ({n_trials} trial folders"
            f"{', final/' if (run_dir / 'final').exists() else ''})",
            flush=True,
        )
        shutil.rmtree(run_dir)
        state = "overwritten"
    _check_writable(run_dir)
    return state


def write_hparams_config(logdir: Path, config: SearchConfig) -> None:
    """Declare the HParams experiment so TensorBoard names the metrics and domains."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    space = config.space
    hparams = [
        hp_api.HParam("blocks", hp_api.IntInterval(space.blocks_min, space.blocks_max)),
        hp_api.HParam("filters", hp_api.Discrete(list(space.filters))),
        hp_api.HParam(
            "skip", hp_api.Discrete([True, False] if space.skip == "both" else [space.skip == "on"])
        ),
        hp_api.HParam("learning_rate", hp_api.RealInterval(space.lr_min, space.lr_max)),
    ]
    metrics = [
        hp_api.Metric("epoch_accuracy", group="validation", display_name="val_accuracy"),
        hp_api.Metric("epoch_loss", group="validation", display_name="val_loss"),
        hp_api.Metric("epoch_accuracy", group="train", display_name="train_accuracy"),
        hp_api.Metric("epoch_loss", group="train", display_name="train_loss"),
    ]
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        hp_api.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def build_check(hypermodel, space) -> int:
    """Build the largest network of the space once, so a broken setup fails in seconds."""
    import keras
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, value in space.largest().items():
        hp.Fixed(name, value)
    model = hypermodel.build(hp)
    params = model.count_params()
    del model
    keras.backend.clear_session()
    return params


def finalize_command(run_dir: Path, data_dir: str | None) -> str:
    cmd = ["python", "-m", "tuning.finalize", "--run-dir", str(run_dir)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    return shlex.join(cmd)


def summarize(rows: list[dict], top: int = 5) -> str:
    done = sorted(
        (r for r in rows if r["status"] == "COMPLETED" and r.get("val_accuracy") is not None),
        key=lambda r: -r["val_accuracy"],
    )
    failed = [r for r in rows if r["status"] in ("FAILED", "INVALID")]
    lines = [f"{len(rows)} trials: {len(done)} completed, {len(failed)} failed"]
    if done:
        lines.append("top trials (val_accuracy, lineage epochs, blocks, filters, skip, lr):")
        for r in done[:top]:
            lines.append(
                f"  {r['trial_id']}  {r['val_accuracy']:.4f}  {r['lineage_epochs']:>3}  "
                f"{r['blocks']:>2}  {r['filters']:>4}  {'on ' if r['skip'] else 'off'}  "
                f"{r['learning_rate']:.3g}"
            )
    for r in failed:
        lines.append(f"  failed {r['trial_id']}: {r.get('message') or 'no reason recorded'}")
    return "\n".join(lines)


def trial_training_set(splits, trial_images: int | None, seed: int):
    """The training images every trial sees: all of the split, or a fixed stratified part.

    Training on part of the split makes each trial cheaper while validation still uses
    the whole validation split, so the ranking stays as precise; the finalizer retrains
    on everything.
    """
    from tuning.data import stratified_take

    if trial_images is None or trial_images >= len(splits.y_train):
        return splits.x_train, splits.y_train
    x, y, _, _ = stratified_take(splits.x_train, splits.y_train, trial_images, seed + 3)
    return x, y


def run_search(config: SearchConfig, cluster: Cluster | None = None) -> list[dict]:
    """Run (or resume) a Hyperband search; returns the rows of trials.csv.

    ``cluster`` makes this process the chief or a worker of a distributed search
    (``tuning.distributed``); the chief returns the rows, a worker an empty list.
    """
    from tuning.data import load_splits

    cluster = cluster or Cluster()
    worker = cluster.role == "worker"
    if worker and config.overwrite:
        raise UsageError("--overwrite is for the chief (or a single search), not a worker")
    run_dir = config.run_dir
    policy = resolve_precision(config.precision)
    splits = load_splits(config.data_dir, config.seed, VALID_FRACTION, config.subset)
    definition = config.definition(splits.source.sha256, policy)
    if worker:
        check_worker_definition(run_dir, definition, cluster)
        state = "worker"
    else:
        state = prepare_run_dir(run_dir, definition, config.overwrite)
    x_train, y_train = trial_training_set(splits, config.trial_images, config.seed)

    plan = hyperband_plan(config.max_epochs, config.factor, config.hyperband_iterations)
    sizes = {**splits.sizes(), "trial_train": int(len(y_train))}
    each = (
        f" (each trial trains on {sizes['trial_train']})"
        if sizes["trial_train"] < sizes["train"]
        else ""
    )
    print(f"data: {splits.source.describe()}; train {sizes['train']}{each}, valid {sizes['valid']}")
    role = "" if cluster.role == "single" else f"; {cluster.role} {cluster.tuner_id}"
    print(f"run directory: {run_dir} ({state}); precision {policy} ({config.precision}){role}")
    print(
        f"Hyperband plan (max_epochs={config.max_epochs}, factor={config.factor}, "
        f"iterations={config.hyperband_iterations}):"
    )
    print(plan.format(sizes["trial_train"]))
    print(
        f"TensorBoard: tensorboard --logdir {shlex.quote(str(run_dir / 'tensorboard'))}", flush=True
    )

    if state not in ("resume", "worker"):
        records.atomic_write_json(
            run_dir / RUN_FILE,
            {
                "definition": definition,
                "data": splits.source.to_dict(),
                "sizes": sizes,
                "plan": {"trials": plan.trials, "epochs": plan.epochs},
                "versions": versions(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": shlex.join(sys.argv),
            },
        )

    import keras

    from hypermodels import ResNetHyperModel
    from tuning.resume import repair_run
    from tuning.tuner import ResNetHyperband, count_finished

    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if state == "resume":
        repair_run(run_dir)
    cluster.apply()  # KerasTuner reads its variables when the tuner is built
    if worker:
        set_client_timeout(cluster.chief_timeout)
    strategy = make_strategy(config.strategy, config.cpu_replicas)

    hypermodel = ResNetHyperModel(
        config.space,
        splits.mean,
        splits.variance,
        config.momentum,
        config.nesterov,
        policy,
        weight_decay=config.weight_decay,
        label_smoothing=config.label_smoothing,
        augment=config.augment,
    )
    try:
        params = build_check(hypermodel, config.space)
    except Exception as exc:
        raise ProjectError(f"the build check failed: {type(exc).__name__}: {exc}") from None
    print(f"build check: the largest network of the space has {params:,} parameters", flush=True)
    if cluster.role == "single":
        measured = calibrate(config.space, config.batch_size, policy)
        estimate = estimate_seconds(
            config.space, plan.epochs, plan.trials, sizes["trial_train"], sizes["valid"], measured
        )
        print(
            f"estimated wall time: about {format_duration(estimate)} for the whole plan on "
            f"this machine ({measured.flops_per_second / 1e9:.1f} GFLOP/s and "
            f"{measured.trial_start_s:.1f} s start-up per trial measured; rough, within a "
            "factor of ~2)",
            flush=True,
        )

    tensorboard_dir = run_dir / "tensorboard"
    if not worker:
        write_hparams_config(tensorboard_dir, config)
    tuner = ResNetHyperband(
        hypermodel,
        objective="val_accuracy",
        max_epochs=config.max_epochs,
        factor=config.factor,
        hyperband_iterations=config.hyperband_iterations,
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
    fit_args = dict(
        validation_data=(splits.x_valid, splits.y_valid),
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir), write_graph=False)],
        verbose=config.verbose,
    )
    if worker:
        return run_worker(tuner, cluster, x_train, y_train, fit_args)
    finished_before = count_finished(tuner.oracle)
    if finished_before:
        print(f"resuming: {finished_before} trials already finished", flush=True)
    t0 = time.perf_counter()
    try:
        with tuner.stop:  # Ctrl-C: finish and save the current epoch, then stop
            if cluster.role == "chief":
                tuner.save()
                Chief(tuner, cluster, plan.trials).serve()
            else:
                tuner.search(x_train, y_train, **fit_args)
    except RuntimeError as exc:
        if "consecutive" in str(exc).lower():
            tuner.write_results()
            raise ProjectError(
                f"search stopped: {str(exc).splitlines()[0]} See trials.csv for each "
                "failure's reason (a learning-rate range that is too high is the usual cause)."
            ) from None
        raise
    rows = tuner.write_results()
    elapsed = time.perf_counter() - t0
    finished = count_finished(tuner.oracle)
    if finished == finished_before and state == "resume":
        print(f"search in {run_dir} is already complete; nothing to run.")
    else:
        print(f"search finished in {elapsed / 60:.1f} min")
    print(summarize(rows))
    disk = sum(r["disk_mb"] or 0 for r in rows)
    if rows:
        print(
            f"disk: {disk:.1f} MB in trial folders and logs ({disk / len(rows):.1f} MB per trial)"
        )
    print(f"results: {run_dir / 'trials.csv'}, {run_dir / 'best.json'}")
    if records.best_row(rows) is not None:
        print(f"next: {finalize_command(run_dir, config.data_dir)}")
    return rows


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m tuning.search",
        description="Hyperband search of residual CNNs on Fashion-MNIST (validation split only).",
    )
    add_data_args(p)
    p.add_argument(
        "--directory", default=DEFAULT_DIRECTORY, help="parent folder of runs (%(default)s)"
    )
    p.add_argument("--project-name", default=DEFAULT_PROJECT, help="run folder name (%(default)s)")
    p.add_argument("--max-epochs", type=int, default=DEFAULT_MAX_EPOCHS, help="(%(default)s)")
    p.add_argument("--factor", type=int, default=DEFAULT_FACTOR, help="(%(default)s)")
    p.add_argument("--hyperband-iterations", type=int, default=1, help="(%(default)s)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="(%(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="(%(default)s)")
    p.add_argument("--subset", type=int, help="keep N stratified training images (quick runs)")
    add_precision_arg(p)
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism: the same command gives the same scores (slower)",
    )
    p.add_argument(
        "--max-consecutive-failures",
        type=int,
        default=3,
        help="stop the search after this many failed trials in a row (%(default)s)",
    )
    p.add_argument(
        "--prune-checkpoints",
        action="store_true",
        help="delete checkpoints of trials that no later round can continue (saves disk)",
    )
    p.add_argument(
        "--resume-every",
        type=float,
        default=DEFAULT_RESUME_EVERY_S,
        metavar="SECONDS",
        help="write a trial's resume checkpoint after an epoch once this much training has "
        "passed since the last one; a crash loses at most that much, Ctrl-C nothing "
        "(%(default)g; 0: after every epoch)",
    )
    p.add_argument("--overwrite", action="store_true", help="delete an existing run first")
    space = SearchSpace().cli_defaults()
    p.add_argument(
        "--blocks", default=space["blocks"], help="residual blocks, MIN:MAX (%(default)s)"
    )
    p.add_argument("--filters", default=space["filters"], help="filter widths (%(default)s)")
    p.add_argument(
        "--learning-rate",
        default=space["learning_rate"],
        help="SGD lr, MIN:MAX, log (%(default)s)",
    )
    p.add_argument("--skip", choices=SKIP_MODES, default="both", help="(%(default)s)")
    p.add_argument("--momentum", type=float, default=DEFAULT_MOMENTUM, help="SGD (%(default)s)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    add_recipe_args(p)
    p.add_argument(
        "--trial-images",
        default=DEFAULT_TRIAL_IMAGES,
        help="each trial trains on N stratified images of the training split (validation: "
        "all of it; finalize: everything); 'all' for the whole split (%(default)s)",
    )
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2, help="Keras fit verbosity")
    g = p.add_argument_group("scaling out (README: Scaling out)")
    g.add_argument(
        "--role",
        choices=ROLES,
        help="single (default), or chief/worker of a distributed search "
        "(default: from KERASTUNER_TUNER_ID/ORACLE_IP/ORACLE_PORT when set)",
    )
    g.add_argument("--oracle", help="HOST:PORT the chief listens on and workers connect to")
    g.add_argument("--worker-id", help="this worker's unique name (default: HOST-PID)")
    g.add_argument(
        "--worker-timeout",
        type=float,
        default=DEFAULT_WORKER_TIMEOUT,
        help="chief: requeue the trial of a worker silent this many seconds (%(default)s)",
    )
    g.add_argument(
        "--chief-timeout",
        type=float,
        default=DEFAULT_CHIEF_TIMEOUT,
        help="worker: give up when the chief has not answered this many seconds (%(default)s)",
    )
    g.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="none",
        help="mirrored: train each trial with tf.distribute.MirroredStrategy over the "
        "local GPUs (%(default)s)",
    )
    g.add_argument(
        "--cpu-replicas",
        type=int,
        help="with --strategy mirrored and no GPU: split the CPU into N logical devices",
    )
    return p


def run_worker(tuner, cluster: Cluster, x_train, y_train, fit_args: dict) -> list[dict]:
    """Take trials from the chief until it says the search is complete."""
    from tuning.tuner import ChiefLost

    try:
        with tuner.stop:
            tuner.search(x_train, y_train, **fit_args)
    except Exception as exc:
        import grpc

        if isinstance(exc, (grpc.RpcError, ChiefLost)):
            code = exc.code().name if isinstance(exc, grpc.RpcError) else "UNAVAILABLE"
            raise ProjectError(
                f"worker {cluster.worker_id}: lost the chief at {cluster.address} ({code}: no "
                f"answer within {cluster.chief_timeout:.0f} s). Finished trials are safe and "
                "a running one keeps its epoch checkpoints: restart the chief with its own "
                "command (it resumes), then this worker"
            ) from None
        raise
    print(
        f"worker {cluster.worker_id}: the search is complete; this worker ran "
        f"{tuner.trials_run} trial(s)",
        flush=True,
    )
    return []


def parse_trial_images(value: str | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if value.strip().lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--trial-images must be a number or 'all', not {value!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = SearchConfig(
        space=space_from_args(args),
        data_dir=args.data_dir,
        directory=args.directory,
        project_name=args.project_name,
        max_epochs=args.max_epochs,
        factor=args.factor,
        hyperband_iterations=args.hyperband_iterations,
        batch_size=args.batch_size,
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        augment=parse_augment_arg(args.augment),
        trial_images=parse_trial_images(args.trial_images),
        seed=args.seed,
        subset=args.subset,
        precision=args.precision,
        deterministic=args.deterministic,
        max_consecutive_failures=args.max_consecutive_failures,
        prune_checkpoints=args.prune_checkpoints,
        resume_every_s=args.resume_every,
        strategy=args.strategy,
        cpu_replicas=args.cpu_replicas,
        overwrite=args.overwrite,
        verbose=args.verbose,
    )
    cluster = resolve_cluster(
        args.role, args.oracle, args.worker_id, args.worker_timeout, args.chief_timeout
    )
    run_search(config, cluster)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m tuning.search", main))
