"""benchmarks/peers.py: every searcher on a tiny subset, resume, the report, bad input.

The real runs are fresh subprocesses on seed 0 and 300 training images, 0.5 min per searcher
(at 0.15 a slow CI machine did not finish Optuna's first, unpruned trial inside its 9 s):
the four peers in one (about 130 s on 2 cores), ours, the default search, in another (45-80
s); both marked slow, kept out of CI for its 15 minutes. The rest reads or writes small
synthetic files, in seconds.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, module_env

SCRIPT = ROOT / "benchmarks" / "peers.py"
SEARCHERS = ["ours", "hyperband", "random", "bayesian", "optuna"]
PEERS = SEARCHERS[1:]
MINUTES = 0.5
SHAPES = list(itertools.product((1, 2, 3, 4), (32, 64), (False, True)))


def peers(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=module_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def yardstick_score(blocks: int, filters: int, skip: bool, seed: int = 0) -> float:
    """A made-up yardstick: deeper, wider and residual is better; 4 x 64 skip on is best."""
    return 0.90 + 0.004 * blocks + 0.003 * (filters == 64) + 0.001 * skip + 0.0005 * seed


def write_yardstick(path: Path, **setting) -> Path:
    fields = [
        "blocks",
        "filters",
        "skip",
        "seed",
        "peak_lr",
        "epochs",
        "train_images",
        "weight_decay",
        "augment",
        "bn_momentum",
        "val_accuracy",
        "val_accuracy_tta",
    ]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for (blocks, filters, skip), seed in itertools.product(SHAPES, (0, 1)):
            score = yardstick_score(blocks, filters, skip, seed)
            writer.writerow(
                {
                    "blocks": blocks,
                    "filters": filters,
                    "skip": skip,
                    "seed": seed,
                    "peak_lr": setting.get("peak_lr", 0.05) if seed else 0.05,
                    "epochs": 32,
                    "train_images": 48000,
                    "weight_decay": 0.01,
                    "augment": "flip,translate,erase",
                    "bn_momentum": 0.9,
                    "val_accuracy": score - 0.002,
                    "val_accuracy_tta": score,
                }
            )
    return path


def shape_mean(blocks, filters, skip) -> float:
    return statistics.mean(
        yardstick_score(int(blocks), int(filters), skip == "True", s) for s in (0, 1)
    )


BEST = shape_mean(4, 64, "True")


def read(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def yardstick(tmp_path_factory) -> Path:
    return write_yardstick(tmp_path_factory.mktemp("yardstick") / "yardstick.csv")


def tiny_args(data_dir: Path, folder: Path, searchers: list[str], minutes: float) -> list[str]:
    return [
        *("--data-dir", str(data_dir), "--subset", "300", "--seeds", "0"),
        *("--searchers", ",".join(searchers), "--minutes", str(minutes)),
        *("--precision", "float32", "--yardstick", str(folder.parent / "yardstick.csv")),
        *("--out", str(folder / "peers.csv"), "--work-dir", str(folder / "work")),
    ]


@pytest.fixture(scope="module")
def tiny_run(data_dir, tmp_path_factory):
    """The four peers on seed 0: 300 training images, MINUTES each (one subprocess)."""
    folder = tmp_path_factory.mktemp("peers")
    write_yardstick(folder.parent / "yardstick.csv")
    args = tiny_args(data_dir, folder, PEERS, MINUTES)
    proc = peers(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder, args


def check_rows(folder: Path, searchers: list[str], budget_s: float) -> None:
    """Each row: the setup, a measured wall time, a pick scored on the yardstick, and the
    picks over time ending at the row's pick."""
    rows = read(folder / "peers.csv")
    assert [r["searcher"] for r in rows] == searchers
    picks = read(folder / "peers_picks.csv")
    for r in rows:
        assert r["seed"] == "0" and r["subset"] == "300" and r["trial_images"] == "300"
        assert r["precision"] == "float32" and r["recipe"] == "search"
        assert float(r["budget_s"]) == budget_s
        assert 0 < float(r["wall_s"]) < budget_s + 60  # the budget, and the last trial's end
        assert int(r["trials_finished"]) >= 1, r
        assert int(r["blocks"]) in (1, 2, 3, 4) and int(r["filters"]) in (32, 64)
        assert r["skip"] in ("True", "False")
        assert 1e-3 <= float(r["learning_rate"]) <= 0.1
        assert 0 <= float(r["own_val_accuracy"]) <= 1 and r["own_val_kind"]
        score = shape_mean(r["blocks"], r["filters"], r["skip"])
        assert float(r["yardstick_score"]) == pytest.approx(score, abs=1e-5)
        assert float(r["regret"]) == pytest.approx(BEST - score, abs=1e-5)
        assert float(r["gflops"]) > 0
        mine = [p for p in picks if p["searcher"] == r["searcher"]]
        seconds = [float(p["seconds"]) for p in mine]
        assert mine and seconds == sorted(seconds) and seconds[-1] <= float(r["wall_s"])
        last = mine[-1]
        assert [last[k] for k in ("blocks", "filters", "skip")] == [
            r[k] for k in ("blocks", "filters", "skip")
        ]


