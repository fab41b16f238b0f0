"""KerasTuner's Hyperband oracle, saving atomically, with the queries the chief needs."""

from __future__ import annotations

from pathlib import Path

import keras_tuner

from tuning import records
from tuning.kt_internals import FINISHED, HyperbandOracle, TrialStatus, retry_queue


def count_finished(oracle) -> int:
    """How many of the oracle's trials have ended (completed, failed or invalid)."""
    return sum(t.status in FINISHED for t in oracle.trials.values())


class AtomicHyperbandOracle(HyperbandOracle):
    """KerasTuner's Hyperband oracle, saving its state and trials atomically."""

    @keras_tuner.synchronized
    def drop_tuner(self, tuner_id: str) -> str | None:
        """Forget a worker that went silent; its running trial goes back to the queue."""
        trial = self.ongoing_trials.pop(tuner_id, None)
        self.tuner_ids.discard(tuner_id)
        if trial is None:
            return None
        retry_queue(self).append(trial.trial_id)
        self.save()
        return trial.trial_id

    def retries_pending(self) -> bool:
        return bool(retry_queue(self))

    def unqueue_retry(self, trial_id: str) -> bool:
        """Take a requeued trial off the retry queue (its first worker reported after all)."""
        queue = retry_queue(self)
        if trial_id not in queue:
            return False
        queue.remove(trial_id)
        return True

    def consecutive_failures(self) -> int:
        """Failed trials at the end of the order trials ended in (KerasTuner's stop rule)."""
        count = 0
        for trial_id in reversed(self.end_order):
            if self.trials[trial_id].status != TrialStatus.FAILED:
                break
            count += 1
        return count

    def save(self):
        records.atomic_write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
        records.atomic_write_json(path, trial.get_state())

    def checkpoints_needed(self) -> set[str]:
        """Trials whose best checkpoint a future continuation trial may still load."""
        needed = set()
        queue = retry_queue(self)
        for trial in list(self.ongoing_trials.values()) + [
            self.trials[t] for t in queue if t in self.trials
        ]:
            parent = trial.hyperparameters.values.get("tuner/trial_id")
            if parent:
                needed.add(parent)
        for bracket in self._brackets:
            rounds = bracket["rounds"]
            for r in range(len(rounds) - 1):
                if len(rounds[r + 1]) < self._get_size(bracket["bracket_num"], r + 1):
                    selected = {info["past_id"] for info in rounds[r + 1]}
                    needed |= {info["id"] for info in rounds[r] if info["id"] not in selected}
        return needed
