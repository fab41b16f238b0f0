"""Errors that reach the user as one line, and the CLI wrapper that prints them."""

from __future__ import annotations

import argparse
import shlex
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
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2)
        return exc.code if isinstance(exc.code, int) else 1
    except ProjectError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        args = list(sys.argv[1:] if argv is None else argv)
        print(
            f"\n{prog}: interrupted; resume with: {shlex.join([*prog.split(), *args])}",
            file=sys.stderr,
        )
        return 130
