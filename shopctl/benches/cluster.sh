#!/usr/bin/env bash
# Benchmark: apply, dry run and rollback of the full dev platform (77 objects) against the
# simulated Kubernetes API server, next to `kubectl apply --server-side` of the same
# rendered manifests; then the delay between a rollout becoming ready (seen on a watch of
# the API server) and `shopctl apply --wait` reporting it, next to `kubectl rollout status`.
# Method: release builds, the simulator on loopback (pods ready 200 ms after creation),
# hyperfine with warm-up runs; the readiness delay is measured by benches/wait_latency.rs.
# The simulator is not a cluster: these numbers are shopctl's own cost plus loopback HTTP.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in hyperfine kubectl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
cargo build --release --locked -p shopctl -p shopmicro-kube-sim --bins
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/shopmicro-kube-sim --listen "127.0.0.1:$port" --kubeconfig "$work/kubeconfig" \
    --ready-after-ms 200 --allow-anonymous >/dev/null &
sim=$!
trap 'kill $sim; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/version" >/dev/null; do sleep 0.1; done

export KUBECONFIG="$work/kubeconfig"
for name in POSTGRES_PASSWORD CART_SIGNING_KEY ML_RETRAIN_TOKEN GRAFANA_ADMIN_PASSWORD; do
    export "SHOPMICRO_$name=bench-$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")"
done
bin=$PWD/target/release/shopctl
anon="$work/anonymous.kubeconfig"
sed -e '/token:/d' -e 's/user:$/user: {}/' "$KUBECONFIG" >"$anon"

$bin apply --env dev --wait >/dev/null
$bin render --env dev --show-secrets --out "$work/rendered" 2>/dev/null

hyperfine --warmup 3 --runs 20 --shell=none --output=null \
    --export-markdown target/cluster-apply-bench.md \
    -n "shopctl apply --env dev (nothing changed)" "$bin apply --env dev" \
    -n "shopctl apply --env dev --dry-run (nothing changed)" "$bin apply --env dev --dry-run" \
    -n "kubectl apply --server-side (same manifests)" \
    "kubectl --kubeconfig $anon apply --server-side --field-manager shopctl --validate=false -f $work/rendered"
hyperfine --warmup 2 --runs 15 --output=null \
    --export-markdown target/cluster-change-bench.md \
    -n "shopctl apply (new backend tag, no wait)" \
    --prepare "$bin apply --env dev --set services.backend.tag=0.1.0" \
    "$bin apply --env dev --set services.backend.tag=0.2.0" \
    -n "shopctl rollback --env dev (whole release, waits for the rollout)" \
    --prepare "$bin apply --env dev --set services.backend.tag=0.3.0 --wait" \
    "$bin rollback --env dev"
cat target/cluster-apply-bench.md target/cluster-change-bench.md
cargo bench --locked -p shopctl --bench wait_latency
