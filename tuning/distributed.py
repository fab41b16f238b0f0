"""Distributed search on KerasTuner's own chief/worker engine.

KerasTuner runs one *chief* process that owns the oracle and serves it over gRPC, and any
number of *workers* that ask it for trials, train them and report back. It is
configured with three environment variables: ``KERASTUNER_TUNER_ID`` ("chief" for the
chief), ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``. ``--role``,
``--oracle`` and ``--worker-id`` set them; the variables alone keep working.

What this module adds around KerasTuner's ``OracleServicer``/``OracleClient``:
- the chief writes ``trials.csv``/``best.json`` as each trial ends and exits once the
  plan is done and the workers have left (KerasTuner's server polls every 20 s);
- liveness: a worker pings the chief every ``HEARTBEAT_S`` seconds while it trains; a
  worker the chief has not heard from for ``--worker-timeout`` seconds is dropped and
  its trial goes back to the queue, to be resumed from its last epoch by any worker;
- a worker gives up with a clear message when the chief has not answered for
  ``--chief-timeout`` seconds (KerasTuner waits an hour per call);
- a worker checks that it runs the chief's definition (``run.json``) before training.

Workers and chief share the run directory (one machine, or a shared filesystem): the
workers write trial folders and TensorBoard logs there, the chief its state and tables.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tuning import records
from tuning.errors import ProjectError, UsageError

ROLES = ("single", "chief", "worker")
ENV_ID, ENV_IP, ENV_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
CHIEF_ID = "chief"
HEARTBEAT_S = 5.0
DEFAULT_WORKER_TIMEOUT = 120.0
DEFAULT_CHIEF_TIMEOUT = 600.0
IDLE_WAIT_S = 1.0  # a worker waiting for a Hyperband round to fill asks again after this
_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Cluster:
    """This process's part in a search: single, chief or worker."""

    role: str = "single"
    host: str | None = None
    port: int | None = None
    worker_id: str | None = None
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT
    chief_timeout: float = DEFAULT_CHIEF_TIMEOUT

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def tuner_id(self) -> str:
        return CHIEF_ID if self.role == "chief" else str(self.worker_id)

    def apply(self) -> None:
        """Set KerasTuner's variables for this process (before the tuner is built)."""
        if self.role == "single":
            for name in (ENV_ID, ENV_IP, ENV_PORT):
                os.environ.pop(name, None)
            return
        os.environ[ENV_ID] = self.tuner_id
        os.environ[ENV_IP] = str(self.host)
        os.environ[ENV_PORT] = str(self.port)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a chief on one machine, and the tests)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--oracle must be HOST:PORT with a port in 1..65535, not {text!r}")
    return host.strip("[]"), int(port)


def resolve_cluster(
    role: str | None = None,
    oracle: str | None = None,
    worker_id: str | None = None,
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
    chief_timeout: float = DEFAULT_CHIEF_TIMEOUT,
    environ: dict | None = None,
) -> Cluster:
    """Flags first, then KerasTuner's environment variables; validated."""
    env = os.environ if environ is None else environ
    if role is None and env.get(ENV_IP):
        if not env.get(ENV_PORT) or not env.get(ENV_ID):
            raise UsageError(f"{ENV_IP} is set: {ENV_PORT} and {ENV_ID} must be set too")
        role = "chief" if CHIEF_ID in env[ENV_ID] else "worker"
        oracle = oracle or f"{env[ENV_IP]}:{env[ENV_PORT]}"
        if role == "worker":
            worker_id = worker_id or env[ENV_ID]
    role = role or "single"
    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if worker_timeout <= 0 or chief_timeout <= 0:
        raise UsageError("--worker-timeout and --chief-timeout must be positive")
    if role == "single":
        if oracle or worker_id:
            raise UsageError("--oracle and --worker-id need --role chief or --role worker")
        return Cluster()
    if not oracle:
        raise UsageError(f"--role {role} needs --oracle HOST:PORT")
    host, port = parse_address(oracle)
    if role == "chief":
        if worker_id:
            raise UsageError("--worker-id is for workers; the chief is always 'chief'")
        return Cluster("chief", host, port, None, worker_timeout, chief_timeout)
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    if not _WORKER_ID.match(worker_id) or CHIEF_ID in worker_id:
        raise UsageError(
            f"--worker-id must be a plain name (letters, digits, . _ -) without 'chief', "
            f"not {worker_id!r}"
        )
    return Cluster("worker", host, port, worker_id, worker_timeout, chief_timeout)


STRATEGIES = ("none", "mirrored")


def make_strategy(name: str, cpu_replicas: int | None = None):
    """``tf.distribute.MirroredStrategy`` over this machine's GPUs (KerasTuner's
    ``distribution_strategy``), or None. ``cpu_replicas`` splits the CPU into that many
    logical devices instead, to try data-parallel training where there is no GPU. Call it
    before TensorFlow places anything on a device; ``SearchConfig`` has validated both."""
    if name == "none":
        return None
    import tensorflow as tf

    devices = None
    if cpu_replicas:
        if tf.config.list_physical_devices("GPU"):
            raise UsageError("--cpu-replicas is for machines without a GPU")
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas
            )
        except RuntimeError as exc:  # TensorFlow already placed something
            raise ProjectError(f"--cpu-replicas: {exc}") from None
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    names = devices or [d.name for d in tf.config.list_logical_devices("GPU")] or ["CPU:0"]
    print(
        f"strategy: MirroredStrategy, {strategy.num_replicas_in_sync} replica(s) on "
        f"{', '.join(names)}; each batch is split between them",
        flush=True,
    )
    return strategy


