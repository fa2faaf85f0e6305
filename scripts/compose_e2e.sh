#!/usr/bin/env bash
# The compose deployment, end to end, on the real Docker engine (run by .ci/run).
#
#   scripts/compose_e2e.sh
#
# 1. build the image without pulling (deploy/docker/build-local.sh), check the generated
#    files are current, make fresh secrets (a CA, a certificate per container, a keyring) in a
#    directory of this run, `up -d`, wait until all 26 containers are healthy (8 sites x 3
#    services, the gateway and the console); the console's login page over HTTPS;
# 2. TLS and authentication from outside: the published gateway port refuses plaintext, a
#    call without a key (or with a forged one) is UNAUTHENTICATED, a key of the wrong role
#    PERMISSION_DENIED, the right key over TLS is served; likewise at a site service;
# 3. the demo's flows through the gateway (`coldchain demo`, as the roles of the keyring) and
#    from Python grpcio;
# 4. SIGKILL one site's inventory container in the middle of a load of movements: the other
#    sites keep answering; after it restarts every acknowledged movement is there; then a
#    crash of its process (SIGKILL from the host) is restarted by the restart policy;
# 5. cut one warehouse off the backbone network for 30 s: the gateway reports it unavailable
#    within its deadline and answers for the others, the site keeps serving its local
#    clients, and after reconnection the gateway's views and alarm stream recover;
# 6. `down` (keeping volumes) and `up` again: the data is still there;
# 7. backup, wipe, restore, serve: receipts at one site, the compose `backup` service (profile
#    `backup`) backs up every service while the network runs, each file verified; more
#    receipts; the site's inventory stopped, its volume removed and recreated, the backup
#    restored into it (a one-off container of the image, as 10001:10001) and the service
#    started: healthy, the state of the backup exactly (the later receipts gone), a new write
#    continues the ledger, the gateway sees the site; a damaged copy and another site's
#    `--site` are refused by `backup verify` and `restore`;
# 8. `down -v`: no container, network or volume left.
#
# The Docker engine is REQUIRED: without `docker`, a running engine or a compose tool this
# script fails; it never skips. Every wait has a timeout, the whole run a budget, and an EXIT
# trap removes everything it started (`down -v`), whatever happens.
#
# The secrets are made fresh for each run in its own temporary directory (SECRETS_DIR points
# the compose file at it), never in deploy/secrets: a run must not replace the CA and keys of
# a deployment someone is running from this checkout, nor reuse stale ones. They are given to
# the image's user (chown 10001:10001, as the README says), so the script runs as root (it
# also signals a container's process from the host).
#
# A check whose service still answers UNIMPLEMENTED is PENDING: the run goes on with the other
# checks and then fails, listing them, unless COMPOSE_E2E_ALLOW_PENDING=1 (a stop-gap while the
# gateway and telemetry services are being written; remove it from .ci/run once they exist).
#
# Environment: COMPOSE_E2E_PROJECT (default coldchaine2e), GATEWAY_HOST_PORT and
# CONSOLE_HOST_PORT (default: free ports), COMPOSE_E2E_BUDGET seconds (default 840), COMPOSE_E2E_ALLOW_PENDING, and
# COMPOSE_E2E_BINARY (an already built coldchain binary for the image, instead of
# `cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

started=$(date +%s)
budget=${COMPOSE_E2E_BUDGET:-840}
project=${COMPOSE_E2E_PROJECT:-coldchaine2e}
run_id=$(date +%s)
pending=()

elapsed() { echo $(($(date +%s) - started)); }
say() { echo "compose_e2e: [$(elapsed) s] $*"; }
step() { echo; echo "=== compose_e2e: [$(elapsed) s] $*"; }
fail() { echo "compose_e2e: FAIL [$(elapsed) s]: $*" >&2; exit 1; }
# The budget counts from the built image: the compile has its own timeout (1200 s) and takes
# what the machine's load gives it (7 to 12 minutes cold on 2 shared cores).
deployed_from=$started
within_budget() {
    [ $(($(date +%s) - deployed_from)) -lt "$budget" ] \
        || fail "over the time budget of $budget s after the image was built"
}

# --- The engine is required -------------------------------------------------------------------
command -v docker >/dev/null 2>&1 \
    || fail "docker is not installed: this end-to-end test needs the Docker engine and never skips"
timeout 30 docker info >/dev/null 2>&1 \
    || fail "the Docker engine does not answer (docker info): start it; this test never skips"
if timeout 20 docker compose version >/dev/null 2>&1; then
    compose_tool=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose_tool=(docker-compose)
