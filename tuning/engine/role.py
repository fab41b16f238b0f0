"""This process's part in a search (single, chief or worker), from flags or KerasTuner's
environment variables.

KerasTuner runs one *chief* that owns the oracle and serves it over gRPC, and workers
that ask it for trials. It is configured with ``KERASTUNER_TUNER_ID`` ("chief" for the
chief), ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``; ``--role``, ``--oracle``
and ``--worker-id`` set them, and the variables alone keep working.
"""

from __future__ import annotations

import os
import re
import socket

from tuning.config import (
    DEFAULT_CHIEF_TIMEOUT,
    DEFAULT_WORKER_TIMEOUT,
    ROLES,
    Cluster,
)
from tuning.errors import UsageError

ENV_ID, ENV_IP, ENV_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
CHIEF_ID = "chief"
_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def apply_cluster(cluster: Cluster) -> None:
    """Set KerasTuner's variables for this process (before the tuner is built)."""
    if cluster.role == "single":
        for name in (ENV_ID, ENV_IP, ENV_PORT):
            os.environ.pop(name, None)
        return
    os.environ[ENV_ID] = cluster.tuner_id
    os.environ[ENV_IP] = str(cluster.host)
    os.environ[ENV_PORT] = str(cluster.port)


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
