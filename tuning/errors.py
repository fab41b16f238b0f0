"""Errors that reach the user as one line, never as a traceback (``tuning.cli`` prints them)."""

from __future__ import annotations


class ProjectError(Exception):
    """An error the user can act on; printed as one line, never as a traceback."""

    exit_code = 1


class UsageError(ProjectError):
    """A bad flag or value on the command line (exit status 2)."""

    exit_code = 2


class DataError(ProjectError):
    """The data could not be found, read or verified."""
