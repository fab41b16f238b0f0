"""The lab reproduction's tables (docs/results/lab.md): one CSV row per finalize run."""

from __future__ import annotations

from pathlib import Path

from .core import by_seed, mean, num, paired, read_rows, sd, table, where

RUNS = "docs/results/lab_runs.csv"


def float32(root: Path) -> str:
    rows = where(read_rows(root, RUNS), docs_commit="d64a388")
    val, test = by_seed(rows), by_seed(rows, "test_accuracy")
    body = [
        [r["seed"], r["val_curve"], f"{r['val_accuracy']:.4f}", f"{r['test_accuracy']:.4f}"]
        for r in rows
    ]
    v, t = list(val.values()), list(test.values())
    body.append(
        ["mean ± sd", "", f"**{num(mean(v))} ± {num(sd(v))}**", f"{num(mean(t))} ± {num(sd(t))}"]
    )
    headers = ["seed", "val accuracy per epoch (1 → 5)", "final val accuracy", "test accuracy"]
    return table(headers, body)


def bfloat16(root: Path) -> str:
    rows = read_rows(root, RUNS)
    bf = where(rows, docs_commit="f23f366")
    f32 = by_seed(where(rows, docs_commit="d64a388"))
    seeds, diffs = paired(by_seed(bf), f32)
    body = [
        [
            r["seed"],
            r["val_curve"],
            f"{r['val_accuracy']:.4f}",
            f"{f32[r['seed']]:.4f}",
            num(d, sign=True).replace("-", "−"),
            f"{r['test_accuracy']:.4f}",
        ]
        for r, d in zip(bf, diffs, strict=True)
    ]
    body.append(
        [
            "mean",
            "",
            f"**{num(mean(list(by_seed(bf).values())))}**",
            num(mean([f32[s] for s in seeds])),
            f"**{num(mean(diffs), sign=True)}**",
            num(mean(list(by_seed(bf, "test_accuracy").values()))),
        ]
    )
    headers = ["seed", "val accuracy per epoch (1 → 5), mixed_bfloat16", "final val"]
    return table([*headers, "float32 final val", "difference", "test"], body)


def fused(root: Path) -> str:
    rows = where(read_rows(root, RUNS), docs_commit="4a7d66b")
    body = [
        [
            r["seed"],
            r["precision"],
            r["val_curve"],
            f"{r['val_accuracy']:.4f}",
            f"{r['test_accuracy']:.4f}",
            r["end_to_end"],
        ]
        for r in rows
    ]
    headers = ["seed", "precision", "val accuracy per epoch (1 → 5)", "final val", "test"]
    return table([*headers, "end to end"], body)


TABLES = {"lab_float32": float32, "lab_bfloat16": bfloat16, "lab_fused": fused}
