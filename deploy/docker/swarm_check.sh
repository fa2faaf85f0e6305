#!/usr/bin/env bash
# deploy/stack.yaml on a single-node Docker Swarm made for the occasion, then torn down:
# what the README's swarm paragraph reports. Needs the coldchain:latest image (build-local.sh),
# a coldchain binary on this host for the secrets (SWARM_CHECK_BINARY, default
# target/release/coldchain), root (the secrets are given to the image's user, uid 10001) and an
# engine that is not already part of a swarm (it refuses to touch an existing one). Not run by
# .ci/run (it takes over the engine's swarm state).
#
#   deploy/docker/swarm_check.sh
#
# 0. fresh secrets (a CA, a certificate per task, a keyring) in a temporary directory that
#    SECRETS_DIR points the stack file at;
# 1. docker swarm init; label the node for the hub and every site (placement constraints);
# 2. docker stack deploy --resolve-image never -c deploy/stack.yaml coldchain;
# 3. wait until every task is running and healthy; the gateway answers on the published port,
#    and reaches site services by name; a site service reaches its neighbour on the site LAN;
# 4. SIGKILL a task's container: swarm replaces it (restart_policy: any);
# 5. docker stack rm; remove the stack's volumes; docker swarm leave --force (EXIT trap).
set -euo pipefail
cd "$(dirname "$0")/../.."
stack=${SWARM_CHECK_STACK:-coldchain}
export GATEWAY_HOST_PORT=${GATEWAY_HOST_PORT:-59051}
started=$(date +%s)
say() { echo "swarm_check: [$(($(date +%s) - started)) s] $*"; }
fail() { echo "swarm_check: FAIL: $*" >&2; exit 1; }

command -v docker >/dev/null || fail "docker is not installed"
[ "$(docker info -f '{{.Swarm.LocalNodeState}}')" = inactive ] \
    || fail "this engine is already in a swarm; refusing to touch it"
docker image inspect coldchain:latest >/dev/null 2>&1 || fail "no coldchain:latest image (run deploy/docker/build-local.sh)"
coldchain=${SWARM_CHECK_BINARY:-target/release/coldchain}
[ -x "$coldchain" ] || fail "no coldchain binary at $coldchain (build it, or set SWARM_CHECK_BINARY)"
[ "$(id -u)" = 0 ] || fail "the secrets must be given to the image's user 10001 (chown): run as root"
secrets=

cleanup() {
    local rc=$?
    set +e
    docker stack rm "$stack" >/dev/null 2>&1
    for _ in $(seq 1 90); do
        [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] \
            && [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ] && break
        sleep 1
    done
    docker volume rm $(docker volume ls -q --filter "label=com.docker.stack.namespace=$stack") >/dev/null 2>&1
    docker swarm leave --force >/dev/null 2>&1
    [ -n "$secrets" ] && rm -rf "$secrets"
    # The bridge swarm made for its containers' outside traffic; freed a moment after leaving.
    for _ in $(seq 1 10); do
        docker network inspect docker_gwbridge >/dev/null 2>&1 || break
        docker network rm docker_gwbridge >/dev/null 2>&1 || sleep 1
    done
    # Seen on engine 20.10.24 after a task was SIGKILLed: a stale endpoint keeps the bridge
    # ("has active endpoints") until dockerd restarts. It is inert; the next swarm reuses it.
    docker network inspect docker_gwbridge >/dev/null 2>&1 \
        && echo "swarm_check: WARNING: docker_gwbridge could not be removed (stale endpoint in the engine)" >&2
    say "stack removed, volumes removed, swarm left (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secrets=$(mktemp -d "${TMPDIR:-/tmp}/swarm-check-secrets.XXXXXX")
export SECRETS_DIR=$secrets
"$coldchain" certs --out "$secrets/tls" >/dev/null
"$coldchain" credentials keyring --out "$secrets/keyring" >/dev/null
chown -R 10001:10001 "$secrets"
in_container=/etc/coldchain/secrets
client_docker=(-v "$secrets:$in_container:ro" -e "COLDCHAIN_TLS_CA=$in_container/tls/ca.pem"
               -e "COLDCHAIN_KEYRING=$in_container/keyring")
say "fresh secrets in $secrets (SECRETS_DIR)"

timeout 60 docker swarm init ${SWARM_ADVERTISE_ADDR:+--advertise-addr "$SWARM_ADVERTISE_ADDR"} >/dev/null
node=$(docker node ls -q)
labels=(--label-add coldchain.hub=true)
for site in $(python3 -c 'import tomllib; print(" ".join(s["id"] for s in tomllib.load(open("deploy/network.toml","rb"))["site"]))'); do
    labels+=(--label-add "coldchain.site.$site=true")
done
docker node update "${labels[@]}" "$node" >/dev/null
say "swarm initialised; node labelled: ${labels[*]}"

timeout 120 docker stack deploy --detach=true --resolve-image never -c deploy/stack.yaml "$stack" >/dev/null
want=$(docker stack services -q "$stack" | wc -l)
say "docker stack deploy: $want services"
deadline=$(($(date +%s) + 180))
while :; do
    healthy=$(docker ps -q --filter "label=com.docker.stack.namespace=$stack" --filter health=healthy | wc -l)
    [ "$healthy" -ge "$want" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || { docker stack ps "$stack" --no-trunc | head -40 >&2; fail "$healthy of $want healthy after 180 s"; }
    sleep 1
done
say "all $want tasks running and healthy"
docker stats --no-stream --format '{{.MemUsage}}' $(docker ps -q --filter "label=com.docker.stack.namespace=$stack") \
    | awk '{print $3}' | sort | uniq -c | sed 's/^/    memory limit: /'

task() { docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" | head -1; }
probe=$(task gateway)
timeout 10 docker run --rm --network host "${client_docker[@]}" --entrypoint coldchain coldchain:latest \
    healthcheck "127.0.0.1:$GATEWAY_HOST_PORT" \
    || fail "the gateway does not answer over TLS on the published port $GATEWAY_HOST_PORT"
timeout 10 docker exec "$probe" coldchain healthcheck http://inventory-la-vientiane:50121 \
    || fail "the gateway does not reach inventory-la-vientiane by name"
timeout 10 docker exec "$(task telemetry-vn-hanoi)" coldchain healthcheck http://inventory-vn-hanoi:50131 \
    || fail "telemetry-vn-hanoi does not reach inventory-vn-hanoi"
timeout 120 docker run --rm --network "${stack}_backbone" "${client_docker[@]}" coldchain:latest \
    demo --network /etc/coldchain/network.compose.toml --json >/dev/null 2>&1 \
    && say "coldchain demo passed against the stack" \
    || fail "coldchain demo failed against the stack"

victim=$(task inventory-th-bangkok)
docker kill -s KILL "$victim" >/dev/null
deadline=$(($(date +%s) + 90))
until new=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_inventory-th-bangkok" --filter health=healthy) \
      && [ -n "$new" ] && [ "$new" != "$victim" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "swarm did not replace the killed task within 90 s"
    sleep 1
done
say "killed inventory-th-bangkok's container; swarm replaced it with a healthy task"
say "PASS"
