"""Ahead of the peers? Our search beside stock KerasTuner and Optuna, on the same minutes.

    python benchmarks/peers.py --data-dir ../shared/data/fashion-mnist \\
        --yardstick docs/results/yardstick.csv          # seeds 0-4, every searcher
    python benchmarks/peers.py --report --yardstick docs/results/yardstick.csv

Every searcher searches the default space (blocks 1-4, filters 32/64, skip on/off, learning
rate 0.001-0.1 on a log scale) on the same split of each seed and the same trial images
(the default search's 12,000), within the same wall-clock budget: "ours" is the default
``python -m tuning.search``, confirmation included; the peers are stock KerasTuner
Hyperband, RandomSearch and BayesianOptimization around the project's hypermodel, and
Optuna's TPE with its Hyperband pruner (``pip install -e ".[bench]"``). Each peer's budget
is ours' wall time on that seed, unless --minutes sets one for all.

One CSV row per searcher x seed, appended as each finishes (a rerun skips the rows there):
trials finished, wall time, the pick and its own validation score, and with --yardstick
the pick's yardstick score and regret. A second CSV keeps each run's picks over time, for
the report's plot of regret against minutes. See docs/results/peers.md for the protocol.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout, then peerlib

from peerlib import cli, report  # noqa: E402
from peerlib.common import ProjectError, RunFailed, UsageError, check_data_args  # noqa: E402
from peerlib.runner import Benchmark, Plan  # noqa: E402
from peerlib.yardstick import Yardstick  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    try:
        args = cli.parse(argv, __doc__)
        yardstick = (
            Yardstick.read(args.yardstick, args.yardstick_column) if args.yardstick else None
        )
        if args.report:
            summary = report.load(args.out, args.picks, yardstick)
            print(summary.table())
            print(summary.plot(args.plot))
            return 0
        check_data_args(args.data_dir, args.subset)
        plan = Plan(
            args.searchers,
            args.seeds,
            args.minutes,
            args.data_dir,
            args.subset,
            args.precision,
            args.recipe,
            args.out,
            args.picks,
            args.work_dir,
            yardstick,
            calibrate=not args.no_calibrate,
        )
        Benchmark(plan).run()
        return 0
    except UsageError as exc:
        print(f"{cli.PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (ProjectError, RunFailed) as exc:
        print(f"{cli.PROG}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)


if __name__ == "__main__":
    sys.exit(main())
