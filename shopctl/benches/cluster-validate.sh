#!/usr/bin/env bash
# Benchmark: a full `shopctl validate --env dev` of a healthy platform on the simulated API
# server, the checks concurrent (the default) next to `--sequential`. The three checks that
# ask AWS are skipped (no emulator here), so this measures the cluster snapshot and the
# cluster checks. Method: release build, simulator on loopback, hyperfine with warm-up runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
cargo build --release --locked -p shopctl -p shopmicro-kube-sim --bins
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/shopmicro-kube-sim --listen "127.0.0.1:$port" --kubeconfig "$work/kubeconfig" --ready-after-ms 100 >/dev/null &
sim=$!
trap 'kill $sim; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/version" >/dev/null; do sleep 0.1; done
export KUBECONFIG="$work/kubeconfig" AWS_EC2_METADATA_DISABLED=true
for name in POSTGRES_PASSWORD CART_SIGNING_KEY GRAFANA_ADMIN_PASSWORD; do
    export "SHOPMICRO_$name=bench-$RANDOM$RANDOM"
done
bin=target/release/shopctl
$bin apply --env dev --wait >/dev/null 2>&1
$bin backup --env dev >/dev/null 2>&1
# The simulated backup Job completes after 100 ms; wait until its CronJob records it.
until $bin validate --env dev --only storage.backup-job >/dev/null 2>&1; do sleep 0.2; done
skip="access.aws,access.terraform-state,storage.backup-object"
hyperfine --warmup 3 --runs 30 --shell=none --output=null --ignore-failure \
    --export-markdown target/cluster-validate-bench.md \
    "$bin validate --env dev --skip $skip" \
    "$bin validate --env dev --skip $skip --sequential"
cat target/cluster-validate-bench.md
$bin validate --env dev --skip "$skip" | tail -1
