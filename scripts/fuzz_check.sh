#!/usr/bin/env bash
# A bounded fuzz run of every cargo-fuzz target in fuzz/ (the decoders of stored and
# configured bytes): builds them, runs each for FUZZ_SECONDS (default 20), and fails if any
# target finds a crash, a failed property, a hang or a runaway allocation.
#
#   FUZZ_SECONDS=60 scripts/fuzz_check.sh            # longer runs
#   FUZZ_TARGETS="page_token store_keys" scripts/fuzz_check.sh
#   FUZZ_SANITIZER=none scripts/fuzz_check.sh        # without AddressSanitizer
#
# A failing input is left in fuzz/artifacts/<target>/: running the target's binary
# (fuzz/target/<host>/release/<target>) on that file replays it, and
# `RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=fuzz/target cargo fuzz fmt -a <target> <file>` shows it
# as the target sees it. The corpus grows in fuzz/corpus/<target>/ (gitignored, so a clean
# clone starts from the seeds this script writes).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-address}"
# cargo-fuzz passes nightly-only flags (-Zsanitizer, coverage instrumentation); the toolchain
# is stable, and this lets it accept them.
export RUSTC_BOOTSTRAP=1
# Its own target directory: instrumented builds would otherwise evict the project's.
export CARGO_TARGET_DIR="$PWD/fuzz/target"
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# -a: debug assertions and overflow checks, so an arithmetic overflow on odd input is found.
build_flags=(-a --sanitizer "$sanitizer")

started=$(date +%s)
cargo fuzz build "${build_flags[@]}"
built=$(date +%s)
# The built binaries are run directly: `cargo fuzz run` would rebuild first, which costs
# nothing on a quiet tree but recompiles whatever someone edited since.
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
echo "fuzz: built every target in $((built - started)) s (sanitizer: $sanitizer)"

# Seeds: the shipped network files, and config files with and without an environment (the
# config target reads "file text NUL NAME=value lines"). The binary decoders' targets build
# valid encodings themselves from the fuzzer's bytes, so they need none.
seed() {
    local target=$1 name=$2
    mkdir -p "fuzz/corpus/$target"
    cat >"fuzz/corpus/$target/seed-$name"
}
mkdir -p fuzz/corpus/network_toml
cp deploy/network.toml fuzz/corpus/network_toml/seed-network.toml
cp deploy/network.compose.toml fuzz/corpus/network_toml/seed-network.compose.toml
seed config_toml full.toml <<'EOF'
data_dir = "/var/lib/coldchain"
network_file = "/etc/coldchain/network.toml"
log_format = "json"
log_level = "info,coldchain_store=debug"
listen_host = "0.0.0.0"
rpc_timeout = "3s"
concurrency_limit = 256
max_message_bytes = "8MiB"
shutdown_grace = "2500ms"
idempotency_retention = "1d12h"
sled_cache_bytes = 16777216
EOF
printf '%s\0%s\n' 'rpc_timeout = "10s"
sled_cache_bytes = "64 MiB"' 'COLDCHAIN_RPC_TIMEOUT=750ms
COLDCHAIN_LOG_LEVEL=warn,tower=off
COLDCHAIN_MAX_MESSAGE_BYTES=1048576
COLDCHAIN_CONFIG=/etc/coldchain.toml
COLDCHAIN_LISTEN_HOST=::1' | seed config_toml with-env

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    t0=$(date +%s)
    # -timeout: one input running this long is a hang (a finding, like a crash).
    # -rss_limit_mb also bounds a single allocation (libFuzzer's malloc limit).
    mkdir -p "fuzz/artifacts/$target"
    if "$bin/$target" "fuzz/corpus/$target" -artifact_prefix="fuzz/artifacts/$target/" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 \
        -print_final_stats=1 >"$logs/$target.log" 2>&1; then
        runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$logs/$target.log" |
            grep -Eo '[0-9]+$' || echo '?')
        echo "fuzz: $target ok ($runs inputs in $(($(date +%s) - t0)) s)"
    else
        echo "fuzz: $target FAILED after $(($(date +%s) - t0)) s; the end of its log:"
        tail -n 60 "$logs/$target.log"
        failed+=("$target")
    fi
done

echo "fuzz: ${#targets[@]} targets, $(($(date +%s) - built)) s of fuzzing"
if ((${#failed[@]} > 0)); then
    echo "fuzz: failing targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
