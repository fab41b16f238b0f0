"""Figures drawn from committed CSVs into docs/img/.

A page holds ``<!-- figure:NAME -->`` ... ``<!-- /figure -->``; the block is the image link
and the SHA-256 of the CSVs it was drawn from. ``--check`` compares the block (so a changed
CSV shows) and that the image exists, not the image's bytes, which vary across Matplotlib
versions.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from . import pick
from .core import read_rows, where

LAB = "docs/results/lab_runs.csv"
BN = "docs/accuracy_bn.csv"


def _figure(width: float = 6.4, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def lab_curves(root: Path, path: Path) -> None:
    """The lab's configuration per epoch, float32 against bfloat16, three seeds."""
    rows = where(read_rows(root, LAB), epochs=5)
    fig, ax = _figure()
    for r in rows:
        if r["docs_commit"] == "4a7d66b":
            continue  # the session-4 rerun of seed 0: the same curve again
        curve = [float(v) for v in str(r["val_curve"]).split()]
        style = "-" if r["precision"] == "float32" else "--"
        ax.plot(
            range(1, len(curve) + 1),
            curve,
            style,
            marker="o",
            ms=3,
            color=f"C{r['seed']}",
            label=f"seed {r['seed']}, {r['precision']}",
        )
    ax.axhline(0.8455, color="grey", lw=0.8, ls=":", label="the lab's 0.8455")
    ax.set(xlabel="epoch", ylabel="validation accuracy", xticks=range(1, 6))
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def bn_one_epoch(root: Path, path: Path) -> None:
    """One epoch of each network: validation accuracy at momentum 0.99 against 0.9."""
    rows = where(read_rows(root, BN), epochs=1)
    fig, ax = _figure()
    names: list[str] = []
    for r in where(rows, setting="lr0.01_bn0.99") + where(rows, setting="lr0.03_bn0.99"):
        lr = str(r["setting"]).split("_")[0]
        match = {k: r[k] for k in ("seed", "blocks", "filters", "skip")}
        fast = where(rows, setting=f"{lr}_bn0.9", **match)[0]
        label = f"{r['blocks']} × {r['filters']}, skip {'on' if r['skip'] else 'off'}"
        first = label not in names
        names += [label] * first
        ax.scatter(
            r["val_accuracy"],
            fast["val_accuracy"],
            s=14,
            label=label if first else None,
            marker="o" if lr == "lr0.01" else "^",
            color=f"C{names.index(label)}",
        )
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(
        xlabel="val accuracy, batch-norm momentum 0.99",
        xlim=(0.1, 0.9),
        ylim=(0.1, 0.9),
        ylabel="momentum 0.9",
        title="one-epoch trials (o: lr 0.01, ^: lr 0.03)",
    )
    ax.legend(fontsize=7)
    _save(fig, path)


FIGURES: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...], str]] = {
    "lab_curves": (lab_curves, (LAB,), "validation accuracy per epoch, float32 and bfloat16"),
    "bn_one_epoch": (bn_one_epoch, (BN,), "one-epoch validation accuracy, momentum 0.99 vs 0.9"),
    "rungs": (
        pick.rung_figure,
        (pick.YARDSTICK, pick.RUNGS),
        "Spearman of each rung against the yardstick, per trial recipe",
    ),  # fmt: skip
}


def digest(root: Path, sources: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for s in sources:
        h.update((root / s).read_bytes())
    return h.hexdigest()[:16]


def image(root: Path, name: str) -> Path:
    return root / "docs" / "img" / f"{name}.png"


def block(root: Path, page: Path, name: str, draw: bool) -> str:
    fn, sources, alt = FIGURES[name]
    if draw:
        fn(root, image(root, name))
    link = Path(os.path.relpath(image(root, name), page.parent)).as_posix()
    note = f"<!-- drawn from {', '.join(sources)}: sha256 {digest(root, sources)} -->"
    return f"![{alt}]({link})\n{note}"


def missing(root: Path, names: set[str]) -> list[str]:
    """The figures among ``names`` whose image is not there."""
    return [f"docs/img/{n}.png (missing)" for n in sorted(names) if not image(root, n).is_file()]
