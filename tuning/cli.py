"""The command line shared by every command: parser, flag groups, one-line errors.

A command (``tuning.search``, ``tuning.finalize``, ``tuning.ablate``, ``tuning.report``) is
a parser built from the groups here, a config from ``tuning.config`` and one call into the
library; :func:`run_cli` turns every expected error into one line and an exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from hypermodels.recipe import parse_augment
from hypermodels.space import (
    SKIP_MODES,
    SearchSpace,
    parse_float_range,
    parse_int_list,
    parse_int_range,
)
from tuning import __version__
from tuning.config import (
    DEFAULT_CHIEF_TIMEOUT,
    DEFAULT_RECIPE,
    DEFAULT_WORKER_TIMEOUT,
    PEAK_RULES,
    ROLES,
    SCHEDULES,
    STRATEGIES,
    RetrainOptions,
    Schedule,
)
from tuning.errors import EnvironmentFailure, ProjectError, UsageError, environment_failure
from tuning.machine.precision import CHOICES as PRECISIONS
from tuning.output import READER_GONE, READER_GONE_STATUS, ReaderGuard, guard_output


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error, exit status 2 and ``--version``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def run_cli(
    prog: str,
    main: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    interrupted: str = "resume with",
    leave_at_once: bool = False,
) -> int:
    """Run an entry point, turning expected errors into one line and an exit code."""
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2)
        return exc.code if isinstance(exc.code, int) else 1
    except ProjectError as exc:
        return _fail(f"{prog}: error: {exc}", exc.exit_code,
                     leave_at_once and isinstance(exc, EnvironmentFailure))  # fmt: skip
    except Exception as exc:  # the machine failing (disk full, read-only) is no traceback
        what = environment_failure(exc)
        if what is None:
            raise
        return _fail(f"{prog}: error: {EnvironmentFailure(what, exc)}", 1, leave_at_once)
    except KeyboardInterrupt:
        if READER_GONE.is_set():  # stopped because the output's reader went away
            return READER_GONE_STATUS
        args = list(sys.argv[1:] if argv is None else argv)
        print(
            f"\n{prog}: interrupted; {interrupted}: {shlex.join([*prog.split(), *args])}",
            file=sys.stderr,
        )
        return 130


def _fail(message: str, code: int, leave_at_once: bool) -> int:
    """Print the one line; after a machine failure, leave the process at once.

    Libraries holding half-written files (h5py, TensorFlow's event writers) print
    tracebacks and can crash while Python unwinds and tears down after a disk-full error;
    every result file was already written atomically, so nothing is lost by leaving here.
    """
    if not leave_at_once:
        print(message, file=sys.stderr)
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):  # stderr's reader may be gone
        os.write(2, (message + "\n").encode())
    os._exit(code)


def command(prog: str, main: Callable[[Sequence[str] | None], int], **kwargs) -> NoReturn:
    """A console command's whole life: run it, then exit with its status."""
    guard_output()
    code = run_cli(prog, main, leave_at_once=True, **kwargs)
    ReaderGuard.stopping = False  # the end: nothing left to stop
    try:
        sys.stdout.flush()  # the rest of a block-buffered pipe, whose reader may be gone
        sys.stderr.flush()
    except KeyboardInterrupt:
        pass
    sys.exit(READER_GONE_STATUS if READER_GONE.is_set() else code)


# -- flag groups ------------------------------------------------------------------------
def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder with the four original Fashion-MNIST .gz files "
        "(default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist, then Keras)",
    )


def add_precision_arg(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help="auto: float32 or 16-bit mixed precision (bfloat16 on CPUs, float16 on GPUs), "
        "whichever trains faster here, measured once per machine and cached"
        + (" (default: the search's)" if default is None else ""),
    )


