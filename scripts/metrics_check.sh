#!/usr/bin/env bash
# Checks what Prometheus is given: the scrape config and the alert rules generated from
# deploy/network.toml (promtool check config / rules; stale files fail `coldchain compose
# --check`), and a real scrape of the dev network — the one endpoint of its 25 servers, after
# calls that cross services — with `promtool check metrics` (format and lint).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    # Debian's prometheus package brings promtool (its service is not started in a container).
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
promtool --version | head -1

cargo build --quiet -p coldchain
bin=target/debug/coldchain
if [ -n "${CARGO_TARGET_DIR:-}" ]; then bin="$CARGO_TARGET_DIR/debug/coldchain"; fi

"$bin" compose --check >/dev/null
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml

data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port/metrics"
COLDCHAIN_DATA_DIR="$data/data" COLDCHAIN_LOG_LEVEL=warn COLDCHAIN_METRICS_LISTEN="127.0.0.1:$port" \
    "$bin" dev >"$data/dev.log" 2>&1 &
pid=$!
cleanup() { kill -KILL "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

serving=0
for _ in $(seq 1 300); do
    serving=$(curl -fsS "$url" 2>/dev/null | grep -c '^coldchain_health_serving{.* 1$' || true)
    [ "$serving" = 25 ] && break
    kill -0 "$pid" 2>/dev/null || { echo "dev exited early" >&2; cat "$data/dev.log" >&2; exit 1; }
    sleep 0.2
done
[ "$serving" = 25 ] || { echo "only $serving of 25 servers SERVING at $url" >&2; exit 1; }

# Calls that reach every site from the gateway (client and server series), as operations.
COLDCHAIN_DATA_DIR="$data/data" "$bin" sites >/dev/null
COLDCHAIN_DATA_DIR="$data/data" "$bin" stock SKU-NONE >/dev/null || true
# The demo's day, then its RecordMovements calls (its own and its transfer's) counted at
# every site, exactly.
COLDCHAIN_DATA_DIR="$data/data" "$bin" demo --json >"$data/demo.json" 2>"$data/demo.log" \
    || { echo "the demo failed" >&2; cat "$data/demo.log" >&2; exit 1; }

curl -fsS "$url" >"$data/metrics.txt"
promtool check metrics <"$data/metrics.txt"
for series in rpc_server_call_duration_seconds_bucket rpc_client_call_duration_seconds_bucket \
    coldchain_health_serving coldchain_store_wal_replayed_generations; do
    grep -q "^$series{" "$data/metrics.txt" || { echo "no $series in the scrape" >&2; exit 1; }
done
grep -q '^rpc_client_call_duration_seconds_count{site="hub",service="gateway",' "$data/metrics.txt" \
    || { echo "no call from the gateway was observed" >&2; exit 1; }
python3 - "$data/demo.json" "$data/metrics.txt" <<'PY'
import json, re, sys
demo = json.load(open(sys.argv[1]))
counted = {}
pattern = re.compile(
    r'^rpc_server_call_duration_seconds_count\{site="([^"]+)",service="inventory",.*'
    r'rpc_method="RecordMovements",rpc_response_status_code="OK"\} (\S+)$')
for line in open(sys.argv[2]):
    m = pattern.match(line.strip())
    if m:
        counted[m.group(1)] = float(m.group(2))
expected = demo["record_movements_ok"]
assert expected.get("la-vientiane"), f"the demo recorded nothing at la-vientiane: {expected}"
for site in sorted(set(expected) | set(counted)):
    made, seen = expected.get(site, 0), counted.get(site, 0)
    if made != seen:
        sys.exit(f"RecordMovements OK at {site}: the demo made {made}, the metrics count {seen}")
print(f"metrics: RecordMovements OK per site equals the demo's calls: {expected}")
PY
echo "metrics: $(grep -vc '^#' "$data/metrics.txt") samples from 25 servers pass promtool check metrics"

kill -TERM "$pid"
wait "$pid" || { echo "dev exited non-zero after SIGTERM" >&2; cat "$data/dev.log" >&2; exit 1; }
