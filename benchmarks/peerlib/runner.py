"""The benchmark: every searcher x seed not yet in the CSV, ours first on each seed.

Each peer gets the wall time ours took on the same seed (its row), unless ``--minutes``
fixes one budget for all (ours then runs with ``--time-budget`` of the same minutes).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from peerlib import table
from peerlib.common import RECIPES, Data, Job, UsageError, gflops, load_data, resolve_precision
from peerlib.yardstick import Yardstick

SEARCHERS = ("ours", "hyperband", "random", "bayesian", "optuna")  # the order they run in


def searcher_module(name: str):
    """The module whose ``run(job)`` is the searcher (imported on first use)."""
    module = {
        "ours": "ours",
        "hyperband": "hyperband",
        "random": "random_search",
        "bayesian": "bayesian",
        "optuna": "optuna_tpe",
    }[name]
    return importlib.import_module(f"peerlib.{module}")


@dataclass
class Plan:
    searchers: list[str]
    seeds: list[int]
    minutes: float | None
    data_dir: str | None
    subset: int | None
    precision: str  # as requested (auto, float32, ...)
    recipe: str  # a key of RECIPES
    out: Path
    picks: Path
    work_dir: Path
    yardstick: Yardstick | None
    calibrate: bool = True


class Benchmark:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rows = table.read(plan.out)
        table.read(plan.picks, table.PICK_FIELDS)  # a file of other columns: refused now
        table.check_setup(plan.out, self.rows, {"subset": plan.subset, "recipe": plan.recipe})
        self.todo = [
            (seed, s)
            for seed in plan.seeds
            for s in SEARCHERS
            if s in plan.searchers and not self.done(s, seed)
        ]
        self.check_budgets()
        if any(s == "optuna" for _, s in self.todo) and not importlib.util.find_spec("optuna"):
            raise UsageError('optuna is not installed: pip install -e ".[bench]"')
        self._gflops: float | None = None
        self._data: tuple[int, Data] | None = None

    def done(self, searcher: str, seed: int) -> bool:
        return any(r["searcher"] == searcher and r["seed"] == str(seed) for r in self.rows)

    def ours_wall(self, seed: int) -> float | None:
        row = next(
            (r for r in self.rows if r["searcher"] == "ours" and r["seed"] == str(seed)), None
        )
        return float(row["wall_s"]) if row else None

    def budget(self, searcher: str, seed: int) -> float | None:
        """Seconds: --minutes for everyone, else ours' wall time (ours itself: no limit)."""
        if self.plan.minutes is not None:
            return self.plan.minutes * 60
        return None if searcher == "ours" else self.ours_wall(seed)

    def check_budgets(self) -> None:
        """Every peer to run has a budget: --minutes, or ours' row (or ours runs first)."""
        if self.plan.minutes is not None:
            return
        for seed, searcher in self.todo:
            ours_known = self.ours_wall(seed) is not None or (seed, "ours") in self.todo
            if searcher != "ours" and not ours_known:
                raise UsageError(
                    f"no budget for seed {seed}: give --minutes, or run ours on that seed "
                    "first (its wall time is the peers' budget)"
                )

    def run(self) -> int:
        """Run what is left; returns how many rows were added."""
        if not self.todo:
            print(f"nothing to run: every searcher x seed asked for is in {self.plan.out}")
            return 0
        precision = resolve_precision(self.plan.precision)
        table.check_setup(self.plan.out, self.rows, {"precision": precision})
        for seed, searcher in self.todo:
            self.run_one(searcher, seed, precision)
        return len(self.todo)

    def run_one(self, searcher: str, seed: int, precision: str) -> None:
        plan = self.plan
        budget = self.budget(searcher, seed)
        rate = self.gflops(precision)
        data = self.data(seed)  # ours loads its own; its row records the same image count
        work = plan.work_dir / searcher / f"seed{seed}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        job = Job(
            seed,
            budget,
            precision,
            RECIPES[plan.recipe],
            work,
            plan.data_dir,
            plan.subset,
            None if searcher == "ours" else data,
        )
        print(
            f"{searcher}, seed {seed}: "
            + (f"{budget / 60:.2f} min" if budget else "the default search, no budget"),
            flush=True,
        )
        outcome = searcher_module(searcher).run(job)
        images = len(data.y_train)
        row = table.row_of(searcher, job, outcome, images, plan.recipe, plan.yardstick, rate)
        table.replace_picks(plan.picks, searcher, seed, table.pick_rows(searcher, seed, outcome))
        table.append(plan.out, row)
        self.rows.append({k: str(v) for k, v in row.items()})
        if searcher != "ours":  # a tuner's checkpoints (ours' run dir stays, to finalize)
            shutil.rmtree(work, ignore_errors=True)
        regret = f", regret {row['regret']}" if row["regret"] else ""
        print(
            f"  {row['trials_finished']} trials in {outcome.wall_s / 60:.2f} min; picked "
            f"{row['blocks']} x {row['filters']}, skip {row['skip']}, lr {row['learning_rate']} "
            f"(own validation {row['own_val_accuracy'] or '-'}{regret})",
            flush=True,
        )

    def data(self, seed: int) -> Data:
        if self._data is None or self._data[0] != seed:
            self._data = (seed, load_data(self.plan.data_dir, seed, self.plan.subset))
        return self._data[1]

    def gflops(self, precision: str) -> float | None:
        """Measured once per process, before the first searcher runs (None: not asked)."""
        if self.plan.calibrate and self._gflops is None:
            self._gflops = gflops(precision)
        return self._gflops
