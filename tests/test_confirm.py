"""The search's confirmation stage: the top configurations retrained from scratch over seeds.

One small real-data search is killed during its confirmation and resumed; reruns then show
that only what is missing is trained. The finalizer's choice is checked on hand-made files.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import SEARCH_ARGS, run_module

from tuning.config import SearchConfig
from tuning.engine.confirm import (
    CONFIRM_SCHEDULE,
    Candidate,
    TrainingData,
    clear_logdir,
    config_key,
    confirm_seed,
    missing_trainings,
    ranked_candidates,
    summarize_confirmation,
    with_peak,
)
from tuning.engine.results import best_record, write_best, write_results
from tuning.errors import ProjectError, UsageError
from tuning.retrain.selection import choose_configuration, confirmation_note, epochs_from_lineage
from tuning.rundir import records

CONFIRM = ["--confirm-top", "2", "--confirm-seeds", "2"]


def _key(row: dict) -> tuple:
    return config_key(row), row["seed_index"]


@pytest.fixture(scope="module")
def resumed(data_dir, tmp_path_factory):
    """A search killed (SIGKILL) after 2 of its 4 confirmation trainings, then rerun."""
    directory = tmp_path_factory.mktemp("confirm")
    args = ["--data-dir", str(data_dir), "--directory", str(directory), "--project-name", "c"]
    run_dir = directory / "c"
    killed = run_module("tuning.search", *args, *SEARCH_ARGS, *CONFIRM,
                        kill_at="confirm.row_written:2")  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    before = records.read_confirm_runs(run_dir)
    assert len(before) == 2
    again = run_module("tuning.search", *args, *SEARCH_ARGS, *CONFIRM)
    assert again.returncode == 0, again.stderr[-3000:]
    return run_dir, args, before, again


def copy_of(resumed, tmp_path: Path) -> tuple[Path, list[str]]:
    """The resumed run copied into ``tmp_path``, and the search's arguments that point at it."""
    source, args, _, _ = resumed
    run_dir = tmp_path / "c"
    shutil.copytree(source, run_dir)
    return run_dir, [tmp_path.as_posix() if a == source.parent.as_posix() else a for a in args]


def test_a_killed_confirmation_resumes_with_only_the_missing_trainings(resumed):
    run_dir, _, before, proc = resumed
    rows = records.read_confirm_runs(run_dir)
    assert len(rows) == 4 and len({_key(r) for r in rows}) == 4  # none twice
    assert sorted((r["rank"], r["seed_index"]) for r in rows) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for row in before:  # what was saved before the kill is kept, not retrained
        assert row in rows
    missing = 4 - len(before)
    assert f"{missing} of 4 trainings to run" in proc.stdout
    assert proc.stdout.count("[confirm ") == missing
    trials = records.read_trials_csv(run_dir / "trials.csv")
    ranked = ranked_candidates(trials, 2)
    for row in rows:
        candidate = ranked[row["rank"] - 1]
        assert config_key(row) == candidate.key and row["trial_id"] == candidate.trial_id
        # 2 = DEFAULT_CONFIRM_EPOCHS_FACTOR, not the finalizer's factor
        assert row["epochs"] == candidate.epochs == 2 * candidate.lineage_epochs
        assert row["seed"] == confirm_seed(7, row["seed_index"])
        assert row["peak_learning_rate"] == CONFIRM_SCHEDULE.peak(row["learning_rate"])[0]
        assert row["status"] == "ok" and 0 <= row["val_accuracy"] <= 1 and row["seconds"] > 0
        logdir = run_dir / "tensorboard" / "confirm" / f"{row['rank']}_s{row['seed_index']}"
        assert list((logdir / "validation").glob("events*"))
        assert list(logdir.glob("events*"))  # its HParams session, named confirm/<rank>_s<i>
    assert len({r["seed"] for r in rows}) == 2  # the same two seeds for both configurations
    assert not list(run_dir.rglob("*.tmp*"))


