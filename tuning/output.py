"""A command's output, when its reader goes away.

`python -m tuning.search ... | head -1`: once head has its line, the next write fails
(EPIPE; Python ignores SIGPIPE, which would end a C program there). A command then
stops as on Ctrl-C, at the same safe point (a search saves the epoch in progress, a
rerun resumes it), prints nothing more (there is no one to read it) and exits with 141,
the status the shell gives a program ended by SIGPIPE (128 + 13), as `yes | head -1`
does: `set -o pipefail` scripts see the pipe's doing, not a failure of ours. Stopping
rather than training on unseen: whoever closed the reader (head, a pager, a dead ssh
session) no longer watches, and nothing is lost by stopping.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

READER_GONE_STATUS = 128 + signal.SIGPIPE
READER_GONE = threading.Event()


class ReaderGuard:
    """``sys.stdout``/``sys.stderr`` of a command: on a broken pipe, the descriptor is
    pointed at /dev/null (every later write succeeds, unread) and the process gets a
    Ctrl-C, which stops it as usual; ``tuning.cli.run_cli`` then exits quietly."""

    stopping = True  # False once the command has returned: then only go quiet

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ValueError):  # ValueError: written after a close
            self._reader_gone()
            return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            self._reader_gone()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def _reader_gone(self) -> None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        first = not READER_GONE.is_set()
        READER_GONE.set()
        if first and ReaderGuard.stopping:
            _interrupt()


def _interrupt() -> None:
    """A Ctrl-C, here and now. In the main thread the SIGINT handler is called at once (the
    search's graceful stop, else a KeyboardInterrupt from the failed write), whatever the
    signal's disposition: a job a shell started in the background ignores SIGINT, but the
    reader is gone all the same. Elsewhere, a SIGINT for the main thread."""
    handler = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread():
        os.kill(os.getpid(), signal.SIGINT)
    elif callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, None)
    else:
        raise KeyboardInterrupt


def guard_output() -> None:
    """Wrap the process's stdout and stderr in :class:`ReaderGuard` (a command's start)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ReaderGuard):
            setattr(sys, name, ReaderGuard(stream))