else
    fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
say "engine $(docker version -f '{{.Server.Version}}'), compose tool: ${compose_tool[*]} ($("${compose_tool[@]}" version --short 2>/dev/null || true))"

if [ -z "${GATEWAY_HOST_PORT:-}" ]; then
    GATEWAY_HOST_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export GATEWAY_HOST_PORT
gateway=127.0.0.1:$GATEWAY_HOST_PORT
if [ -z "${CONSOLE_HOST_PORT:-}" ]; then
    CONSOLE_HOST_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export CONSOLE_HOST_PORT

compose() { timeout "${COMPOSE_TIMEOUT:-300}" "${compose_tool[@]}" -p "$project" -f deploy/compose.yaml "$@"; }
project_filter=(--filter "label=com.docker.compose.project=$project")
container_of() { docker ps -aq "${project_filter[@]}" --filter "label=com.docker.compose.service=$1"; }

# The project's networks the engine refuses to remove though no container is attached: it
# still counts an endpoint that no longer exists (moby/moby#42119, seen here after step 5
# disconnected and reconnected containers by hand; only restarting dockerd clears it). That is
# the engine's state, not the deployment's.
phantom_networks() {
    local net refused
    for net in $(docker network ls -q "${project_filter[@]}"); do
        [ "$(docker network inspect -f '{{len .Containers}}' "$net" 2>/dev/null)" = 0 ] || continue
        # Removed now: it was not stuck. (Captured, not piped: under pipefail a pipe would
        # carry rm's failure even when the message matches.)
        refused=$(docker network rm "$net" 2>&1) && continue
        [[ $refused == *"has active endpoints"* ]] || continue
        docker network inspect -f '{{.Name}}' "$net"
    done
}

# `compose down` with the given flags. A network whose endpoints the engine has not released
# yet can make one attempt fail: it is shown and tried once more. If it fails again, it passes
# only when every container is gone and what is left is phantom networks (above), which are
# reported; anything else fails the test.
compose_down() {
    compose down "$@" >"$work/down.log" 2>&1 && return 0
    say "WARNING: compose down $* failed once; trying again in 3 s. It said:"
    sed 's/^/    /' "$work/down.log" >&2
    sleep 3
    compose down "$@" >"$work/down.log" 2>&1 && return 0
    local stuck networks
    stuck=$(phantom_networks)
    networks=$(docker network ls -q "${project_filter[@]}" | wc -l)
    if [ -z "$(docker ps -aq "${project_filter[@]}")" ] && [ -n "$stuck" ] \
        && [ "$networks" -eq "$(echo "$stuck" | wc -l)" ]; then
        say "WARNING: every container is gone; the engine keeps network(s) $(echo $stuck) with no container attached ('has active endpoints', moby/moby#42119; restart dockerd to clear)"
        # compose stops at the network it cannot remove, before the volumes `-v` asks for.
        if [[ " $* " == *" -v "* ]]; then
            local volumes
            volumes=$(docker volume ls -q "${project_filter[@]}")
            [ -z "$volumes" ] || docker volume rm $volumes >/dev/null \
                || fail "compose down $*: the project's volumes cannot be removed"
        fi
        return 0
    fi
    cat "$work/down.log" >&2
    fail "compose down $* failed twice"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/compose-e2e.XXXXXX")
load_pid=

cleanup() {
    local rc=$?
    set +e
    touch "$work/stop"
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
    if [ "$rc" -ne 0 ] && [ -n "$(docker ps -aq "${project_filter[@]}")" ]; then
        echo "--- containers of $project:" >&2
        docker ps -a "${project_filter[@]}" --format '{{.Names}}\t{{.Status}}' >&2
        for id in $(docker ps -aq "${project_filter[@]}" --filter health=unhealthy) \
                  $(docker ps -aq "${project_filter[@]}" --filter status=exited); do
            echo "--- last log lines of $(docker inspect -f '{{.Name}}' "$id"):" >&2
            docker logs --tail 20 "$id" >&2 2>&1
        done
    fi
    COMPOSE_TIMEOUT=120 compose down -v --remove-orphans >/dev/null 2>&1
    # Whatever compose could not remove, by the project's label.
    docker rm -f $(docker ps -aq "${project_filter[@]}") >/dev/null 2>&1
    docker network rm $(docker network ls -q "${project_filter[@]}") >/dev/null 2>&1
    docker volume rm $(docker volume ls -q "${project_filter[@]}") >/dev/null 2>&1
    local left
    left=$( (docker ps -aq "${project_filter[@]}"; docker network ls -q "${project_filter[@]}"; docker volume ls -q "${project_filter[@]}") | wc -l)
    [ "$left" -eq 0 ] || echo "compose_e2e: WARNING: $left containers/networks/volumes of $project could not be removed" >&2
    rm -rf "$work"
    if [ "$rc" -eq 0 ]; then
        echo "compose_e2e: PASS in $(elapsed) s"
    else
        echo "compose_e2e: FAILED (exit $rc) after $(elapsed) s; everything of project $project removed" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secrets=$work/secrets
export SECRETS_DIR=$secrets
# How a client outside the containers reaches them: TLS trusting the run's CA, keys from its
# keyring (for `coldchain` on this host and, mounted, in a container).
client_env=(COLDCHAIN_TLS_CA="$secrets/tls/ca.pem" COLDCHAIN_KEYRING="$secrets/keyring")
in_container=/etc/coldchain/secrets
client_docker=(-v "$secrets:$in_container:ro" -e "COLDCHAIN_TLS_CA=$in_container/tls/ca.pem"
               -e "COLDCHAIN_KEYRING=$in_container/keyring")

# Every check that calls our servers from outside goes through deploy/docker/e2e.py (Python
# grpcio with stubs generated from proto/, over TLS with the run's keys). Exit 3 means
# PENDING (UNIMPLEMENTED).
py() {
    local limit=$1 name=$2
    shift 2
    local rc=0
    timeout "$limit" python3 deploy/docker/e2e.py --stubs "$work/stubs" --secrets "$secrets" --project "$project" \
        --network deploy/network.toml --run "$run_id" --gateway "$gateway" "$@" || rc=$?
    case $rc in
        0) ;;
        3) pending+=("$name"); say "PENDING: $name" ;;
        124) fail "$name: no result within $limit s" ;;
        *) fail "$name (exit $rc)" ;;
    esac
    return 0
}