def add_recipe_args(
    parser: argparse.ArgumentParser,
    retraining: bool = False,
    final_augment: str | None = None,
    final_weight_decay: float | None = None,
) -> None:
    """Weight decay, label smoothing and augmentation; a retraining defaults to the search's.

    ``final_augment`` and ``final_weight_decay`` are the finalizer's own defaults;
    ``--augment search`` and ``--weight-decay search`` take the search's instead.
    """

    def default(value: object) -> tuple[object, str]:
        return (None, "default: the search's") if retraining else (value, "%(default)s")

    wd, wd_help = default(DEFAULT_RECIPE.weight_decay)
    ls, ls_help = default(DEFAULT_RECIPE.label_smoothing)
    aug, aug_help = default(",".join(DEFAULT_RECIPE.augment) or "none")
    own = "%(default)s; 'search' for the search's"
    if final_augment is not None:
        aug, aug_help = final_augment, own
    if final_weight_decay is not None:
        wd, wd_help = f"{final_weight_decay:g}", own
    parser.add_argument(
        "--weight-decay",
        type=float if not retraining else str,
        default=wd,
        help=f"decoupled (each step shrinks a kernel by lr x this), kernels only ({wd_help})",
    )
    parser.add_argument("--label-smoothing", type=float, default=ls, help=f"({ls_help})")
    parser.add_argument(
        "--augment",
        default=aug,
        help=f"training-time augmentation: none or a list of flip,translate,erase ({aug_help})",
    )


def add_retraining_args(
    parser: argparse.ArgumentParser,
    final_augment: str | None = None,
    final_weight_decay: float | None = None,
) -> None:
    """Settings a retraining takes from the search run unless given (finalize, ablate)."""
    parser.add_argument("--subset", type=int, help="default: the search's subset")
    parser.add_argument("--batch-size", type=int, help="default: the search's")
    parser.add_argument("--momentum", type=float, help="default: the search's")
    parser.add_argument(
        "--bn-momentum", type=float, help="batch normalization's (default: the search's)"
    )
    add_recipe_args(parser, True, final_augment, final_weight_decay)
    add_precision_arg(parser, default=None)


def add_schedule_args(parser: argparse.ArgumentParser, default: Schedule, note: str = "",
                      peak_from_run: bool = False) -> None:  # fmt: skip
    """The learning rate of a retraining (``tuning.config.Schedule``); ``note`` is added to
    --lr-scale's help (what the defaults make of a searched rate). With ``peak_from_run``
    the peak flags default to None: the rule for the run's trial schedule (``PEAK_RULES``),
    ``default``'s values after constant-rate trials."""
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=default.kind,
        help="learning rate: warm-up then cosine decay to 0 from the peak, or constant "
        "(%(default)s)",
    )
    parser.add_argument(
        "--warmup-epochs", type=int, default=default.warmup_epochs, help="(%(default)s)"
    )
    peak = {
        "lr_scale": "peak = this many times the searched learning rate",
        "max_lr": "... but at most this rate",
        "min_lr": "... and at least this rate",
    }
    for field, text in peak.items():
        flag, value = "--" + field.replace("_", "-"), getattr(default, field)
        shown = f"{value:g}"
        if peak_from_run:
            budget = PEAK_RULES["budget"][field]
            shown += f" after constant-rate trials, {budget:g} after --trial-schedule budget"
        parser.add_argument(
            flag,
            type=float,
            default=None if peak_from_run else value,
            help=f"{text} ({shown}){note if flag == '--lr-scale' else ''}",
        )


def schedule_from_args(args: argparse.Namespace) -> Schedule:
    return Schedule(args.schedule, args.warmup_epochs, args.lr_scale, args.max_lr, args.min_lr)


def add_choice_args(parser: argparse.ArgumentParser, hyperparameters_help: str) -> None:
    """Which configuration to retrain: the best trial, ``--trial`` or explicit JSON."""
    parser.add_argument("--trial", help="use this trial's configuration instead of the best")
    parser.add_argument("--hyperparameters", help=hyperparameters_help)


