"""The docs' evidence: every generated table and figure is up to date with its CSV.

``docs/regenerate.py`` rewrites the blocks between ``<!-- table:NAME -->`` and
``<!-- /table -->`` (or ``figure:``) from the committed CSVs; ``--check`` fails when a page
is out of date. No training, no TensorFlow: each test takes about a second.
"""

from __future__ import annotations

import csv
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuning.rundir import records

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "regenerate.py"
BN_FIELDS = ["blocks", "filters", "skip", "seed", "peak_lr", "epochs", "train_images",
             "weight_decay", "augment", "bn_momentum", "precision", "val_accuracy",
             "val_accuracy_tta", "val_loss", "train_accuracy", "seconds", "val_curve"]  # fmt: skip


def regenerate(*args: str | Path) -> subprocess.CompletedProcess:
    """``python docs/regenerate.py ARGS`` in a fresh interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_pages(dest: Path) -> Path:
    """The pages and CSVs the script reads, copied into ``dest`` (a repository root)."""
    shutil.copy(ROOT / "README.md", dest / "README.md")
    shutil.copytree(ROOT / "docs", dest / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "benchmarks").mkdir()
    for page in (ROOT / "benchmarks").glob("*.md"):
        shutil.copy(page, dest / "benchmarks" / page.name)
    return dest


def edit_cell(path: Path, row: dict, column: str, value: str) -> None:
    """Set ``column`` of the one row matching ``row`` in a CSV."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    hits = [r for r in rows if all(r[k] == v for k, v in row.items())]
    assert len(hits) == 1, hits
    hits[0][column] = value
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_committed_pages_are_up_to_date():
    done = regenerate("--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_changed_csv_value_makes_check_fail_until_regenerated(tmp_path):
    root = copy_pages(tmp_path)
    levers = root / "docs" / "accuracy_levers.csv"
    edit_cell(levers, {"setting": "base", "seed": "0"}, "val_accuracy", "0.77777")

    check = regenerate("--check", "--root", root)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "out of date: docs/notebook.md" in check.stdout
    assert "0.7778" not in (root / "docs" / "notebook.md").read_text()  # --check writes nothing

    assert regenerate("--root", root).returncode == 0
    assert "| base | 0,1 | 0.7778 / 0.8799 |" in (root / "docs" / "notebook.md").read_text()
    assert regenerate("--check", "--root", root).returncode == 0
    # the checkout itself was not touched
    assert "0.7778" not in (ROOT / "docs" / "notebook.md").read_text()


def test_a_figure_is_out_of_date_when_its_csv_changes(tmp_path):
    """accuracy_bn.csv's seconds appear in no table, only in the figure's data digest."""
    root = copy_pages(tmp_path)
    edit_cell(
        root / "docs" / "accuracy_bn.csv",
        {"setting": "lr0.01_bn0.9", "seed": "0", "blocks": "1", "epochs": "1"},
        "seconds",
        "99.9",
    )
    check = regenerate("--check", "--root", root)
    assert check.returncode == 1
    assert check.stdout.strip() == "out of date: docs/results/accuracy.md"


def anchors(page: Path) -> Iterator[str]:
    """The heading anchors GitHub gives a page (code blocks skipped, repeats numbered)."""
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
    seen: dict[str, int] = {}
    for heading in re.findall(r"(?m)^#{1,6} (.*)$", text):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


def test_every_relative_link_in_the_docs_resolves():
    """Files moved (usage.md, accuracy.md, ablation.md, ...): links and anchors still land."""
    pages = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("benchmarks/*.md")]
    broken = []
    for page in pages:
        text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in set(anchors(target)):
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such heading)")
    assert len(pages) > 10
    assert not broken, "\n".join(broken)


def test_an_unknown_marker_is_refused(tmp_path):
    root = copy_pages(tmp_path)
    page = root / "docs" / "guide.md"
    page.write_text(page.read_text() + "\n<!-- table:no_such_table -->\n<!-- /table -->\n")
    done = regenerate("--check", "--root", root)
    assert done.returncode == 2
    assert "docs/guide.md: table 'no_such_table' is not a known table" in done.stderr


@pytest.fixture
def bn_momentum(monkeypatch):
    """The bn_momentum renderer (docs/tables/bn_momentum.py), imported from the checkout."""
    monkeypatch.syspath_prepend(str(ROOT / "docs"))
    return importlib.import_module("tables.bn_momentum")


