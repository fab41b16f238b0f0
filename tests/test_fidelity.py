"""benchmarks/fidelity.py on small hand-made yardsticks and search run directories.

The run directories are written as the search writes them: trials.csv and confirm.csv
through the project's own writers, best.json with the keys ``tuning.engine.results
.best_record`` gives it (that module imports TensorFlow, too slow to import here).
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, module_env

from tuning.rundir import records

sys.path.insert(0, str(ROOT / "benchmarks"))
import fidelity  # noqa: E402
import yardstick  # noqa: E402

SHAPES = sorted(yardstick.SHAPES, key=lambda s: (-s[1], s[0], s[2]))  # the yardstick's order
LR = 0.01


def yardstick_mean(i: int) -> float:
    return 0.95 - 0.002 * i  # shape i of SHAPES: 0 is the best, 0.2 points apart


def write_yardstick(path: Path, shapes=SHAPES, seeds=(0, 1), **recipe) -> Path:
    """Shape i scores its mean -+ 0.001 on seeds 0 and 1, as yardstick.py appends rows."""
    for i, shape in enumerate(shapes):
        for seed in seeds:
            score = yardstick_mean(SHAPES.index(shape)) + (0.001 if seed else -0.001)
            row = dict(zip(("blocks", "filters", "skip"), shape, strict=True))
            row.update(seed=seed, peak_lr=0.05, epochs=32, train_images=48000,
                       weight_decay=0.01, augment="flip,translate,erase", bn_momentum=0.9,
                       precision="float32", val_accuracy=score - 0.002, val_accuracy_tta=score,
                       val_loss=0.3, train_accuracy=0.96, seconds=100.0 + i,
                       val_curve="0.5;0.9")  # fmt: skip
            row.update(recipe)
            records.append_csv_row(path, yardstick.FIELDS, row)
    return path


def trial(tid: str, shape, epochs: int, acc: float, status: str = "COMPLETED") -> dict:
    blocks, filters, skip = shape
    done = status == "COMPLETED"
    return {
        "trial_id": tid, "status": status, "blocks": blocks, "filters": filters, "skip": skip,
        "learning_rate": LR, "bracket": 2, "round": 0, "parent_trial_id": None,
        "initial_epoch": 0, "target_epochs": epochs, "epochs_trained": epochs,
        "best_epoch": epochs if done else None, "lineage_epochs": epochs if done else None,
        "val_accuracy": acc if done else None, "val_loss": 0.5 if done else None,
        "accuracy": 0.8, "loss": 0.5, "seconds": 10.0, "disk_mb": 1.0, "message": None,
    }  # fmt: skip


def confirm_row(rank: int, trial_row: dict, index: int, acc: float) -> dict:
    return {
        "rank": rank, "trial_id": trial_row["trial_id"],
        **records.hyperparameters_of(trial_row), "seed_index": index, "seed": 100 + index,
        "epochs": 2 * trial_row["lineage_epochs"], "peak_learning_rate": 0.05,
        "val_accuracy": acc, "val_loss": 0.3, "seconds": 20.0, "status": "ok",
    }  # fmt: skip


def write_run(run_dir: Path, seed: int, trials: list[dict], winner: dict | None = None,
              confirms: list[dict] = ()) -> Path:  # fmt: skip
    """A search run directory: run.json, trials.csv, best.json, confirm.csv if any."""
    run_dir.mkdir(parents=True)
    records.atomic_write_json(run_dir / "run.json", {"definition": {"seed": seed}})
    records.write_trials_csv(run_dir / "trials.csv", trials)
    if confirms:
        records.write_confirm_runs(run_dir, list(confirms))
    best = records.best_row(trials)
    chosen = winner or best
    record = {
        "trial_id": chosen["trial_id"],
        "hyperparameters": records.hyperparameters_of(chosen),
        "val_accuracy": chosen["val_accuracy"], "val_loss": chosen["val_loss"],
        "best_epoch": chosen["best_epoch"], "lineage_epochs": chosen["lineage_epochs"],
        "trials_completed": sum(t["status"] == "COMPLETED" for t in trials), "trials_failed": 0,
    }  # fmt: skip
    if winner is not None:
        record["hyperband_best_trial_id"] = best["trial_id"]
        record["confirmation"] = {
            "seeds": 2,
            "recipe": "test",
            "winner": {"trial_id": winner["trial_id"],
                       "hyperparameters": records.hyperparameters_of(winner),
                       "mean": 0.9, "sd": 0.0, "scores": [0.9, 0.9], "seeds": [100, 101]},
            "distinguishable": False,
        }  # fmt: skip
    records.atomic_write_json(run_dir / "best.json", record)
    return run_dir


def confirmed_run(run_dir: Path) -> Path:
    """Rung 1: all 16 shapes in the yardstick's order; rung 3: 4 shapes reversed; rung 9:
    2 shapes; a failed trial; confirmation of shapes 2, 5 and 7 in order, shape 2 winning."""
    trials = [trial(f"{i:04d}", s, 1, 0.85 - 0.01 * i) for i, s in enumerate(SHAPES)]
    trials += [trial(f"{20 + i:04d}", SHAPES[i], 3, 0.86 + 0.01 * i) for i in range(4)]
    trials += [trial("0030", SHAPES[2], 9, 0.90), trial("0031", SHAPES[5], 9, 0.89)]
    trials += [trial("0032", SHAPES[9], 9, 0.99, status="FAILED")]
    candidates = [trials[-3], trials[-2], trials[7]]  # shapes 2, 5, 7
    confirms = [
        confirm_row(rank, t, index, 0.93 - 0.01 * rank + 0.001 * index)
        for rank, t in enumerate(candidates, 1)
        for index in (0, 1)
    ]
    return write_run(run_dir, 3, trials, winner=trials[-3], confirms=confirms)


def by_stage(rows: list[dict]) -> dict[str, dict]:
    return {r["stage"]: r for r in rows}


def means_of(path: Path) -> dict:
    table = fidelity.shape_table(fidelity.read_yardstick(path, "val_accuracy_tta", None, None))
    return {s.shape: s.mean for s in table}


def test_aligned_rung_is_one_reversed_is_minus_one_and_regret_of_the_confirmed_pick(tmp_path):
    means = means_of(write_yardstick(tmp_path / "y.csv"))
    rows = by_stage(fidelity.run_rows(confirmed_run(tmp_path / "run"), means))
    assert list(rows) == ["1", "3", "9", "confirmation"]  # the rungs from the data
    assert rows["1"]["spearman"] == pytest.approx(1.0)
    assert rows["1"]["shapes_compared"] == rows["1"]["stage_shapes"] == 16
    assert rows["3"]["spearman"] == pytest.approx(-1.0)
    assert rows["3"]["stage_leader"] == fidelity.compact(SHAPES[3])
    assert rows["3"]["stage_leader_regret_points"] == pytest.approx(0.6)
    assert rows["9"]["shapes_compared"] == 2 and math.isnan(rows["9"]["spearman"])
    assert rows["confirmation"]["shapes_compared"] == 3
    assert rows["confirmation"]["spearman"] == pytest.approx(1.0)
    for row in rows.values():  # best.json's confirmed winner, shape 2: 0.4 points below 0
        assert row["picked_shape"] == fidelity.compact(SHAPES[2])
        assert row["regret_points"] == pytest.approx(0.4)
        assert row["search_seed"] == 3


def test_without_confirmation_the_pick_is_the_best_trial(tmp_path):
    means = means_of(write_yardstick(tmp_path / "y.csv"))
    trials = [trial(f"{i:04d}", s, 1, 0.80 + 0.01 * i) for i, s in enumerate(SHAPES[:6])]
    trials[4]["val_accuracy"] = 0.95  # shape 4 scores best: 0.8 points below shape 0
    rows = fidelity.run_rows(write_run(tmp_path / "run", 1, trials), means)
    assert [r["stage"] for r in rows] == ["1"]  # --confirm-top 0: no confirmation row
    assert rows[0]["picked_shape"] == fidelity.compact(SHAPES[4])
    assert rows[0]["regret_points"] == pytest.approx(0.8)
    assert rows[0]["stage_leader"] == rows[0]["picked_shape"]


def test_a_partial_yardstick_compares_on_the_intersection(tmp_path):
    path = write_yardstick(tmp_path / "y.csv", shapes=SHAPES[3:8])
    write_yardstick(path, shapes=[SHAPES[8]], seeds=(0,))  # a shape with one seed so far
    table = fidelity.shape_table(fidelity.read_yardstick(path, "val_accuracy_tta", None, None))
    assert [s.shape for s in table] == SHAPES[3:9]
    assert table[0].half_width == pytest.approx(12.706 * 0.002 / 2, rel=1e-3)  # t, 1 df
    assert table[-1].half_width is None and table[-1].gap_low is None
    assert table[1].gap == pytest.approx(0.002)
    assert table[1].gap_low == pytest.approx(table[1].gap_high)  # the same gap on both seeds
    means = {s.shape: s.mean for s in table}
    rows = by_stage(fidelity.run_rows(confirmed_run(tmp_path / "run"), means))
    assert rows["1"]["stage_shapes"] == 16 and rows["1"]["yardstick_shapes"] == 6
    assert rows["1"]["shapes_compared"] == 6 and rows["1"]["spearman"] == pytest.approx(1.0)
    assert rows["3"]["shapes_compared"] == 1 and math.isnan(rows["3"]["spearman"])
    assert math.isnan(rows["1"]["regret_points"])  # the pick, shape 2, is not in it


def test_writes_the_csv_and_the_plot_and_prints_the_tables(tmp_path, capsys):
    y = write_yardstick(tmp_path / "y.csv")
    runs = [confirmed_run(tmp_path / "a"),
            write_run(tmp_path / "b", 1, [trial("0000", SHAPES[0], 1, 0.8)])]  # fmt: skip
    out, png = tmp_path / "out" / "f.csv", tmp_path / "img" / "f.png"
    args = ["--yardstick", str(y), "--out", str(out), "--plot", str(png), *map(str, runs)]
    assert fidelity.main(args) == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(fidelity.OUT_FIELDS)
    assert [(Path(r["run"]).name, r["stage"]) for r in rows] == [
        ("a", "1"), ("a", "3"), ("a", "9"), ("a", "confirmation"), ("b", "1")]  # fmt: skip
    assert rows[0]["spearman"] == "1.0" and rows[2]["spearman"] == ""
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "yardstick: 16 of 16 shapes" in printed and "too few" in printed


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    y = write_yardstick(tmp_path / "y.csv")
    mixed = write_yardstick(tmp_path / "mixed.csv")
    write_yardstick(mixed, shapes=SHAPES[:1], peak_lr=0.1)
    empty_run = tmp_path / "empty"
    empty_run.mkdir()
    run = write_run(tmp_path / "run", 0, [trial("0000", SHAPES[0], 1, 0.8)])
    cases = [
        (["--yardstick", str(tmp_path / "nope.csv"), str(run)], "does not exist"),
        (["--yardstick", str(y), str(tmp_path / "nope")], "does not exist"),
        (["--yardstick", str(y), str(empty_run)], "trials.csv does not exist"),
        (["--yardstick", str(mixed), str(run)], "mixes 2 recipes"),
        (["--yardstick", str(y), "--peak", "0.2", str(run)], "no training with peak_lr 0.2"),
    ]
    for args, words in cases:
        out = ["--out", str(tmp_path / "o.csv"), "--plot", str(tmp_path / "o.png")]
        assert fidelity.main(args + out) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert fidelity.main(["--yardstick", str(mixed), "--peak", "0.1", *out, str(run)]) == 0


def test_a_foreign_csv_from_the_command_line(tmp_path):
    foreign = tmp_path / "trials.csv"
    records.write_trials_csv(foreign, [trial("0000", SHAPES[0], 1, 0.8)])
    run = write_run(tmp_path / "run", 0, [trial("0000", SHAPES[0], 1, 0.8)])
    proc = subprocess.run(
        [sys.executable, "benchmarks/fidelity.py", "--yardstick", str(foreign),
         "--out", str(tmp_path / "o.csv"), "--plot", str(tmp_path / "o.png"), str(run)],
        cwd=ROOT, env=module_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("fidelity: ") and "not a yardstick CSV" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "o.csv").exists()


def test_yardstick_ranking_joins_rows_read_back_and_rows_just_trained(tmp_path):
    """A resumed yardstick holds seed 0 as text from the CSV and seed 1 as the values just
    trained: one shape is one row of the ranking, and --within picks the contenders."""
    path = write_yardstick(tmp_path / "y.csv", seeds=(0,))
    rows = yardstick.read_rows(path)
    blocks, filters, skip = SHAPES[0]  # the best
    fresh = dict(rows[0], blocks=blocks, filters=filters, skip=skip, seed=1, val_accuracy_tta=0.951)
    table = yardstick.ranking([*rows, fresh])
    assert len(table) == 16
    assert table[0]["shape"] == SHAPES[0] and table[0]["scores"] == [0.949, 0.951]
    # Seed 0: shape i scores 0.949 - 0.002 i; within 0.5 points of the best: shapes 0-2.
    assert yardstick.contenders(rows, 0.5) == set(SHAPES[:3])
    assert yardstick.contenders(rows, 0.0) == {SHAPES[0]}


def test_a_copied_run_s_confirmation_counts_only_the_trainings_its_best_json_names(tmp_path):
    """A sizes or both48 run is a copy of a top run: confirm.csv also holds the source's
    rows (another candidate, another length, the trials' images, a third seed)."""
    hp = {"blocks": 2, "filters": 64, "skip": False, "learning_rate": 0.02}
    other = {**hp, "blocks": 1}
    row = lambda h, epochs, images, index, acc: {  # noqa: E731
        **h,
        "epochs": epochs,
        "train_images": images,
        "seed_index": index,
        "val_accuracy": acc,
    }
    runs = [row(hp, 5, 48000, 0, 0.90), row(hp, 5, 48000, 1, 0.92),  # counted: mean 0.91
            row(hp, 18, None, 0, 0.99), row(hp, 5, None, 0, 0.99),  # the trials' images
            row(hp, 5, 48000, 2, 0.99), row(other, 5, 48000, 0, 0.99)]  # fmt: skip
    confirmation = {"seeds": 2, "train_images": 48000,
                    "candidates": [{"hyperparameters": hp, "epochs": 5}]}  # fmt: skip
    (tmp_path / "best.json").write_text(json.dumps({"confirmation": confirmation}))
    kept = fidelity.candidate_runs(tmp_path, runs)
    assert kept == runs[:2]
    assert fidelity.confirmation_scores(kept) == {(2, 64, False): pytest.approx(0.91)}
    # a run on the trials' images: its rows have no count
    confirmation.update(train_images=12000, candidates=[{"hyperparameters": hp, "epochs": 18}])
    (tmp_path / "best.json").write_text(json.dumps({"confirmation": confirmation}))
    assert fidelity.candidate_runs(tmp_path, runs) == [runs[2]]
