#!/usr/bin/env bash
# Benchmark (issue 18): user-space instructions per uncached listing, for one or more backend
# binaries. Rates on this shared 2-core machine move by a third from run to run; an
# instruction count does not, so a change to the listing's code shows here even when it is
# lost in read-path.sh's noise. It counts the backend's own instructions only: the kernel's
# socket work and PostgreSQL's are not in it (read-path.sh measures those).
#
#   shopctl/benches/listing-instructions.sh path/to/shopmicro-backend [more binaries...]
#
# Each binary runs under callgrind on one thread with no cache (as the read-path benchmark's
# uncached side), on a scratch database with the demo data (DATABASE_URL, default the local
# PostgreSQL's `listing_instructions`), and answers N then 2N keep-alive GETs of
# /products?limit=20 from 8 connections (ab). The difference over N is the cost of one
# request, start-up cancelled out. Installs valgrind and ab when missing.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 backend-binary [more...]" >&2; exit 2; }
requests=${REQUESTS:-3000}
server=${PGSERVER:-postgres://postgres@127.0.0.1:5432}
database=${DATABASE_URL:-$server/listing_instructions}
port=${PORT:-18100}

need_apt=()
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v ab >/dev/null || need_apt+=(apache2-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}" >&2
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -z "${DATABASE_URL:-}" ]; then
    echo "==> scratch database listing_instructions (demo data)" >&2
    psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS listing_instructions" \
        -c "CREATE DATABASE listing_instructions" >/dev/null ||
        { echo "cannot create the scratch database on $server (set PGSERVER or DATABASE_URL)" >&2; exit 1; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Instructions the binary $1 executed serving $2 listings, start-up and shutdown included.
instructions() {
    local binary=$1 count=$2 pid
    env DATABASE_URL="$database" SEED_DEMO_DATA=true CATALOGUE_MEMORY_MB=0 PORT="$port" \
        ADMIN_PORT=$((port + 1)) RUST_LOG=warn WORKER_THREADS=1 MIMALLOC_ARENA_EAGER_COMMIT=0 \
        valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$binary" \
        >"$work/backend.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/products?limit=20" && break
        kill -0 "$pid" 2>/dev/null || { cat "$work/backend.log" >&2; exit 1; }
        sleep 0.2
    done
    local out
    out=$(ab -q -k -n "$count" -c 8 "http://127.0.0.1:$port/products?limit=20")
    grep -q "^Failed requests: *0$" <<<"$out" || { echo "$out" >&2; exit 1; }
    grep -q "^Non-2xx" <<<"$out" && { echo "$out" >&2; exit 1; }
    kill -INT "$pid"
    wait "$pid" || true
    callgrind_annotate "$work/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

echo "| backend | instructions per uncached listing |"
echo "|---|---:|"
for binary in "$@"; do
    once=$(instructions "$binary" "$requests")
    twice=$(instructions "$binary" $((2 * requests)))
    echo "| $binary | $(((twice - once) / requests)) |"
done