def write_bn_rows(root: Path, runs: list[tuple[float, int, float]]) -> None:
    """bn_momentum_final.csv rows of a 2 x 32 plain network: (momentum, seed, val accuracy)."""
    path = root / "docs" / "results" / "bn_momentum_final.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=BN_FIELDS)
        writer.writeheader()
        for momentum, seed, acc in runs:
            writer.writerow({
                "blocks": 2, "filters": 32, "skip": False, "seed": seed, "peak_lr": 0.05,
                "epochs": 32, "train_images": 48000, "weight_decay": 0.01,
                "augment": "flip,translate,erase", "bn_momentum": momentum,
                "precision": "mixed_bfloat16", "val_accuracy": acc,
                "val_accuracy_tta": round(acc + 0.001, 5), "val_loss": 0.2,
                "train_accuracy": 0.95, "seconds": 100.0, "val_curve": f"0.5 {acc}",
            })  # fmt: skip


def test_bn_momentum_says_not_yet_measured_without_its_csv(tmp_path, bn_momentum):
    text = bn_momentum.render(tmp_path)
    assert text.startswith("**Not yet measured.**")
    assert "bn_momentum_final.csv" in text
    assert "|" not in text  # no table, no number


def test_bn_momentum_two_seeds_give_means_per_seed_values_and_a_paired_interval(
    tmp_path, bn_momentum
):
    write_bn_rows(tmp_path, [(0.9, 0, 0.91), (0.9, 1, 0.92), (0.99, 0, 0.90), (0.99, 1, 0.915)])
    text = bn_momentum.render(tmp_path)
    assert "| 2 × 32, skip off | 0.9 | 0,1 | 0.9100 / 0.9200 | 0.9150 | 0.9160 |" in text
    assert "| 2 × 32, skip off | 0.99 | 0,1 | 0.9000 / 0.9150 | 0.9075 | 0.9085 |" in text
    # differences 0.9 - 0.99 per seed: +0.0100, +0.0050; mean +0.0075, sd 0.003536;
    # t(0.975, 1 df) = 12.706: half-width 12.706 * 0.003536 / sqrt(2) = 0.0318
    assert (
        "0.9 − 0.99 = +0.0075 (95% CI -0.0243 to +0.0393, paired t over seeds 0, 1; "
        "per seed +0.0100 / +0.0050)" in text
    )
    assert "4 trainings" in text


def test_bn_momentum_one_seed_gives_no_interval(tmp_path, bn_momentum):
    write_bn_rows(tmp_path, [(0.9, 0, 0.93), (0.99, 0, 0.9312)])
    text = bn_momentum.render(tmp_path)
    assert "0.9 − 0.99 = -0.0012 on seed 0 alone (one seed: no interval)" in text
    assert "95% CI" not in text


def test_bn_momentum_page_fills_in_when_the_csv_arrives(tmp_path):
    root = copy_pages(tmp_path)
    page = root / "docs" / "results" / "bn_momentum.md"
    (root / "docs" / "results" / "bn_momentum_final.csv").unlink(missing_ok=True)
    assert regenerate("--root", root).returncode == 0
    assert "**Not yet measured.**" in page.read_text()

    write_bn_rows(root, [(0.9, 0, 0.91), (0.9, 1, 0.92), (0.99, 0, 0.90), (0.99, 1, 0.915)])
    check = regenerate("--check", "--root", root)
    assert check.returncode == 1
    assert "out of date: docs/results/bn_momentum.md" in check.stdout
    assert regenerate("--root", root).returncode == 0
    text = page.read_text()
    assert "Not yet measured" not in text
    assert "| 2 × 32, skip off | 0.9 | 0,1 | 0.9100 / 0.9200 | 0.9150 | 0.9160 |" in text


CODE_PATH = re.compile(r"\b((?:tuning|hypermodels)(?:\.[A-Za-z_]\w*)+)")
FILE_PATH = re.compile(r"\b((?:tuning|hypermodels|benchmarks)/[\w/]*\.py)\b")


