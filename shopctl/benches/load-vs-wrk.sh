#!/usr/bin/env bash
# Benchmark: is `shopctl load` the bottleneck? The highest rate it sustains against one
# endpoint next to wrk's throughput on the same endpoint, in the same run. Method: release
# build, `shopctl up` into a scratch state directory, wrk (closed loop: as fast as the
# server answers) on the backend's `GET /products?limit=20` with 64 connections for 10 s,
# then `shopctl load --scenario listing` (the same request, open model) with 64 connections
# at fractions of wrk's rate. A rate is sustained when nothing failed and p99 stayed under
# 100 ms (an open model that falls behind queues, and its latency, counted from each
# request's due time, grows without bound).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release --locked --bins
export SHOPCTL_STATE_DIR
SHOPCTL_STATE_DIR=$(mktemp -d)
bin="${CARGO_TARGET_DIR:-target}/release/shopctl"
trap '$bin down --purge --yes >/dev/null 2>&1 || true' EXIT
# The access log at info would measure the log file: both generators face the same server.
$bin up --set observability.log_level=warn >/dev/null
backend=$($bin status --output json | python3 -c "import json,sys; print([c['url'] for c in json.load(sys.stdin)['components'] if c['name']=='backend'][0])")
url="$backend/products?limit=20"

wrk_out=$(wrk -t2 -c64 -d10s --latency "$url")
wrk_rate=$(awk '/Requests\/sec/ {print $2}' <<<"$wrk_out")
wrk_p99=$(awk '$1 == "99%" {print $2}' <<<"$wrk_out")
echo "| generator | asked /s | answered /s | p50 ms | p99 ms | errors | sustained |"
echo "|---|---:|---:|---:|---:|---:|---|"
echo "| wrk -t2 -c64 (closed loop) | – | $wrk_rate | – | $wrk_p99 | – | – |"

best=0
for fraction in 0.5 0.6 0.7 0.8 0.9 1.0 1.1; do
    rate=$(python3 -c "print(round($wrk_rate * $fraction))")
    report=$($bin load --scenario listing --rate "$rate" --duration 10s --warmup 2s \
        --connections 64 --output json || true)
    read -r achieved p50 p99 errors sustained < <(python3 -c "
import json, sys
r = json.loads(sys.argv[1]); route = r['routes'][0]
errors = sum(route['errors'].values())
sustained = errors == 0 and route['p99_ms'] <= 100
print(round(r['achieved_rate']), route['p50_ms'], route['p99_ms'], errors, 'yes' if sustained else 'no')
" "$report")
    echo "| shopctl load -c64 (open model) | $rate | $achieved | $p50 | $p99 | $errors | $sustained |"
    if [ "$sustained" = yes ]; then best=$rate; fi
done
echo
python3 -c "print(f'highest sustained rate: $best/s = {$best / $wrk_rate:.2f} × wrk')"
