"""TensorFlow's import with its start-up lines silenced, once per process.

A leaf below the commands and the engines: a command calls it before it trains, and an
engine whose checks need no TensorFlow (``tuning.retrain.finalizer``) calls it only after
them, so a refused finalize answers in a fraction of a second instead of after the import.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from tuning import TF_LOGS_REQUESTED


@contextlib.contextmanager
def _stderr_to(path: str):
    """Point file descriptor 2 at a file (C++ code writes there, past Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def quiet_tensorflow_startup() -> None:
    """Import TensorFlow and probe its devices with their start-up lines silenced.

    TensorFlow's C++ side prints absl's "All log messages before absl::InitializeLog()",
    oneDNN and CUDA lines straight to file descriptor 2 while importing and on the first
    device probe, before ``TF_CPP_MIN_LOG_LEVEL`` is even read by absl. We swallow them
    here, once per process, unless ``TUNING_TF_LOGS=1`` asks for them. If the import
    fails, its output is shown.
    """
    if "tensorflow" in sys.modules or TF_LOGS_REQUESTED:
        return
    fd, path = tempfile.mkstemp(prefix="tf-startup-", suffix=".log")
    os.close(fd)
    try:
        with _stderr_to(path):
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe prints on first use
    except BaseException:
        with open(path, encoding="utf-8", errors="replace") as fh:
            sys.stderr.write(fh.read())
        raise
    finally:
        os.unlink(path)
