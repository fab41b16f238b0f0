"""The search's last stage: confirm Hyperband's winner by retraining the top few from scratch.

Hyperband's winner is one validation score, and a near-tie among the best trials is a draw:
the default search's top five trials lay within 0.0035 of each other while one score has a
standard error of about 0.003. So after the trials the ``--confirm-top K`` best distinct
configurations (completed trials by val_accuracy, ties: fewer lineage epochs) are each
retrained ``--confirm-seeds S`` times from scratch, with seeds derived from the run's seed
and the seed index (other initial weights and shuffling per seed, the same train/valid
split), and the configuration with the best mean validation accuracy is the confirmed winner
that ``tuning.finalize`` trains by default. Every configuration gets the same seeds, so seed
index i means the same shuffling (and the same draws for layers of equal shape) everywhere:
the leader is compared with each other configuration seed by seed, which removes that noise
from the difference.

The recipe is the finalizer's, not the trials' (at the length and augmentation the finalizer
had when this stage was measured, half of today's length): its default peak rate (after
constant-rate trials ``DEFAULT_LR_SCALE`` x the searched rate, at least ``DEFAULT_MIN_LR``
and at most ``DEFAULT_MAX_LR``; after ``--trial-schedule budget`` the searched rate itself:
``PEAK_RULES``), a ``DEFAULT_WARMUP_EPOCHS`` warm-up then cosine decay,
``DEFAULT_CONFIRM_AUGMENT`` augmentation, for ``ceil(DEFAULT_CONFIRM_EPOCHS_FACTOR`` x the
configuration's lineage epochs``)``, with the search's momentum, weight decay, label
smoothing, batch size and precision. Why: the stage should rank configurations the way the
finalizer will train them, and a configuration that wins at a constant rate without
augmentation need not win under warm-up + cosine with augmentation (a high searched rate,
say, can diverge at 4x). It trains on the trials' images (``trial_training_set``), not the
finalizer's train+valid, so each training costs about what a trial of the same length costs
and validation stays untouched for scoring. The score is the validation accuracy after the
last epoch (the finalizer keeps its last epoch too); a diverged training scores what it
reaches (chance, or 0 where even that is not finite), so an unstable configuration loses.

Crash safety as for trials: ``confirm.csv`` is rewritten atomically after every training and
a rerun trains only the (configuration, epochs, peak rate, seed index) it lacks (a row of an
older run, trained before the peak had its floor, is kept but not counted where the floor
now raises the peak); K and S are not part of
the run's definition, so a finished run can be given more of them. ``best.json`` is derived
from trials.csv and confirm.csv, never the only copy (``tuning.engine.results``).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hypermodels.recipe import Recipe
from tuning.config import (
    DEFAULT_CONFIRM_AUGMENT,
    DEFAULT_CONFIRM_EPOCHS_FACTOR,
    DEFAULT_TRIAL_SCHEDULE,
    Schedule,
    SearchConfig,
    confirm_recipe_text,
    final_schedule,
)
from tuning.engine.confirm_text import announce, summary_lines, winner_verdict
from tuning.engine.results import describe_hyperparameters, write_best
from tuning.machine.cost import forward_flops
from tuning.retrain.training import TrainingSettings, epochs_times, retrain
from tuning.rundir import records
from tuning.rundir.resume import SearchInterrupted
from tuning.stats import paired_t, summarize

# The finalizer's default schedule after constant-rate trials (the confirmation trains
# under the one for the run's trials: tuning.schedule.final_schedule), and the one the
# stage used before the floor (f14b369 to b0715fd), for the confirm.csv rows of older runs,
# which do not record their peak: fixed values, not today's defaults
CONFIRM_SCHEDULE = final_schedule("constant")
BEFORE_FLOOR = Schedule("cosine", warmup_epochs=1, lr_scale=4.0, max_lr=0.1)
CONFIRM_STREAM = 15  # keeps these seeds apart from the trials' and the ablation's
LOG_FOLDER = "confirm"  # <run>/tensorboard/confirm/<rank>_s<seed index>


@dataclass(frozen=True)
class Candidate:
    """One distinct configuration of the search, with its Hyperband rank (1 = best)."""

    rank: int
    trial_id: str  # the best trial with this configuration
    hyperparameters: dict
    lineage_epochs: int
    hyperband_val_accuracy: float
    schedule: Schedule = CONFIRM_SCHEDULE  # the finalizer's default after the run's trials
    # the lineage its length is taken from: its own, or with --confirm-candidates sizes the
    # longest among the candidates (every candidate then trains as long)
    length_epochs: int | None = None
    # with --confirm-images: the images each training sees (None: the trials'), and the
    # trials' count over it, the factor that keeps a training's image passes
    train_images: int | None = None
    images_scale: float = 1.0

    @property
    def basis_epochs(self) -> int:
        return self.lineage_epochs if self.length_epochs is None else self.length_epochs

    @property
    def epochs(self) -> int:
        return epochs_times(self.basis_epochs, DEFAULT_CONFIRM_EPOCHS_FACTOR * self.images_scale)

    @property
    def peak(self) -> float:
        return self.schedule.peak(self.hyperparameters["learning_rate"])[0]

    @property
    def key(self) -> tuple:
        return config_key(self.hyperparameters)

    def training(self, index: int) -> tuple:
        """What identifies its training with seed index ``index`` in confirm.csv."""
        return self.key, self.epochs, _rate_key(self.peak), index, self.train_images


@dataclass(frozen=True)
class TrainingData:
    """What every confirmation training sees: its training images (the trials', or
    ``--confirm-images`` of them) and the validation split; ``trial_images``: how many the
    trials saw (the count a training's epochs are scaled from)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    trial_images: int | None = None

    def scaled(self, candidate: Candidate) -> Candidate:
        """``candidate`` trained on these images: fewer epochs where they are more."""
        seen, trials = len(self.y_train), self.trial_images
        if trials is None or seen == trials:
            return candidate
        return replace(candidate, train_images=seen, images_scale=trials / seen)


def config_key(hp: dict) -> tuple:
    return (int(hp["blocks"]), int(hp["filters"]), bool(hp["skip"]), float(hp["learning_rate"]))


def ranked_candidates(rows: list[dict], top: int, schedule: Schedule = CONFIRM_SCHEDULE,
                      rule: str = "top") -> list[Candidate]:  # fmt: skip
    """The configurations to confirm, in Hyperband's order, each to be retrained under
    ``schedule``: with ``rule`` "top" the ``top`` best distinct ones among the completed
    trials; with "sizes" the best one of each of ``top`` size classes (``size_classes``);
    with "both" the union of the two; with "sizes" and "both" every one trained as long as
    the longest of their lineages, so they compete on equal
    terms and a class whose best trial Hyperband stopped early is not cut short again.

    Ranked as best.json ranks trials (val_accuracy, ties: fewer lineage epochs, then the
    first trial); a configuration continued by Hyperband counts once, at its best trial.
    """
    done = [r for r in rows if r["status"] == "COMPLETED" and r.get("val_accuracy") is not None
            and r.get("lineage_epochs") is not None]  # fmt: skip
    done.sort(key=lambda r: (-r["val_accuracy"], r["lineage_epochs"], r["trial_id"]))
    distinct: dict[tuple, dict] = {}
    for r in done:
        distinct.setdefault(config_key(records.hyperparameters_of(r)), r)
    best = list(distinct.values())
    chosen = best[:top] if rule == "top" else best_by_size(best, top)
    if rule == "both":  # the union, in Hyperband's order
        chosen = [r for r in best if r in best[:top] or r in chosen]
    length = max((int(r["lineage_epochs"]) for r in chosen), default=0)
    return [
        Candidate(rank, r["trial_id"], records.hyperparameters_of(r), int(r["lineage_epochs"]),
                  float(r["val_accuracy"]), schedule, None if rule == "top" else length)
        for rank, r in enumerate(chosen, 1)
    ]  # fmt: skip


def network_flops(row: dict) -> float:
    return forward_flops(int(row["blocks"]), int(row["filters"]))


def size_classes(rows: list[dict], classes: int) -> list[list[float]]:
    """The distinct network sizes (forward FLOPs: skip on and off are one size) among
    ``rows``, smallest first, split into ``classes`` runs of consecutive sizes, as equal in
    count as they divide (fewer when there are fewer sizes)."""
    sizes = sorted({network_flops(r) for r in rows})
    count = min(classes, len(sizes))
    return [list(group) for group in np.array_split(np.array(sizes), count)] if count else []


def best_by_size(ranked: list[dict], classes: int) -> list[dict]:
    """The best row of each size class, in ``ranked``'s (Hyperband's) order."""
    groups = size_classes(ranked, classes)
    picked = [next(r for r in ranked if network_flops(r) in g) for g in groups]
    return [r for r in ranked if r in picked]


def confirm_seed(run_seed: int, index: int) -> int:
    """A training's seed: deterministic, well mixed, distinct per (run, seed index), shared
    by every configuration (the comparison is paired by seed index)."""
    state = np.random.SeedSequence([run_seed, CONFIRM_STREAM, index]).generate_state(1)
    return int(state[0]) % (2**31 - 1)


def run_confirmation(config: SearchConfig, rows: list[dict], data: TrainingData,
                     precision: str, deadline=None) -> dict | None:  # fmt: skip
    """Train the missing confirmation runs, print the summary, write best.json.

    Returns best.json's ``confirmation`` (None with ``--confirm-top 0`` or no completed
    trial: best.json then names Hyperband's best, as before this stage existed).
    """
    candidates = [data.scaled(c) for c in ranked_candidates(
        rows, config.confirm_top, final_schedule(config.trial_schedule),
        config.confirm_candidates,
    )]  # fmt: skip
    if not candidates:
        write_best(config.run_dir, rows, None)
        return None
    done = [with_peak(r) for r in records.read_confirm_runs(config.run_dir)]
    todo = missing_trainings(candidates, done, config.confirm_seeds)
    announce(config, candidates, todo, data)
    for n, (candidate, index) in enumerate(todo, 1):
        if deadline is not None and deadline.expired:
            break
        print(
            f"[confirm {n} of {len(todo)}] rank {candidate.rank} (trial {candidate.trial_id}), "
            f"seed index {index} (seed {confirm_seed(config.seed, index)}): "
            f"{describe_hyperparameters(candidate.hyperparameters)}; {candidate.epochs} epochs",
            flush=True,
        )
        try:
            superseded = [
                r for r in done if (r["rank"], r["seed_index"], r.get("train_images"))
                == (candidate.rank, index, candidate.train_images)
            ]  # fmt: skip
            row = train_one(config, candidate, index, data, precision, deadline, superseded)
        except SearchInterrupted:
            if deadline is None or not deadline.expired:
                raise
            break  # the budget ran out mid-training: that training is dropped
        done.append(row)
        records.write_confirm_runs(config.run_dir, done)
        print(f"  -> val_accuracy {row['val_accuracy']:.4f} ({row['status']}, "
              f"{row['seconds']:.0f} s)", flush=True)  # fmt: skip
    if deadline is not None and deadline.expired:
        print(f"confirmation stopped by the time budget ({len(done)} trainings in "
              f"{records.CONFIRM_FILE}); best.json names Hyperband's best until a rerun with a "
              "larger --time-budget finishes the stage", flush=True)  # fmt: skip
        write_best(config.run_dir, rows, None)
        return None
    confirmation = summarize_confirmation(
        candidates, done, config.confirm_seeds, config.trial_schedule
    )
    confirmation["candidates_rule"] = config.confirm_candidates
    confirmation["train_images"] = len(data.y_train)
    for line in summary_lines(confirmation, rows):
        print(line)
    print(f"results: {config.run_dir / records.CONFIRM_FILE}")
    write_best(config.run_dir, rows, confirmation)
    return confirmation


def missing_trainings(candidates: list[Candidate], done: list[dict], seeds: int) -> list:
    """(candidate, seed index) of every training confirm.csv lacks, in rank order."""
    have = {_row_key(with_peak(r)) for r in done}
    return [(c, i) for c in candidates for i in range(seeds) if c.training(i) not in have]


def with_peak(row: dict) -> dict:
    """A confirm.csv row with its peak rate (rows of older runs: the rule of their time)."""
    if row.get("peak_learning_rate") is None:
        row = {**row, "peak_learning_rate": BEFORE_FLOOR.peak(row["learning_rate"])[0]}
    return row


def _rate_key(rate: float) -> str:
    return f"{rate:.6g}"  # a rate as it compares: not by its last binary digit


def _row_key(row: dict) -> tuple:
    return (config_key(row), row["epochs"], _rate_key(row["peak_learning_rate"]),
            row["seed_index"], row.get("train_images"))  # fmt: skip


def confirm_recipe(recipe: Recipe) -> Recipe:
    """The search's recipe with the finalizer's augmentation."""
    return Recipe(**{**recipe.to_dict(), "augment": DEFAULT_CONFIRM_AUGMENT})


def train_one(config: SearchConfig, candidate: Candidate, index: int, data: TrainingData,
              precision: str, deadline=None, superseded: Sequence[dict] = ()) -> dict:  # fmt: skip
    """One training from scratch; its confirm.csv row. TensorBoard: its own folder and an
    HParams session named ``confirm/<rank>_s<index>``, apart from the trials'.
    ``superseded``: confirm.csv's rows at this rank and seed index under another peak."""
    seed = confirm_seed(config.seed, index)
    hp, epochs = candidate.hyperparameters, candidate.epochs
    name = f"{candidate.rank}_s{index}" + (
        f"_n{candidate.train_images}" if candidate.train_images else ""
    )  # trainings on other images keep their own curves
    logdir = config.run_dir / "tensorboard" / LOG_FOLDER / name
    clear_logdir(logdir, [r["peak_learning_rate"] for r in superseded])
    settings = TrainingSettings(
        config.seed, config.subset, config.batch_size, confirm_recipe(config.recipe), precision,
        config.data_dir,
    )  # fmt: skip
    trained = retrain(
        hp,
        settings,
        candidate.schedule,
        (data.x_train, data.y_train),
        epochs=epochs,
        seed=seed,
        mean=data.mean,
        variance=data.variance,
        validation=(data.x_valid, data.y_valid),
        logdir=logdir,
        callbacks=[hparams_callback(logdir, hp, f"{LOG_FOLDER}/{name}")]
        + ([deadline.callback()] if deadline is not None else []),
        verbose=config.verbose,
    )
    row = {
        "rank": candidate.rank,
        "trial_id": candidate.trial_id,
        **hp,
        "seed_index": index,
        "seed": seed,
        "epochs": epochs,
        "peak_learning_rate": candidate.peak,
        "train_images": candidate.train_images,
        "val_accuracy": trained.last("val_accuracy"),
        "val_loss": trained.last("val_loss"),
        "seconds": round(trained.seconds, 3),
        "status": trained.status,
    }
    del trained  # the network is not kept: only its scores are evidence
    return row


def clear_logdir(logdir: Path, superseded_peaks: list[float]) -> None:
    """Make way for a training's curves. Those of a finished training that a change of
    peak superseded (its row stays in confirm.csv) move aside to ``<name>_peak<rate>``; a
    killed attempt's are deleted, as it starts again from scratch."""
    if not logdir.is_dir() or logdir.is_symlink():
        return
    for peak in superseded_peaks:
        aside = logdir.with_name(f"{logdir.name}_peak{peak:g}")
        if not aside.exists():
            logdir.rename(aside)
            return
    shutil.rmtree(logdir)


def hparams_callback(logdir: Path, hp: dict, session: str):
    """The HParams session of one confirmation training, beside the trials' sessions.

    It appears in the dashboard's table under its folder name (``confirm/1_s0``), so it
    cannot be mistaken for a Hyperband trial.
    """
    from tensorboard.plugins.hparams import api as hp_api

    return hp_api.KerasCallback(str(logdir), dict(hp), trial_id=session)


def score(row: dict) -> float:
    """A training's score: its last validation accuracy (0 where not even that is finite)."""
    value = row["val_accuracy"]
    return float(value) if math.isfinite(value) else 0.0


def summarize_confirmation(candidates: list[Candidate], rows: list[dict], seeds: int,
                           trial_schedule: str = DEFAULT_TRIAL_SCHEDULE) -> dict:  # fmt: skip
    """best.json's ``confirmation``: every configuration's scores, the winner, the runner-up.

    The winner has the best mean over the seeds (ties: Hyperband's rank). The leader is
    compared with every other configuration by a paired t over the seed indices (each
    configuration trains with the same seeds, so a pair shares its shuffling).
    """
    by_key: dict[tuple, dict] = {}
    for row in rows:
        by_key.setdefault(_row_key(with_peak(row)), row)
    entries = []
    for c in candidates:
        runs = [by_key[c.training(i)] for i in range(seeds)]
        stats = summarize([score(r) for r in runs])
        entries.append({
            "rank": c.rank, "trial_id": c.trial_id, "hyperparameters": c.hyperparameters,
            "lineage_epochs": c.lineage_epochs, "length_epochs": c.basis_epochs,
            "epochs": c.epochs, "peak_learning_rate": c.peak,
            "hyperband_val_accuracy": c.hyperband_val_accuracy,
            "seeds": [r["seed"] for r in runs], "scores": [score(r) for r in runs],
            "mean": stats.mean, "sd": stats.sd,
            "diverged": sum(r["status"] != "ok" for r in runs),
        })  # fmt: skip
    ordered = sorted(entries, key=lambda e: (-e["mean"], e["rank"]))
    winner = ordered[0]
    for entry in entries:
        entry["difference"] = (
            None if entry is winner else paired_t(winner["scores"], entry["scores"]).to_dict()
        )
    runner_up = ordered[1] if len(ordered) > 1 else None
    difference = runner_up["difference"] if runner_up else None
    return {
        "seeds": seeds,
        "recipe": confirm_recipe_text(trial_schedule),
        "winner": {k: v for k, v in winner.items() if k != "difference"},
        "runner_up": runner_up,
        "difference": difference,
        "distinguishable": bool(difference and difference["significant"]),
        "verdict": winner_verdict(difference),
        "candidates": entries,
    }
