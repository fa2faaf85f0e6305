#!/usr/bin/env bash
# The console in a real browser: headless Chromium (Debian's `chromium` and
# `chromium-driver`, driven through Selenium) against `coldchain dev` after `coldchain demo`:
# log in through the form, open every page, acknowledge an alarm, no console errors
# (scripts/console_check.py). Screenshots go to $CONSOLE_SHOTS_DIR (default: a temporary
# directory; docs/console/ holds the ones the README shows).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check \
    selenium grpcio grpcio-health-checking grpcio-reflection protobuf

cargo build --quiet -p coldchain
bin="${CARGO_TARGET_DIR:-target}/debug/coldchain"
data=$(mktemp -d)
shots="${CONSOLE_SHOTS_DIR:-$data/shots}"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed "s/^listen = \"127.0.0.1:8080\"/listen = \"127.0.0.1:$port\"/" deploy/network.toml >"$data/network.toml"
grep -q "127.0.0.1:$port" "$data/network.toml" || { echo "no [console] listen to move" >&2; exit 1; }

COLDCHAIN_DATA_DIR="$data/data" COLDCHAIN_LOG_LEVEL=warn \
    "$bin" dev --network "$data/network.toml" >"$data/dev.log" 2>&1 &
pid=$!
cleanup() { kill -KILL "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/login" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "dev exited early" >&2; cat "$data/dev.log" >&2; exit 1; }
    sleep 0.2
done
COLDCHAIN_DATA_DIR="$data/data" "$bin" demo --network "$data/network.toml" >"$data/demo.log" 2>&1 \
    || { echo "the demo failed" >&2; cat "$data/demo.log" >&2; exit 1; }

timeout 180 python3 scripts/console_check.py "$data/network.toml" "$data/data" \
    "http://127.0.0.1:$port" "$shots"

kill -TERM "$pid"
wait "$pid" || { echo "dev exited non-zero after SIGTERM" >&2; cat "$data/dev.log" >&2; exit 1; }
