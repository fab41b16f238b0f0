"""``tuning-finalize`` / ``python -m tuning.finalize``: retrain the chosen configuration and
test it once (the engine: ``tuning.retrain.finalizer``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tuning import cli
from tuning.config import (
    DEFAULT_EPOCHS_FACTOR,
    DEFAULT_FINAL_AUGMENT,
    DEFAULT_FINAL_WEIGHT_DECAY,
    DEFAULT_RUN_DIR,
    DEFAULT_TTA,
    TRAIN_ON,
    TTA_CHOICES,
    FinalizeConfig,
)

PROG = "python -m tuning.finalize"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=PROG,
        description="Retrain the best (or a chosen) configuration and evaluate it once on test.",
    )
    p.add_argument(
        "--run-dir", default=DEFAULT_RUN_DIR, help="the search run to finalize (%(default)s)"
    )
    cli.add_choice_args(
        p,
        'explicit JSON, e.g. \'{"blocks": 2, "filters": 64, "skip": true, '
        '"learning_rate": 0.001}\' (needs --epochs)',
    )
    p.add_argument("--epochs", type=int, help="override the epoch count")
    p.add_argument(
        "--epochs-factor",
        type=float,
        default=DEFAULT_EPOCHS_FACTOR,
        help="without --epochs: train this many times the best trial's lineage epochs "
        "(%(default)s)",
    )
    cli.add_schedule_args(
        p,
        FinalizeConfig().lr_schedule,
        "; after constant-rate trials every searched rate below 0.0125 trains at the peak "
        "0.05 and every rate above 0.025 at 0.1",
        peak_from_run=True,
    )
    p.add_argument("--train-on", choices=TRAIN_ON, default="train+valid", help="(%(default)s)")
    p.add_argument(
        "--tta",
        choices=TTA_CHOICES,
        default=DEFAULT_TTA,
        help="test-time augmentation: flip averages each image's and its mirror's "
        "probabilities; auto uses flip only for a network trained with flips (%(default)s)",
    )
    cli.add_data_args(p)
    p.add_argument("--seed", type=int, help="default: the search's seed")
    cli.add_retraining_args(
        p, ",".join(DEFAULT_FINAL_AUGMENT) or "none", DEFAULT_FINAL_WEIGHT_DECAY
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing final/")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    return p


def config_from_args(args: argparse.Namespace) -> FinalizeConfig:
    return cli.config_from_args(
        FinalizeConfig,
        args,
        hyperparameters=cli.hyperparameters_from_arg(args.hyperparameters),
        options=cli.retrain_options_from_args(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(build_parser().parse_args(argv))
    from tuning.retrain.finalizer import run_finalize  # TensorFlow only after its checks

    run_finalize(config)
    return 0


def console_main() -> None:
    # A killed finalize restarts from scratch: nothing is kept between epochs.
    cli.command(PROG, main, interrupted="final/ was not written; start it again with")


if __name__ == "__main__":
    console_main()
