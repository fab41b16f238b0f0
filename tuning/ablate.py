"""``tuning-ablate`` / ``python -m tuning.ablate``: do the skip connections help? Skip on vs
off, paired over seeds, at one or more depths, then the report
(engine: ``tuning.retrain.ablation``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tuning import cli
from tuning.config import DEFAULT_ABLATION_SEEDS, DEFAULT_RUN_DIR, AblationConfig, Schedule
from tuning.tfstartup import quiet_tensorflow_startup

PROG = "python -m tuning.ablate"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=PROG,
        description="Skip on vs off, paired over seeds, at one or more depths (validation split).",
    )
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="search run to take the config from")
    cli.add_choice_args(p, "explicit JSON (needs --epochs), as in finalize")
    p.add_argument("--blocks", help="depths, e.g. 2,4,8 (default: the configuration's)")
    p.add_argument(
        "--seeds", type=int, default=DEFAULT_ABLATION_SEEDS, help="seeds per arm (%(default)s)"
    )
    p.add_argument("--epochs", type=int, help="default: the best trial's lineage epochs")
    cli.add_schedule_args(p, Schedule())
    cli.add_data_args(p)
    cli.add_retraining_args(p)
    p.add_argument(
        "--overwrite", action="store_true", help="replace an ablation with other settings"
    )
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0)
    return p


def config_from_args(args: argparse.Namespace) -> AblationConfig:
    return cli.config_from_args(
        AblationConfig,
        args,
        hyperparameters=cli.hyperparameters_from_arg(args.hyperparameters),
        blocks=cli.blocks_from_arg(args.blocks),
        options=cli.retrain_options_from_args(args),
        lr_schedule=cli.schedule_from_args(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(build_parser().parse_args(argv))
    quiet_tensorflow_startup()
    from tuning.retrain.ablation import run_ablation  # late: imports TensorFlow (seconds)
    from tuning.show.rebuild import build_reports

    run_ablation(config)
    built = build_reports(config.run_dir)
    for line in built["verdicts"]:
        print(line)
    print(f"report: {config.run_dir / 'report.md'}")
    return 0


def console_main() -> None:
    cli.command(PROG, main)


if __name__ == "__main__":
    console_main()
