"""Result files: atomic writes, trials.csv round trip, lineage epochs, best trial."""

from __future__ import annotations

import json

from tuning.rundir import records


def test_atomic_write_replaces_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "best.json"
    records.atomic_write_json(path, {"a": 1})
    records.atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["best.json"]


def _row(trial_id, status="COMPLETED", parent=None, initial=0, best=1, acc=0.5):
    return {
        "trial_id": trial_id,
        "status": status,
        "blocks": 2,
        "filters": 64,
        "skip": True,
        "learning_rate": 0.01,
        "bracket": 1,
        "round": 1 if parent else 0,
        "parent_trial_id": parent,
        "initial_epoch": initial,
        "target_epochs": 3,
        "epochs_trained": 3 - initial,
        "best_epoch": best,
        "val_accuracy": acc,
        "val_loss": 1.0,
        "accuracy": 0.4,
        "loss": 1.2,
        "seconds": 3.5,
        "message": None,
    }


def test_lineage_counts_the_parents_best_checkpoint():
    rows = {
        "0000": _row("0000", best=1),  # trained 0->1, best after epoch 1
        "0003": _row("0003", parent="0000", initial=1, best=3),  # 1 + (3 - 1)
        "0007": _row("0007", parent="0003", initial=3, best=5),  # 3 + (5 - 3)
    }
    assert records.lineage_epochs(rows, "0000") == 1
    assert records.lineage_epochs(rows, "0003") == 3
    assert records.lineage_epochs(rows, "0007") == 5
    rows["0000"]["best_epoch"] = None
    assert records.lineage_epochs(rows, "0007") is None


def test_trials_csv_round_trip_and_best(tmp_path):
    rows = [_row("0000", acc=0.7), _row("0001", acc=0.8), _row("0002", status="FAILED", acc=None)]
    for r in rows:
        r["lineage_epochs"] = 1
    rows[2]["message"] = "loss became nan in batch 3"
    path = tmp_path / "trials.csv"
    records.write_trials_csv(path, rows)
    back = records.read_trials_csv(path)
    assert [r["trial_id"] for r in back] == ["0000", "0001", "0002"]
    assert back[1]["skip"] is True and back[1]["blocks"] == 2 and back[1]["val_accuracy"] == 0.8
    assert back[2]["val_accuracy"] is None and back[2]["message"].startswith("loss became nan")
    assert records.best_row(back)["trial_id"] == "0001"
    assert records.best_row(back[2:]) is None
