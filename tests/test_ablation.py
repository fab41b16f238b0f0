"""The skip-vs-plain ablation: statistics, CLI end to end, resume, reports."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import run_module

from tuning import ablate, cli, stats
from tuning.cli import run_cli
from tuning.config import AblationConfig, RetrainOptions
from tuning.errors import UsageError
from tuning.retrain import ablation
from tuning.rundir import records
from tuning.show.rebuild import build_reports
from tuning.stats import ablation_summary

HP = json.dumps({"blocks": 1, "filters": 8, "skip": True, "learning_rate": 0.02})


def test_paired_t_against_a_hand_computed_example():
    # differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01, se 0.01/sqrt(3) = 0.0057735,
    # t = 3.4641 with 2 df; t_0.975,2 = 4.302653 -> CI 0.02 -/+ 0.0248414; p = 0.07418
    r = stats.paired_t([0.81, 0.82, 0.83], [0.80, 0.80, 0.80])
    assert r.n == 3
    assert r.mean_diff == pytest.approx(0.02)
    assert r.sd_diff == pytest.approx(0.01)
    assert r.t == pytest.approx(3.464102, rel=1e-5)
    assert r.ci_low == pytest.approx(0.02 - 0.0248414, abs=1e-6)
    assert r.ci_high == pytest.approx(0.02 + 0.0248414, abs=1e-6)
    assert r.p_value == pytest.approx(0.07418, abs=1e-4)
    assert not r.significant
    assert "not significant at the 5% level" in stats.skip_verdict(4, r)


def test_paired_t_significant_and_degenerate_cases():
    r = stats.paired_t([0.9, 0.91, 0.92, 0.93], [0.8, 0.8, 0.81, 0.8])
    assert r.significant and r.ci_low > 0
    assert stats.skip_verdict(8, r).startswith("At 8 blocks, skip connections raise validation")
    worse = stats.paired_t([0.8, 0.8, 0.81, 0.8], [0.9, 0.91, 0.92, 0.93])
    assert "skip connections lower" in stats.skip_verdict(
        1, worse
    ) and "At 1 block," in stats.skip_verdict(1, worse)
    same = stats.paired_t([0.5, 0.6], [0.5, 0.6])
    assert same.mean_diff == 0 and same.p_value == 1.0 and not same.significant
    one = stats.paired_t([0.9], [0.8])
    assert one.ci_low is None and "more seeds are needed" in stats.skip_verdict(2, one)
    with pytest.raises(ValueError):
        stats.paired_t([0.1, 0.2], [0.1])


def _row(blocks, skip, seed, acc):
    return {"blocks": blocks, "skip": skip, "seed": seed, "status": "ok", "params": 100,
            "epochs": 1, "val_accuracy": acc, "val_loss": 1.0, "best_val_accuracy": acc,
            "train_loss": 1.0, "train_accuracy": 0.5, "seconds": 2.0}  # fmt: skip


def test_summary_uses_complete_pairs_only():
    # seed 2 has no plain run yet
    rows = [_row(2, True, 0, 0.81), _row(2, False, 0, 0.80), _row(2, True, 1, 0.82),
            _row(2, False, 1, 0.80), _row(2, True, 2, 0.83)]  # fmt: skip
    (entry,) = ablation_summary(rows)
    assert entry["seeds"] == [0, 1]
    assert entry["skip"]["val_accuracy_mean"] == pytest.approx(0.815)
    assert entry["plain"]["val_accuracy_mean"] == pytest.approx(0.80)
    assert entry["paired"]["mean_diff"] == pytest.approx(0.015)
    assert entry["paired"]["method"] == "paired t"


def test_summary_compares_the_training_losses_seed_by_seed():
    # a deep plain network that fits worse: higher training loss in every pair
    rows = []
    for seed, (skip_loss, plain_loss) in enumerate([(0.16, 0.23), (0.17, 0.25), (0.15, 0.22)]):
        rows += [{**_row(16, True, seed, 0.92), "train_loss": skip_loss},
                 {**_row(16, False, seed, 0.91), "train_loss": plain_loss}]  # fmt: skip
    (entry,) = ablation_summary(rows)
    assert entry["paired_train_loss"]["mean_diff"] == pytest.approx(-0.0733, abs=1e-4)
    assert entry["loss_verdict"].startswith("At 16 blocks, skip connections lower the final")
    assert "significant difference" in entry["loss_verdict"]


@pytest.fixture(scope="module")
def ablation_run(data_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("abl") / "run"
    args = ["--run-dir", str(run_dir), "--data-dir", str(data_dir), "--hyperparameters", HP,
            "--epochs", "1", "--blocks", "1,2", "--seeds", "2", "--subset", "200",
            "--batch-size", "64"]  # fmt: skip
    proc = run_module("tuning.ablate", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, args, proc


def test_ablation_cli_writes_rows_histories_plots_and_report(ablation_run):
    run_dir, _, proc = ablation_run
    out = run_dir / "ablation"
    rows = records.read_ablation_runs(out)
    assert len(rows) == 8
    assert {(r["blocks"], r["skip"], r["seed"]) for r in rows} == {
        (b, s, seed) for b in (1, 2) for s in (True, False) for seed in (0, 1)
    }
    for b in (1, 2):  # same parameters in both arms
        assert len({r["params"] for r in rows if r["blocks"] == b}) == 1
    assert len(list((out / "histories").glob("*.json"))) == 8
    for png in ("ablation_accuracy.png", "ablation_loss_curves.png"):
        data = (run_dir / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    report = (run_dir / "report.md").read_text()
    assert "validation" in report and "reserved" in report and "paired t" in report
    assert "| 1 | 2 |" in report and "| 2 | 2 |" in report
    assert "**Training loss**" in report and "the final training loss" in report
    assert proc.stdout.count("At ") >= 2 and "report:" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    skip1 = [r["val_accuracy"] for r in rows if r["blocks"] == 1 and r["skip"]]
    assert summary[0]["skip"]["val_accuracy_mean"] == pytest.approx(sum(skip1) / 2)
    events = list((run_dir / "tensorboard" / "reports").glob("events*"))
    assert events and b"ablation_accuracy" in events[0].read_bytes()


def test_report_is_rebuilt_without_training(ablation_run):
    run_dir, _, _ = ablation_run
    runs_csv = (run_dir / "ablation" / "runs.csv").read_bytes()
    shutil.rmtree(run_dir / "plots")
    (run_dir / "report.md").unlink()
    proc = run_module("tuning.report", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / "plots" / "ablation_accuracy.png").is_file()
    assert "paired t" in (run_dir / "report.md").read_text()
    assert (run_dir / "ablation" / "runs.csv").read_bytes() == runs_csv


@pytest.mark.slow  # 12 s; training only what is missing: test_interrupted_ablation_resumes in CI
def test_more_seeds_train_only_what_is_missing(ablation_run):
    run_dir, args, _ = ablation_run
    more = [a if a != "2" or args[i - 1] != "--seeds" else "3" for i, a in enumerate(args)]
    proc = run_module("tuning.ablate", *more)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 trainings to run, 8 already done" in proc.stdout
    assert len(records.read_ablation_runs(run_dir / "ablation")) == 12


def test_other_settings_are_refused(ablation_run, capsys):
    run_dir, args, _ = ablation_run
    changed = [a if a != "1" or args[i - 1] != "--epochs" else "2" for i, a in enumerate(args)]
    before = (run_dir / "ablation" / "runs.csv").read_bytes()
    assert run_cli("ablate", ablate.main, changed) == 2
    assert "other settings (epochs: 1 -> 2)" in capsys.readouterr().err
    assert (run_dir / "ablation" / "runs.csv").read_bytes() == before


def test_interrupted_ablation_resumes(data_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = ablation.train_one

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(ablation, "train_one", flaky)
    options = RetrainOptions(data_dir=str(data_dir), subset=200, batch_size=64)
    config = AblationConfig(tmp_path / "run", hyperparameters=json.loads(HP), epochs=1,
                            blocks=(1,), seeds=2, options=options)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        ablation.run_ablation(config)
    out = tmp_path / "run" / "ablation"
    assert len(records.read_ablation_runs(out)) == 2
    stale = out / ".runs.csv.k1ll3d.tmp"  # what a kill in the middle of a write leaves
    stale.write_text("half a row")
    rows = ablation.run_ablation(config)
    assert not stale.exists()
    assert len(rows) == 4 and calls["n"] == 5  # 2 before, the interrupted one, then 2 more
    assert all(not math.isnan(r["val_accuracy"]) for r in rows)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--blocks", "0,2"], "positive depths"),
        (["--blocks", "a"], "comma-separated integers"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--schedule", "cosine", "--warmup-epochs", "3"], "--warmup-epochs 3 is longer than"),
    ],
)
def test_ablation_usage_errors(extra, message, tmp_path, capsys):
    argv = ["--run-dir", str(tmp_path / "r"), "--hyperparameters", HP, "--epochs", "1", *extra]
    assert run_cli("ablate", ablate.main, argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_search_and_final_views(search_run, tmp_path):
    reference = search_run[0]
    run_dir = tmp_path / "copy"
    shutil.copytree(
        reference, run_dir, ignore=shutil.ignore_patterns("trial_*", "tensorboard", "final*")
    )
    from tuning.data import CLASS_NAMES
    from tuning.rundir.records import atomic_write_json

    matrix = [[90 if i == j else 1 for j in range(10)] for i in range(10)]
    atomic_write_json(
        run_dir / "final" / "report.json",
        {"confusion_matrix": matrix, "per_class_accuracy": dict.fromkeys(CLASS_NAMES, 0.9),
         "test_accuracy": 0.9, "hyperparameters": {"blocks": 1}, "epochs": 3,
         "train_on": "train+valid"},
    )  # fmt: skip
    built = build_reports(run_dir)
    assert (run_dir / "plots" / "search.png").stat().st_size > 5000
    assert (run_dir / "plots" / "final.png").stat().st_size > 5000
    report = (run_dir / "report.md").read_text()
    assert "## Search" in report and "plots/search.png" in report
    assert set(built["plots"]) == {"search", "search_history", "search_budgets", "final"}
    assert "## Final model" in report
    # what the search teaches: importance (or why not), the observational skip comparison,
    # the history and the budget-honest view
    assert "## What the search teaches" in report and "observational" in report
    assert "plots/search_history.png" in report and "plots/search_budgets.png" in report
    assert (run_dir / "plots" / "search_budgets.png").stat().st_size > 5000


def test_a_search_ends_with_what_it_teaches(search_run):
    out = search_run[2].stdout
    assert "What the search teaches (6 completed trials):" in out
    assert "at least 10 are needed to rank the hyperparameters" in out  # 6 trials: no ranking
    assert "observational" in out and "python -m tuning.ablate" in out


def test_report_on_an_empty_run_is_a_clear_error(tmp_path, capsys):
    from tuning import report

    (tmp_path / "empty").mkdir()
    assert run_cli("report", report.main, ["--run-dir", str(tmp_path / "empty")]) == 1
    assert "holds no results to report" in capsys.readouterr().err
    with pytest.raises(UsageError):
        cli.blocks_from_arg("")
