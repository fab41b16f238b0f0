"""Errors that reach the user as one line, and the CLI wrapper that prints them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


class ProjectError(Exception):
    """An error the user can act on; printed as one line, never as a traceback."""

    exit_code = 1


class UsageError(ProjectError):
    """A bad flag or value on the command line (exit status 2)."""

    exit_code = 2


class DataError(ProjectError):
    """The data could not be found, read or verified."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def run_cli(prog: str, main: Callable[[Sequence[str] | None], int], argv=None) -> int:
    """Run an entry point, turning expected errors into one line and an exit code."""
    try:
        return main(argv)
    except ProjectError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130
