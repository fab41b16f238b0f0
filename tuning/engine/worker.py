"""The worker's side of a distributed search: check the definition, take trials, stay alive.

What this adds around KerasTuner's ``OracleClient``:
- the worker checks that it runs the chief's definition (``run.json``) before training;
- while it trains, it pings the chief every ``HEARTBEAT_S`` seconds (:class:`Heartbeat`);
- it asks for a new trial once a second while a Hyperband round fills, not in a loop;
- it gives up with a clear message when the chief has not answered for ``--chief-timeout``
  seconds (KerasTuner waits an hour per call).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import keras_tuner

from tuning.config import Cluster
from tuning.errors import ProjectError, UsageError
from tuning.kt_internals import TrialStatus, oracle_client_module, ping_trial, rebind_client
from tuning.rundir.folders import RUN_FILE, differences, read_run, with_recorded_defaults

HEARTBEAT_S = 5.0
IDLE_WAIT_S = 1.0  # a worker waiting for a Hyperband round to fill asks again after this


class ChiefLost(keras_tuner.errors.FatalError):
    """A worker lost its chief; KerasTuner must not record this as a failed trial."""


def is_rpc_error(exc: BaseException) -> bool:
    import grpc  # a KerasTuner dependency; imported late like its distribute module

    return isinstance(exc, grpc.RpcError)


def wait_for_run_file(run_dir: Path, cluster: Cluster) -> dict:
    """The chief's run.json, once it exists (a worker may start before its chief)."""
    path = run_dir / RUN_FILE
    deadline = time.monotonic() + cluster.chief_timeout
    announced = False
    while not path.is_file():
        if time.monotonic() > deadline:
            raise ProjectError(
                f"worker {cluster.worker_id}: no {path} after {cluster.chief_timeout:.0f} s; "
                "start the chief first, and give the worker the chief's run directory "
                "(the same --directory/--project-name, on a shared filesystem)"
            )
        if not announced:
            print(f"worker {cluster.worker_id}: waiting for the chief's {path}", flush=True)
            announced = True
        time.sleep(0.5)
    return read_run(run_dir)


def check_worker_definition(run_dir: Path, definition: dict, cluster: Cluster) -> None:
    """Wait for the chief's run.json, then refuse to work on a different experiment."""
    chief = with_recorded_defaults(wait_for_run_file(run_dir, cluster).get("definition", {}))
    diffs = differences(chief, definition)
    if diffs:
        raise UsageError(
            f"worker {cluster.worker_id}: this worker's settings differ from the chief's run "
            f"in {run_dir} (" + "; ".join(diffs) + "); start it with the chief's command "
            "and --role worker"
        )


def polite_client(client):
    """Wrap KerasTuner's OracleClient so a waiting worker asks once a second, not in a loop."""

    class PoliteOracleClient(oracle_client_module().OracleClient):
        def create_trial(self, tuner_id):
            trial = super().create_trial(tuner_id)
            if trial.status == TrialStatus.IDLE:
                time.sleep(IDLE_WAIT_S)
            return trial

    return rebind_client(client, PoliteOracleClient)


class Heartbeat:
    """While a worker trains a trial, ping the chief (a GetTrial call) every few seconds."""

    def __init__(self, client, trial_id: str, interval: float = HEARTBEAT_S) -> None:
        self.client, self.trial_id, self.interval = client, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            # A failed ping is not an error here: the main thread's next call reports it.
            with contextlib.suppress(Exception):
                ping_trial(self.client, self.trial_id, self.interval)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def run_worker(tuner, cluster: Cluster, x_train, y_train, fit_args: dict) -> list[dict]:
    """Take trials from the chief until it says the search is complete."""
    try:
        with tuner.stop:
            tuner.search(x_train, y_train, **fit_args)
    except Exception as exc:
        if isinstance(exc, ChiefLost) or is_rpc_error(exc):
            code = "UNAVAILABLE" if isinstance(exc, ChiefLost) else exc.code().name
            raise ProjectError(
                f"worker {cluster.worker_id}: lost the chief at {cluster.address} ({code}: no "
                f"answer within {cluster.chief_timeout:.0f} s). Finished trials are safe and "
                "a running one keeps its epoch checkpoints: restart the chief with its own "
                "command (it resumes), then this worker"
            ) from None
        raise
    print(
        f"worker {cluster.worker_id}: the search is complete; this worker ran "
        f"{tuner.trials_run} trial(s)",
        flush=True,
    )
    return []
