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
# shellcheck source=benchmarks/campaign_lib.sh
. benchmarks/campaign_lib.sh  # DATA, CAMPAIGN, CAMPAIGN_KEPT and the steps' functions
mkdir -p "$CAMPAIGN"

# 1. The yardstick at seed 0: all 16 shapes under the finalizer's recipe.
step "yardstick, seed 0"
python benchmarks/yardstick.py --data-dir "$DATA" --seeds 0 --out "$CAMPAIGN/yardstick.csv"

# 2. Rung fidelity: every shape to rungs 1, 3, 9 on the trial images, per trial recipe;
#    the comparison that decides first (today's trials against --trial-schedule budget,
#    which is "restart"), then from-scratch trials and the higher peak.
step "rungs: today's constant-rate trials"
rungs --recipes constant --rates 0.01,0.05
step "rungs: the final recipe compressed to the trial, continued trials restarted"
rungs --recipes restart --rates 0.05
step "rungs: the same, every rung from scratch"
rungs --recipes budget --rates 0.05
# 4. The lever in the search (chosen by step 2: short trials rank the shapes backwards, so
#    the confirmation takes the best of each size class). Per seed 0-4: one search with
#    today's top-3 confirmation (the "before"), then a copy of it given the size-class
#    confirmation (not part of a run's definition: the rerun trains only its confirmation,
#    on the same trials, so the two picks are paired). A rerun resumes either where it
#    stopped; each finished run's small files go to docs/results/searches/ (commit them).
#    Its steps, pair and both48, are in benchmarks/campaign_lib.sh; they run after 4b.

# 4b. What the confirmation trains on (chosen by seeds 0 and 2: on the trials' 12,000
#     images for 16 epochs it told 4 x 64 from 1 x 32 by 0.0002, where the yardstick
#     tells them apart by 0.8 points). Every shape under the confirmation's kind of
#     training (from scratch, the compressed final recipe) at equal compute: 16 epochs on
#     the 12,000 trial images, or 4 epochs on all 48,000 training images.
#     The eight skip-off shapes first (both ways), then the skip-on ones.
OFF=1x32off,2x32off,3x32off,4x32off,1x64off,2x64off,3x64off,4x64off
step "rungs: the confirmation's length on 12,000 images, skip off"
rungs --recipes budget --rates 0.05 --rungs 16 --shapes "$OFF"
step "rungs: a quarter of the epochs on 48,000 images, skip off"
rungs --recipes budget --rates 0.05 --rungs 4 --trial-images 48000 --shapes "$OFF"
# 4c. Chosen by 4b (the confirmation's training ranks the skip-off shapes at +0.74 either
#     way, in half the wall time on 48,000 images; its candidates are what failed): the
#     union of the top three and the size classes, on 48,000 images, on the same trials.
#     Per seed, its pair then its both48, so each seed's evidence is whole before the next
#     seed's search is rebuilt (seed 2, the known bad pick, first after 0).
for s in 0 2 1; do pair "$s"; both48 "$s"; done

step "rungs: both, every shape"
rungs --recipes budget --rates 0.05 --rungs 16
rungs --recipes budget --rates 0.05 --rungs 4 --trial-images 48000

for s in 3 4; do pair "$s"; both48 "$s"; done
# The rest of step 2 and step 3 after the searches (they decide the default; these refine
# the tables).
step "rungs: both at peak 0.1"
rungs --recipes restart,budget --rates 0.1

# 3. A second seed for the contenders: every shape within 1 point of the leader.
step "yardstick, seed 1 for the shapes within 1 point"
python benchmarks/yardstick.py --data-dir "$DATA" --seeds 1 --within 1.0 \
    --out "$CAMPAIGN/yardstick.csv"

step "rank fidelity of the ten searches"
python benchmarks/fidelity.py --yardstick "$CAMPAIGN/yardstick.csv" \
    --out "$CAMPAIGN/fidelity.csv" --plot "$CAMPAIGN/fidelity.png" \
    "$CAMPAIGN"/searches/{both48,sizes,top}/seed{0,1,2,3,4}
step "done"