wait_healthy() { # count, timeout seconds
    local want=$1 limit=$2 deadline=$(($(date +%s) + $2)) healthy=0
    while :; do
        healthy=$(docker ps "${project_filter[@]}" --filter health=healthy -q | wc -l)
        [ "$healthy" -ge "$want" ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] || {
            docker ps -a "${project_filter[@]}" --format '{{.Names}}\t{{.Status}}' | grep -v '(healthy)' >&2
            fail "only $healthy of $want containers healthy after $limit s"
        }
        sleep 1
    done
}

wait_container_healthy() { # service, timeout seconds
    local id deadline=$(($(date +%s) + $2))
    id=$(container_of "$1")
    until [ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")" = healthy ]; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$1 not healthy within $2 s"
        sleep 1
    done
}

# --- 0. Tools ---------------------------------------------------------------------------------
step "0. tools: grpcio stubs from proto/"
if ! python3 -c 'import grpc, grpc_tools, grpc_health' 2>/dev/null; then
    timeout 300 python3 -m pip install --quiet --disable-pip-version-check \
        grpcio grpcio-tools grpcio-health-checking \
        || fail "cannot install grpcio, grpcio-tools and grpcio-health-checking"
fi
mkdir -p "$work/stubs"
timeout 60 python3 -m grpc_tools.protoc -Iproto --python_out="$work/stubs" --grpc_python_out="$work/stubs" \
    $(find proto -name '*.proto') || fail "cannot generate the Python stubs from proto/"
# A leftover of an interrupted run would make every count below wrong.
COMPOSE_TIMEOUT=120 compose down -v --remove-orphans >/dev/null 2>&1 || true

# --- 1. Build, check, up, healthy -------------------------------------------------------------
step "1. build the image (no pull), make the secrets, up, wait until every container is healthy"
t0=$(date +%s)
coldchain=${COMPOSE_E2E_BINARY:-target/release/coldchain}
if [ -n "${COMPOSE_E2E_BINARY:-}" ]; then
    build=(deploy/docker/build-local.sh --tag coldchain:latest --binary "$COMPOSE_E2E_BINARY")
else
    build=(deploy/docker/build-local.sh --tag coldchain:latest)
