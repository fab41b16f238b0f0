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

Private members used or overridden, each behind a public name here:
- ``Oracle``/``HyperbandOracle`` (``OracleAdapter``): ``_random_values`` (hook
  ``draw_values``), ``_save_trial`` (hook ``write_trial_file``), ``_get_oracle_fname``,
  ``_get_trial_dir``, ``_seed_state``, ``_duplicate``, ``_max_collisions``,
  ``_retry_queue``, ``_brackets`` and ``_get_size``; ``_tried_so_far`` and
  ``_compute_values_hash`` (``draw_fresh``);
- ``Tuner``/``Hyperband`` (``TunerAdapter``): ``_build_and_fit_model`` (hook
  ``build_and_fit``; KerasTuner's documented override point), ``_run_and_update_trial``
  (hook ``run_and_update``), ``_get_tuner_fname`` (hook ``tuner_file``), ``_try_build``,
  ``_get_build_config_fname``, ``_is_worker``; ``Hyperband.__init__`` is skipped to install
  our oracle;
- ``SaveBestEpoch`` (``SaveBestEpochAdapter``): ``_save_model`` (hook ``save_best``);
- ``OracleClient``: the module's ``TIMEOUT`` (``set_client_timeout``), its ``stub``
  (``ping_trial``) and its state (``rebind_client``).

``tests/test_layout.py`` fails if any other module touches a private KerasTuner name.
"""

from __future__ import annotations

import keras_tuner
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


def draw_fresh(oracle, n: int) -> list[dict]:
    """An oracle's next n fresh configurations, each recorded as a (never run) trial the way
    KerasTuner records one: what a search would draw, without training. For any KerasTuner
    oracle; ``benchmarks/sampling_coverage.py`` and the tests use it."""
    out = []
    for _ in range(n):
        values = oracle._random_values()
        if values is None:  # the space is exhausted
            break
        trial = Trial(oracle.hyperparameters.copy(), trial_id=f"{len(oracle.trials):04d}")
        trial.hyperparameters.values.update(values)
        oracle.trials[trial.trial_id] = trial
        oracle.start_order.append(trial.trial_id)
        oracle._tried_so_far.add(oracle._compute_values_hash(values))
        out.append(values)
    return out


class OracleAdapter(HyperbandOracle):
    """KerasTuner's Hyperband oracle with its private hooks and state under public names.

    Override ``draw_values`` (a new configuration's values, None when the space is
    exhausted) and ``write_trial_file``; KerasTuner keeps calling its private names.
    """

    def draw_values(self) -> dict | None:
        return HyperbandOracle._random_values(self)

    def write_trial_file(self, trial) -> None:
        HyperbandOracle._save_trial(self, trial)

    def _random_values(self):
        return self.draw_values()

    def _save_trial(self, trial):
        self.write_trial_file(trial)

    def oracle_file(self) -> str:
        return self._get_oracle_fname()

    def trial_dir(self, trial_id: str) -> str:
        return self._get_trial_dir(trial_id)

    def next_draw_number(self) -> int:
        """The seed state's next value (saved with the oracle, so a resume continues it)."""
        number = self._seed_state
        self._seed_state += 1
        return number

    def is_duplicate(self, values: dict) -> bool:
        return self._duplicate(values)

    @property
    def max_collisions(self) -> int:
        return self._max_collisions

    @property
    def retry_queue(self) -> list[str]:
        return self._retry_queue

    def rounds_waiting(self):
        """(round r's entries, round r+1's entries) of each bracket whose round r+1 is not
        full yet: the trials of round r may still be continued."""
        for bracket in self._brackets:
            rounds = bracket["rounds"]
            for r in range(len(rounds) - 1):
                if len(rounds[r + 1]) < self._get_size(bracket["bracket_num"], r + 1):
                    yield rounds[r], rounds[r + 1]


class TunerAdapter(keras_tuner.Hyperband):
    """KerasTuner's Hyperband tuner with its private hooks under public names, built around
    an oracle of our own (``Hyperband.__init__`` would build a plain one; its methods still
    apply)."""

    def __init__(self, oracle, hypermodel, **kwargs):
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    def build_and_fit(self, trial, *args, **kwargs):
        return keras_tuner.Hyperband._build_and_fit_model(self, trial, *args, **kwargs)

    def run_and_update(self, trial, *fit_args, **fit_kwargs):
        return keras_tuner.Hyperband._run_and_update_trial(self, trial, *fit_args, **fit_kwargs)

    def tuner_file(self) -> str:
        return keras_tuner.Hyperband._get_tuner_fname(self)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        return self.build_and_fit(trial, *args, **kwargs)

    def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        return self.run_and_update(trial, *fit_args, **fit_kwargs)

    def _get_tuner_fname(self):
        return self.tuner_file()

    def try_build(self, hp):
        """Build a trial's model (a continuation loads its parent's weights)."""
        return self._try_build(hp)

    def build_config_file(self, trial_id: str) -> str:
        return self._get_build_config_fname(trial_id)

    @property
    def is_worker(self) -> bool:
        return self._is_worker()


class SaveBestEpochAdapter(SaveBestEpoch):
    """KerasTuner's best-epoch checkpoint; override ``save_best`` to change how it writes."""

    def save_best(self) -> None:
        SaveBestEpoch._save_model(self)

    def _save_model(self):
        self.save_best()


def set_client_timeout(seconds: float) -> None:
    """KerasTuner's client waits an hour for each answer (its module's ``TIMEOUT``)."""
    oracle_client_module().TIMEOUT = seconds


def rebind_client(client, cls):
    """``client``'s connection and state under the subclass ``cls`` (no second connection)."""
    rebound = cls.__new__(cls)
    rebound.__dict__.update(client.__dict__)
    return rebound


def ping_trial(client, trial_id: str, timeout: float) -> None:
    """One ``GetTrial`` call through the client's gRPC stub (a worker's heartbeat)."""
    request = protos().get_service().GetTrialRequest(trial_id=trial_id)
    client.stub.GetTrial(request, timeout=timeout)


__all__ = [
    "FINISHED",
    "HyperbandOracle",
    "OracleAdapter",
    "SaveBestEpoch",
    "SaveBestEpochAdapter",
    "TunerAdapter",
    "draw_fresh",
    "ping_trial",
    "rebind_client",
    "set_client_timeout",
    "Trial",
    "TrialStatus",
    "oracle_chief_module",
    "oracle_client_module",
    "protos",
]
