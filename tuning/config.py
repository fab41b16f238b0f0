"""One place for the defaults and the settings of every command, validated.

A search run is defined by its ``SearchConfig.definition()``: rerunning into the same
directory with a different definition is refused, so results never silently mix.
``FinalizeConfig`` and ``AblationConfig`` take what they are not given from the search
run (``RetrainOptions`` left at None; see ``tuning.retrain.selection``).

This module imports only downward (``hypermodels`` values, ``tuning.errors``) and no
TensorFlow, so a command refuses a bad flag in well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from hypermodels.recipe import Recipe
from hypermodels.space import SearchSpace
from hypermodels.trial_schedule import TRIAL_SCHEDULES
from tuning.errors import UsageError
from tuning.schedule import (  # noqa: F401  (the retraining rate's defaults, re-exported)
    DEFAULT_LR_SCALE,
    DEFAULT_MAX_LR,
    DEFAULT_MIN_LR,
    DEFAULT_SCHEDULE,
    DEFAULT_WARMUP_EPOCHS,
    PEAK_RULES,
    SCHEDULES,
    Schedule,
    final_schedule,
    peak_text,
)

DEFAULT_DIRECTORY = "runs"
DEFAULT_PROJECT = "search"
DEFAULT_RUN_DIR = str(Path(DEFAULT_DIRECTORY) / DEFAULT_PROJECT)
DEFAULT_MAX_EPOCHS = 9
DEFAULT_FACTOR = 3
# One Hyperband iteration: 17 fresh configurations, each of the 16 network shapes once
# under the balanced sampler. Two would give each shape a second learning rate, a decade
# from its first, but cost 6 more minutes of trials, which the 30-minute pipeline cannot
# spare once larger networks win (docs/accuracy.md, "Covering the space").
DEFAULT_HYPERBAND_ITERATIONS = 1
DEFAULT_BATCH_SIZE = 256
DEFAULT_MOMENTUM = 0.9  # the lab used 0 (plain SGD); 0.9 trains far faster at the same cost
DEFAULT_SEED = 0
MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds are 32-bit
# A trial's resume checkpoint is written at most this often (s of training; 0: every epoch).
DEFAULT_RESUME_EVERY_S = 60.0
VALID_FRACTION = 0.2
# Batch normalization's moving averages follow the last ~10 steps, not Keras' ~100: a
# 47-step trial epoch left 62% of their initial values at 0.99, and a one-epoch trial was
# scored with statistics mostly not its own, deeper and residual networks worst (2 x 64 skip
# on: 0.21-0.51 against 0.75-0.79 at 0.9; docs/accuracy.md, phase 7). Training itself does
# not use them. 0.9 is PyTorch's default (its momentum 0.1).
DEFAULT_BN_MOMENTUM = 0.9
# The search's training recipe around the four searched hyperparameters (docs/accuracy.md).
DEFAULT_RECIPE = Recipe(momentum=DEFAULT_MOMENTUM, bn_momentum=DEFAULT_BN_MOMENTUM)
DEFAULT_TRIAL_IMAGES: int | None = 12000  # each trial trains on 1/4 of train (None: all)
# How the rate moves within a trial (hypermodels.trial_schedule): "constant", or "budget",
# the final recipe's warm-up + cosine compressed to each trial's own epochs.
DEFAULT_TRIAL_SCHEDULE = "constant"
# finalize epochs = factor x the best trial's lineage epochs; 4 with translation (phase 5 of
# docs/accuracy.md: 2 x without it already overfits, and 4 x alone did not help)
DEFAULT_EPOCHS_FACTOR = 4.0
# Augmentation only paid off in longer trainings (docs/accuracy.md): trials go without it,
# the finalizer's long training on train+valid uses it, translation (a random crop of the
# zero-padded, standardized image) included since phase 5.
DEFAULT_FINAL_AUGMENT: tuple[str, ...] = ("flip", "translate", "erase")
# ... and decoupled weight decay: each step shrinks a kernel by lr x 1e-2, twice the strength
# of the usual coupled 5e-4 under momentum 0.9 (docs/accuracy.md, phase 6: 5e-3 and 1e-2 both
# beat none, 1e-2 by more). The trials go without it: in the short trainings of phase 2 a
# weaker decay made no difference.
DEFAULT_FINAL_WEIGHT_DECAY = 1e-2
TRAIN_ON = ("train+valid", "train")
# The finalizer's test-time augmentation: "flip" averages the probabilities of each image and
# its mirror (tuning.retrain.training.predict); measured in docs/accuracy.md, "Towards 0.94".
TEST_TIME_AUGMENTATIONS = ("flip", "none")
# --tta: "auto" follows the training (flip only for a network trained with flips: averaging a
# mirror view the network never saw cost 6.4 points with --augment none, issue 25).
TTA_CHOICES = ("auto", *TEST_TIME_AUGMENTATIONS)
DEFAULT_TTA = "auto"
DEFAULT_ABLATION_SEEDS = 5
# How Hyperband draws each new configuration (tuning.engine.sampling): "balanced" draws a
# network shape (blocks x filters x skip) among the least sampled so far; "random" is
# KerasTuner's independent draw, which runs made before the choice existed used.
SAMPLERS = ("balanced", "random")
DEFAULT_SAMPLER = "balanced"
# The search's confirmation stage (tuning.engine.confirm): the top K distinct configurations
# of Hyperband, retrained from scratch with S seeds each; K = 0 turns it off.
DEFAULT_CONFIRM_TOP = 3
DEFAULT_CONFIRM_SEEDS = 2
# Which K: "top", Hyperband's K best distinct configurations; "sizes", Hyperband's best in
# each of K size classes (the trials' network sizes by forward FLOPs, split into K groups),
# all trained as long as the longest of their lineages: short trials rank small networks
# above the large ones the final training prefers (docs/results/pick.md, the rung table),
# so the top K can hold no large network at all.
# "both": the union of the two (up to 2 x K), every one as long as the longest lineage.
CONFIRM_CANDIDATES = ("top", "sizes", "both")
DEFAULT_CONFIRM_CANDIDATES = "top"
# What each confirmation training sees: None, the trials' images; N, N images of the
# training split (all of it where N is as large), for fewer epochs in proportion, so a
# training costs the same image passes (more images, fewer epochs; docs/results/pick.md).
DEFAULT_CONFIRM_IMAGES: int | None = None
# Each confirmation training lasts this many times the configuration's lineage epochs: the
# finalizer's recipe, at the length its first default had (ranking is the stage's job, and
# every extra epoch is paid K x S times).
DEFAULT_CONFIRM_EPOCHS_FACTOR = 2.0
# ... with the augmentation the finalizer had at that length (translation slows the fit
# and only pays over the finalizer's 4 x; docs/accuracy.md, phase 5).
DEFAULT_CONFIRM_AUGMENT: tuple[str, ...] = ("flip", "erase")


def confirm_recipe_text(trial_schedule: str = DEFAULT_TRIAL_SCHEDULE) -> str:
    """How the confirmation trains (best.json keeps it, so a retraining sees a change)."""
    return (
        f"{DEFAULT_WARMUP_EPOCHS}-epoch warm-up + cosine from {peak_text(trial_schedule)}; "
        f"augment {','.join(DEFAULT_CONFIRM_AUGMENT)}; "
        f"{DEFAULT_CONFIRM_EPOCHS_FACTOR:g} x its lineage epochs"
    )


# Distributed search (tuning.engine): this process's part, and how a trial trains.
ROLES = ("single", "chief", "worker")
STRATEGIES = ("none", "mirrored")
DEFAULT_WORKER_TIMEOUT = 120.0
DEFAULT_CHIEF_TIMEOUT = 600.0


def make_recipe(**values) -> Recipe:
    """A Recipe from flag values; a bad one is a usage error naming its flag."""
    try:
        return Recipe(**values)
    except ValueError as exc:
        text = str(exc)
        if text.startswith("unknown"):
            raise UsageError(f"--augment: {text}") from None
        name, rest = text.split(" ", 1)
        raise UsageError(f"--{name.replace('_', '-')} {rest}") from None


def check_training_args(batch_size: int, seed: int) -> None:
    if batch_size < 1:
        raise UsageError(f"--batch-size must be positive, not {batch_size}")
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be in 0..{MAX_SEED}, not {seed}")


def _one_of(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")


def _at_least(flag: str, value: int | float | None, low: int | float) -> None:
    if value is not None and value < low:
        raise UsageError(f"{flag} must be at least {low}, not {value}")


@dataclass
class SearchConfig:
    space: SearchSpace = field(default_factory=SearchSpace)
    data_dir: str | None = None
    directory: str = DEFAULT_DIRECTORY
    project_name: str = DEFAULT_PROJECT
    max_epochs: int = DEFAULT_MAX_EPOCHS
    factor: int = DEFAULT_FACTOR
    hyperband_iterations: int = DEFAULT_HYPERBAND_ITERATIONS
    sampler: str = DEFAULT_SAMPLER
    batch_size: int = DEFAULT_BATCH_SIZE
    recipe: Recipe = DEFAULT_RECIPE
    trial_images: int | None = DEFAULT_TRIAL_IMAGES
    trial_schedule: str = DEFAULT_TRIAL_SCHEDULE
    seed: int = DEFAULT_SEED
    subset: int | None = None
    precision: str = "auto"
    deterministic: bool = False
    max_consecutive_failures: int = 3
    prune_checkpoints: bool = False
    resume_every_s: float = DEFAULT_RESUME_EVERY_S  # how often, not what the experiment is
    strategy: str = "none"  # how each trial trains, not what the experiment is
    cpu_replicas: int | None = None
    overwrite: bool = False
    verbose: int = 2
    # How much confirmation evidence to gather after the trials, not what the search is:
    # kept out of definition(), so a finished run can be given more (or fewer) of them.
    confirm_top: int = DEFAULT_CONFIRM_TOP
    confirm_seeds: int = DEFAULT_CONFIRM_SEEDS
    confirm_candidates: str = DEFAULT_CONFIRM_CANDIDATES
    confirm_images: int | None = DEFAULT_CONFIRM_IMAGES
    time_budget_min: float | None = None  # how long it may take, not what the experiment is

    def __post_init__(self) -> None:
        _at_least("--max-epochs", self.max_epochs, 1)
        if self.time_budget_min is not None and not 0 < self.time_budget_min < math.inf:
            raise UsageError(
                f"--time-budget must be a positive number of minutes, not {self.time_budget_min}"
            )
        _at_least("--confirm-top", self.confirm_top, 0)
        _at_least("--confirm-seeds", self.confirm_seeds, 1)
        _one_of("--confirm-candidates", self.confirm_candidates, CONFIRM_CANDIDATES)
        _at_least("--confirm-images", self.confirm_images, 10)
        _at_least("--factor", self.factor, 2)
        _at_least("--hyperband-iterations", self.hyperband_iterations, 1)
        check_training_args(self.batch_size, self.seed)
        _at_least("--trial-images", self.trial_images, 10)
        _at_least("--max-consecutive-failures", self.max_consecutive_failures, 1)
        _one_of("--sampler", self.sampler, SAMPLERS)
        _one_of("--trial-schedule", self.trial_schedule, TRIAL_SCHEDULES)
        _one_of("--strategy", self.strategy, STRATEGIES)
        if self.cpu_replicas is not None and (self.strategy != "mirrored" or self.cpu_replicas < 1):
            raise UsageError("--cpu-replicas needs --strategy mirrored and a positive count")
        if not 0.0 <= self.resume_every_s < math.inf:
            raise UsageError(
                f"--resume-every must be a number of seconds >= 0, not {self.resume_every_s}"
            )
        if self.subset is not None and self.subset < 1:
            raise UsageError(f"--subset must be positive, not {self.subset}")
        # --overwrite deletes <directory>/<project-name>: '..' (with the default --directory
        # runs, the user's own folder), '.', an absolute name or a path must never get there.
        name = self.project_name
        if (
            name in ("", ".", "..")
            or any(sep in name for sep in ("/", "\\", "\0"))  # POSIX's, Windows' and NUL
            or Path(name).is_absolute()
            or Path(name).name != name
        ):
            raise UsageError(
                "--project-name must be a plain folder name (not empty, '.', '..', absolute "
                f"or with a path separator), not {name!r}"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.directory) / self.project_name

    def definition(self, data_sha256: dict[str, str], policy: str) -> dict:
        """What makes two runs the same experiment (not where they write, nor verbosity).

        ``trial_schedule`` is recorded only when it is not "constant": runs made before it
        existed trained that way, and their definition stays the same."""
        constant = self.trial_schedule == "constant"
        schedule = {} if constant else {"trial_schedule": self.trial_schedule}
        return {
            "precision": policy,
            "space": self.space.to_dict(),
            "max_epochs": self.max_epochs,
            "factor": self.factor,
            "hyperband_iterations": self.hyperband_iterations,
            "sampler": self.sampler,
            "batch_size": self.batch_size,
            **self.recipe.to_dict(),
            "trial_images": self.trial_images,
            **schedule,
            "seed": self.seed,
            "deterministic": self.deterministic,
            "subset": self.subset,
            "valid_fraction": VALID_FRACTION,
            "data_sha256": data_sha256,
        }


@dataclass(frozen=True)
class Cluster:
    """This process's part in a search: single, chief or worker (``tuning.engine``)."""

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
        return "chief" if self.role == "chief" else str(self.worker_id)


