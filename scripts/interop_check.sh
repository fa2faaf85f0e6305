#!/usr/bin/env bash
# Starts the dev network and checks it with an independent gRPC implementation (Python
# grpcio): health SERVING and reflection v1 on all 25 servers, and, with the keys of the
# keyring dev makes under its data directory, that a call without a valid key is
# UNAUTHENTICATED, a role the policy does not allow PERMISSION_DENIED, the right role OK;
# then SIGTERM must exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check \
    grpcio grpcio-health-checking grpcio-reflection protobuf

cargo build --quiet -p coldchain
data=$(mktemp -d)
log="$data/dev.log"
COLDCHAIN_DATA_DIR="$data/data" COLDCHAIN_LOG_LEVEL=warn target/debug/coldchain dev >"$log" 2>&1 &
pid=$!
cleanup() { kill -KILL "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

timeout 60 python3 scripts/interop_check.py deploy/network.toml "$data/data"

kill -TERM "$pid"
for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    echo "dev did not exit within 5 s of SIGTERM" >&2
    cat "$log" >&2
    exit 1
fi
wait "$pid" || { echo "dev exited non-zero after SIGTERM" >&2; cat "$log" >&2; exit 1; }
echo "dev stopped cleanly on SIGTERM"
