"""The tables of the accuracy page and the lab notebook (docs/results/accuracy.md,
docs/notebook.md): lever CSVs of ``benchmarks/accuracy_levers.py`` and the pipeline runs."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .core import Row, by_seed, per_seed, read_rows, shape, table, transcribed, where
from .levers import compare, levers

LEVERS = "docs/accuracy_levers.csv"
FINAL = "docs/accuracy_final.csv"
PIPELINES = "docs/results/pipeline_runs.csv"
DETAIL = "docs/results/pipeline_detail.csv"
CONFIRM = "docs/results/confirm_runs.csv"
PHASES_1_2 = [
    "base",
    "nesterov",
    "cosine",
    "cosine_lr0.05",
    "wd5e-4",
    "ls0.1",
    "batch128",
    "c05_wd5e-4",
    "c05_ls0.1",
    "c05_flip",
    "c05_erase",
    "c05_translate",
    "c05_flip_erase",
    "c05_flip_translate",
]
NET_2X64 = {"blocks": 2, "filters": 64, "skip": False, "epochs": 36}
NET_1X64 = {"blocks": 1, "filters": 64, "skip": False, "epochs": 28}


def test_cell(r: Row) -> str:
    if r["tta"] == "flip":
        loss = "" if r["test_loss"] in ("", None) else f"; loss {r['test_loss']:.3f}"
        return (
            f"**{r['test_accuracy']:.4f}** with flip TTA "
            f"({r['test_accuracy_single_view']:.4f} single view{loss})"
        )
    return f"**{r['test_accuracy']:.4f}** (loss {r['test_loss']:.3f})"


def commit_cell(r: Row) -> str:
    return f"`{r['commit']}`" + (f", `--seed {r['seed']}`" if r["seed"] else "")


def pipelines(root: Path) -> str:
    columns = [
        ("commit", commit_cell),
        ("what changed", "{change}"),
        ("search", "{search}"),
        ("best trial (val accuracy, lineage epochs)", "{best}"),
        ("finalize", "{finalize}"),
        ("**test accuracy**", test_cell),
    ]
    return transcribed(root, PIPELINES, columns)


def detail(root: Path, commit: str) -> str:
    single = ("single view", "{test_accuracy_single_view:.4f}")
    test = ("**test, flip TTA**", "**{test_accuracy:.4f}** (loss {test_loss:.3f})")
    if commit == "2de9f59":
        columns = [
            ("seed", "{seed}"),
            ("search", "{search}"),
            ("Hyperband's top three (val, lineage epochs)", "{hyperband_top3}"),
            ("confirmed (2 seeds)", "{confirmed}"),
            ("finalize", "{finalize}"),
            ("total", "{total}"),
            test,
            single,
        ]
    else:
        columns = [
            ("seed", "{seed}"),
            ("search (trials + confirmation)", "{search}"),
            ("confirmed winner (2 seeds)", "{confirmed}"),
            ("runner-up, paired difference (95% CI)", "{runner_up}"),
            ("finalize", "{finalize}"),
            ("total", "{total}"),
            test,
            single,
        ]
    return transcribed(root, DETAIL, columns, commit=commit)


# The commits whose default pipeline is today's (55b88c2 changed no pipeline behaviour since
# 7e7e5d4; its seed-2 row was measured by the session that filed issue 24, as a new user).
LATEST = ("7e7e5d4", "55b88c2")


def latest(root: Path) -> str:
    """The README's table: every seed measured with today's default pipeline, the worst
    included (issue 24: the spread, not the best seed)."""
    rows = read_rows(root, DETAIL)
    last = [r for r in rows if r["commit"] in LATEST]
    return table(
        ["code", "seed", "network (the confirmed winner)", "search + finalize", "test accuracy"],
        ([f"`{r['commit']}`", r["seed"], network(r), r["total"], test_cell(r)] for r in last),
    )


def network(r: Row) -> str:
    """'3 × 64, skip off' out of the confirmed-winner cell ('0018: 3 × 64, skip off, ...')."""
    return ", ".join(str(r["confirmed"]).split(": ")[1].split(", ")[:2])


def floor(root: Path) -> str:
    """Phase 8: each confirmation candidate's trainings before the floor and with it."""
    rows = read_rows(root, CONFIRM)
    out = []
    for before in where(rows, commit="2de9f59", seed_index=0):
        key = {k: before[k] for k in ("search_seed", "blocks", "filters", "skip", "searched_lr")}
        old = by_seed(
            [{**r, "seed": r["seed_index"]} for r in where(rows, commit="2de9f59", **key)]
        )
        new_rows = where(rows, commit="7e7e5d4", **key)
        new = by_seed([{**r, "seed": r["seed_index"]} for r in new_rows])
        p0, p1 = before["peak_lr"], new_rows[0]["peak_lr"]
        out.append(
            [
                before["search_seed"],
                f"{before['blocks']} × {before['filters']} ({before['searched_lr']:g})",
                f"{p0:g}" if p0 == p1 else f"{p0:g} → {p1:g}",
                per_seed(old.values()),
                "the same" if new == old else per_seed(new.values()),
            ]
        )
    headers = ["seed", "candidate (searched rate)", "peak before → now"]
    return table([*headers, "confirmed, 2 seeds, before", "now"], out)


