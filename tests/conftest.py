"""Shared fixtures: the real data (from ../shared) and small hand-made IDX files.

Every command runs as a fresh process (``run_module``/``popen_module``, as a user runs it)
with each flag that changes its set-up, at least once per suite (issue 25); those marked
(slow) run with ``pytest -m slow``, kept out of CI for its 15 minutes:

- ``tuning.search``: ``--precision auto`` and ``--confirm-top 0`` (``search_run`` below),
  ``float32`` (test_hardening_runs: a second search refused, a killed one resumed),
  ``mixed_bfloat16`` with ``--time-budget`` (test_budget), ``--deterministic``
  (test_reliability: two processes, the same scores), ``--confirm-top 2`` (test_confirm),
  ``--role chief``/``worker`` (test_distributed), ``--strategy mirrored`` (test_distributed,
  slow), a kill -9 at each boundary of a run and a Ctrl-C (test_kill_points, slow; in CI a
  kill before the trials, in test_hardening_runs), a reader that goes away (test_cli_errors);
- ``tuning.finalize``: the search's precision and a kill -9 during its save
  (test_end_to_end), ``mixed_bfloat16`` on a distributed run (test_distributed);
- ``tuning.ablate``: test_ablation, ``mixed_float16`` with a batch larger than the data
  (test_hardening);
- ``tuning.report``: test_ablation; all three with their reader gone (test_cli_errors).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("FASHION_MNIST_DIR", ROOT.parent / "shared/data/fashion-mnist"))


@pytest.fixture(scope="session", autouse=True)
def precision_cache(tmp_path_factory):
    """One cache folder per test session for ``--precision auto``'s measurement: it runs at
    most once per session, that is per pytest-xdist worker (subprocesses inherit the
    variable), never in the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASHION_RESNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (REAL_DATA / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real Fashion-MNIST files not found in {REAL_DATA} (set FASHION_MNIST_DIR)")
    return REAL_DATA


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    """Write array as a gzipped IDX file (big-endian header, uint8 payload)."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())
    return path


def module_env() -> dict[str, str]:
    """The environment of a command run as a user would: this checkout, unbuffered output,
    no KerasTuner role variables (those make a process a chief or a worker)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT",
                 "TUNING_KILL_AT", "TUNING_INTERRUPT_AT"):  # fmt: skip
        env.pop(name, None)
    return env


def run_module(
    module: str, *args: str, cwd: Path | None = None, timeout: int = 600, kill_at: str = "",
    interrupt_at: str = "",
):  # fmt: skip
    """Run `python -m module args` the way a user would; returns CompletedProcess.

    ``kill_at``/``interrupt_at``: the process SIGKILLs itself, or gets a Ctrl-C, at that
    fault point (``tuning.faults``)."""
    env = module_env()
    if kill_at:
        env["TUNING_KILL_AT"] = kill_at
    if interrupt_at:
        env["TUNING_INTERRUPT_AT"] = interrupt_at
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for_kill_point(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Poll until ``predicate()`` holds while ``proc`` runs; fail if it ends first or late."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"search ended before the kill point:\n{proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kill point not reached in time")
        time.sleep(0.005)


def popen_module(module: str, *args: str, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """Start `python -m module args` in the background (kill tests, distributed runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=module_env(),
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


# A tiny real-data search: 6 trials (one Hyperband continuation), about 20 s on 2 cores.
# Without the confirmation stage: these tests are about Hyperband and best.json as its best
# trial; tests/test_confirm.py turns the stage on by adding its own --confirm-top.
SEARCH_ARGS = [
    "--subset", "300", "--max-epochs", "3", "--factor", "3", "--hyperband-iterations", "1",
    "--seed", "7",
    "--blocks", "1:2", "--filters", "8,16", "--learning-rate", "1e-3:1e-1",
    "--batch-size", "64", "--verbose", "0", "--confirm-top", "0",
]  # fmt: skip


@pytest.fixture(scope="session")
def search_run(data_dir, tmp_path_factory):
    """The tiny search, once per session (per pytest-xdist worker: about 20 s each)."""
    directory = tmp_path_factory.mktemp("runs")
    args = ["--data-dir", str(data_dir), "--directory", str(directory), "--project-name", "tiny"]
    proc = run_module("tuning.search", *args, *SEARCH_ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return directory / "tiny", args, proc