@pytest.mark.slow
def test_every_peer_writes_its_row(tiny_run):
    folder, _ = tiny_run
    check_rows(folder, PEERS, MINUTES * 60)


@pytest.mark.slow
def test_ours_runs_the_default_search_in_the_budget(data_dir, tmp_path):
    """Ours is `python -m tuning.search` in a subprocess: its budget is --time-budget, which
    its own start-up counts against, so it gets 0.5 min (the test takes 45-80 s on 2 cores;
    test_ours_command_and_pick below covers its parts in no time)."""
    folder = tmp_path / "ours"
    folder.mkdir()
    write_yardstick(tmp_path / "yardstick.csv")
    proc = peers(*tiny_args(data_dir, folder, ["ours"], 0.5))
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_rows(folder, ["ours"], 30.0)
    log = (folder / "work" / "ours" / "seed0" / "search.log").read_text()
    assert "time budget 0.5 min" in log


def test_ours_command_and_pick(tmp_path):
    """What ours passes to tuning.search, and how it reads best.json's pick."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from peerlib import ours
    from peerlib.common import RECIPES, Job

    job = Job(3, 90.0, "float32", RECIPES["search"], tmp_path, "DATA", 300, None)
    cmd = ours.command(job)
    assert cmd[1:3] == ["-m", "tuning.search"]
    flags = dict(zip(cmd[3:-1], cmd[4:], strict=True))  # each flag and what follows it
    assert flags["--seed"] == "3" and flags["--time-budget"] == "1.5"
    assert flags["--precision"] == "float32" and flags["--subset"] == "300"
    assert flags["--data-dir"] == "DATA" and "--overwrite" in cmd
    job.budget_s, job.subset, job.data_dir = None, None, None
    assert not {"--time-budget", "--subset", "--data-dir"} & set(ours.command(job))

    best = tmp_path / "best.json"
    assert ours.read_pick(best) is None  # not written yet
    hp = {"blocks": 2, "filters": 64, "skip": True, "learning_rate": 0.01}
    record = {"hyperparameters": hp, "val_accuracy": 0.88, "trials_completed": 17}
    best.write_text(json.dumps(record))
    assert ours.read_pick(best) == (hp, 0.88, "the trial's best epoch (Hyperband)", 17)
    record["confirmation"] = {"winner": {"mean": 0.91}}
    best.write_text(json.dumps(record))
    assert ours.read_pick(best)[1:3] == (0.91, "the confirmation's mean over its seeds")


@pytest.mark.slow
def test_a_rerun_adds_no_row(tiny_run):
    folder, args = tiny_run
    before = (folder / "peers.csv").read_text(), (folder / "peers_picks.csv").read_text()
    proc = peers(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nothing to run" in proc.stdout
    assert ((folder / "peers.csv").read_text(), (folder / "peers_picks.csv").read_text()) == before


@pytest.mark.slow
def test_the_report_on_the_tiny_run(tiny_run):
    folder, _ = tiny_run
    yardstick = folder.parent / "yardstick.csv"
    proc = peers("--report", "--out", str(folder / "peers.csv"), "--yardstick", str(yardstick))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in PEERS:
        assert f"| {name} | 0 |" in proc.stdout
    assert (folder / "peers_regret.png").read_bytes()[:4] == b"\x89PNG"


# --- the report, on synthetic CSVs ----------------------------------------------------------


def synthetic(folder: Path) -> tuple[Path, dict[str, list[float]]]:
    """Two searchers x three seeds, and the regrets (points) the report must find."""
    picked = {
        "ours": [(4, 64, True), (3, 64, True), (4, 64, False)],
        "optuna": [(1, 32, False), (2, 64, True), (4, 64, True)],
    }
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from peerlib.table import FIELDS as fields
    from peerlib.table import PICK_FIELDS as pick_fields

    rows, picks, regrets = [], [], {}
    for name, shapes in picked.items():
        for seed, (blocks, filters, skip) in enumerate(shapes):
            rows.append(
                {
                    "searcher": name,
                    "seed": seed,
                    "subset": "",
                    "trial_images": 12000,
                    "recipe": "search",
                    "precision": "float32",
                    "budget_s": 600,
                    "wall_s": 600,
                    "trials_finished": 10,
                    "blocks": blocks,
                    "filters": filters,
                    "skip": skip,
                    "learning_rate": 0.01,
                    "own_val_accuracy": 0.9,
                    "own_val_kind": "x",
                    "yardstick_score": "",
                    "regret": "",
                    "gflops": 300,
                    "finished_at": "",
                }
            )
            # an early pick of 1 x 32 skip off, then the final one at minute 5
            for seconds, shape in ((60, (1, 32, False)), (300, (blocks, filters, skip))):
                picks.append(
                    {
                        "searcher": name,
                        "seed": seed,
                        "seconds": seconds,
                        "blocks": shape[0],
                        "filters": shape[1],
                        "skip": shape[2],
                        "learning_rate": 0.01,
                        "own_val_accuracy": 0.9,
                    }
                )
            regrets.setdefault(name, []).append(
                100 * (BEST - shape_mean(blocks, filters, str(skip)))
            )
    for path, names, content in (
        (folder / "peers.csv", fields, rows),
        (folder / "peers_picks.csv", pick_fields, picks),
    ):
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(content)
    return folder / "peers.csv", regrets


def test_report_mean_worst_and_t_interval(tmp_path, yardstick):
    from scipy import stats

    out, regrets = synthetic(tmp_path)
    plot = tmp_path / "regret.png"
    proc = peers("--report", "--out", str(out), "--yardstick", str(yardstick), "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    for name, values in regrets.items():
        mean = statistics.mean(values)
        half = stats.t.ppf(0.975, 2) * statistics.stdev(values) / math.sqrt(3)
        expected = (
            f"| {name} | 0, 1, 2 | {mean:.2f} ({mean - half:.2f} to {mean + half:.2f}) | "
            f"{max(values):.2f} | 10.0 | 10.0 | 0.9000 |"
        )
        assert expected in proc.stdout, proc.stdout
    assert f"plot: {plot}" in proc.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_report_regret_curve_steps_with_the_picks(tmp_path, yardstick):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    from peerlib import report
    from peerlib.yardstick import Yardstick

    out, regrets = synthetic(tmp_path)
    summary = report.load(out, tmp_path / "peers_picks.csv", Yardstick.read(yardstick))
    curves = summary.curves(np.array([0.5, 1.0, 4.9, 5.0, 10.0]))
    early = 100 * (BEST - shape_mean(1, 32, "False"))
    mean, per_seed = curves["optuna"]
    assert len(per_seed) == 3
    assert math.isnan(mean[0])  # no pick yet
    assert mean[1:3] == pytest.approx([early, early])
    assert mean[3:] == pytest.approx([statistics.mean(regrets["optuna"])] * 2)


def test_report_without_a_yardstick_uses_the_rows(tmp_path):
    out, _ = synthetic(tmp_path)
    proc = peers("--report", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "no regret: give --yardstick" in proc.stdout
    assert "no plot" in proc.stdout


# --- what is refused, in one line and exit status 2, before anything runs ---------------


def test_default_budget_is_ours_wall_time_on_the_seed(tmp_path, yardstick):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from peerlib.runner import Benchmark, Plan

    out, _ = synthetic(tmp_path)
    plan = Plan(
        ["ours", "optuna", "random"],
        [0, 1, 2],
        None,
        None,
        None,
        "float32",
        "search",
        out,
        tmp_path / "peers_picks.csv",
        tmp_path / "work",
        None,
    )
    bench = Benchmark(plan)
    # ours and optuna are done on seeds 0-2; random remains, at ours' wall time
    assert bench.todo == [(0, "random"), (1, "random"), (2, "random")]
    assert bench.budget("random", 1) == 600.0
    assert bench.budget("ours", 1) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--searchers", "ours,grid"], "--searchers: unknown grid"),
        (["--seeds", "0,x"], "--seeds must be comma-separated integers"),
        (["--minutes", "-1"], "--minutes must be a positive number"),
        (["--searchers", "random", "--seeds", "7"], "no budget for seed 7"),
        (["--subset", "300", "--minutes", "1"], "holds rows with subset none, not 300"),
        (["--recipe", "lab", "--minutes", "1"], "holds rows with recipe search, not lab"),
        (["--yardstick", "MIXED", "--report"], "mixes 2 training settings"),
        (["--yardstick", "MISSING", "--report"], "cannot read the yardstick"),
        (["--data-dir", "NOWHERE", "--minutes", "1"], "does not exist or is not a folder"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out, _ = synthetic(tmp_path)
    mixed = write_yardstick(tmp_path / "mixed.csv", peak_lr=0.1)
    names = {
        "MIXED": str(mixed),
        "MISSING": str(tmp_path / "no.csv"),
        "NOWHERE": str(tmp_path / "nowhere"),
    }
    args = [names.get(a, a) for a in args]
    proc = peers(*args, "--out", str(out), "--work-dir", str(tmp_path / "work"), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "work").exists()