fi
timeout 1200 "${build[@]}" >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; fail "image build failed"; }
say "image built in $(($(date +%s) - t0)) s: $(tail -1 "$work/build.log")"
deployed_from=$(date +%s)
timeout 30 "$coldchain" compose --check || fail "deploy/ is stale: run 'cargo run --release -- compose'"
[ "$(id -u)" = 0 ] || fail "the secrets must be given to the image's user 10001 (chown): run as root"
t0=$(date +%s)
timeout 60 "$coldchain" certs --out "$secrets/tls" >"$work/secrets.log" 2>&1 \
    && timeout 60 "$coldchain" credentials keyring --out "$secrets/keyring" >>"$work/secrets.log" 2>&1 \
    || { cat "$work/secrets.log" >&2; fail "cannot make the secrets"; }
chown -R 10001:10001 "$secrets"
say "fresh secrets in $(($(date +%s) - t0)) s: $(ls "$secrets/tls" | grep -c '\.pem$') certificates, $(ls "$secrets/keyring/keys" | wc -l) keys"
# The one-shot backup service (profile `backup`) is no server: not counted.
services=$(compose --profile backup config --services | grep -cvx backup)
timeout 60 "${compose_tool[@]}" -p "$project" -f deploy/compose.yaml -f deploy/compose.sites.yaml config -q \
    || fail "deploy/compose.sites.yaml does not merge with deploy/compose.yaml"
sites=$(python3 -c 'import tomllib; print(len(tomllib.load(open("deploy/network.toml","rb"))["site"]))')
# Every site's three services, the gateway and the console.
[ "$services" -eq $((sites * 3 + 2)) ] || fail "compose.yaml has $services services, expected $((sites * 3 + 2))"
t0=$(date +%s)
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up failed"; }
wait_healthy "$services" 240
say "all $services containers healthy $(($(date +%s) - t0)) s after 'up -d'"
memory() { # label: the memory of every container, summarised
    docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' $(docker ps -q "${project_filter[@]}") \
        | awk -v label="$1" '
            { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
              m = (u == "GiB") ? v * 1024 : (u == "KiB") ? v / 1024 : (u == "B") ? v / 1048576 : v + 0;
              n++; sum += m; if (n == 1 || m > max) { max = m; who = $1 } if (n == 1 || m < min) min = m }
            END { printf "compose_e2e: memory %s: %d containers, %.1f MiB in all, %.1f to %.1f MiB each (most: %s), limit %s\n",
                  label, n, sum, min, max, who, $4 }'
}
memory "when healthy"
published=$(docker ps "${project_filter[@]}" --format '{{.Ports}}' | grep -c -- '->' || true)
[ "$published" -eq 2 ] || fail "$published containers publish ports; only the gateway and the console should"
timeout 10 env "${client_env[@]}" "$coldchain" healthcheck "$gateway" >/dev/null \
    || fail "the gateway is not SERVING over TLS on $gateway"
say "only the gateway and the console are published; the gateway on $gateway, SERVING over TLS"
# The console's login page from the host, over HTTPS (its certificate names localhost), as a
# browser opens it: 200 and the login form.
timeout 20 python3 - "$CONSOLE_HOST_PORT" "$secrets/tls/ca.pem" <<'PY' || fail "the console's login page"
import ssl, sys, urllib.request
port, ca = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile=ca)
with urllib.request.urlopen(f"https://localhost:{port}/login", context=context, timeout=10) as answer:
    body = answer.read().decode()
    assert answer.status == 200, answer.status
assert 'action="/login"' in body and 'name="key"' in body and 'name="csrf"' in body, body[:2000]
print(f"compose_e2e: console https://localhost:{port}/login: 200 with the login form")
PY
if timeout 10 python3 -c 'import sys, urllib.request; urllib.request.urlopen(f"http://localhost:{sys.argv[1]}/login", timeout=5)' "$CONSOLE_HOST_PORT" 2>/dev/null; then
    fail "the console answered plain HTTP"
fi
timeout 10 docker exec "$(container_of console)" coldchain healthcheck --http 127.0.0.1:8080 >/dev/null \
    || fail "the console's own healthcheck (HTTPS from its environment) fails"
within_budget

# --- 2. TLS and authentication ----------------------------------------------------------------
step "2. TLS and authentication: plaintext refused, no key refused, the right key served"
# Our own client without the CA speaks plaintext to the TLS port: it must not get an answer.
if out=$(timeout 10 env -u COLDCHAIN_TLS_CA "$coldchain" healthcheck "$gateway" 2>&1); then
    fail "a plaintext healthcheck of the gateway succeeded: $out"
fi
say "ok: coldchain healthcheck without TLS is refused ($out)"
# Inside a container the healthcheck is the compose one: the container's TLS environment.
timeout 10 docker exec "$(container_of gateway)" coldchain healthcheck 127.0.0.1:50051 >/dev/null \
    || fail "the gateway's own healthcheck (TLS from its environment) fails"
