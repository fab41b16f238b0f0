"""The KerasTuner internals this project relies on, in one place.

KerasTuner's public API has no hooks for what this project adds (atomic state files,
per-epoch resume, a chief that reports progress and requeues silent workers), so we
subclass and call a few private names. Every such name is listed here, and every module
gets them from here, so an upgrade is checked against one list (pyproject.toml pins
``keras-tuner`` to the range tested: 1.4.x).

Modules imported: ``keras_tuner.src.engine.trial`` (``Trial``, ``TrialStatus``),
``keras_tuner.src.engine.tuner_utils`` (``SaveBestEpoch``),
``keras_tuner.src.tuners.hyperband`` (``HyperbandOracle``), and, for a distributed search,
``keras_tuner.src.distribute.oracle_client`` (``OracleClient``, its module-level
``TIMEOUT``), ``keras_tuner.src.distribute.oracle_chief`` (``OracleServicer``) and
``keras_tuner.src.protos`` (the gRPC service and messages).

Private members used or overridden:
- ``Oracle``: ``_retry_queue`` (trials to run again), ``_get_oracle_fname``,
  ``_get_trial_dir``, ``_save_trial`` (overridden: atomic writes), ``end_order``,
  ``_random_values`` (overridden: balanced sampling), ``_seed_state``, ``_duplicate``,
  ``_max_collisions``;
- ``HyperbandOracle``: ``_brackets`` and ``_get_size`` (which checkpoints a later round
  may load);
- ``Tuner``: ``_build_and_fit_model`` (KerasTuner's documented override point),
  ``_run_and_update_trial``, ``_try_build``, ``_get_build_config_fname``,
  ``_get_tuner_fname``, ``_is_worker``; ``Hyperband.__init__`` is skipped to install
  our oracle;
- ``OracleClient``: ``stub`` (the heartbeat's ``GetTrial``).
"""

from __future__ import annotations

from keras_tuner.src.engine.trial import Trial, TrialStatus
from keras_tuner.src.engine.tuner_utils import SaveBestEpoch
from keras_tuner.src.tuners.hyperband import HyperbandOracle

FINISHED = frozenset({TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.INVALID})


def oracle_client_module():
    """``keras_tuner.src.distribute.oracle_client`` (imports gRPC: only when distributed)."""
    from keras_tuner.src.distribute import oracle_client

    return oracle_client


def oracle_chief_module():
    """``keras_tuner.src.distribute.oracle_chief`` (imports gRPC: only when distributed)."""
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief


def protos():
    """``keras_tuner.src.protos``: the gRPC service and its messages."""
    from keras_tuner.src import protos as module

    return module


def retry_queue(oracle) -> list[str]:
    """The oracle's queue of trial ids to run again (KerasTuner's ``_retry_queue``)."""
    return oracle._retry_queue


__all__ = [
    "FINISHED",
    "HyperbandOracle",
    "SaveBestEpoch",
    "Trial",
    "TrialStatus",
    "oracle_chief_module",
    "oracle_client_module",
    "protos",
    "retry_queue",
]
