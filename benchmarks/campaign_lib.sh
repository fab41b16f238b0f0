#!/usr/bin/env bash
# The pick campaign's steps as functions (sourced by benchmarks/pick_campaign.sh, and by
# tests/test_campaign.py on a made-up run): each resumes where it stopped and keeps what
# it finished. Settings: DATA, CAMPAIGN (the run directories, outside the work tree) and
# CAMPAIGN_KEPT (where finished runs' small files and states are committed).
DATA=${DATA:-../shared/data/fashion-mnist}
CAMPAIGN=${CAMPAIGN:-$HOME/campaign}
CAMPAIGN_KEPT=${CAMPAIGN_KEPT:-docs/results/searches}
step() { echo "== $(date -u +%FT%TZ) $*"; }
# Rung fidelity: every shape to the rungs named, on the trial images, per trial recipe.
rungs() {
    python benchmarks/rungs.py --data-dir "$DATA" --out "$CAMPAIGN/rungs.csv" \
        --yardstick "$CAMPAIGN/yardstick.csv" --summary-out "$CAMPAIGN/rungs_fidelity.csv" \
        --plot "$CAMPAIGN/rungs.png" "$@"
}
search() { python -m tuning.search --data-dir "$DATA" --seed "$1" --project-name "seed$1" "${@:2}"; }
keep() {  # keep R SEED: a finished run's small files and its state, into the work tree
    local to="$CAMPAIGN_KEPT/$1/seed$2"
    mkdir -p "$to"
    cp "$CAMPAIGN/searches/$1/seed$2/"{trials.csv,confirm.csv,best.json} "$to/"
    save_state "$1" "$2" "$to/state.tar.gz"
}
# A session's machine can be laid anew with ~/campaign gone: each finished run's state (the
# run directory without its weights and logs, each dropped checkpoint marked "pruned" as
# --prune-checkpoints marks it, so a rerun takes the gap for a finished trial and retrains
# nothing) is committed beside its small files, and restored from there before a step runs.
save_state() {  # save_state R SEED ARCHIVE
    local tmp
    tmp=$(mktemp -d)
    tar -cf - -C "$CAMPAIGN/searches/$1" --exclude=tensorboard --exclude=.lock \
        --exclude=checkpoint.weights.h5 "seed$2" | tar -xf - -C "$tmp"
    for trial in "$CAMPAIGN/searches/$1/seed$2"/trial_*; do
        if [ -e "$trial/checkpoint.weights.h5" ]; then
            echo pruned > "$tmp/seed$2/$(basename "$trial")/pruned"
        fi
    done
    tar -czf "$3.tmp" -C "$tmp" "seed$2" && mv "$3.tmp" "$3"
    rm -rf "$tmp"
}
restore() {  # restore R SEED: a committed state where the campaign has no such run
    local state="$CAMPAIGN_KEPT/$1/seed$2/state.tar.gz"
    if [ ! -d "$CAMPAIGN/searches/$1/seed$2" ] && [ -f "$state" ]; then
        step "restoring $1/seed$2 from $state"
        mkdir -p "$CAMPAIGN/searches/$1"
        tar -xzf "$state" -C "$CAMPAIGN/searches/$1"
    fi
}
# Runs kept before states were (seeds 0, 2, 1 of top and sizes): the trials again (the
# search is deterministic: seed 0's rerun matched its first run row for row), then the
# committed confirm.csv, so the confirmation trains nothing it already has.
rebuild() {  # rebuild R SEED: only where the campaign's run lacks what is committed
    local kept="$CAMPAIGN_KEPT/$1/seed$2" run="$CAMPAIGN/searches/$1/seed$2"
    [ -f "$kept/confirm.csv" ] || return 0
    if [ "$1" = top ] && [ ! -f "$run/confirm.csv" ]; then
        step "rebuilding top/seed$2: its trials, then its committed confirm.csv"
        search "$2" --directory "$CAMPAIGN/searches/top" --confirm-top 0
        cp "$kept/confirm.csv" "$run/confirm.csv"
    elif [ "$1" != top ] && [ ! -d "$run" ]; then
        step "rebuilding $1/seed$2: a copy of top/seed$2, then its committed confirm.csv"
        copy_run top "$1" "$2"
        cp "$kept/confirm.csv" "$run/confirm.csv"
    fi
}
copy_run() {  # copy_run FROM TO SEED: a finished run's directory, copied whole, then renamed
    if [ ! -d "$CAMPAIGN/searches/$2/seed$3" ]; then
        mkdir -p "$CAMPAIGN/searches/$2"
        rm -rf "$CAMPAIGN/searches/$2/.seed$3.copy"
        cp -r "$CAMPAIGN/searches/$1/seed$3" "$CAMPAIGN/searches/$2/.seed$3.copy"
        mv "$CAMPAIGN/searches/$2/.seed$3.copy" "$CAMPAIGN/searches/$2/seed$3"
    fi
}
pair() {
    local s=$1
    restore top "$s"; rebuild top "$s"; restore sizes "$s"; rebuild sizes "$s"
    step "search seed $s, --confirm-candidates top"
    search "$s" --directory "$CAMPAIGN/searches/top" --confirm-candidates top
    keep top "$s"
    copy_run top sizes "$s"
    step "the same trials, --confirm-candidates sizes"
    search "$s" --directory "$CAMPAIGN/searches/sizes" --confirm-candidates sizes
    keep sizes "$s"
}
both48() {  # the union of both lists, confirmed on all 48,000 images (same image passes)
    local s=$1
    restore top "$s"; rebuild top "$s"; restore both48 "$s"
    copy_run top both48 "$s"
    step "the same trials, --confirm-candidates both --confirm-images 48000"
    search "$s" --directory "$CAMPAIGN/searches/both48" --confirm-candidates both \
        --confirm-images 48000
    keep both48 "$s"
}
