#!/usr/bin/env bash
# Benchmark: `shopctl render` and `shopctl lint` of the prod environment (the largest),
# whole-process wall time including start-up, as an operator or CI step experiences it.
# Method: release build, hyperfine with warm-up runs, 100 measured runs each, output to
# /dev/null. Results go into shopctl/benches/RESULTS.md by hand, with the machine noted.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
cargo build --release --locked -p shopctl
bin=target/release/shopctl
hyperfine --warmup 10 --runs 100 --shell=none --output=null \
    --export-markdown target/render-lint-bench.md \
    "$bin render --env prod" \
    "$bin lint --env prod" \
    "$bin --version"
cat target/render-lint-bench.md
