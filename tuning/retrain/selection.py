"""Which configuration a retraining uses, for how long, and with which inherited settings.

The finalizer and the ablation both retrain a configuration of a search run: the best
trial, ``--trial ID`` or explicit ``--hyperparameters``. Unless told otherwise they take
the search's seed (hence its train/valid split), subset, batch size, recipe, precision and
data, so a retraining sees what the search saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from hypermodels.recipe import Recipe
from hypermodels.space import check_hyperparameters
from tuning.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_RECIPE,
    DEFAULT_SEED,
    DEFAULT_TRIAL_SCHEDULE,
    RetrainOptions,
    check_choice,
    confirm_recipe_text,
    make_recipe,
)
from tuning.errors import ProjectError, UsageError
from tuning.machine.precision import resolve as resolve_precision
from tuning.retrain.training import TrainingSettings, epochs_times
from tuning.rundir import records
from tuning.rundir.folders import RECORDED_BEFORE, read_run


@dataclass(frozen=True)
class Choice:
    """A configuration to retrain and where it came from."""

    hyperparameters: dict
    provenance: dict = field(default_factory=dict)  # source, trial_id, val_accuracy, ...

    @property
    def lineage_epochs(self) -> int | None:
        return self.provenance.get("lineage_epochs")


def validate_hyperparameters(hp: dict, where: str) -> dict:
    try:
        return check_hyperparameters(hp)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def choose_configuration(run_dir: Path, trial: str | None, hyperparameters: dict | None) -> Choice:
    """The explicit hyperparameters, the trial ``trial`` or the run's best trial: the
    search's confirmed winner where it has one, else Hyperband's best score."""
    if hyperparameters is not None:
        check_choice(trial, hyperparameters)
        hp = validate_hyperparameters(hyperparameters, "--hyperparameters")
        return Choice(hp, {"source": "--hyperparameters"})
    if not run_dir.is_dir():
        raise ProjectError(f"run directory {run_dir} does not exist (run tuning.search first)")
    rows = records.read_trials_csv(run_dir / "trials.csv")
    confirmed = _confirmed_winner(run_dir, rows) if trial is None else None
    if trial is not None:
        row = _trial_row(rows, trial, run_dir)
    else:
        row = confirmed[0] if confirmed else records.best_row(rows)
    if row is None:
        raise ProjectError(f"{run_dir} has no successfully completed trial to finalize")
    hp = validate_hyperparameters(records.hyperparameters_of(row), f"trial {row['trial_id']}")
    provenance = {
        "source": "trial",
        "trial_id": row["trial_id"],
        "val_accuracy": row["val_accuracy"],
        "lineage_epochs": row["lineage_epochs"],
    }
    if confirmed:
        provenance["confirmation"] = confirmed[1]
    return Choice(hp, provenance)


def _confirmed_winner(run_dir: Path, rows: list[dict]) -> tuple[dict, dict] | None:
    """The search's confirmed winner (best.json's ``confirmation``): its trials.csv row and
    its evidence in brief; None for a run without one (``--confirm-top 0``, older runs).

    The search retrained its top configurations from scratch, so its confirmed winner
    rather than Hyperband's single best score is what a retraining takes by default.
    """
    path = run_dir / "best.json"
    best = records.read_json(path) if path.is_file() else {}
    if not isinstance(best, dict) or not isinstance(best.get("confirmation"), dict):
        return None
    winner = best["confirmation"].get("winner")
    row = next((r for r in rows if r["trial_id"] == best.get("trial_id")), None)
    if (
        row is None
        or row["status"] != "COMPLETED"
        or not isinstance(winner, dict)
        or winner.get("trial_id") != row["trial_id"]
        or records.hyperparameters_of(row) != best.get("hyperparameters")
    ):
        raise ProjectError(
            f"{path} names a confirmed winner that trials.csv does not hold as a completed "
            "trial with its hyperparameters (edited or damaged?); rerun the search to "
            "rewrite it, or pick one with --trial"
        )
    brief = {k: winner.get(k) for k in ("mean", "sd", "scores", "seeds", "length_epochs")}
    brief["recipe"] = best["confirmation"].get("recipe")
    return row, {**brief, "distinguishable": best["confirmation"].get("distinguishable")}


def confirmation_note(choice: Choice, trial_schedule: str = DEFAULT_TRIAL_SCHEDULE) -> str | None:
    """One line when the search confirmed its winner under another recipe than today's
    (a run made before a change to the stage): its ranking may differ under today's."""
    recipe = (choice.provenance.get("confirmation") or {}).get("recipe")
    today = confirm_recipe_text(trial_schedule)
    if recipe is None or recipe == today:
        return None
    return (
        f"note: the search confirmed this configuration under an older recipe ({recipe}); "
        f"today's is {today}: rerun the search's command to confirm again"
    )