def add_search_space_args(parser: argparse.ArgumentParser) -> None:
    space = SearchSpace().cli_defaults()
    parser.add_argument(
        "--blocks", default=space["blocks"], help="residual blocks, MIN:MAX (%(default)s)"
    )
    parser.add_argument("--filters", default=space["filters"], help="filter widths (%(default)s)")
    parser.add_argument(
        "--learning-rate",
        default=space["learning_rate"],
        help="SGD lr, MIN:MAX, log (%(default)s)",
    )
    parser.add_argument("--skip", choices=SKIP_MODES, default="both", help="(%(default)s)")


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("scaling out (docs/usage.md: Scaling out)")
    g.add_argument(
        "--role",
        choices=ROLES,
        help="single (default), or chief/worker of a distributed search "
        "(default: from KERASTUNER_TUNER_ID/ORACLE_IP/ORACLE_PORT when set)",
    )
    g.add_argument("--oracle", help="HOST:PORT the chief listens on and workers connect to")
    g.add_argument("--worker-id", help="this worker's unique name (default: HOST-PID)")
    g.add_argument(
        "--worker-timeout",
        type=float,
        default=DEFAULT_WORKER_TIMEOUT,
        help="chief: requeue the trial of a worker silent this many seconds (%(default)s)",
    )
    g.add_argument(
        "--chief-timeout",
        type=float,
        default=DEFAULT_CHIEF_TIMEOUT,
        help="worker: give up when the chief has not answered this many seconds (%(default)s)",
    )
    g.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="none",
        help="mirrored: train each trial with tf.distribute.MirroredStrategy over the "
        "local GPUs (%(default)s)",
    )
    g.add_argument(
        "--cpu-replicas",
        type=int,
        help="with --strategy mirrored and no GPU: split the CPU into N logical devices",
    )


# -- flag values ------------------------------------------------------------------------
def space_from_args(args: argparse.Namespace) -> SearchSpace:
    try:
        blocks = parse_int_range(args.blocks, "--blocks")
        filters = parse_int_list(args.filters, "--filters")
        lr = parse_float_range(args.learning_rate, "--learning-rate")
        return SearchSpace(blocks[0], blocks[1], filters, args.skip, lr[0], lr[1])
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def augment_from_arg(text: str | None) -> tuple[str, ...] | None:
    """``--augment`` as names; None (and the finalizer's 'search') take the search's."""
    if text is None or text == "search":
        return None
    try:
        return parse_augment(text)
    except ValueError as exc:
        raise UsageError(f"--augment: {exc}") from None


def weight_decay_from_arg(text: str | float | None) -> float | None:
    """A retraining's ``--weight-decay`` as a number; None (and 'search') take the search's."""
    if text is None or text == "search":
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--weight-decay must be a number or 'search', not {text!r}") from None


def trial_images_from_arg(value: str | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if value.strip().lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--trial-images must be a number or 'all', not {value!r}") from None


def hyperparameters_from_arg(text: str | None) -> dict | None:
    """``--hyperparameters`` JSON as a dict (its values are checked with the run's limits)."""
    if text is None:
        return None
    try:
        hp = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--hyperparameters is not valid JSON ({exc})") from None
    if not isinstance(hp, dict):
        raise UsageError("--hyperparameters must be a JSON object")
    return hp


def blocks_from_arg(text: str | None) -> tuple[int, ...] | None:
    """``--blocks 2,4,8`` of the ablation: sorted distinct depths."""
    if text is None:
        return None
    try:
        blocks = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UsageError(f"--blocks must be comma-separated integers, not {text!r}") from None
    if not blocks or blocks[0] < 1:
        raise UsageError(f"--blocks needs positive depths, not {text!r}")
    return tuple(blocks)


def config_from_args(cls, args: argparse.Namespace, **converted):
    """A command's config from its parsed flags: each field of ``cls`` takes the flag of
    its name, ``converted`` the fields whose flag needs converting or is named otherwise
    (so a new flag named after its field needs no line here)."""
    names = {f.name for f in dataclasses.fields(cls)}
    plain = {k: v for k, v in vars(args).items() if k in names and k not in converted}
    return cls(**plain, **converted)


def retrain_options_from_args(args: argparse.Namespace) -> RetrainOptions:
    return RetrainOptions(
        data_dir=args.data_dir,
        seed=getattr(args, "seed", None),
        subset=args.subset,
        batch_size=args.batch_size,
        precision=args.precision,
        momentum=args.momentum,
        weight_decay=weight_decay_from_arg(args.weight_decay),
        label_smoothing=args.label_smoothing,
        augment=augment_from_arg(args.augment),
        bn_momentum=args.bn_momentum,
    )
