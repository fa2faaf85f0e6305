#!/usr/bin/env bash
# The fault soak (issue 25): the network as separate processes (the hub and two warehouses,
# ten servers) under a seeded schedule of SIGKILL/restart and SIGSTOP/SIGCONT, with a mixed
# workload, then the invariants checked. Two runs of about 2 minutes each: a fixed seed (the
# same schedule every time) and a random one, printed so that a failure can be replayed with
# `coldchain soak --seed N --duration 120s`. Each run also takes up to --settle (90 s) to
# settle and a few seconds to start and read the state.
#
# Reuses the debug build of `coldchain` that `cargo test --workspace` made; needs nothing but
# cargo and `kill` (procps), present on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

FIXED_SEED=${SOAK_FIXED_SEED:-20261204}
DURATION=${SOAK_DURATION:-120s}

cargo build --quiet -p coldchain
bin="${CARGO_TARGET_DIR:-target}/debug/coldchain"

echo "soak with the fixed seed $FIXED_SEED"
timeout 600 "$bin" soak --seed "$FIXED_SEED" --duration "$DURATION"

seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
echo "soak with a random seed: $seed (replay: coldchain soak --seed $seed --duration $DURATION)"
timeout 600 "$bin" soak --seed "$seed" --duration "$DURATION"
