"""``tuning-report`` / ``python -m tuning.report``: plots and ``report.md`` from a run's saved
results, no training (the engine: ``tuning.show.rebuild``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tuning import cli
from tuning.config import DEFAULT_RUN_DIR
from tuning.tfstartup import quiet_tensorflow_startup

PROG = "python -m tuning.report"


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=PROG,
        description="Rebuild plots and report.md of a run from its saved results (no training).",
    )
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="(%(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow_startup()
    from tuning.show.rebuild import build_reports  # late: imports TensorFlow (seconds)

    built = build_reports(args.run_dir)
    for line in built["verdicts"]:
        print(line)
    for name, path in built["plots"].items():
        print(f"{name}: {path}")
    print(f"report: {Path(args.run_dir) / 'report.md'}")
    return 0


def console_main() -> None:
    cli.command(PROG, main)


if __name__ == "__main__":
    console_main()
