#!/usr/bin/env bash
# The pick campaign's trainings (issue 32), cheapest evidence first, one training at a time.
# Every step appends a row per training and skips what its CSV already holds, so the same
# command resumes after a stop:
#
#     nohup benchmarks/pick_campaign.sh > ~/campaign/campaign.log 2>&1 &
#
# The CSVs live outside the work tree (CAMPAIGN, default ~/campaign); copy them into
# docs/results/ and commit them before a session stops.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/fashion-mnist}
CAMPAIGN=${CAMPAIGN:-$HOME/campaign}
mkdir -p "$CAMPAIGN"
step() { echo "== $(date -u +%FT%TZ) $*"; }

# 1. The yardstick at seed 0: all 16 shapes under the finalizer's recipe.
step "yardstick, seed 0"
python benchmarks/yardstick.py --data-dir "$DATA" --seeds 0 --out "$CAMPAIGN/yardstick.csv"

# 2. Rung fidelity: every shape to rungs 1, 3, 9 on the trial images, per trial recipe;
#    the comparison that decides first (today's trials against --trial-schedule budget,
#    which is "restart"), then from-scratch trials and the higher peak.
rungs() {
    python benchmarks/rungs.py --data-dir "$DATA" --out "$CAMPAIGN/rungs.csv" \
        --yardstick "$CAMPAIGN/yardstick.csv" --summary-out "$CAMPAIGN/rungs_fidelity.csv" \
        --plot "$CAMPAIGN/rungs.png" "$@"
}
step "rungs: today's constant-rate trials"
rungs --recipes constant --rates 0.01,0.05
step "rungs: the final recipe compressed to the trial, continued trials restarted"
rungs --recipes restart --rates 0.05
step "rungs: the same, every rung from scratch"
rungs --recipes budget --rates 0.05
step "rungs: both at peak 0.1"
rungs --recipes restart,budget --rates 0.1

# 3. A second seed for the contenders: every shape within 1 point of the leader.
step "yardstick, seed 1 for the shapes within 1 point"
python benchmarks/yardstick.py --data-dir "$DATA" --seeds 1 --within 1.0 \
    --out "$CAMPAIGN/yardstick.csv"
step "done"
