#!/usr/bin/env bash
# Benchmark: a full `shopctl validate --env dev` of a healthy platform on the simulated API
# server, the checks concurrent (the default) next to `--sequential`. The services and
# Prometheus are real (`shopctl up --env local`), reached through the simulator's service
# proxy; Loki and Tempo, which do not run here, are a static file server answering /ready.
# The three checks that ask AWS are skipped (no emulator here). Method: release build,
# everything on loopback, hyperfine with warm-up runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
cargo build --release --locked --workspace --bins
bin=target/release/shopctl
work=$(mktemp -d)
# As root, shopctl runs PostgreSQL as `postgres`, which must reach the state directory.
chmod 755 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export SHOPCTL_STATE_DIR="$work/local"
cleanup() { kill "${sim:-}" "${stand_in:-}" 2>/dev/null || true; $bin down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
$bin up --env local >/dev/null
url() { $bin status --output json | python3 -c "import json,sys; print(next(c['url'] for c in json.load(sys.stdin)['components'] if c['name']=='$1'))"; }
mkdir -p "$work/stand-in" && echo ready > "$work/stand-in/ready"
stand_in_port=$(free_port)
python3 -m http.server "$stand_in_port" --bind 127.0.0.1 --directory "$work/stand-in" >/dev/null 2>&1 &
stand_in=$!
port=$(free_port)
target/release/shopmicro-kube-sim --listen "127.0.0.1:$port" --kubeconfig "$work/kubeconfig" --ready-after-ms 100 \
    --serve "shopmicro/frontend:frontend=$(url frontend)" \
    --serve "shopmicro/backend:backend=$(url backend)" \
    --serve "shopmicro/ml:ml=$(url ml)" \
    --serve "monitoring/prometheus:http=$(url prometheus)" \
    --serve "monitoring/loki:http=http://127.0.0.1:$stand_in_port" \
    --serve "monitoring/tempo:http=http://127.0.0.1:$stand_in_port" >/dev/null &
sim=$!
until curl -sf "http://127.0.0.1:$port/version" >/dev/null; do sleep 0.1; done
export KUBECONFIG="$work/kubeconfig" AWS_EC2_METADATA_DISABLED=true
for name in POSTGRES_PASSWORD CART_SIGNING_KEY ML_RETRAIN_TOKEN GRAFANA_ADMIN_PASSWORD; do
    export "SHOPMICRO_$name=bench-$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")"
done
bin=target/release/shopctl
$bin apply --env dev --wait >/dev/null 2>&1
$bin backup --env dev >/dev/null 2>&1
# The simulated backup Job completes after 100 ms; wait until its CronJob records it.
until $bin validate --env dev --only storage.backup-job >/dev/null 2>&1; do sleep 0.2; done
# Prometheus scrapes every 15 s: measure once it has (a healthy platform, not a new one).
until $bin validate --env dev --only obs.targets --output json 2>/dev/null | grep -q '"status": "pass"'; do sleep 1; done
skip="access.aws,access.terraform-state,storage.backup-object"
hyperfine --warmup 3 --runs 30 --shell=none --output=null --ignore-failure \
    --export-markdown target/cluster-validate-bench.md \
    "$bin validate --env dev --skip $skip" \
    "$bin validate --env dev --skip $skip --sequential"
cat target/cluster-validate-bench.md
# The verdicts the timings are of (a failure here would make the timings meaningless).
$bin validate --env dev --skip "$skip"