@dataclass(frozen=True)
class RetrainOptions:
    """What a retraining (finalize, ablate) may set; None takes the search run's value."""

    data_dir: str | None = None
    seed: int | None = None
    subset: int | None = None
    batch_size: int | None = None
    precision: str | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    augment: tuple[str, ...] | None = None
    bn_momentum: float | None = None

    def __post_init__(self) -> None:
        if self.subset is not None and self.subset < 1:
            raise UsageError(f"--subset must be positive, not {self.subset}")
        check_training_args(
            1 if self.batch_size is None else self.batch_size,
            0 if self.seed is None else self.seed,
        )
        # Validate the recipe overrides now, before any file is read.
        make_recipe(**{k: v for k, v in self.recipe_changes().items() if v is not None})

    def recipe_changes(self) -> dict:
        return {
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "label_smoothing": self.label_smoothing,
            "augment": self.augment,
            "bn_momentum": self.bn_momentum,
        }


def check_choice(trial: str | None, hyperparameters: dict | None) -> None:
    """A retraining takes a trial of the search or explicit hyperparameters, not both."""
    if trial is not None and hyperparameters is not None:
        raise UsageError("give either --trial or --hyperparameters, not both")


def resolve_tta(tta: str, augment: tuple[str, ...]) -> str:
    """The test-time augmentation a network gets: ``auto`` is flip for a network trained
    with flips and the single view otherwise; flip on one trained without is refused."""
    flipped = "flip" in augment
    if tta == "auto":
        return "flip" if flipped else "none"
    if tta == "flip" and not flipped:
        trained = ", ".join(augment) or "none"
        raise UsageError(
            f"--tta flip averages a mirror view this network never saw in training (its "
            f"--augment: {trained}); use --tta auto or none, or train with --augment flip,..."
        )
    return tta