def _trial_row(rows: list[dict], trial: str, run_dir: Path) -> dict:
    by_id = {r["trial_id"]: r for r in rows}
    row = by_id.get(trial) or by_id.get(trial.zfill(4))
    if row is None:
        known = ", ".join(sorted(by_id)) or "none"
        raise UsageError(f"--trial {trial} is not in {run_dir / 'trials.csv'} (trials: {known})")
    if row["status"] != "COMPLETED":
        raise ProjectError(f"trial {row['trial_id']} did not complete ({row['status']})")
    return row


def epochs_from_lineage(choice: Choice, factor: float = 1.0) -> tuple[int, str]:
    """``factor`` x the epochs behind the chosen trial's best weights, and how it was derived."""
    if choice.lineage_epochs is None:
        if choice.provenance.get("source") == "trial":
            raise ProjectError(
                f"trial {choice.provenance['trial_id']} has no lineage_epochs in trials.csv "
                "(edited or damaged?); give --epochs, or rerun the search to rewrite the table"
            )
        raise UsageError("--epochs is required with --hyperparameters")
    lineage = int(choice.lineage_epochs)
    length = (choice.provenance.get("confirmation") or {}).get("length_epochs")
    if length is not None and int(length) != lineage:
        # --confirm-candidates sizes: the winner trained as long as the longest lineage
        # among the candidates, and that length is what its confirmation measured
        epochs = epochs_times(int(length), factor)
        return epochs, f"{factor:g} x the {int(length)} epochs of the longest confirmed lineage"
    epochs = epochs_times(lineage, factor)
    if factor == 1:
        return epochs, "best trial's lineage epochs"
    return epochs, f"{factor:g} x the best trial's {lineage} lineage epochs"


def inherited_settings(
    run_dir: Path, options: RetrainOptions, resolve: bool = True
) -> TrainingSettings:
    """The search's settings, each replaced where ``options`` gives one.

    The same seed gives the same train/valid split, so retraining sees the search's data.
    Runs recorded before the recipe options existed trained without them. ``resolve``
    False leaves the precision as asked ("auto" probes the devices, which imports
    TensorFlow: :func:`resolved` later).
    """
    run = read_run(run_dir)
    definition = run.get("definition", {})
    # A run without run.json (explicit --hyperparameters) trains with the search's defaults;
    # a recorded run as it was recorded (older records lack later settings: their values then).
    base = DEFAULT_RECIPE.to_dict() | (RECORDED_BEFORE if definition else {})
    searched = Recipe.from_dict({**base, **definition})
    recipe = make_recipe(**{**searched.to_dict(), **_given(options.recipe_changes())})
    settings = TrainingSettings(
        seed=_pick(options.seed, definition.get("seed", DEFAULT_SEED)),
        subset=_pick(options.subset, definition.get("subset")),
        batch_size=_pick(options.batch_size, definition.get("batch_size", DEFAULT_BATCH_SIZE)),
        recipe=recipe,
        precision=_pick(options.precision, definition.get("precision", "auto")),
        data_dir=options.data_dir or _recorded_data_dir(run),
    )
    return resolved(settings) if resolve else settings


def resolved(settings: TrainingSettings) -> TrainingSettings:
    """``settings`` with its precision resolved to a Keras dtype policy."""
    return replace(settings, precision=resolve_precision(settings.precision))


def searched_trial_schedule(run_dir: Path) -> str:
    """How the run's trials moved their rate (runs recorded before the choice: constant);
    it decides what the searched rate means to a retraining (``FinalizeConfig.schedule_for``)."""
    return read_run(run_dir).get("definition", {}).get("trial_schedule", DEFAULT_TRIAL_SCHEDULE)


def _given(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _pick(given, recorded):
    return recorded if given is None else given


def _recorded_data_dir(run: dict) -> str | None:
    """The data folder the search read, if it is still there (else the usual search)."""
    data = run.get("data", {})
    if data.get("kind") != "dir":
        return None
    if Path(data["path"]).is_dir():
        return data["path"]
    print(
        f"note: the search read its data from {data['path']}, which is gone; looking in the "
        "usual places instead (--data-dir, $FASHION_MNIST_DIR, Debian's package, Keras)",
        flush=True,
    )
    return None
