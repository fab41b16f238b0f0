"""benchmarks/rungs.py: which trainings a trial recipe needs, the rows they give, the
Spearman table against a hand-made yardstick, and one real tiny run that resumes."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from conftest import ROOT, module_env
from test_fidelity import SHAPES, write_yardstick, yardstick_mean

sys.path.insert(0, str(ROOT / "benchmarks"))
import rungs  # noqa: E402

from tuning.rundir import records  # noqa: E402


def test_segments_per_recipe():
    assert rungs.segments("constant", [1, 3, 9]) == [(0, 9, False, [1, 3, 9])]
    assert rungs.segments("budget", [1, 3, 9]) == [
        (0, 1, False, [1]),
        (0, 3, False, [3]),
        (0, 9, False, [9]),
    ]
    assert rungs.segments("restart", [1, 3, 9]) == [
        (0, 1, False, [1]),
        (1, 3, True, [3]),
        (3, 9, True, [9]),
    ]


class FakeModel:
    def __init__(self, weights):
        self.weights = weights

    def get_weights(self):
        return self.weights


def fake_run(calls):
    """A training whose epoch e (1-based, counted over the lineage) scores e/10 and lasts 2 s;
    it records which weights it started from."""

    def run(first, last, weights):
        calls.append((first, last, weights))
        accs = [(e + 1) / 10 for e in range(first, last)]
        ends = [2.0 * (i + 1) for i in range(last - first)]
        return FakeModel(f"after {last}"), {"val_accuracy": accs, "accuracy": accs}, ends

    return run


def test_constant_scores_each_rung_from_one_training():
    calls = []
    rows = rungs.rows_for("constant", (2, 64, False), 0.05, 0, [1, 3, 9], 12000, "float32",
                          fake_run(calls))  # fmt: skip
    assert calls == [(0, 9, None)]
    assert [r["rung"] for r in rows] == [1, 3, 9]
    assert [r["val_accuracy"] for r in rows] == [0.1, 0.3, 0.9]
    assert [r["seconds"] for r in rows] == [2.0, 6.0, 18.0]
    assert rows[1]["val_curve"] == "0.10000;0.20000;0.30000"


def test_restart_goes_on_from_the_parent_and_scores_its_own_epochs():
    calls = []
    rows = rungs.rows_for("restart", (1, 32, True), 0.1, 3, [1, 3, 9], 500, "float32",
                          fake_run(calls))  # fmt: skip
    assert calls == [(0, 1, None), (1, 3, "after 1"), (3, 9, "after 3")]
    assert [r["val_accuracy"] for r in rows] == [0.1, 0.3, 0.9]
    # A continued trial costs its parents' epochs too.
    assert [r["seconds"] for r in rows] == [2.0, 2.0 + 4.0, 2.0 + 4.0 + 12.0]
    assert rows[2]["val_curve"].count(";") == 8  # the lineage's nine epochs


def test_budget_trains_every_rung_from_scratch():
    calls = []
    rows = rungs.rows_for("budget", (1, 32, False), 0.05, 0, [1, 3], 500, "float32",
                          fake_run(calls))  # fmt: skip
    assert calls == [(0, 1, None), (0, 3, None)]
    assert [r["seconds"] for r in rows] == [2.0, 6.0]
    assert [r["rung"] for r in rows] == [1, 3]


def rung_rows(recipe: str, rate: float, score) -> list[dict]:
    rows = []
    for i, shape in enumerate(SHAPES):
        for rung in (1, 3):
            rows.append(
                {
                    "recipe": recipe,
                    "blocks": shape[0],
                    "filters": shape[1],
                    "skip": str(shape[2]),
                    "seed": 0,
                    "rate": rate,
                    "rung": rung,
                    "train_images": 12000,
                    "precision": "float32",
                    "val_accuracy": score(i, rung),
                    "val_accuracy_last": 0.0,
                    "train_accuracy": 0.0,
                    "seconds": 10.0,
                    "val_curve": "",
                }  # fmt: skip
            )
    return rows


def test_summary_ranks_each_rung_against_the_yardstick(tmp_path):
    path = write_yardstick(tmp_path / "yardstick.csv")
    means = {s: yardstick_mean(i) for i, s in enumerate(SHAPES)}
    assert {s: round(m, 6) for s, m in means.items()} == {
        s: round(sum(v.values()) / len(v), 6)
        for s, v in rungs.fidelity.read_yardstick(path, "val_accuracy_tta", None, None).items()
    }
    # rung 1 ranks the shapes backwards, rung 3 as the yardstick does; rate 0.1 is worse
    # everywhere, so "best" is rate 0.05's ranking.
    rows = rung_rows("constant", 0.05, lambda i, rung: i if rung == 1 else -i)
    rows += rung_rows("constant", 0.1, lambda i, rung: -100 - i)
    table = {(s["rate"], s["rung"]): s for s in rungs.summarize(rows, means)}
    assert set(table) == {(r, g) for r in ("0.05", "0.1", "best") for g in (1, 3)}
    assert table["0.05", 1]["spearman"] == -1.0
    assert table["0.05", 3]["spearman"] == 1.0
    assert table["best", 3]["spearman"] == 1.0
    assert table["0.05", 3]["leader_regret_points"] == 0
    assert table["0.05", 1]["leader"] == rungs.fidelity.compact(SHAPES[-1])
    assert math.isclose(table["0.05", 1]["leader_regret_points"], 100 * 0.002 * 15)
    assert math.isclose(table["0.05", 1]["top3_best_regret_points"], 100 * 0.002 * 13)
    assert table["0.05", 1]["shapes"] == 16
    assert table["0.05", 3]["seconds_all_shapes"] == 160
    assert table["best", 3]["seconds_all_shapes"] == 320  # both rates were trained for it
    # One rate only: no "best" rows.
    one = rungs.summarize(rung_rows("budget", 0.05, lambda i, rung: -i), means)
    assert {s["rate"] for s in one} == {"0.05"}


def test_summary_command_writes_its_csv_and_plot(tmp_path):
    out = tmp_path / "rungs.csv"
    records.write_csv_rows(out, rungs.FIELDS, rung_rows("restart", 0.05, lambda i, g: -i))
    yard = write_yardstick(tmp_path / "yardstick.csv")
    summary, plot = tmp_path / "summary.csv", tmp_path / "rungs.png"
    assert rungs.main(["--summary", "--out", str(out), "--yardstick", str(yard),
                       "--summary-out", str(summary), "--plot", str(plot)]) == 0  # fmt: skip
    written = records.read_csv_rows(summary, rungs.SUMMARY_FIELDS)
    assert [(r["rung"], r["spearman"]) for r in written] == [("1", "1.0"), ("3", "1.0")]
    assert plot.stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--recipes", "cosine"], "--recipes: choose from constant, budget, restart"),
        (["--rates", "fast"], "--rates: not a comma-separated list of numbers"),
        (["--rungs", "0,3"], "--rungs must be positive"),
    ],
)
def test_bad_flags_are_refused_before_any_training(tmp_path, args, message):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "rungs.py"), "--out", str(tmp_path / "r.csv"),
         *args], capture_output=True, text=True, env=module_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "r.csv").exists()


def test_a_tiny_real_run_writes_its_rows_and_resumes_without_training(tmp_path, data_dir):
    out = tmp_path / "rungs.csv"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rungs.py"), "--data-dir", str(data_dir),
           "--shapes", "1x32off", "--trial-images", "200", "--rungs", "1,2",
           "--recipes", "restart", "--rates", "0.05", "--precision", "float32",
           "--out", str(out), "--yardstick", str(tmp_path / "none.csv")]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, env=module_env(), timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = records.read_csv_rows(out, rungs.FIELDS)
    assert [(r["recipe"], r["rung"], r["train_images"]) for r in rows] == [
        ("restart", "1", "200"),
        ("restart", "2", "200"),
    ]
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in rows)
    assert "restart 1x32off rate 0.05" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=module_env(), timeout=300)
    assert again.returncode == 0
    assert "rate 0.05" not in again.stdout  # nothing trained again
    assert len(records.read_csv_rows(out, rungs.FIELDS)) == 2
