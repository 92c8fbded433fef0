#!/usr/bin/env bash
# Benchmark: a full `shopctl validate --env local` of a healthy local platform (every check
# against local endpoints), concurrent (the default) next to `--sequential`, the same
# checks one after another. Method: release build, `shopctl up` into a scratch state
# directory, some traffic so the SLIs have data, hyperfine with warm-up runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
cargo build --release --locked --bins
export SHOPCTL_STATE_DIR
SHOPCTL_STATE_DIR=$(mktemp -d)
bin=target/release/shopctl
trap '$bin down --purge --yes >/dev/null 2>&1 || true' EXIT
$bin up >/dev/null
storefront=$($bin status --output json | python3 -c "import json,sys; print([c['url'] for c in json.load(sys.stdin)['components'] if c['name']=='frontend'][0])")
for _ in $(seq 1 50); do curl -s -o /dev/null "$storefront/products/1"; done
hyperfine --warmup 3 --runs 30 --shell=none --output=null --ignore-failure \
    --export-markdown target/validate-bench.md \
    "$bin validate --env local" \
    "$bin validate --env local --sequential"
cat target/validate-bench.md
