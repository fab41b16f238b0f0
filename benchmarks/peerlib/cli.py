"""The command line of benchmarks/peers.py: flags, checked, and one-line errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from peerlib.common import RECIPES, UsageError
from peerlib.runner import SEARCHERS
from peerlib.yardstick import COLUMNS

PROG = "benchmarks/peers.py"
DEFAULT_OUT = "docs/results/peers.csv"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser(description: str) -> Parser:
    p = Parser(
        prog=PROG, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--searchers", default=",".join(SEARCHERS), help="comma-separated, from %(default)s"
    )
    p.add_argument("--seeds", default="0,1,2,3,4", help="(%(default)s)")
    p.add_argument(
        "--minutes",
        type=float,
        help="every searcher's wall-clock budget, ours included (default: each "
        "seed's wall time of ours, from its row)",
    )
    p.add_argument("--data-dir", help="the four Fashion-MNIST .gz files (as tuning.search)")
    p.add_argument("--subset", type=int, help="keep N training images (quick checks only)")
    p.add_argument("--precision", default="auto", help="as tuning.search's (%(default)s)")
    p.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="search",
        help="how the peers train a network: 'search' as the default search's "
        "trials, 'lab' the hypermodel's own default (%(default)s)",
    )
    p.add_argument("--yardstick", help="benchmarks/yardstick.py's CSV, to score the picks")
    p.add_argument("--yardstick-column", choices=COLUMNS, default=COLUMNS[0], help="(%(default)s)")
    p.add_argument("--out", default=DEFAULT_OUT, help="one row per searcher x seed (%(default)s)")
    p.add_argument("--picks", help="each run's picks over time (default: OUT's name + _picks)")
    p.add_argument("--work-dir", default="runs/peers", help="scratch folders (%(default)s)")
    p.add_argument(
        "--no-calibrate",
        action="store_true",
        help="leave the gflops column empty (saves a few seconds)",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="only report on the CSVs: regret per searcher, and the plot",
    )
    p.add_argument("--plot", help="the report's PNG (default: OUT's name + _regret.png)")
    return p


def parse(argv, description: str) -> argparse.Namespace:
    args = build_parser(description).parse_args(argv)
    args.searchers = items(args.searchers, "--searchers")
    unknown = [s for s in args.searchers if s not in SEARCHERS]
    if unknown:
        raise UsageError(
            f"--searchers: unknown {', '.join(unknown)} (choose from {', '.join(SEARCHERS)})"
        )
    try:
        args.seeds = [int(s) for s in items(args.seeds, "--seeds")]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, not {args.seeds!r}") from None
    if any(not 0 <= s < 2**32 for s in args.seeds):
        raise UsageError("--seeds must be in 0..4294967295")
    if args.minutes is not None and not 0 < args.minutes < 10**5:
        raise UsageError(f"--minutes must be a positive number, not {args.minutes:g}")
    out = Path(args.out)
    args.out = out
    args.picks = Path(args.picks or out.with_name(f"{out.stem}_picks.csv"))
    args.plot = Path(args.plot or out.with_name(f"{out.stem}_regret.png"))
    args.work_dir = Path(args.work_dir)
    return args


def items(text: str, flag: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values:
        raise UsageError(f"{flag} needs at least one value")
    return list(dict.fromkeys(values))
