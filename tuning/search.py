"""``tuning-search`` / ``python -m tuning.search``: Hyperband over blocks, filters, skip and
learning rate, on the validation split only (the engine: ``tuning.engine``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hypermodels.trial_schedule import TRIAL_SCHEDULES
from tuning import cli
from tuning.config import (
    CONFIRM_CANDIDATES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BN_MOMENTUM,
    DEFAULT_CONFIRM_CANDIDATES,
    DEFAULT_CONFIRM_SEEDS,
    DEFAULT_CONFIRM_TOP,
    DEFAULT_DIRECTORY,
    DEFAULT_FACTOR,
    DEFAULT_HYPERBAND_ITERATIONS,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_MOMENTUM,
    DEFAULT_PROJECT,
    DEFAULT_RESUME_EVERY_S,
    DEFAULT_SAMPLER,
    DEFAULT_SEED,
    DEFAULT_TRIAL_IMAGES,
    DEFAULT_TRIAL_SCHEDULE,
    SAMPLERS,
    SearchConfig,
    make_recipe,
)
from tuning.engine import resolve_cluster
from tuning.tfstartup import quiet_tensorflow_startup

PROG = "python -m tuning.search"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=PROG,
        description="Hyperband search of residual CNNs on Fashion-MNIST (validation split only).",
    )
    cli.add_data_args(p)
    _add_run_args(p.add_argument_group("run"))
    _add_plan_args(p.add_argument_group("plan: Hyperband, sampling, confirmation, budget"))
    cli.add_search_space_args(p)
    _add_training_args(p.add_argument_group("how each trial trains"))
    _add_robustness_args(p.add_argument_group("failures, crashes and disk"))
    cli.add_cluster_args(p)
    return p


def _add_run_args(p) -> None:
    p.add_argument(
        "--directory", default=DEFAULT_DIRECTORY, help="parent folder of runs (%(default)s)"
    )
    p.add_argument("--project-name", default=DEFAULT_PROJECT, help="run folder name (%(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="(%(default)s)")
    p.add_argument("--subset", type=int, help="keep N stratified training images (quick runs)")
    cli.add_precision_arg(p)
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism: the same command gives the same scores (slower)",
    )
    p.add_argument("--overwrite", action="store_true", help="delete an existing run first")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2, help="Keras fit verbosity")


def _add_plan_args(p) -> None:
    p.add_argument("--max-epochs", type=int, default=DEFAULT_MAX_EPOCHS, help="(%(default)s)")
    p.add_argument("--factor", type=int, default=DEFAULT_FACTOR, help="(%(default)s)")
    p.add_argument(
        "--hyperband-iterations", type=int, default=DEFAULT_HYPERBAND_ITERATIONS,
        help="(%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        help="how each new configuration is drawn: 'balanced' takes a network shape (blocks x "
        "filters x skip) among those sampled least so far, 'random' draws independently as "
        "KerasTuner does (%(default)s)",
    )
    p.add_argument(
        "--trial-images",
        default=DEFAULT_TRIAL_IMAGES,
        help="each trial trains on N stratified images of the training split (validation: "
        "all of it; finalize: everything); 'all' for the whole split (%(default)s)",
    )
    _add_confirm_args(p)
    p.add_argument(
        "--time-budget",
        type=float,
        metavar="MINUTES",
        help="size the plan to fit this many minutes (a new run) and stop when they are up; "
        "rerun with a larger budget to continue (default: no limit, the plan as given)",
    )


def _add_confirm_args(p) -> None:
    p.add_argument(
        "--confirm-top",
        type=int,
        default=DEFAULT_CONFIRM_TOP,
        metavar="K",
        help="after the trials, retrain the K best distinct configurations from scratch and "
        "let the finalizer take the confirmed winner (%(default)s; 0: off)",
    )
    p.add_argument(
        "--confirm-seeds",
        type=int,
        default=DEFAULT_CONFIRM_SEEDS,
        metavar="S",
        help="seeds per confirmed configuration (%(default)s)",
    )
    p.add_argument(
        "--confirm-candidates",
        choices=CONFIRM_CANDIDATES,
        default=DEFAULT_CONFIRM_CANDIDATES,
        help="which K: Hyperband's top K, or its best in each of K network-size classes, all "
        "trained as long as the longest of their lineages, or both (the union, as long) "
        "(%(default)s)",
    )
    p.add_argument(
        "--confirm-images",
        type=int,
        metavar="N",
        help="each confirmation training sees N images of the training split (all of it "
        "where N is as large) for fewer epochs in proportion, the same image passes "
        "(default: the trials' images)",
    )


def _add_training_args(p) -> None:
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="(%(default)s)")
    p.add_argument("--momentum", type=float, default=DEFAULT_MOMENTUM, help="SGD (%(default)s)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    p.add_argument(
        "--trial-schedule",
        choices=TRIAL_SCHEDULES,
        default=DEFAULT_TRIAL_SCHEDULE,
        help="the rate within a trial: 'constant' (the searched rate throughout) or 'budget' "
        "(a warm-up over the first tenth of the trial's steps, then cosine decay to 0 at its "
        "last epoch, from the searched rate; a continued trial restarts it over the epochs "
        "it adds) (%(default)s)",
    )
    p.add_argument(
        "--bn-momentum",
        type=float,
        default=DEFAULT_BN_MOMENTUM,
        help="batch normalization's moving-average momentum; Keras' default is 0.99, too slow "
        "for one-epoch trials (%(default)s)",
    )
    cli.add_recipe_args(p)


def _add_robustness_args(p) -> None:
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


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    recipe = make_recipe(
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        augment=cli.augment_from_arg(args.augment) or (),
        bn_momentum=args.bn_momentum,
    )
    return cli.config_from_args(
        SearchConfig,
        args,
        space=cli.space_from_args(args),
        recipe=recipe,
        trial_images=cli.trial_images_from_arg(args.trial_images),
        max_consecutive_failures=args.max_consecutive_failures,
        resume_every_s=args.resume_every,
        time_budget_min=args.time_budget,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    cluster = resolve_cluster(
        args.role, args.oracle, args.worker_id, args.worker_timeout, args.chief_timeout
    )
    quiet_tensorflow_startup()
    from tuning.engine import run_search  # late: imports TensorFlow (seconds)

    run_search(config, cluster)
    return 0


def console_main() -> None:
    cli.command(PROG, main)


if __name__ == "__main__":
    console_main()