py 60 "TLS and authentication" security --site la-vientiane --other vn-hanoi
within_budget

# --- 3. The demo ------------------------------------------------------------------------------
step "3. the demo's flows through the gateway"
if timeout 10 "$coldchain" demo --help 2>/dev/null | grep -q -- '--gateway'; then
    # The demo calls the gateway and the site services, so it runs inside the deployment's
    # network, reading the image's network file (endpoints at container names), as the README
    # tells users to.
    timeout 300 docker run --rm --label "com.docker.compose.project=$project" \
        --network "${project}_backbone" "${client_docker[@]}" coldchain:latest \
        demo --network /etc/coldchain/network.compose.toml --run-id "e2e$run_id" --json \
        >"$work/demo.json" 2>"$work/demo.err" \
        || { tail -30 "$work/demo.err" >&2; head -c 4000 "$work/demo.json" >&2; fail "coldchain demo failed"; }
    python3 - "$work/demo.json" <<'PY' || fail "coldchain demo: unexpected outcome"
import json, sys
text = open(sys.argv[1]).read()
out = json.loads(text[text.index("{"):])
problems = []
if out["services_serving"] != out["services_total"] or out["services_total"] == 0:
    problems.append(f"services serving {out['services_serving']} of {out['services_total']}")
if not str(out["transfer_state"]).endswith("COMPLETED"):
    problems.append(f"transfer state {out['transfer_state']}")
if not out["hold_placed"]:
    problems.append("the excursion placed no hold")
if out["stock"]["site_failures"]:
    problems.append(f"stock site failures {out['stock']['site_failures']}")
print(f"  demo: {out['sites']} sites, {out['services_serving']}/{out['services_total']} services serving, "
      f"transfer {out['transfer']['transfer_id']} {out['transfer_state']}, hold placed {out['hold_placed']}, "
      f"bookings confirmed {out['bookings_confirmed']}, checked in {out['bookings_checked_in']}, "
      f"ledger entries seen {out['ledger_entries_seen']}, in {out['elapsed_ms']} ms")
for w in out.get("warnings") or []:
    print(f"  demo warning: {w}")
if problems:
    print("  demo outcome: " + "; ".join(problems))
    sys.exit(1)
PY
    say "coldchain demo passed inside the network"
else
    # TODO(issue 7): remove this branch once every checkout has `coldchain demo --gateway`.
    say "TODO: 'coldchain demo --gateway' does not exist in this build; only the grpcio flows run"
fi
# The same flows from an independent gRPC implementation (Python grpcio), through the
# published gateway port: ListSites, a receipt found by FindStock, FindSpace, and a corridor
# transfer la-vientiane -> cn-huaihua-park with the stock checked at both ends.
py 120 "demo flows through the gateway (grpcio)" flows --source la-vientiane --destination cn-huaihua-park
within_budget

# --- 4. SIGKILL under load --------------------------------------------------------------------
victim_site=la-vientiane
victim=inventory-$victim_site
step "4. SIGKILL $victim in the middle of a load of RecordMovements"
python3 deploy/docker/e2e.py --stubs "$work/stubs" --secrets "$secrets" --project "$project" \
    --network deploy/network.toml --run "$run_id" load --site "$victim_site" --sku "KILL-$run_id" --log "$work/load.log" \
    --stop "$work/stop" --workers 2 >"$work/load.out" 2>&1 &
load_pid=$!
wait_acked() { # at least N acknowledged, within S seconds
    local deadline=$(($(date +%s) + $2)) n=0
    while :; do
        n=$(timeout 20 python3 deploy/docker/e2e.py --stubs "$work/stubs" --secrets "$secrets" \
            --project "$project" --network deploy/network.toml load-progress --log "$work/load.log" 2>/dev/null | head -1 || true)
        [ "${n:-0}" -ge "$1" ] 2>/dev/null && { echo "$n"; return 0; }
        if grep -q UNIMPLEMENTED "$work/load.log" 2>/dev/null; then echo unimplemented; return 0; fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "fewer than $1 movements acknowledged in $2 s (have ${n:-0}; $(tail -2 "$work/load.log" 2>/dev/null))"
        sleep 0.5
    done
}
touch "$work/load.log"
acked=$(wait_acked 100 60)
if [ "$acked" = unimplemented ]; then
    pending+=("SIGKILL under load (RecordMovements answers UNIMPLEMENTED)")
    say "PENDING: RecordMovements answers UNIMPLEMENTED"
    touch "$work/stop"; wait "$load_pid" || true; load_pid=