def check_worker_definition(run_dir: Path, definition: dict, cluster: Cluster) -> None:
    """Wait for the chief's run.json, then refuse to work on a different experiment."""
    from tuning.search import RUN_FILE, _differences

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
    chief = records.read_json(path).get("definition", {})
    diffs = _differences(chief, definition)
    if diffs:
        raise UsageError(
            f"worker {cluster.worker_id}: this worker's settings differ from the chief's run "
            f"in {run_dir} (" + "; ".join(diffs) + "); start it with the chief's command "
            "and --role worker"
        )


def set_client_timeout(seconds: float) -> None:
    """KerasTuner's client waits an hour for each answer; make that our --chief-timeout."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = seconds


def polite_client(client):
    """Wrap KerasTuner's OracleClient so a waiting worker asks once a second, not in a loop."""
    from keras_tuner.src.distribute import oracle_client
    from keras_tuner.src.engine import trial as trial_module

    class PoliteOracleClient(oracle_client.OracleClient):
        def create_trial(self, tuner_id):
            trial = super().create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.IDLE:
                time.sleep(IDLE_WAIT_S)
            return trial

    polite = PoliteOracleClient.__new__(PoliteOracleClient)
    polite.__dict__.update(client.__dict__)
    return polite


class Heartbeat:
    """While a worker trains a trial, ping the chief (a GetTrial call) every few seconds."""

    def __init__(self, client, trial_id: str, interval: float = HEARTBEAT_S) -> None:
        self.client, self.trial_id, self.interval = client, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def _run(self) -> None:
        from keras_tuner.src import protos

        request = protos.get_service().GetTrialRequest(trial_id=self.trial_id)
        while not self._stop.wait(self.interval):
            # A failed ping is not an error here: the main thread's next call reports it.
            with contextlib.suppress(Exception):
                self.client.stub.GetTrial(request, timeout=self.interval)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


class Chief:
    """Serve the tuner's oracle to workers until the plan is done and the workers left."""

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
        from tuning.tuner import count_finished, describe_hyperparameters

        done = count_finished(self.oracle)
        values = trial.hyperparameters.values
        print(
            f"[trial {done + 1} of {self.planned_trials}] id {trial.trial_id} -> {tuner_id}: "
            f"epochs {values.get('tuner/initial_epoch')}->{values.get('tuner/epochs')}; "
            + describe_hyperparameters(values),
            flush=True,
        )

    def trial_ended(self, trial_id: str, tuner_id: str | None) -> None:
        if self.tuner.prune_checkpoints:
            self.tuner.prune()
        rows = self.tuner.write_results()
        who = f" ({tuner_id})" if tuner_id else ""
        print(self.tuner._trial_line(trial_id, rows) + who, flush=True)

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
        from tuning.tuner import count_finished

        if self.oracle.ongoing_trials or self.oracle.tuner_ids:
            return False
        done = count_finished(self.oracle)
        return self.stop_triggered or (done >= self.planned_trials and not self.oracle._retry_queue)

    def serve(self, poll_s: float = 0.5) -> None:
        from concurrent import futures

        import grpc
        from keras_tuner.src import protos

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        protos.get_service_grpc().add_OracleServicer_to_server(_servicer(self), server)
        try:
            bound = server.add_insecure_port(self.cluster.address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise ProjectError(
                f"chief: cannot listen on {self.cluster.address} (port in use, or not an "
                "address of this machine?)"
            )
        server.start()
        # Progress and ETA count from here (a restarted chief's earlier epochs excluded).
        self.tuner._search_started = time.perf_counter()
        self.tuner._epochs_at_start = sum(r["epochs_trained"] for r in self.tuner.trial_rows())
        print(
            f"chief: serving trials on {self.cluster.address}; start workers with the same "
            f"command and --role worker --oracle {self.cluster.address} --worker-id NAME",
            flush=True,
        )
        try:
            while not self.finished():
                if self.tuner.stop.requested:
                    from tuning.resume import SearchInterrupted

                    raise SearchInterrupted("chief stopped")
                time.sleep(poll_s)
                self.drop_silent_workers()
        finally:
            server.stop(grace=1.0)
            self.oracle.save()


def _servicer(chief: Chief):
    from keras_tuner.src.distribute import oracle_chief
    from keras_tuner.src.engine import trial as trial_module

    from tuning.tuner import FINISHED

    class Servicer(oracle_chief.OracleServicer):
        """KerasTuner's servicer, plus liveness, progress lines and tables on the chief."""

        def CreateTrial(self, request, context):
            chief.seen(tuner_id=request.tuner_id)
            before = chief.oracle.ongoing_trials.get(request.tuner_id)
            response = super().CreateTrial(request, context)
            trial = chief.oracle.ongoing_trials.get(request.tuner_id)
            if trial is not None and trial is not before:
                chief.trial_started(request.tuner_id, trial)
            if response.trial.status == trial_module.TrialStatus.STOPPED:
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
                return self._ended()
            if trial_id in chief.oracle._retry_queue:
                # Its worker was only slow, or this chief restarted while it trained.
                chief.oracle._retry_queue.remove(trial_id)
            response = super().EndTrial(request, context)
            chief.trial_ended(trial_id, tuner_id)
            return response

        @staticmethod
        def _ended():
            from keras_tuner.src import protos

            return protos.get_service().EndTrialResponse()

    # gRPC turns an exception in a handler into an UNKNOWN error for the worker and logs
    # nothing by default: print it on the chief, where it can be fixed.
    for name in ("CreateTrial", "UpdateTrial", "GetTrial", "EndTrial", "GetSpace", "UpdateSpace"):
        setattr(Servicer, name, _reporting(getattr(Servicer, name)))
    return Servicer(chief.oracle)


def _reporting(method):
    import functools
    import traceback

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