def test_best_json_names_the_confirmed_winner_with_its_evidence(resumed):
    run_dir, _, _, proc = resumed
    best = json.loads((run_dir / "best.json").read_text())
    confirmation = best["confirmation"]
    winner, runner_up = confirmation["winner"], confirmation["runner_up"]
    assert confirmation["seeds"] == 2 and len(confirmation["candidates"]) == 2
    assert best["trial_id"] == winner["trial_id"]
    assert best["hyperparameters"] == winner["hyperparameters"]
    assert best["lineage_epochs"] == winner["lineage_epochs"]
    assert winner["mean"] >= runner_up["mean"] and len(winner["scores"]) == 2
    assert winner["mean"] == pytest.approx(sum(winner["scores"]) / 2)
    difference = confirmation["difference"]
    assert difference["mean_diff"] == pytest.approx(winner["mean"] - runner_up["mean"])
    assert difference["ci_low"] <= difference["mean_diff"] <= difference["ci_high"]
    assert "from the runner-up at the 5% level" in proc.stdout
    assert f"confirmed winner: trial {winner['trial_id']}" in proc.stdout
    # the finalizer's default choice is the confirmed winner
    choice = choose_configuration(run_dir, None, None)
    assert choice.provenance["trial_id"] == winner["trial_id"]
    assert choice.provenance["confirmation"]["scores"] == winner["scores"]


def test_a_finished_search_reruns_nothing(resumed):
    run_dir, args, _, _ = resumed
    csv_before = (run_dir / "confirm.csv").read_bytes()
    best_before = (run_dir / "best.json").read_bytes()
    proc = run_module("tuning.search", *args, *SEARCH_ARGS, *CONFIRM)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already complete" in proc.stdout and "0 of 4 trainings to run" in proc.stdout
    assert "[confirm " not in proc.stdout and "[trial " not in proc.stdout
    assert (run_dir / "confirm.csv").read_bytes() == csv_before
    assert (run_dir / "best.json").read_bytes() == best_before