else
    docker kill -s KILL "$(container_of "$victim")" >/dev/null
    say "docker kill -s KILL $victim after $acked acknowledged requests"
    py 60 "other sites answer while $victim is down" sites-answer --skip "$victim_site"
    sleep 2
    [ "$(docker inspect -f '{{.State.Status}}' "$(container_of "$victim")")" = exited ] \
        || fail "$victim is not down after SIGKILL"
    timeout 60 docker start "$(container_of "$victim")" >/dev/null
    wait_container_healthy "$victim" 60
    say "$victim restarted (docker start) and healthy"
    acked=$(wait_acked $((acked + 100)) 60)
    memory "under load"
    # A crash of the process itself (not a docker command): the restart policy brings it back.
    pid=$(docker inspect -f '{{.State.Pid}}' "$(container_of "$victim")")
    restarts=$(docker inspect -f '{{.RestartCount}}' "$(container_of "$victim")")
    if kill -KILL "$pid" 2>/dev/null; then
        say "SIGKILL to $victim's process ($pid, from the host) after $acked acknowledged requests"
        deadline=$(($(date +%s) + 60))
        until [ "$(docker inspect -f '{{.RestartCount}}' "$(container_of "$victim")")" -gt "$restarts" ]; do
            [ "$(date +%s)" -lt "$deadline" ] || fail "restart: unless-stopped did not restart $victim within 60 s"
            sleep 1
        done
        wait_container_healthy "$victim" 60
        say "restart policy restarted $victim; healthy again"
    else
        fail "cannot signal $victim's process $pid from this host (rootless engine?)"
    fi
    py 60 "the gateway sees $victim_site again" gateway-sees --site "$victim_site" --hold 15 --deadline 5
    acked=$(wait_acked $((acked + 100)) 60)
    touch "$work/stop"
    timeout 30 tail --pid="$load_pid" -f /dev/null || fail "the load did not stop"
    wait "$load_pid" || true
    load_pid=
    py 120 "every acknowledged movement survives SIGKILL" verify-load --site "$victim_site" \
        --sku "KILL-$run_id" --log "$work/load.log" --snapshot "$work/kill.snapshot"
fi
within_budget

# --- 5. A warehouse cut off -------------------------------------------------------------------
cut_site=vn-hanoi
step "5. cut $cut_site off the backbone for 30 s"
disconnect=""
reconnect=""
for kind in inventory telemetry booking; do
    id=$(container_of "$kind-$cut_site")
    disconnect+="docker network disconnect ${project}_backbone $id && "
    reconnect+="docker network connect --alias $kind-$cut_site ${project}_backbone $id && "
done
py 240 "partition of $cut_site" partition --site "$cut_site" --other th-bangkok --hold 30 --deadline 5 \
    --disconnect "${disconnect}true" --reconnect "${reconnect}true"
memory "after the load and the partition"
# Whatever happened above, the site must be back on the backbone for the next steps.
for kind in inventory telemetry booking; do
    id=$(container_of "$kind-$cut_site")
    docker inspect -f '{{json .NetworkSettings.Networks}}' "$id" | grep -q "\"${project}_backbone\"" \
        || docker network connect --alias "$kind-$cut_site" "${project}_backbone" "$id"
done
within_budget

# --- 6. down (keeping volumes) and up ---------------------------------------------------------
step "6. down (volumes kept) and up again: the data is still there"
snapshot() { timeout 60 python3 deploy/docker/e2e.py --stubs "$work/stubs" --secrets "$secrets" \
    --project "$project" --network deploy/network.toml snapshot --site "$1" --sku "$2"; }
before_kill=$(snapshot "$victim_site" "KILL-$run_id") || fail "snapshot of $victim_site"
before_local=$(snapshot "$cut_site" "LOCAL-$run_id") || fail "snapshot of $cut_site"
compose_down
[ -z "$(docker ps -aq "${project_filter[@]}")" ] || fail "containers left after down"
volumes=$(docker volume ls -q "${project_filter[@]}" | wc -l)
[ "$volumes" -eq $((services - 1)) ] || fail "$volumes volumes after down, expected $((services - 1)) (one per container but the console)"
say "down: no container left, $volumes volumes kept"
t0=$(date +%s)
compose up -d >"$work/up2.log" 2>&1 || { cat "$work/up2.log" >&2; fail "second compose up failed"; }
wait_healthy "$services" 240
say "all $services healthy again $(($(date +%s) - t0)) s after 'up -d'"
after_kill=$(snapshot "$victim_site" "KILL-$run_id") || fail "snapshot of $victim_site"
after_local=$(snapshot "$cut_site" "LOCAL-$run_id") || fail "snapshot of $cut_site"
[ "$before_kill" = "$after_kill" ] || fail "$victim_site changed across down/up: $before_kill -> $after_kill"
[ "$before_local" = "$after_local" ] || fail "$cut_site changed across down/up: $before_local -> $after_local"
say "data kept: $victim_site $after_kill, $cut_site $after_local"
within_budget

