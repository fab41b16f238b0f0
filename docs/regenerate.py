"""Regenerate every generated table and figure of the docs from the committed CSVs.

    python docs/regenerate.py            # rewrite the pages (and draw the figures)
    python docs/regenerate.py --check    # exit 1 if any page is out of date, change nothing

The pages mark each generated block with ``<!-- table:NAME -->`` ... ``<!-- /table -->``
(or ``figure:``); the renderers are in ``docs/tables/``, the CSVs they read are listed in
``docs/results/README.md``. No training, no TensorFlow: seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tables.core import DocsError  # noqa: E402
from tables.pages import run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report pages out of date")
    p.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the repository root (default: this checkout)",
    )
    args = p.parse_args(argv)
    try:
        changed = run(args.root.resolve(), args.check)
    except DocsError as exc:
        print(f"regenerate: {exc}", file=sys.stderr)
        return 2
    for name in changed:
        print(f"{'out of date' if args.check else 'rewrote'}: {name}")
    if args.check and changed:
        print("run: python docs/regenerate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