def one_epoch_bn(root: Path) -> str:
    """Phase 7: batch-norm momentum 0.99 against 0.9 in the trials' recipe, both seeds."""
    rows = read_rows(root, "docs/accuracy_bn.csv")
    seen, out = [], []
    for r in rows:
        lr = str(r["setting"]).split("_")[0]
        key = (r["blocks"], r["filters"], r["skip"], r["epochs"], lr)
        if key in seen:
            continue
        seen.append(key)
        net = {k: r[k] for k in ("blocks", "filters", "skip", "epochs")}
        slow, fast = (where(rows, setting=f"{lr}_bn{m}", **net) for m in ("0.99", "0.9"))
        train = [by_seed(g, "train_accuracy") for g in (slow, fast)]
        both = per_seed(train[0].values(), 3) + (
            "" if train[0] == train[1] else f" (0.9: {per_seed(train[1].values(), 3)})"
        )
        out.append(
            [
                shape(r),
                r["epochs"],
                lr[2:],
                per_seed(by_seed(slow).values()),
                per_seed(by_seed(fast).values()),
                both,
            ]
        )
    headers = ["network", "epochs", "lr", "val accuracy, momentum 0.99", "momentum 0.9"]
    return table([*headers, "training accuracy (both)"], out)


def final_rows(net: dict, *rows: tuple[str, str]) -> list[tuple[str, dict]]:
    """(label, setting) pairs of one network of accuracy_final.csv as compare() rows."""
    return [(label, {"setting": setting, **net}) for label, setting in rows]


# name: (CSV, first column's header, the reference's short name, [(label, match), ...])
COMPARISONS = {
    "epochs": ("docs/accuracy_epochs.csv", "epochs", "16 epochs",
               [("16 (2 × the trial's 8)", {"epochs": 16}), ("32 (4 ×)", {"epochs": 32})]),
    "phase5": (FINAL, "setting (epochs)", "18 epochs", [
        ("flip + erase, 18 (2 × lineage; the old default)", {"setting": "fe_lr0.05", "epochs": 18}),
        ("flip + erase, 36 (4 ×)", {"setting": "fe_lr0.05", "epochs": 36}),
        ("flip + **translate** + erase, 36 (4 ×)", {"setting": "fe_lr0.05_translate"})]),
    "phase6": (FINAL, "weight decay", "none", final_rows(
        NET_2X64, ("none (phase 5's default)", "fe_lr0.05_translate"), ("5e-3", "fet_wd5e-3"),
        ("**1e-2** (the default)", "fet_wd1e-2"), ("2e-2", "fet_wd2e-2"))),
    "seed1_candidates": (FINAL, "network (seed-1 rank), epochs", "2 × 64", [
        ("2 × 64, skip off, peak 0.05 (seed 0's winner), 36",
         {"setting": "fet_wd1e-2", "seed": 0, **NET_2X64}),
        ("1 × 64, skip off, peak 0.0443 (1, the winner), 28", {"setting": "fet_wd1e-2_lr0.04426"}),
        ("1 × 32, skip on, peak 0.0934 (2), 28", {"setting": "fet_wd1e-2_lr0.09344"}),
        ("3 × 32, skip off, peak 0.0390 (3), 36", {"setting": "fet_wd1e-2_lr0.039"})]),
    "seed1_peak": (FINAL, "peak", "0.05", final_rows(
        NET_2X64, ("0.05 (phase 6's `fet_wd1e-2`)", "fet_wd1e-2"),
        ("0.024 (seed 1's winner)", "fet_wd1e-2_lr0.02403"),
        ("0.1 (the cap; `fet_wd1e-2_lr0.1`)", "fet_wd1e-2_lr0.1"))),
    "phase8_check": (FINAL, "peak", "0.05", final_rows(
        NET_1X64, ("0.05 (`fet_wd1e-2`)", "fet_wd1e-2"),
        ("0.0144 (4 × the searched rate)", "fet_wd1e-2_lr0.0144"))),
}  # fmt: skip
COVERAGE = [
    ("Hyperband iterations (fresh samples)", "{hyperband_iterations} ({fresh_samples})"),
    ("sampler", "{sampler}"), ("P(no 2 × 64 at all)", "{p_no_2x64:.3f}"),
    ("P(no 2 × 64 at lr 0.005–0.05)", "{p_no_2x64_mid_lr:.3f}"),
    ("shapes seen of 16", "{shapes_seen:.2f}"),
    ("samples of the rarest shape", "{rarest_shape_samples:.2f}"),
]  # fmt: skip


def phase_1_2_reference(name: str) -> str:
    """Phase 1 compares with the base setting; phase 2 (``c05_``) with cosine at lr 0.05."""
    return "cosine_lr0.05" if name.startswith("c05_") else "base"


TABLES = {
    "levers": partial(levers, relative=LEVERS, settings=PHASES_1_2,
                      reference=phase_1_2_reference),
    "levers_long": partial(levers, relative="docs/accuracy_levers_long.csv",
                           settings=["cosine_lr0.05", "c05_flip_erase"],
                           reference=phase_1_2_reference),
    "peak_lr": partial(levers, relative="docs/accuracy_peak_lr.csv",
                       settings=["fe_lr0.0125", "fe_lr0.05", "fe_lr0.1"],
                       reference=lambda name: "fe_lr0.0125"),
    **{name: partial(compare, relative=csv_path, label=label, ref=ref, rows=rows)
       for name, (csv_path, label, ref, rows) in COMPARISONS.items()},
    "pipelines": pipelines,
    "pipeline_phase7": partial(detail, commit="2de9f59"),
    "pipeline_phase8": partial(detail, commit="7e7e5d4"),
    "pipeline_latest": latest,
    "floor_confirm": floor,
    "bn_one_epoch": one_epoch_bn,
    "sampling_coverage": partial(
        transcribed, relative="docs/results/sampling_coverage.csv", columns=COVERAGE
    ),
}  # fmt: skip
