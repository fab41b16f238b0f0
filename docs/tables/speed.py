"""The speed page's tables (docs/results/speed.md): benchmark outputs transcribed one row per
measured network, variant or run, each with the precision it ran in."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .core import Row, mean, read_rows, table, transcribed, where

PLAN_EPOCHS = 75  # the default Hyperband plan (max_epochs 9, factor 3): 23 trials, 75 epochs


def csv_of(name: str) -> str:
    return f"docs/results/speed_{name}.csv"


def epoch_cost(root: Path) -> str:
    rows = read_rows(root, csv_of("epoch_cost"))
    body = [
        [
            r["blocks"],
            r["filters"],
            f"{r['params']:,}",
            f"{r['s_per_step']:.3f}",
            f"{r['epoch_s']:.1f} s",
            r["precision"],
        ]
        for r in rows
    ]
    epochs = [float(r["epoch_s"]) for r in rows]
    hours = [PLAN_EPOCHS * e / 3600 for e in (mean(epochs), min(epochs), max(epochs))]
    headers = ["blocks", "filters", "params", "s/step", "epoch (48k train + 12k valid)"]
    return (
        f"{table([*headers, 'precision'], body)}\n\nMean epoch over the space: "
        f"{mean(epochs):.1f} s; the default plan's {PLAN_EPOCHS} epochs: about "
        f"{hours[0]:.1f} h on this machine (range {hours[1]:.1f}–{hours[2]:.1f} h)."
    )


def overhead_cell(r: Row) -> str:
    wall = float(r["process_wall_s"])
    return f"{100 * (wall - float(r['epochs_s'])) / wall:.1f}%"


def throughput(root: Path, run: str) -> str:
    rows = where(read_rows(root, csv_of("throughput")), run=run)
    meta = where(read_rows(root, csv_of("throughput_runs")), run=run)[0]
    rounds = any(r["rounds"] != "" for r in rows)
    headers = ["variant", "precision", "images/s", "vs lab", "model GFLOP/s"]
    body = [
        [
            f"`{r['variant']}`",
            r["precision"],
            r["images_per_s"],
            f"{r['vs_lab']:.2f}×",
            f"{r['model_gflops']:.1f}",
        ]
        + [r["rounds"]] * rounds
        for r in rows
    ]
    return (
        f"{table(headers + ['rounds (images/s)'] * rounds, body)}\n\n"
        f"Median of {meta['rounds']} alternating rounds, 12,800 images per pass, batch 256. "
        f"Matmul peak (2048²): float32 {meta['matmul_float32_gflops']:.1f} GFLOP/s, bfloat16 "
        f"{meta['matmul_bfloat16_gflops']:.1f}; `ours` reaches {meta['peak_share_pct']}% of "
        f"the peak at its precision. The lab's preprocessing (StandardScaler, once): "
        f"{meta['preprocessing_s']:.2f} s."
    )


def short_trials(root: Path) -> str:
    """As printed (the overheads from the unrounded times, which the CSV keeps rounded)."""
    r = read_rows(root, csv_of("short_trials"))[0]
    return table(["measure", "value"], [
        ["trials, subset, max_epochs", f"{r['trials']}, {r['subset']}, {r['max_epochs']}"],
        ["precision", r["precision"]],
        ["search wall time", f"{r['search_wall_s']:.1f} s"],
        ["sum of trial wall times", f"{r['trials_sum_s']:.1f} s"],
        ["sum of epoch times (pure)", f"{r['epochs_sum_s']:.1f} s"],
        ["overhead, whole search", f"{r['overhead_search_pct']:.1f}%"],
        ["overhead, inside trials", f"{r['overhead_trials_pct']:.1f}%"],
        ["start-up (data, build check, calibration)", f"{r['startup_s']:.1f} s"],
    ])  # fmt: skip


def estimate_code(r: Row) -> str:
    note = f" ({r['note']})" if r["note"] else ""
    return f"`{r['code']}`{note}" + (f", `--seed {r['seed']}`" if r["seed"] else "")


# The tables that show a CSV's rows one for one: CSV name -> its columns.
ROWS = {
    "estimate": [("code", estimate_code), ("printed estimate", "{estimate_min} min"),
                 ("wall time", "{wall_min:.1f} min")],
    "memory": [("", "{variant}"), ("RSS after trial 10 (warm-up)", "{rss_trial10_mb:.1f} MB"),
               ("after trial 40", "{rss_trial40_mb:.1f} MB"),
               ("growth over 30 trials", "**{growth_pct:+.2f}%** ({note})")],
    "overhead": [("code", lambda r: f"`{r['code']}` ({r['note']})"),
                 ("process wall", "{process_wall_s:.1f} s"),
                 ("sum of 75 epochs", "{epochs_s:.1f} s"), ("sum of 23 trials", "{trials_s:.1f} s"),
                 ("inside trials, per trial", "{inside_per_trial}"),
                 ("start-up", "{startup_s:.1f} s"), ("**overhead**", overhead_cell)],
    "fit_teardown": [("pipeline", "`{pipeline}`"), ("fits", "{fits}"), ("total s", "{total_s:.2f}"),
                     ("median s", "{median_s:.3f}"), ("max s", "{max_s:.2f}"),
                     ("fits > 0.1 s", "{fits_over_100ms}")],
    "distributed": [("setup", "{setup}"), ("round", "{round}"), ("wall time", "{seconds:.1f} s")],
}  # fmt: skip
PRECISION = ("precision", "{precision}")
TABLES = {
    "speed_epoch_cost": epoch_cost,
    "speed_short_trials": short_trials,
    **{f"speed_throughput_{run}": partial(throughput, run=run)
       for run in ("761de1a", "0ea413c", "b65351f")},
    **{f"speed_{name}": partial(transcribed, relative=csv_of(name), columns=[*cols, PRECISION])
       for name, cols in ROWS.items()},
}  # fmt: skip