# --- 7. backup, wipe, restore, serve ----------------------------------------------------------
restore_site=la-vientiane
restored=inventory-$restore_site
step "7. backup, wipe, restore, serve: $restored from the compose backup service"
t7=$(date +%s)
e2e() { # timeout, e2e.py command and arguments
    timeout "$1" python3 deploy/docker/e2e.py --stubs "$work/stubs" --secrets "$secrets" \
        --project "$project" --network deploy/network.toml --run "$run_id" --gateway "$gateway" "${@:2}"
}
backup_sku=BACKUP-$run_id
# Known data: receipts with distinct request ids; the site's state (on hand, ledger head, a
# digest of every ledger entry) is the last line.
e2e 60 receipts --site "$restore_site" --sku "$backup_sku" --tag before --count 3 >"$work/before.out" \
    || { cat "$work/before.out" >&2; fail "receipts at $restore_site before the backup"; }
tail -1 "$work/before.out" >"$work/at-backup.json"
sed '$d' "$work/before.out"
at_backup_head=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["head"])' "$work/at-backup.json")
say "state of $restore_site before the backup: $(cut -c1-150 "$work/at-backup.json")…"
# The documented one-shot service (profile `backup`), into this run's directory, owned by the
# image's user: every site service and the gateway, while the network runs.
backups=$work/backups
mkdir -p "$backups" && chown 10001:10001 "$backups"
t0=$(date +%s)
BACKUP_DIR=$backups compose --profile backup run --rm backup >"$work/backup.log" 2>&1 \
    || { tail -30 "$work/backup.log" >&2; fail "compose --profile backup run --rm backup failed"; }