@dataclass(frozen=True)
class FinalizeConfig:
    run_dir: Path = Path(DEFAULT_RUN_DIR)
    trial: str | None = None
    hyperparameters: dict | None = None  # explicit, validated by tuning.retrain.selection
    epochs: int | None = None
    train_on: str = "train+valid"
    options: RetrainOptions = RetrainOptions(
        weight_decay=DEFAULT_FINAL_WEIGHT_DECAY, augment=DEFAULT_FINAL_AUGMENT
    )
    schedule: str = DEFAULT_SCHEDULE
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS
    epochs_factor: float = DEFAULT_EPOCHS_FACTOR
    # None: the default rule for the search's trial schedule (PEAK_RULES)
    lr_scale: float | None = None
    max_lr: float | None = None
    min_lr: float | None = None
    tta: str = DEFAULT_TTA
    overwrite: bool = False
    verbose: int = 2

    @property
    def lr_schedule(self) -> Schedule:
        """The schedule after a search with constant-rate trials (see ``schedule_for``)."""
        return self.schedule_for(DEFAULT_TRIAL_SCHEDULE)

    def schedule_for(self, trial_schedule: str) -> Schedule:
        """The final training's schedule after a search whose trials ran ``trial_schedule``:
        each of --lr-scale, --max-lr and --min-lr as given, else its rule in PEAK_RULES."""
        given = {"lr_scale": self.lr_scale, "max_lr": self.max_lr, "min_lr": self.min_lr}
        peak = {
            k: v if given[k] is None else given[k] for k, v in PEAK_RULES[trial_schedule].items()
        }
        return Schedule(self.schedule, self.warmup_epochs, **peak)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        _one_of("--train-on", self.train_on, TRAIN_ON)
        _one_of("--tta", self.tta, TTA_CHOICES)
        _at_least("--epochs", self.epochs, 1)
        self.lr_schedule  # noqa: B018  (the schedule's flags are checked by the value itself)
        if self.epochs is not None:
            self.lr_schedule.check_epochs(self.epochs)
        if not 0 < self.epochs_factor <= 100:
            raise UsageError(f"--epochs-factor must be in (0, 100], not {self.epochs_factor}")
        check_choice(self.trial, self.hyperparameters)


@dataclass(frozen=True)
class AblationConfig:
    run_dir: Path = Path(DEFAULT_RUN_DIR)
    trial: str | None = None
    hyperparameters: dict | None = None
    blocks: tuple[int, ...] | None = None  # depths; None: the configuration's own
    seeds: int = DEFAULT_ABLATION_SEEDS
    epochs: int | None = None
    options: RetrainOptions = RetrainOptions()
    lr_schedule: Schedule = Schedule()  # default: the searched rate, constant, as a trial
    overwrite: bool = False
    verbose: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        _at_least("--seeds", self.seeds, 1)
        _at_least("--epochs", self.epochs, 1)
        if self.epochs is not None:
            self.lr_schedule.check_epochs(self.epochs)
        if self.blocks is not None and (not self.blocks or min(self.blocks) < 1):
            raise UsageError(f"--blocks needs positive depths, not {list(self.blocks)}")
        check_choice(self.trial, self.hyperparameters)
