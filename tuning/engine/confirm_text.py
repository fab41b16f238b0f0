"""What the confirmation stage (``tuning.engine.confirm``) prints: what it will train, its
table and verdict."""

from __future__ import annotations

from tuning.config import SearchConfig, confirm_recipe_text
from tuning.rundir import records


def winner_verdict(difference: dict | None) -> str:
    """One plain sentence on the winner against the runner-up."""
    if difference is None:
        return "only one configuration was confirmed: there is no runner-up to compare"
    if difference["ci_low"] is None:
        return (
            "the winner is not distinguishable from the runner-up at the 5% level (one seed "
            "each gives no interval: use --confirm-seeds 2 or more)"
        )
    ci = (f"{difference['mean_diff']:+.4f}, 95% CI {difference['ci_low']:+.4f} to "
          f"{difference['ci_high']:+.4f}, paired t, n={difference['n']}")  # fmt: skip
    word = "" if difference["significant"] else "not "
    return f"the winner is {word}distinguishable from the runner-up at the 5% level ({ci})"


def summary_lines(confirmation: dict, rows: list[dict]) -> list[str]:
    """The end-of-search table: each configuration's mean ± sd, the leader's differences."""
    seeds = confirmation["seeds"]
    lines = [
        f"confirmation ({seeds} seed{'s' if seeds != 1 else ''} each; validation accuracy "
        "after the last epoch; difference: leader - this, 95% CI, paired by seed index):",
        "  rank  trial  blocks filters skip  lr       epochs  mean ± sd          difference",
    ]
    for e in sorted(confirmation["candidates"], key=lambda e: (-e["mean"], e["rank"])):
        hp, d = e["hyperparameters"], e["difference"]
        if d is None:
            diff = "leader"
        elif d["ci_low"] is None:
            diff = f"{d['mean_diff']:+.4f} (no interval)"
        else:
            diff = f"{d['mean_diff']:+.4f} ({d['ci_low']:+.4f} to {d['ci_high']:+.4f})"
        lines.append(
            f"  {e['rank']:>4}  {e['trial_id']:>5}  {hp['blocks']:>6} {hp['filters']:>7} "
            f"{'on ' if hp['skip'] else 'off'}   {hp['learning_rate']:<8.3g} {e['epochs']:>6}  "
            f"{e['mean']:.4f} ± {e['sd']:.4f}    {diff}"
            + (f"  [{e['diverged']} diverged]" if e["diverged"] else "")
        )
    winner = confirmation["winner"]
    lines.append(
        f"confirmed winner: trial {winner['trial_id']} (Hyperband rank {winner['rank']}), "
        f"{winner['mean']:.4f} ± {winner['sd']:.4f}; {confirmation['verdict']}"
    )
    best = records.best_row(rows)
    if best is not None and best["trial_id"] != winner["trial_id"]:
        lines.append(
            f"the finalizer will train trial {winner['trial_id']}, not Hyperband's best trial "
            f"{best['trial_id']} (--trial {best['trial_id']} to take that one)"
        )
    return lines


def announce(config: SearchConfig, candidates: list, todo: list, data) -> None:
    """What the stage will train, and how, before it does."""
    total = len(candidates) * config.confirm_seeds
    epochs = sum(c.epochs for c, _ in todo)
    which = f"the top {len(candidates)} configurations"
    if config.confirm_candidates != "top":
        which = (
            f"Hyperband's best in each of {config.confirm_top} network-size classes"
            + (f" and its top {config.confirm_top} ({len(candidates)} in all)"
               if config.confirm_candidates == "both" else "")
            + f", each as long as the longest lineage among them "
            f"({candidates[0].basis_epochs} epochs)"
        )  # fmt: skip
    print(
        f"confirmation: {which} x {config.confirm_seeds} "
        f"seeds, retrained from scratch on the finalizer's schedule "
        f"({confirm_recipe_text(config.trial_schedule)}{_scaled_text(candidates)}) on "
        f"{_images_text(candidates, data)}, scored on {len(data.y_valid):,} validation "
        f"images; {len(todo)} of {total} trainings to run ({epochs} epochs)",
        flush=True,
    )


def _scaled_text(candidates: list) -> str:
    scale = candidates[0].images_scale
    return "" if scale == 1.0 else f", x {scale:.3g} for the images"


def _images_text(candidates: list, data) -> str:
    if candidates[0].train_images is None:
        return f"the trials' {len(data.y_train):,} images"
    return f"{len(data.y_train):,} images of the training split (--confirm-images)"