def resolves(dotted: str) -> bool:
    """``a.b.c`` is a module, or an attribute path below the longest importable module."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_resolves_tells_a_moved_name_from_a_present_one():
    assert resolves("tuning.retrain.training.predict")
    assert resolves("hypermodels.inputs")
    assert not resolves("tuning.training.predict")  # the module moved to tuning.retrain
    assert not resolves("tuning.machine.cost.no_such_function")


def test_every_code_path_named_in_the_docs_exists():
    """The docs tell users to call ``tuning.retrain.training.predict`` and point readers to
    ``tuning/machine/cost.py``: every module, function and file path they name is there."""
    pages = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("benchmarks/*.md")]
    named: dict[str, set[str]] = {}
    for page in pages:
        text = page.read_text()
        for match in (*CODE_PATH.findall(text), *FILE_PATH.findall(text)):
            named.setdefault(match, set()).add(str(page.relative_to(ROOT)))
    assert "tuning.retrain.selection.choose_configuration" in named  # the pattern works
    missing = [
        f"{name} (in {', '.join(sorted(where))})"
        for name, where in sorted(named.items())
        if not ((ROOT / name).is_file() if "/" in name else resolves(name))
    ]
    assert not missing, "\n".join(missing)


def test_readme_stays_under_200_lines() -> None:
    """The README is a front page: the rest belongs in docs/ (issue 32 set the limit)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.fixture
def pick_tables(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "docs"))
    return importlib.import_module("tables.pick")


def write_search(
    root: Path,
    rule: str,
    seed: int,
    pick: tuple,
    candidates: list[tuple],
    images: int | None = None,
) -> None:
    """A search's small files: candidates (trial id, blocks, filters, skip, epochs), the
    first one confirmed; one 60 s trial, 120 s per confirmation training on ``images`` (None:
    the trials'), and stray confirmation rows, of another length and on other images, that a
    copied run inherits."""
    where = root / "docs" / "results" / "searches" / rule / f"seed{seed}"
    where.mkdir(parents=True)
    hp = lambda c: {"blocks": c[1], "filters": c[2], "skip": c[3], "learning_rate": 0.02}  # noqa: E731
    cands = [{"trial_id": c[0], "epochs": c[4], "hyperparameters": hp(c)} for c in candidates]
    confirmation = {"winner": {"mean": 0.91}, "candidates": cands, "seeds": 1,
                    "train_images": images or 12000}  # fmt: skip
    best = {"hyperparameters": hp(pick), "confirmation": confirmation}
    (where / "best.json").write_text(json.dumps(best))
    (where / "trials.csv").write_text("trial_id,seconds\n0000,60\n")
    first = candidates[0]
    runs = [(c, c[4], images, 120) for c in candidates]
    runs += [(first, 99, None, 1000), (first, first[4], None if images else 48000, 1000)]
    rows = [
        {"rank": 1, "trial_id": c[0], **hp(c), "seed_index": 0, "seed": 1, "epochs": epochs,
         "peak_learning_rate": 0.08, "train_images": n, "val_accuracy": 0.9, "val_loss": 0.3,
         "seconds": seconds, "status": "ok"}
        for c, epochs, n, seconds in runs
    ]  # fmt: skip
    records.write_confirm_runs(where, rows)


def test_searches_table_scores_each_rule_s_pick_on_the_yardstick(tmp_path, pick_tables):
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    (results / "yardstick.csv").write_text(
        "blocks,filters,skip,seed,val_accuracy,val_accuracy_tta,seconds\n"
        "3,64,False,0,0.94,0.9440,900\n1,32,False,0,0.93,0.9360,200\n"
        "3,64,False,1,0.94,0.9420,900\n1,32,False,1,0.93,0.9340,200\n"
    )
    assert pick_tables.searches(tmp_path).startswith("**Not yet measured.**")
    small, large = ("0003", 1, 32, False, 8), ("0007", 3, 64, False, 9)
    write_search(tmp_path, "top", 0, small, [small])
    write_search(tmp_path, "sizes", 0, large, [small, large])
    write_search(tmp_path, "both48", 0, large, [small, large], images=48000)
    write_search(tmp_path, "top", 1, large, [large])
    text = pick_tables.searches(tmp_path)
    # yardstick means: 3x64 off 0.9430 (best), 1x32 off 0.9350: regret 0.80 points;
    # minutes: 60 s + 120 s per candidate, the stray rows not counted
    assert "| 0 | top | 1x32 off | 1x32 off, lr 0.02 (0.9100) | 0.80 | 3 |" in text
    assert "| 0 | sizes | 1x32 off, 3x64 off | 3x64 off, lr 0.02 (0.9100) | 0.00 | 5 |" in text
    assert "| 0 | both48 | 1x32 off, 3x64 off | 3x64 off, lr 0.02 (0.9100) | 0.00 | 5 |" in text
    assert "| 1 | top | 3x64 off | 3x64 off, lr 0.02 (0.9100) | 0.00 | 3 |" in text
    assert "| 1 | sizes | not yet run |" in text
    assert "top: mean 0.40, worst 0.80 points over 2 seeds" in text
    assert "sizes: mean 0.00, worst 0.00 points over 1 seed" in text
