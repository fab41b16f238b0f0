"""The chief's side of a distributed search: serve the oracle, watch the workers.

What this adds around KerasTuner's ``OracleServicer``:
- the chief writes ``trials.csv``/``best.json`` as each trial ends and exits once the
  plan is done and the workers have left (KerasTuner's server polls every 20 s);
- liveness: a worker the chief has not heard from for ``--worker-timeout`` seconds is
  dropped and its trial goes back to the queue, to be resumed from its last epoch by any
  worker; a late report of a requeued trial is accepted once;
- an exception in a handler is printed on the chief (gRPC's own answer is a silent UNKNOWN).

Workers and chief share the run directory (one machine, or a shared filesystem): the
workers write trial folders and TensorBoard logs there, the chief its state and tables.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import time
import traceback

from tuning.config import Cluster
from tuning.engine.oracle import count_finished
from tuning.errors import ProjectError
from tuning.kt_internals import FINISHED, TrialStatus, oracle_chief_module, protos
from tuning.rundir.resume import SearchInterrupted


class Chief:
    """Serve the tuner's oracle to workers until the plan is done and the workers left.

    ``tuner`` is a ``ResNetHyperband``: the chief uses its oracle, ``stop``, ``progress``
    and ``trial_finished`` (tables, pruning and the result line).
    """

    def __init__(self, tuner, cluster: Cluster, planned_trials: int) -> None:
        self.tuner, self.cluster, self.planned_trials = tuner, cluster, planned_trials
        self.oracle = tuner.oracle
        # Our progress lines replace KerasTuner's tables (which also cannot time a trial
        # that started before a chief restart).
        self.oracle.verbose = 0
        self.last_seen: dict[str, float] = {}
        self.stop_triggered = False
        self.lock = threading.Lock()

    # -- called from the gRPC threads ----------------------------------------------------
    def tuner_of(self, trial_id: str) -> str | None:
        """The worker running this trial, if any."""
        ongoing = list(self.oracle.ongoing_trials.items())
        return next((k for k, t in ongoing if t.trial_id == trial_id), None)

    def seen(self, tuner_id: str | None = None, trial_id: str | None = None) -> None:
        if tuner_id is None and trial_id is not None:
            tuner_id = self.tuner_of(trial_id)
        if tuner_id is not None:
            with self.lock:
                self.last_seen[tuner_id] = time.monotonic()

    def trial_started(self, tuner_id: str, trial) -> None:
        number = count_finished(self.oracle) + 1
        line = self.tuner.progress.trial_started(
            number, trial.trial_id, trial.hyperparameters.values, who=f" -> {tuner_id}"
        )
        print(line, flush=True)

    def trial_ended(self, trial_id: str, tuner_id: str | None) -> None:
        line = self.tuner.trial_finished(trial_id)
        print(line + (f" ({tuner_id})" if tuner_id else ""), flush=True)

    # -- the main loop -------------------------------------------------------------------
    def drop_silent_workers(self) -> None:
        """Requeue the trial of any worker silent for longer than --worker-timeout."""
        now = time.monotonic()
        known = set(self.oracle.tuner_ids) | set(self.oracle.ongoing_trials)
        for tuner_id in sorted(known):
            with self.lock:
                last = self.last_seen.setdefault(tuner_id, now)
            if now - last <= self.cluster.worker_timeout:
                continue
            trial_id = self.oracle.drop_tuner(tuner_id)
            with self.lock:
                self.last_seen.pop(tuner_id, None)
            if trial_id is not None:
                print(
                    f"chief: no word from {tuner_id} for {now - last:.0f} s; trial {trial_id} "
                    "goes back to the queue (it resumes from its last saved epoch)",
                    flush=True,
                )
            else:
                print(f"chief: {tuner_id} left (silent for {now - last:.0f} s)", flush=True)

    def finished(self) -> bool:
        if self.oracle.ongoing_trials or self.oracle.tuner_ids:
            return False
        done = count_finished(self.oracle)
        return self.stop_triggered or (
            done >= self.planned_trials and not self.oracle.retries_pending()
        )

    def serve(self, poll_s: float = 0.5) -> None:
        server = self._start_server()
        # Progress and ETA count from here (a restarted chief's earlier epochs excluded).
        self.tuner.progress.restart(self.tuner.trial_rows())
        print(
            f"chief: serving trials on {self.cluster.address}; start workers with the same "
            f"command and --role worker --oracle {self.cluster.address} --worker-id NAME",
            flush=True,
        )
        try:
            while not self.finished():
                if self.tuner.stop.requested:
                    raise SearchInterrupted("chief stopped")
                time.sleep(poll_s)
                self.drop_silent_workers()
        finally:
            server.stop(grace=1.0)
            self.oracle.save()

    def _start_server(self):
        from concurrent import futures

        import grpc

        # gRPC sets SO_REUSEPORT by default: a second chief could then bind the port another
        # chief serves and the two would split the workers' calls between two oracles.
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)]
        )
        protos().get_service_grpc().add_OracleServicer_to_server(servicer(self), server)
        try:
            with HeldStderr() as held:
                bound = server.add_insecure_port(self.cluster.address)
        except RuntimeError:
            bound = 0
        if bound:
            held.replay()  # it listens: whatever gRPC said meanwhile is worth seeing
        if not bound:
            raise ProjectError(
                f"chief: cannot listen on {self.cluster.address} (port in use, or not an "
                "address of this machine?)"
            )
        server.start()
        return server


class HeldStderr:
    """Hold what C++ code writes to file descriptor 2 meanwhile, past Python's sys.stderr
    (gRPC logs two lines there when a bind fails, which our one line replaces);
    :meth:`replay` writes it out after all.
    """

    def __enter__(self) -> HeldStderr:
        sys.stderr.flush()
        self.sink = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.sink.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc_info) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)
        with self.sink:
            self.sink.seek(0)
            self.text = self.sink.read().decode("utf-8", errors="replace")

    def replay(self) -> None:
        if self.text:
            sys.stderr.write(self.text)
            sys.stderr.flush()


def servicer(chief: Chief):
    """KerasTuner's servicer, plus liveness, progress lines and tables on the chief."""

    class Servicer(oracle_chief_module().OracleServicer):
        def CreateTrial(self, request, context):
            chief.seen(tuner_id=request.tuner_id)
            before = chief.oracle.ongoing_trials.get(request.tuner_id)
            response = super().CreateTrial(request, context)
            trial = chief.oracle.ongoing_trials.get(request.tuner_id)
            if trial is not None and trial is not before:
                chief.trial_started(request.tuner_id, trial)
            if response.trial.status == TrialStatus.STOPPED:
                chief.stop_triggered = True
            return response

        def UpdateTrial(self, request, context):
            chief.seen(trial_id=request.trial_id)
            return super().UpdateTrial(request, context)

        def GetTrial(self, request, context):
            chief.seen(trial_id=request.trial_id)
            return super().GetTrial(request, context)

        def EndTrial(self, request, context):
            trial_id = request.trial.trial_id
            tuner_id = chief.tuner_of(trial_id)
            chief.seen(tuner_id=tuner_id)
            known = chief.oracle.trials.get(trial_id)
            if known is not None and known.status in FINISHED:
                # A worker we had given up on finished after all, but the trial was
                # re-run and counted already: ignore the second report.
                print(f"chief: ignoring a second report for trial {trial_id}", flush=True)
                return protos().get_service().EndTrialResponse()
            # Its worker was only slow, or this chief restarted while it trained.
            chief.oracle.unqueue_retry(trial_id)
            response = super().EndTrial(request, context)
            chief.trial_ended(trial_id, tuner_id)
            return response

    # gRPC turns an exception in a handler into an UNKNOWN error for the worker and logs
    # nothing by default: print it on the chief, where it can be fixed.
    for name in ("CreateTrial", "UpdateTrial", "GetTrial", "EndTrial", "GetSpace", "UpdateSpace"):
        setattr(Servicer, name, _reporting(getattr(Servicer, name)))
    return Servicer(chief.oracle)


def _reporting(method):
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception:
            print(
                f"chief: error answering {method.__name__}:\n{traceback.format_exc()}", flush=True
            )
            raise

    return wrapper