files=("$backups"/*.ccbackup)
[ "${#files[@]}" -eq $((sites * 3 + 1)) ] \
    || fail "the backup service wrote ${#files[@]} files, expected $((sites * 3 + 1)) (every site service and the gateway): $(ls "$backups")"
say "compose backup service: ${#files[@]} files in $(($(date +%s) - t0)) s ($(du -sh "$backups" | cut -f1))"
t0=$(date +%s)
for file in "${files[@]}"; do
    timeout 30 "$coldchain" backup verify "$file" >/dev/null 2>"$work/verify.err" \
        || { cat "$work/verify.err" >&2; fail "backup verify $(basename "$file")"; }
done
backup_file=$(ls "$backups/$restore_site"-inventory-*.ccbackup)
timeout 30 "$coldchain" backup verify --json "$backup_file" >"$work/manifest.json" \
    || fail "backup verify --json $(basename "$backup_file")"
manifest_sequence=$(python3 -c 'import json, sys; t = open(sys.argv[1]).read(); print(json.loads(t[t.index("{"):])["ledger_sequence"])' "$work/manifest.json")
[ "$manifest_sequence" = "$at_backup_head" ] \
    || fail "$(basename "$backup_file") is at ledger sequence $manifest_sequence, the site's ledger was at $at_backup_head"
say "every file verified in $(($(date +%s) - t0)) s; $(basename "$backup_file") at ledger sequence $manifest_sequence, the head before it"
# More data after the backup: gone after the restore, if the restore came from the backup.
e2e 60 receipts --site "$restore_site" --sku "$backup_sku" --tag after --count 2 >"$work/after.out" \
    || { cat "$work/after.out" >&2; fail "receipts at $restore_site after the backup"; }
sed '$d' "$work/after.out"
# Wipe: the container stopped and removed, its volume removed and created again (empty), the
# container created again without starting it.
volume=${project}_$restored-data
t0=$(date +%s)
compose stop "$restored" >/dev/null 2>&1 || fail "compose stop $restored"
compose rm -f "$restored" >/dev/null 2>&1 || fail "compose rm -f $restored"
docker volume rm "$volume" >/dev/null || fail "cannot remove the volume $volume"
compose up --no-start --no-deps "$restored" >"$work/recreate.log" 2>&1 \
    || { cat "$work/recreate.log" >&2; fail "compose up --no-start --no-deps $restored"; }
mountpoint=$(docker volume inspect -f '{{.Mountpoint}}' "$volume") || fail "$volume was not created again"
[ -z "$(ls -A "$mountpoint")" ] || fail "$volume is not empty after it was created again: $(ls -A "$mountpoint")"
say "$restored stopped, $volume removed and created again (empty) in $(($(date +%s) - t0)) s"
# Restore into the volume: a one-off container of the image, as its user, with no network.
t0=$(date +%s)
timeout 120 docker run --rm --network none --user 10001:10001 -v "$volume:/data" -v "$backups:/backups:ro" \
    coldchain:latest restore "/backups/$(basename "$backup_file")" --data-dir /data \
    --site "$restore_site" --service inventory >"$work/restore.log" 2>&1 \
    || { cat "$work/restore.log" >&2; fail "coldchain restore into $volume"; }
say "restored into $volume in $(($(date +%s) - t0)) s:$(grep -m1 'ledger sequence' "$work/restore.log" || tail -1 "$work/restore.log")"
compose start "$restored" >/dev/null 2>&1 || fail "compose start $restored"
wait_container_healthy "$restored" 60
wait_healthy "$services" 60
say "$restored healthy $(($(date +%s) - t0)) s after the restore began; all $services containers healthy"
e2e 90 after-restore --site "$restore_site" --sku "$backup_sku" --snapshot "$work/at-backup.json" --deadline 30 \
    || fail "$restored after the restore"
# A damaged copy (one byte flipped in the middle) and another site's --site are refused.
damaged=$work/damaged.ccbackup
cp "$backup_file" "$damaged"
python3 - "$damaged" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    middle = os.path.getsize(sys.argv[1]) // 2
    f.seek(middle)
    byte = f.read(1)[0]
    f.seek(middle)
    f.write(bytes([byte ^ 0xFF]))
PY
cmp -s "$backup_file" "$damaged" && fail "the damaged copy equals the backup"
refused() { # what, words the message must hold (extended regex), command...
    local what=$1 words=$2 rc=0 out
    shift 2
    out=$(timeout 30 "$@" 2>&1) || rc=$?
    [ "$rc" -ne 0 ] || fail "$what was accepted: $out"
    [ "$rc" -ne 124 ] || fail "$what: no answer within 30 s"
    grep -qiE "$words" <<<"$out" || fail "$what refused (exit $rc) without a clear message: $out"
    say "ok: $what refused (exit $rc): $(tail -1 <<<"$out" | cut -c1-220)"
}
refused "backup verify of a damaged copy" 'corrupt|damaged' "$coldchain" backup verify "$damaged"
mkdir -p "$work/restore-damaged" "$work/restore-other"
refused "restore of a damaged copy" 'corrupt|damaged' \
    "$coldchain" restore "$damaged" --data-dir "$work/restore-damaged"
[ -z "$(ls -A "$work/restore-damaged")" ] || fail "the refused restore wrote $(ls -A "$work/restore-damaged")"
refused "restore of $restore_site's backup with --site vn-hanoi" "not site \"vn-hanoi\"" \
    "$coldchain" restore "$backup_file" --data-dir "$work/restore-other" --site vn-hanoi
[ -z "$(ls -A "$work/restore-other")" ] || fail "the refused restore wrote $(ls -A "$work/restore-other")"
say "step 7 (backup, wipe, restore, serve) took $(($(date +%s) - t7)) s"
within_budget

# --- 8. down -v -------------------------------------------------------------------------------
step "8. down -v"
compose_down -v
phantoms=$(phantom_networks | wc -l)
left=$( (docker ps -aq "${project_filter[@]}"; docker network ls -q "${project_filter[@]}"; docker volume ls -q "${project_filter[@]}") | wc -l)
[ "$left" -eq "$phantoms" ] || fail "$((left - phantoms)) containers, networks or volumes left after down -v"
say "nothing of $project left$([ "$phantoms" -eq 0 ] || echo " but $phantoms phantom network(s) the engine will not remove")"

if [ "${#pending[@]}" -gt 0 ]; then
    echo
    echo "compose_e2e: PENDING (a service answered UNIMPLEMENTED):"
    printf '  - %s\n' "${pending[@]}"
    if [ "${COMPOSE_E2E_ALLOW_PENDING:-0}" != 1 ]; then
        fail "${#pending[@]} step(s) pending; set COMPOSE_E2E_ALLOW_PENDING=1 only while those services are being written"
    fi
fi
