"""The report: regret per searcher over seeds, and regret against minutes.

Reads only the CSVs (no TensorFlow). With a yardstick, every regret is recomputed from it;
without one, the rows' own ``regret`` column is used where it was filled in.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np

from peerlib import table
from peerlib.common import UsageError
from peerlib.runner import SEARCHERS
from peerlib.yardstick import Yardstick

POINTS = 100.0  # regret is shown in points of accuracy


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half width of its 95% t interval (NaN for a single value)."""
    from scipy import stats

    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, float(half)


def number(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


class Report:
    def __init__(self, rows: list[dict], picks: list[dict], yardstick: Yardstick | None) -> None:
        if not rows:
            raise UsageError("no rows to report on (run the benchmark first, or give --out)")
        self.rows, self.picks, self.yardstick = rows, picks, yardstick

    def regret(self, r: dict) -> float:
        if self.yardstick is None:
            return number(r.get("regret", ""))
        return (
            self.yardstick.regret(r["blocks"], r["filters"], r["skip"]) if r["blocks"] else math.nan
        )

    def searchers(self) -> list[str]:
        present = {r["searcher"] for r in self.rows}
        return [s for s in SEARCHERS if s in present] + sorted(present - set(SEARCHERS))

    def table(self) -> str:
        lines = [
            "| searcher | seeds | regret, mean (95% t interval), points | worst regret, points "
            "| trials | minutes | own validation score |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in self.searchers():
            rows = sorted(
                (r for r in self.rows if r["searcher"] == s), key=lambda r: int(r["seed"])
            )
            regrets = [POINTS * self.regret(r) for r in rows]
            known = [x for x in regrets if math.isfinite(x)]
            if known:
                mean, half = t_interval(known)
                band = f" ({mean - half:.2f} to {mean + half:.2f})" if math.isfinite(half) else ""
                regret, worst = f"{mean:.2f}{band}", f"{max(known):.2f}"
                if len(known) < len(rows):
                    regret += f" ({len(rows) - len(known)} without a pick or a yardstick score)"
            else:
                regret = worst = "-"
            own = [x for x in (number(r["own_val_accuracy"]) for r in rows) if math.isfinite(x)]
            lines.append(
                f"| {s} | {', '.join(r['seed'] for r in rows)} | {regret} | {worst} | "
                f"{statistics.mean(int(r['trials_finished']) for r in rows):.1f} | "
                f"{statistics.mean(number(r['wall_s']) for r in rows) / 60:.1f} | "
                f"{statistics.mean(own) if own else math.nan:.4f} |"
            )
        if self.yardstick is None and not any(math.isfinite(self.regret(r)) for r in self.rows):
            lines.append("\n(no regret: give --yardstick docs/results/yardstick.csv)")
        return "\n".join(lines)

    def curves(self, grid: np.ndarray) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
        """Per searcher: the mean regret over seeds at each minute of ``grid`` (NaN until
        every seed has a pick), and each seed's own step curve."""
        out = {}
        for s in self.searchers():
            per_seed = []
            for seed in sorted({r["seed"] for r in self.rows if r["searcher"] == s}, key=int):
                steps = sorted(
                    (
                        (number(p["seconds"]) / 60, POINTS * self.regret(p))
                        for p in self.picks
                        if p["searcher"] == s and p["seed"] == seed
                    ),
                    key=lambda x: x[0],
                )
                curve = np.full(len(grid), math.nan)
                for minute, regret in steps:
                    curve[grid >= minute] = regret
                per_seed.append(curve)
            if per_seed:
                out[s] = (np.vstack(per_seed).mean(axis=0), per_seed)  # NaN stays NaN
        return out

    def plot(self, path: Path) -> str:
        """Regret against minutes as a PNG; returns what was done, for the console."""
        if self.yardstick is None:
            return "no plot: regret against minutes needs --yardstick"
        if not self.picks:
            return "no plot: no intermediate picks recorded"
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        end = max(number(r["wall_s"]) for r in self.rows) / 60
        grid = np.linspace(0, end, 400)
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, (s, (mean, per_seed)) in enumerate(self.curves(grid).items()):
            color = f"C{i}"
            for curve in per_seed:
                ax.step(grid, curve, where="post", color=color, alpha=0.2, linewidth=0.8)
            ax.step(
                grid,
                mean,
                where="post",
                color=color,
                linewidth=2,
                label=f"{s} (mean of {len(per_seed)} seeds)",
            )
        ax.set_xlabel("minutes of search")
        ax.set_ylabel("regret on the yardstick (points)")
        ax.set_title("The pick's regret as the search goes on (thin lines: one seed)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return f"plot: {path}"


def load(out: Path, picks: Path, yardstick: Yardstick | None) -> Report:
    return Report(table.read(out), table.read(picks, table.PICK_FIELDS), yardstick)
