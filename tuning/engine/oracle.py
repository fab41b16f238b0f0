"""KerasTuner's Hyperband oracle, saving atomically, with the queries the chief needs."""

from __future__ import annotations

import random
from pathlib import Path

import keras_tuner

from tuning.config import SAMPLERS
from tuning.engine.sampling import BalancedDesign
from tuning.faults import fault_point
from tuning.kt_internals import FINISHED, OracleAdapter, TrialStatus
from tuning.rundir import records


def count_finished(oracle) -> int:
    """How many of the oracle's trials have ended (completed, failed or invalid)."""
    return sum(t.status in FINISHED for t in oracle.trials.values())


class AtomicHyperbandOracle(OracleAdapter):
    """KerasTuner's Hyperband oracle, saving its state and trials atomically.

    ``sampler="balanced"`` (the default) draws each new configuration's network shape among
    the shapes sampled least so far (``tuning.engine.sampling``); "random" is KerasTuner's
    independent draw. Both are reproducible from the seed, across a resume too: the draw
    depends only on the seed state and the trials, and both are saved.
    """

    def __init__(self, *args, sampler: str = "balanced", **kwargs):
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        super().__init__(*args, **kwargs)
        self.sampler = sampler

    def draw_values(self):
        balanced = self.sampler == "balanced"
        design = BalancedDesign.of(self.hyperparameters.space) if balanced else None
        if design is None:
            return super().draw_values()
        counts = design.counts(self.sampled_configurations())
        # Seeded by the run's seed and the draw's number, so that neighbouring seeds do not
        # walk the same sequence one draw apart.
        rng = random.Random(f"{self.seed}/{self.next_draw_number()}")
        for combination in design.preference(counts, rng):
            # a stepped "continuous" range can repeat a value: then try the shape's next points
            for extra in range(self.max_collisions):
                values = design.values(combination, counts[combination] + extra, self.seed)
                if not self.is_duplicate(values):
                    return values
                if not design.continuous:
                    break
        return None  # KerasTuner's sign that the space is exhausted

    def sampled_configurations(self) -> list[dict]:
        """Each distinct configuration of the trials started so far (a continuation counts
        once). Only trials in ``start_order`` count: it is saved with the seed state, so a
        trial file written just before a kill, which the oracle never recorded, is left out
        and the resumed run draws as the uninterrupted one would."""
        names = [hp.name for hp in self.hyperparameters.space]
        seen = {}
        for trial_id in self.start_order:
            trial = self.trials.get(trial_id)
            if trial is None:
                continue
            values = trial.hyperparameters.values
            seen.setdefault(tuple(values.get(name) for name in names), values)
        return list(seen.values())

    @keras_tuner.synchronized
    def drop_tuner(self, tuner_id: str) -> str | None:
        """Forget a worker that went silent; its running trial goes back to the queue."""
        trial = self.ongoing_trials.pop(tuner_id, None)
        self.tuner_ids.discard(tuner_id)
        if trial is None:
            return None
        self.retry_queue.append(trial.trial_id)
        self.save()
        return trial.trial_id

    def retries_pending(self) -> bool:
        return bool(self.retry_queue)

    def unqueue_retry(self, trial_id: str) -> bool:
        """Take a requeued trial off the retry queue (its first worker reported after all)."""
        queue = self.retry_queue
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
        records.atomic_write_json(self.oracle_file(), self.get_state())

    def write_trial_file(self, trial):
        path = Path(self.trial_dir(trial.trial_id)) / "trial.json"
        fault_point("oracle.trial_folder")
        records.atomic_write_json(path, trial.get_state())
        fault_point("oracle.trial_file")

    def checkpoints_needed(self) -> set[str]:
        """Trials whose best checkpoint a future continuation trial may still load."""
        needed = set()
        queue = self.retry_queue
        for trial in list(self.ongoing_trials.values()) + [
            self.trials[t] for t in queue if t in self.trials
        ]:
            parent = trial.hyperparameters.values.get("tuner/trial_id")
            if parent:
                needed.add(parent)
        for this_round, next_round in self.rounds_waiting():
            selected = {info["past_id"] for info in next_round}
            needed |= {info["id"] for info in this_round if info["id"] not in selected}
        return needed
