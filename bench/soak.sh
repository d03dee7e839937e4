#!/usr/bin/env bash
# The long fault soak: N randomized apply/rotate runs of the binary against the in-process
# emulator with seeded throttling, 503s, replication delay and latency (tests/it/reliability/soak.rs).
#   bench/soak.sh [RUNS] [SEED]      defaults: 200 runs, seed 1
# A failure prints the run, its fault settings and the two variables that reproduce it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200}"
seed="${2:-1}"
ENTRAFORM_SOAK_RUNS="$runs" ENTRAFORM_SOAK_SEED="$seed" \
    cargo test --test it reliability::soak::randomized_runs_under_faults_keep_the_invariants -- --nocapture
