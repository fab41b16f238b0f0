"""One place for the defaults and the settings that define a run.

A search run is defined by its ``SearchConfig.definition()``: rerunning into the same
directory with a different definition is refused, so results never silently mix.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hypermodels.space import SearchSpace, parse_float_range, parse_int_list, parse_int_range
from tuning.distributed import STRATEGIES
from tuning.errors import UsageError

DEFAULT_DIRECTORY = "runs"
DEFAULT_PROJECT = "search"
DEFAULT_MAX_EPOCHS = 9
DEFAULT_FACTOR = 3
DEFAULT_BATCH_SIZE = 256
DEFAULT_MOMENTUM = 0.9  # the lab used 0 (plain SGD); 0.9 trains far faster at the same cost
DEFAULT_SEED = 0
# A trial's resume checkpoint is written at most this often (s of training; 0: every epoch).
DEFAULT_RESUME_EVERY_S = 60.0
VALID_FRACTION = 0.2
# The training recipe around the four searched hyperparameters (docs/accuracy.md).
DEFAULT_WEIGHT_DECAY = 0.0
DEFAULT_LABEL_SMOOTHING = 0.0
DEFAULT_AUGMENT: tuple[str, ...] = ()
DEFAULT_TRIAL_IMAGES: int | None = 12000  # each trial trains on 1/4 of train (None: all)
DEFAULT_SCHEDULE = "cosine"  # the finalizer's learning-rate schedule
DEFAULT_WARMUP_EPOCHS = 1
DEFAULT_EPOCHS_FACTOR = 2.0  # finalize epochs = factor x the best trial's lineage epochs
# The finalizer's (peak) learning rate = scale x the searched rate, at most DEFAULT_MAX_LR:
# trials run at a constant rate, while warm-up + cosine decay tolerates a higher peak.
DEFAULT_LR_SCALE = 4.0  # measured: docs/accuracy.md, "The finalizer's peak rate"
DEFAULT_MAX_LR = 0.1
# Augmentation only paid off in longer trainings (docs/accuracy.md): trials go without it,
# the finalizer's long training on train+valid uses it.
DEFAULT_FINAL_AUGMENT: tuple[str, ...] = ("flip", "erase")
SCHEDULES = ("cosine", "constant")
# What a run recorded before the recipe options existed trained with: none of them.
RECIPE_OFF = {"weight_decay": 0.0, "label_smoothing": 0.0, "augment": []}


@dataclass
class SearchConfig:
    space: SearchSpace = field(default_factory=SearchSpace)
    data_dir: str | None = None
    directory: str = DEFAULT_DIRECTORY
    project_name: str = DEFAULT_PROJECT
    max_epochs: int = DEFAULT_MAX_EPOCHS
    factor: int = DEFAULT_FACTOR
    hyperband_iterations: int = 1
    batch_size: int = DEFAULT_BATCH_SIZE
    momentum: float = DEFAULT_MOMENTUM
    nesterov: bool = False
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING
    augment: tuple[str, ...] = DEFAULT_AUGMENT
    trial_images: int | None = DEFAULT_TRIAL_IMAGES
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

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise UsageError(f"--max-epochs must be at least 1, not {self.max_epochs}")
        if self.factor < 2:
            raise UsageError(f"--factor must be at least 2, not {self.factor}")
        if self.hyperband_iterations < 1:
            raise UsageError(
                f"--hyperband-iterations must be at least 1, not {self.hyperband_iterations}"
            )
        check_training_args(self.batch_size, self.momentum, self.seed)
        check_recipe_args(self.weight_decay, self.label_smoothing)
        if self.trial_images is not None and self.trial_images < 10:
            raise UsageError(f"--trial-images must be at least 10, not {self.trial_images}")
        if self.max_consecutive_failures < 1:
            raise UsageError(
                "--max-consecutive-failures must be at least 1, "
                f"not {self.max_consecutive_failures}"
            )
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"--strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}"
            )
        if self.cpu_replicas is not None and (self.strategy != "mirrored" or self.cpu_replicas < 1):
            raise UsageError("--cpu-replicas needs --strategy mirrored and a positive count")
        if not 0.0 <= self.resume_every_s < float("inf"):
            raise UsageError(
                f"--resume-every must be a number of seconds >= 0, not {self.resume_every_s}"
            )
        if self.subset is not None and self.subset < 1:
            raise UsageError(f"--subset must be positive, not {self.subset}")
        if not self.project_name or Path(self.project_name).name != self.project_name:
            raise UsageError(
                f"--project-name must be a plain folder name, not {self.project_name!r}"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.directory) / self.project_name

    def definition(self, data_sha256: dict[str, str], policy: str) -> dict:
        """What makes two runs the same experiment (not where they write, nor verbosity)."""
        return {
            "precision": policy,
            "space": self.space.to_dict(),
            "max_epochs": self.max_epochs,
            "factor": self.factor,
            "hyperband_iterations": self.hyperband_iterations,
            "batch_size": self.batch_size,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "label_smoothing": self.label_smoothing,
            "augment": list(self.augment),
            "trial_images": self.trial_images,
            "seed": self.seed,
            "deterministic": self.deterministic,
            "subset": self.subset,
            "valid_fraction": VALID_FRACTION,
            "data_sha256": data_sha256,
        }


def check_training_args(batch_size: int, momentum: float, seed: int) -> None:
    if batch_size < 1:
        raise UsageError(f"--batch-size must be positive, not {batch_size}")
    if not 0.0 <= momentum < 1.0:
        raise UsageError(f"--momentum must be in [0, 1), not {momentum}")
    if seed < 0:
        raise UsageError(f"--seed must be non-negative, not {seed}")


def check_recipe_args(weight_decay: float, label_smoothing: float) -> None:
    if not 0.0 <= weight_decay < 1.0:
        raise UsageError(f"--weight-decay must be in [0, 1), not {weight_decay}")
    if not 0.0 <= label_smoothing < 1.0:
        raise UsageError(f"--label-smoothing must be in [0, 1), not {label_smoothing}")


def parse_augment_arg(text: str | None) -> tuple[str, ...] | None:
    from hypermodels.recipe import parse_augment

    if text is None:
        return None
    try:
        return parse_augment(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_recipe_args(
    parser: argparse.ArgumentParser, retraining: bool = False, final: bool = False
) -> None:
    """Weight decay, label smoothing and augmentation; a retraining defaults to the search's.

    The finalizer (``final``) has its own augmentation default; ``--augment search``
    takes the search's instead.
    """

    def default(value: object) -> tuple[object, str]:
        return (None, "default: the search's") if retraining else (value, "%(default)s")

    wd, wd_help = default(DEFAULT_WEIGHT_DECAY)
    ls, ls_help = default(DEFAULT_LABEL_SMOOTHING)
    aug, aug_help = default(",".join(DEFAULT_AUGMENT) or "none")
    if final:
        aug = ",".join(DEFAULT_FINAL_AUGMENT) or "none"
        aug_help = "%(default)s; 'search' for the search's"
    parser.add_argument(
        "--weight-decay", type=float, default=wd, help=f"decoupled, kernels only ({wd_help})"
    )
    parser.add_argument("--label-smoothing", type=float, default=ls, help=f"({ls_help})")
    parser.add_argument(
        "--augment",
        default=aug,
        help=f"training-time augmentation: none or a list of flip,translate,erase ({aug_help})",
    )


def versions() -> dict[str, str]:
    import keras
    import keras_tuner
    import numpy
    import sklearn
    import tensorflow

    return {
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "keras_tuner": keras_tuner.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "machine": f"{platform.system()} {platform.machine()}",
    }


def add_precision_arg(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    from tuning.precision import CHOICES

    parser.add_argument(
        "--precision",
        choices=CHOICES,
        default=default,
        help="auto: bfloat16 mixed precision on CPUs with AVX512-BF16/AMX, float16 on GPUs "
        "with tensor cores, else float32" + (" (default: the search's)" if default is None else ""),
    )


def add_retraining_args(parser: argparse.ArgumentParser, final: bool = False) -> None:
    """Settings a retraining takes from the search run unless given (finalize, ablate)."""
    parser.add_argument("--subset", type=int, help="default: the search's subset")
    parser.add_argument("--batch-size", type=int, help="default: the search's")
    parser.add_argument("--momentum", type=float, help="default: the search's")
    add_recipe_args(parser, retraining=True, final=final)
    add_precision_arg(parser, default=None)


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder with the four original Fashion-MNIST .gz files "
        "(default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist, then Keras)",
    )


def space_from_args(args: argparse.Namespace) -> SearchSpace:
    try:
        blocks = parse_int_range(args.blocks, "--blocks")
        filters = parse_int_list(args.filters, "--filters")
        lr = parse_float_range(args.learning_rate, "--learning-rate")
        return SearchSpace(blocks[0], blocks[1], filters, args.skip, lr[0], lr[1])
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def config_to_dict(config: SearchConfig) -> dict:
    d = asdict(config)
    d["space"] = config.space.to_dict()
    return d
