"""Errors that reach the user as one line, never as a traceback (``tuning.cli`` prints them)."""

from __future__ import annotations

import errno
import os


class ProjectError(Exception):
    """An error the user can act on; printed as one line, never as a traceback."""

    exit_code = 1


class UsageError(ProjectError):
    """A bad flag or value on the command line (exit status 2)."""

    exit_code = 2


class DataError(ProjectError):
    """The data could not be found, read or verified."""


# Failures of the machine, not of a trial or of the user's input: the run stops with one
# line, keeps everything written so far, and resumes once the cause is fixed.
_ENVIRONMENT = {
    errno.ENOSPC: "out of disk space",
    errno.EDQUOT: "over the disk quota",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
}


def environment_failure(exc: BaseException | None) -> str | None:
    """What went wrong with the machine, if ``exc`` (or an exception behind it) says so.

    Libraries wrap the OSError (h5py, TensorFlow's file system, Keras' saving), sometimes
    keeping only its text, so the message is read too.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT:
            return _ENVIRONMENT[exc.errno]
        text = str(exc)
        for code, what in _ENVIRONMENT.items():
            if os.strerror(code) in text or f"errno = {code}," in text:
                return what
        exc = exc.__cause__ or exc.__context__
    return None


class EnvironmentFailure(ProjectError):
    """The machine failed the run (disk full, read-only, permissions): stop, keep, resume."""

    def __init__(self, what: str, exc: BaseException) -> None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        super().__init__(
            f"{what} ({first}); everything already written is kept: fix it and run the same "
            "command again to continue"
        )