@pytest.mark.slow  # 21 s; a confirmation training only what is missing: `resumed`, in CI
def test_more_configurations_add_only_theirs_and_top_0_goes_back(resumed, tmp_path):
    run_dir, args = copy_of(resumed, tmp_path)
    before = records.read_confirm_runs(run_dir)
    proc = run_module("tuning.search", *args, *SEARCH_ARGS, "--confirm-top", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 of 6 trainings to run" in proc.stdout
    rows = records.read_confirm_runs(run_dir)
    assert [r for r in rows if r["rank"] < 3] == before
    third = ranked_candidates(records.read_trials_csv(run_dir / "trials.csv"), 3)[2]
    assert sorted(_key(r) for r in rows if r["rank"] == 3) == [(third.key, 0), (third.key, 1)]
    assert len(json.loads((run_dir / "best.json").read_text())["confirmation"]["candidates"]) == 3

    proc = run_module("tuning.search", *args, *SEARCH_ARGS, "--confirm-top", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "confirmation" not in proc.stdout
    best = json.loads((run_dir / "best.json").read_text())
    trials = records.read_trials_csv(run_dir / "trials.csv")
    assert "confirmation" not in best and best["trial_id"] == records.best_row(trials)["trial_id"]
    assert records.read_confirm_runs(run_dir) == rows  # kept, only not used


def test_confirm_top_0_is_the_search_as_before(data_dir, tmp_path, capsys):
    from hypermodels import SearchSpace
    from tuning.engine import run_search

    space = SearchSpace(blocks_min=1, blocks_max=1, filters=(8,), lr_min=1e-2, lr_max=1e-1)
    config = SearchConfig(
        space=space, data_dir=str(data_dir), directory=str(tmp_path), project_name="off",
        max_epochs=1, hyperband_iterations=2, batch_size=64, subset=200, verbose=0,
        confirm_top=0,
    )  # fmt: skip
    rows = run_search(config)
    run_dir = tmp_path / "off"
    assert not (run_dir / "confirm.csv").exists()
    assert not (run_dir / "tensorboard" / "confirm").exists()
    best = json.loads((run_dir / "best.json").read_text())
    assert best == json.loads(json.dumps(best_record(rows)))  # exactly the table's best
    assert best["trial_id"] == records.best_row(rows)["trial_id"] and "confirmation" not in best
    assert "confirmation" not in capsys.readouterr().out


# -- on hand-made files: the ranking, the summary and the finalizer's choice ---------------


def _trial(trial_id: str, val: float, lineage: int, lr: float, **kw) -> dict:
    row = {k: None for k in records.FIELD_TYPES}
    row.update(trial_id=trial_id, status="COMPLETED", blocks=1, filters=8, skip=True)
    row.update(learning_rate=lr, initial_epoch=0, best_epoch=lineage, lineage_epochs=lineage)
    row.update(val_accuracy=val, val_loss=1.0, **kw)
    return row


def _runs(candidate: Candidate, scores: list[float]) -> list[dict]:
    return [
        {"rank": candidate.rank, "trial_id": candidate.trial_id, **candidate.hyperparameters,
         "seed_index": i, "seed": confirm_seed(0, i), "epochs": candidate.epochs,
         "peak_learning_rate": candidate.peak, "val_accuracy": s, "val_loss": 0.5,
         "seconds": 1.0, "status": "ok"}
        for i, s in enumerate(scores)
    ]  # fmt: skip


TRIALS = [
    _trial("0000", 0.80, 1, 0.01),
    _trial("0001", 0.90, 3, 0.02),
    _trial("0002", 0.85, 3, 0.03),
    _trial("0003", 0.90, 2, 0.04),  # ties 0001, fewer lineage epochs: ranked first
    _trial("0004", 0.90, 3, 0.04, parent_trial_id="0003"),  # 0003's configuration again
    _trial("0005", 0.95, 1, 0.05, status="FAILED"),
]


def test_candidates_are_distinct_configurations_in_hyperband_order():
    ranked = ranked_candidates(TRIALS, 5)
    assert [c.trial_id for c in ranked] == ["0003", "0001", "0002", "0000"]
    assert [c.rank for c in ranked] == [1, 2, 3, 4]
    assert [c.epochs for c in ranked] == [4, 6, 6, 2]  # ceil(2 x lineage epochs)
    assert [c.trial_id for c in ranked_candidates(TRIALS, 2)] == ["0003", "0001"]
    # every configuration gets the same seeds (paired by seed index), other runs other ones
    assert confirm_seed(0, 0) != confirm_seed(0, 1) and confirm_seed(0, 1) == confirm_seed(0, 1)
    assert confirm_seed(1, 0) != confirm_seed(0, 0)


def test_rows_of_older_runs_count_only_where_the_floor_leaves_the_peak_alone(tmp_path):
    """confirm.csv before the peak's floor: no peak column. Its rows keep counting where
    4 x the rate is at least the floor, and are retrained where the floor raises it."""
    ranked = ranked_candidates(TRIALS, 4)  # 0003, 0001, 0002 at 0.04-0.02; 0000 at 0.01
    assert [c.peak for c in ranked] == pytest.approx([0.1, 0.08, 0.1, 0.05])
    runs = [row for c in ranked for row in _runs(c, [0.9, 0.8])]
    older = {k: t for k, t in records.CONFIRM_FIELD_TYPES.items() if k != "peak_learning_rate"}
    records.write_csv(tmp_path / "confirm.csv", older, runs)
    done = [with_peak(r) for r in records.read_confirm_runs(tmp_path)]
    peaks = {r["trial_id"]: r["peak_learning_rate"] for r in done}
    assert peaks == pytest.approx({"0003": 0.1, "0001": 0.08, "0002": 0.1, "0000": 0.04})
    assert [(c.trial_id, i) for c, i in missing_trainings(ranked, done, 2)] == [
        ("0000", 0), ("0000", 1)]  # fmt: skip
    assert missing_trainings(ranked, runs, 2) == []  # rows that record their peak
    records.write_confirm_runs(tmp_path, done)  # a rewrite keeps them, their peak recorded
    assert records.read_confirm_runs(tmp_path) == done
    text = (tmp_path / "confirm.csv").read_text().splitlines()
    column = text[0].split(",").index("peak_learning_rate")
    cells = text[1].split(",")
    cells[column] = ""  # where the column is there, its cells are required
    (tmp_path / "confirm.csv").write_text("\n".join([text[0], ",".join(cells), *text[2:]]))
    with pytest.raises(ProjectError, match=r"unreadable \(empty cell\(s\) peak_learning_rate\)"):
        records.read_confirm_runs(tmp_path)


def test_a_superseded_trainings_curves_move_aside_and_a_killed_attempts_go(tmp_path):
    logdir = tmp_path / "1_s0"
    (logdir / "validation").mkdir(parents=True)
    (logdir / "events.old").write_text("finished under peak 0.024")
    clear_logdir(logdir, [0.024])
    aside = tmp_path / "1_s0_peak0.024"
    assert not logdir.exists() and (aside / "events.old").is_file()
    logdir.mkdir()
    (logdir / "events.new").write_text("a killed retraining's")
    clear_logdir(logdir, [0.024])  # the finished one is aside already: this one goes
    assert not logdir.exists() and (aside / "events.old").is_file()
    logdir.mkdir()
    clear_logdir(logdir, [])  # no row at this rank and seed index: a killed attempt's
    assert not logdir.exists() and sorted(p.name for p in tmp_path.iterdir()) == [aside.name]


def _confirmed_files(tmp_path: Path, scores: dict[str, list[float]]) -> dict:
    """trials.csv and a best.json whose confirmation is built from ``scores`` per trial."""
    ranked = ranked_candidates(TRIALS, len(scores))
    runs = [row for c in ranked for row in _runs(c, scores[c.trial_id])]
    confirmation = summarize_confirmation(ranked, runs, 3)
    records.write_trials_csv(tmp_path / "trials.csv", TRIALS)
    write_best(tmp_path, TRIALS, confirmation)
    return confirmation


def test_the_summary_says_whether_the_winner_is_distinguishable(tmp_path):
    close = _confirmed_files(tmp_path, {"0003": [0.90, 0.91, 0.89], "0001": [0.91, 0.90, 0.90]})
    assert close["winner"]["trial_id"] == "0001" and not close["distinguishable"]
    assert close["verdict"].startswith("the winner is not distinguishable from the runner-up")
    clear = _confirmed_files(tmp_path, {"0003": [0.90, 0.91, 0.89], "0001": [0.80, 0.81, 0.80]})
    assert clear["winner"]["trial_id"] == "0003" and clear["distinguishable"]
    assert clear["verdict"].startswith("the winner is distinguishable from the runner-up")
    assert clear["difference"]["mean_diff"] == pytest.approx(0.0966667)


def test_finalize_takes_the_confirmed_winner_over_hyperbands_best(tmp_path):
    # Hyperband ranks 0003 first; the confirmation finds 0002 (rank 3) better.
    scores = {"0003": [0.88, 0.87, 0.88], "0001": [0.86, 0.85, 0.86], "0002": [0.90, 0.91, 0.9]}
    _confirmed_files(tmp_path, scores)
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["trial_id"] == "0002" and best["hyperband_best_trial_id"] == "0003"
    choice = choose_configuration(tmp_path, None, None)
    assert choice.provenance["trial_id"] == "0002"
    assert choice.hyperparameters["learning_rate"] == 0.03
    assert epochs_from_lineage(choice, 2.0)[0] == 6
    # --trial and --hyperparameters still override it
    assert choose_configuration(tmp_path, "0003", None).provenance["trial_id"] == "0003"
    hp = {"blocks": 2, "filters": 16, "skip": False, "learning_rate": 0.01}
    assert choose_configuration(tmp_path, None, hp).hyperparameters == hp
    # the trials' tables, rewritten as a rerun does, keep the confirmation
    write_results(tmp_path, TRIALS)
    assert json.loads((tmp_path / "best.json").read_text()) == best
    assert confirmation_note(choice) is None  # confirmed under today's recipe
    # a best.json without one (--confirm-top 0, older runs): Hyperband's best, as before
    write_best(tmp_path, TRIALS, None)
    assert choose_configuration(tmp_path, None, None).provenance["trial_id"] == "0003"


def test_a_winner_confirmed_under_an_older_recipe_gets_a_note(tmp_path):
    _confirmed_files(tmp_path, {"0003": [0.88, 0.87, 0.88], "0001": [0.86, 0.85, 0.86]})
    best = json.loads((tmp_path / "best.json").read_text())
    older = "1-epoch warm-up + cosine from 4 x the searched rate, at most 0.1; augment flip,erase"
    best["confirmation"]["recipe"] = older + "; 2 x its lineage epochs"
    (tmp_path / "best.json").write_text(json.dumps(best))
    note = confirmation_note(choose_configuration(tmp_path, None, None))
    assert note.startswith(f"note: the search confirmed this configuration under an older "
                           f"recipe ({older}") and "at least 0.05" in note  # fmt: skip
    assert "rerun the search's command" in note


def test_an_edited_confirmed_winner_is_refused(tmp_path):
    _confirmed_files(tmp_path, {"0003": [0.8, 0.8, 0.8], "0001": [0.9, 0.9, 0.9]})
    best = json.loads((tmp_path / "best.json").read_text())
    best["trial_id"] = "0042"
    (tmp_path / "best.json").write_text(json.dumps(best))
    with pytest.raises(ProjectError, match="names a confirmed winner that trials.csv does not"):
        choose_configuration(tmp_path, None, None)
    (tmp_path / "confirm.csv").write_text("rank,blocks\n1,2\n")
    with pytest.raises(ProjectError, match="confirm.csv is unreadable"):
        records.read_confirm_runs(tmp_path)


def test_flags_and_definition():
    from tuning.search import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args([]))
    assert (config.confirm_top, config.confirm_seeds) == (3, 2)
    config = config_from_args(build_parser().parse_args(["--confirm-top", "0"]))
    assert config.confirm_top == 0
    other = SearchConfig(confirm_top=5, confirm_seeds=4)
    assert other.definition({}, "float32") == SearchConfig().definition({}, "float32")
    with pytest.raises(UsageError, match="--confirm-top must be at least 0"):
        SearchConfig(confirm_top=-1)
    with pytest.raises(UsageError, match="--confirm-seeds must be at least 1"):
        SearchConfig(confirm_seeds=0)


def _shape(trial_id: str, val: float, lineage: int, blocks: int, filters: int, **kw) -> dict:
    return _trial(trial_id, val, lineage, 0.02, blocks=blocks, filters=filters, **kw)


# seed 2's situation (55b88c2): Hyperband's top 3 were all small networks
BY_SIZE = [
    _shape("0000", 0.897, 9, 1, 32),
    _shape("0001", 0.896, 9, 1, 64),
    _shape("0002", 0.884, 9, 2, 32),
    _shape("0003", 0.880, 3, 3, 32),
    _shape("0004", 0.870, 3, 2, 64),
    _shape("0005", 0.860, 1, 3, 64),
    _shape("0006", 0.850, 1, 4, 64),
    _shape("0007", 0.840, 1, 4, 64, skip=False),
]


def test_candidates_by_size_take_the_best_of_each_size_class_at_one_length():
    top = ranked_candidates(BY_SIZE, 3)
    assert [c.trial_id for c in top] == ["0000", "0001", "0002"]
    assert [c.epochs for c in top] == [18, 18, 18] and top[0].length_epochs is None
    # 7 sizes (skip on and off are one): 1-3 x 32 | 1-2 x 64 | 3-4 x 64
    by_size = ranked_candidates(BY_SIZE, 3, rule="sizes")
    assert [c.trial_id for c in by_size] == ["0000", "0001", "0005"]
    assert [c.rank for c in by_size] == [1, 2, 3]
    # 0005 stopped at rung 1; it trains as long as the others (2 x the longest lineage, 9)
    assert [c.epochs for c in by_size] == [18, 18, 18] and by_size[2].lineage_epochs == 1
    assert [c.trial_id for c in ranked_candidates(BY_SIZE, 1, rule="sizes")] == ["0000"]
    two = ranked_candidates(BY_SIZE, 2, rule="sizes")  # 1-3 x 32 and 1 x 64 | 2-4 x 64
    assert [c.trial_id for c in two] == ["0000", "0004"]
    # more classes than sizes: one candidate per size
    assert len(ranked_candidates(BY_SIZE, 20, rule="sizes")) == 7
    short = ranked_candidates([r for r in BY_SIZE if r["lineage_epochs"] < 9], 3, rule="sizes")
    assert [(c.trial_id, c.epochs) for c in short] == [("0003", 6), ("0005", 6), ("0006", 6)]
    assert ranked_candidates([], 3, rule="sizes") == []


def test_both_confirms_the_union_of_the_top_and_the_size_classes_at_one_length():
    both = ranked_candidates(BY_SIZE, 3, rule="both")  # top 0000-0002, sizes 0000, 0001, 0005
    assert [c.trial_id for c in both] == ["0000", "0001", "0002", "0005"]
    assert [c.rank for c in both] == [1, 2, 3, 4]
    assert {c.epochs for c in both} == {18} and both[3].length_epochs == 9
    two = ranked_candidates(BY_SIZE, 2, rule="both")  # top 0000, 0001; sizes 0000, 0004
    assert [c.trial_id for c in two] == ["0000", "0001", "0004"]
    short = [r for r in BY_SIZE if r["lineage_epochs"] < 9]  # top 0003-0005, sizes 0003, 0005, 0006
    assert [c.trial_id for c in ranked_candidates(short, 3, rule="both")] == [
        "0003", "0004", "0005", "0006"]  # fmt: skip


def test_the_finalizer_trains_a_size_winner_from_the_confirmed_length(tmp_path):
    by_size = ranked_candidates(BY_SIZE, 3, rule="sizes")
    runs = [row for c, s in zip(by_size, ([0.90, 0.90], [0.91, 0.91], [0.93, 0.92]), strict=True)
            for row in _runs(c, s)]  # fmt: skip
    confirmation = summarize_confirmation(by_size, runs, 2)
    assert confirmation["winner"]["trial_id"] == "0005"
    assert confirmation["winner"]["length_epochs"] == 9
    write_results(tmp_path, BY_SIZE)
    write_best(tmp_path, BY_SIZE, confirmation)
    choice = choose_configuration(tmp_path, None, None)
    assert choice.provenance["trial_id"] == "0005" and choice.lineage_epochs == 1
    assert epochs_from_lineage(choice, 4.0) == (
        36,
        "4 x the 9 epochs of the longest confirmed lineage",
    )
    # top-K winners keep their own lineage
    top = ranked_candidates(BY_SIZE, 2)
    runs = [row for c in top for row in _runs(c, [0.9, 0.9])]
    write_best(tmp_path, BY_SIZE, summarize_confirmation(top, runs, 2))
    assert epochs_from_lineage(choose_configuration(tmp_path, None, None), 4.0) == (
        36,
        "4 x the best trial's 9 lineage epochs",
    )


def test_a_search_confirms_by_size_when_asked(resumed, tmp_path):
    run_dir, args = copy_of(resumed, tmp_path)
    rule = ["--confirm-top", "2", "--confirm-seeds", "1", "--confirm-candidates", "sizes"]
    proc = run_module("tuning.search", *args, *SEARCH_ARGS, *rule)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best in each of 2 network-size classes" in proc.stdout
    best = json.loads((run_dir / "best.json").read_text())
    assert best["confirmation"]["candidates_rule"] == "sizes"
    candidates = best["confirmation"]["candidates"]
    sizes = {(c["hyperparameters"]["blocks"], c["hyperparameters"]["filters"]) for c in candidates}
    assert len(sizes) == 2  # one of each class
    assert len({c["epochs"] for c in candidates}) == 1  # all as long
    with pytest.raises(UsageError, match="--confirm-candidates must be one of top, sizes"):
        SearchConfig(confirm_candidates="best")


def _images(seen: int, trials: int) -> TrainingData:
    x, y = np.zeros((seen, 28, 28, 1)), np.zeros(seen)
    return TrainingData(x, y, x[:2], y[:2], np.zeros(1), np.ones(1), trial_images=trials)


def test_more_confirmation_images_mean_fewer_epochs_and_their_own_rows(tmp_path):
    hp = {"blocks": 2, "filters": 64, "skip": False, "learning_rate": 0.02}
    eight, nine = Candidate(1, "0000", hp, 8, 0.9), Candidate(1, "0000", hp, 9, 0.9)
    assert (eight.epochs, nine.epochs) == (16, 18)
    same = _images(120, 120).scaled(eight)
    assert same == eight and same.training(0)[-1] is None  # the trials' images: as before
    four_times = _images(480, 120)
    assert (four_times.scaled(eight).epochs, four_times.scaled(nine).epochs) == (4, 5)
    assert _images(60, 120).scaled(eight).epochs == 32  # fewer images: more epochs
    scaled = four_times.scaled(eight)
    assert scaled.train_images == 480 and scaled.training(1)[-1] == 480
    # a row of the same configuration, length, peak and seed on the trials' images is
    # another training: it neither counts for the scaled candidate nor the other way round
    trials_row = _runs(eight, [0.9])[0]
    scaled_row = {**_runs(scaled, [0.91])[0], "train_images": 480}
    assert missing_trainings([scaled], [trials_row], 1) == [(scaled, 0)]
    assert missing_trainings([scaled], [scaled_row], 1) == []
    assert missing_trainings([eight], [scaled_row], 1) == [(eight, 0)]
    # confirm.csv keeps the count, and an empty cell (the trials' images) reads back as None
    records.write_confirm_runs(tmp_path, [trials_row, scaled_row])
    back = {r["train_images"] for r in records.read_confirm_runs(tmp_path)}
    assert back == {None, 480}
    with pytest.raises(UsageError, match="--confirm-images must be at least 10"):
        SearchConfig(confirm_images=5)


@pytest.mark.slow  # 11 s; the images' epochs and rows: the test before, in CI
def test_a_search_confirms_on_more_images_when_asked(resumed, tmp_path):
    run_dir, args = copy_of(resumed, tmp_path)
    old = records.read_confirm_runs(run_dir)
    rule = ["--confirm-top", "1", "--confirm-seeds", "1", "--confirm-images", "100"]
    proc = run_module("tuning.search", *args, *SEARCH_ARGS, *rule)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 100 images of the training split (--confirm-images)" in proc.stdout
    rows = records.read_confirm_runs(run_dir)
    assert len(rows) == len(old) + 1  # the trials' rows kept, one new training
    new = next(r for r in rows if r["train_images"] == 100)
    unscaled = next(r for r in old if r["rank"] == 1 and r["seed_index"] == 0)
    assert new["epochs"] > unscaled["epochs"]  # fewer images than the trials': more epochs
    best = json.loads((run_dir / "best.json").read_text())
    assert best["confirmation"]["train_images"] == 100
    assert best["confirmation"]["winner"]["epochs"] == new["epochs"]
