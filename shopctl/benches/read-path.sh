#!/usr/bin/env bash
# Benchmark (issue 18): the services' read path side by side with what bounds it and with
# the seed's stack, in one run on one machine. Every HTTP side gets the same load: wrk -t2
# -c64 for 10 s after a 2 s warm-up, on the same 2 cores as the servers.
#
#   backend listing, cached    GET /products?limit=20 on the platform's backend (Redis on)
#   nginx, same bytes          nginx serving that very response body from a file; three
#                              rounds alternate with the cached listing, and the goal takes
#                              the median round's ratio
#   backend listing, uncached  a second backend on the same database, no Redis, no memory
#                              cache, WORKER_THREADS=1 as every environment's pods run it
#                              (CPU limit 1); once more with one worker per CPU of this
#                              machine (the default off Kubernetes). Three rounds alternate
#                              with pgbench; the goal takes the median round's ratio, since
#                              one run of each on a shared machine can differ by a third
#   pgbench, same SQL          the listing's SQL, prepared, 16 clients
#   pgbench, pipelined         the same, 2 clients sending 16 queries per pipeline (what
#                              PostgreSQL answers when queries share round trips, as the
#                              backend's catalogue reads do; for reference, not a goal)
#   Node peer                  Express + pg + ioredis, listing cached in Redis (peers/node)
#   ml                         GET /recommendations?product_id=7&k=5
#   Flask peer                 Flask + gunicorn (2 workers), the same model (peers/flask)
#   storefront                 GET / (the catalogue page: categories and 24 products)
#   storefront, PAGE_CACHE_MB=0  the same page rendered every time (a second frontend)
#   backend, access log        two more backends on the platform's database and Redis at
#                              RUST_LOG=info, writing every line or one success in 100
#                              (ACCESS_LOG_SAMPLE=100), stdout to /dev/null
#
# With BEFORE_BACKEND=path/to/an/older/shopmicro-backend it also runs that binary on the same
# database and Redis (keys of its own) and measures its listing beside the current one, then
# once more with no cache.
#
# It also reads each service's RSS idle and at the end of its load. Installs what it lacks
# (wrk, nginx, the peers' packages under ~/.cache/shopmicro-bench). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${HOME}/.cache/shopmicro-bench"
mkdir -p "$cache"

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v pgbench >/dev/null || need_apt+=(postgresql-contrib)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}" >&2
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

echo "==> peers' packages (npm, pip) into $cache" >&2
rm -rf "$cache/node" && cp -r shopctl/benches/peers/node "$cache/node"
(cd "$cache/node" && npm install --silent --no-audit --no-fund >/dev/null)
[ -x "$cache/venv/bin/gunicorn" ] || python3 -m venv "$cache/venv"
"$cache/venv/bin/pip" install -q -r shopctl/benches/peers/flask/requirements.txt

echo "==> release build of shopctl, and the services as their images build them (profile service)" >&2
cargo build --release --locked -p shopctl >&2
cargo build --profile service --locked -p shopmicro-backend -p shopmicro-ml -p shopmicro-frontend >&2
built="${CARGO_TARGET_DIR:-target}"

work=$(mktemp -d)
# shopctl runs the service binaries it finds beside it.
target="$work/bin"
mkdir "$target"
cp "$built/release/shopctl" "$built/service/shopmicro-backend" "$built/service/shopmicro-ml" \
    "$built/service/shopmicro-frontend" "$target/"
# As root, shopctl runs PostgreSQL as the postgres user, who must reach the state directory.
chmod 755 "$work"
pids=()
export SHOPCTL_STATE_DIR="$work/state"
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    "$target/shopctl" down --purge --yes >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> shopctl up (fresh database, demo data; access log at warn for every side)" >&2
"$target/shopctl" up --set observability.log_level=warn >/dev/null
"$target/shopctl" status --output json >"$work/status.json"
field() {
    python3 - "$work/status.json" "$1" "$2" <<'PY'
import json, sys
status, name, what = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
component = next(c for c in status["components"] if c["name"] == name)
print(component["process"]["pid"] if what == "pid" else component[what])
PY
}
backend=$(field backend url); ml=$(field ml url); frontend=$(field frontend url)
pg_port=$(field postgres port); redis_url=$(field redis url)
database="postgres://postgres@127.0.0.1:$pg_port/shopmicro"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
wait_for() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return; sleep 0.1; done; echo "$1 never answered" >&2; exit 1; }

idle_backend=$(rss_mb "$(field backend pid)"); idle_ml=$(rss_mb "$(field ml pid)")
idle_frontend=$(rss_mb "$(field frontend pid)")

# One wrk run: "requests/s p99_ms rss_mb_at_end" (RSS of the given pid, or "-"). With a
# third argument, also the CPU it took per request (the pid as the server) in cpu.rows.
measure() {
    local url=$1 pid=${2:-} cpu_label=${3:-}
    wrk -t2 -c64 -d2s "$url" >/dev/null
    local out rss=- before after
    [ -n "$cpu_label" ] && before=$(cpu_snapshot "$pid")
    out=$(wrk -t2 -c64 -d10s --latency "$url")
    [ -n "$cpu_label" ] && after=$(cpu_snapshot "$pid")
    [ -n "$pid" ] && rss=$(rss_mb "$pid")
    grep -q "Non-2xx" <<<"$out" && { echo "$url answered errors under load:" >&2; echo "$out" >&2; exit 1; }
    local rate p99
    rate=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.1f", v}' <<<"$out")
    if [ -n "$cpu_label" ]; then
        echo "$cpu_label|$rate|$(cpu_per_request "$before" "$after" "$(awk '/requests in/ {print $1}' <<<"$out")")" >>"$work/cpu.rows"
    fi
    echo "$rate $p99 $rss"
}
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }

# Where the CPU goes, for the uncached goal: CPU used so far in clock ticks, as "machine
# server postgres". machine: every core's busy time; server: the process tree under $1 (0 for
# none); postgres: the postmaster's tree, with the backends it has already reaped.
pg_pid=$(field postgres pid)
cpu_snapshot() {
    python3 - "$1" "$pg_pid" <<'PY'
import os, sys
def tree(pid):
    if pid == "0":
        return 0
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    total = sum(map(int, stat[11:15]))  # utime, stime, and the reaped children's
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in open(f"/proc/{pid}/task/{task}/children").read().split():
            try:
                total += tree(child)
            except FileNotFoundError:
                pass
    return total
cpu = list(map(int, open("/proc/stat").readline().split()[1:9]))
print(sum(cpu) - cpu[3] - cpu[4], tree(sys.argv[1]), tree(sys.argv[2]))
PY
}
# "machine server postgres rest" in µs of CPU per request between two snapshots; rest is the
# load generator, softirq and anything else running.
cpu_per_request() {
    python3 - "$1" "$2" "$3" "$(getconf CLK_TCK)" <<'PY'
import sys
before, after = (list(map(int, s.split())) for s in sys.argv[1:3])
requests, tick = int(sys.argv[3]), int(sys.argv[4])
machine, server, postgres = ((a - b) / tick / requests * 1e6 for a, b in zip(after, before))
print(f"{machine:.0f} {server:.0f} {postgres:.0f} {machine - server - postgres:.0f}")
PY
}

# nginx with the identical bytes.
mkdir -p "$work/www"
curl -sf "$backend/products?limit=20" >"$work/www/products.json"
nginx_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
    uwsgi_temp_path $work; scgi_temp_path $work;
    server {
        listen 127.0.0.1:$nginx_port;
        location = /products { default_type application/json; alias $work/www/products.json; }
    }
}
CONF
"$nginx_bin" -c "$work/nginx.conf" -e "$work/nginx-error.log" & nginx_pid=$!; pids+=($nginx_pid)

# The backend without any cache, on the same database: on one thread, as a pod limited to
# one CPU runs it, and with one worker per CPU of this machine.
uncached_port=$(free_port)
env DATABASE_URL="$database" DATABASE_MIGRATIONS=verify SEED_DEMO_DATA=false \
    CATALOGUE_MEMORY_MB=0 PORT="$uncached_port" ADMIN_PORT="$(free_port)" RUST_LOG=warn \
    WORKER_THREADS=1 \
    "$target/shopmicro-backend" >"$work/uncached.log" 2>&1 & uncached_pid=$!; pids+=($uncached_pid)
per_cpu_port=$(free_port)
env DATABASE_URL="$database" DATABASE_MIGRATIONS=verify SEED_DEMO_DATA=false \
    CATALOGUE_MEMORY_MB=0 PORT="$per_cpu_port" ADMIN_PORT="$(free_port)" RUST_LOG=warn \
    WORKER_THREADS="$(nproc)" \
    "$target/shopmicro-backend" >"$work/per-cpu.log" 2>&1 & per_cpu_pid=$!; pids+=($per_cpu_pid)

# The access log's cost: the cached listing writing every line, and one success in 100.
declare -A logged_port
for sample in 1 100; do
    logged_port[$sample]=$(free_port)
    env DATABASE_URL="$database" DATABASE_MIGRATIONS=verify SEED_DEMO_DATA=false \
        REDIS_URL="$redis_url" CACHE_PREFIX="logged$sample:" ACCESS_LOG_SAMPLE="$sample" \
        PORT="${logged_port[$sample]}" ADMIN_PORT="$(free_port)" RUST_LOG=info \
        "$target/shopmicro-backend" >/dev/null 2>&1 & pids+=($!)
done

# A storefront that renders every page, in front of the platform's backend.
rendering_port=$(free_port)
env BACKEND_URL="$backend" PAGE_CACHE_MB=0 PORT="$rendering_port" ADMIN_PORT="$(free_port)" \
    RUST_LOG=warn "$target/shopmicro-frontend" >"$work/rendering.log" 2>&1 & pids+=($!)

node_port=$(free_port)
(cd "$cache/node" && exec env PORT="$node_port" DATABASE_URL="$database" REDIS_URL="$redis_url" \
    node server.js >"$work/node.log" 2>&1) & node_pid=$!; pids+=($node_pid)

flask_port=$(free_port)
(cd shopctl/benches/peers/flask && exec env DATABASE_URL="$database" \
    "$cache/venv/bin/gunicorn" -w 2 -b "127.0.0.1:$flask_port" -p "$work/gunicorn.pid" app:app \
    >"$work/flask.log" 2>&1) & pids+=($!)

if [ -n "${BEFORE_BACKEND:-}" ]; then
    before_port=$(free_port)
    env DATABASE_URL="$database" DATABASE_MIGRATIONS=verify SEED_DEMO_DATA=false \
        REDIS_URL="$redis_url" CACHE_PREFIX=before: PORT="$before_port" ADMIN_PORT="$(free_port)" \
        RUST_LOG=warn "$BEFORE_BACKEND" >"$work/before.log" 2>&1 & pids+=($!)
    before_uncached_port=$(free_port)
    env DATABASE_URL="$database" DATABASE_MIGRATIONS=verify SEED_DEMO_DATA=false \
        CATALOGUE_MEMORY_MB=0 PORT="$before_uncached_port" ADMIN_PORT="$(free_port)" RUST_LOG=warn \
        "$BEFORE_BACKEND" >"$work/before-uncached.log" 2>&1 & before_uncached_pid=$!; pids+=($before_uncached_pid)
    wait_for "http://127.0.0.1:$before_port/products?limit=20"
    wait_for "http://127.0.0.1:$before_uncached_port/products?limit=20"
fi
wait_for "http://127.0.0.1:$nginx_port/products"
for sample in 1 100; do wait_for "http://127.0.0.1:${logged_port[$sample]}/products?limit=20"; done
wait_for "http://127.0.0.1:$rendering_port/"
wait_for "http://127.0.0.1:$uncached_port/products?limit=20"
wait_for "http://127.0.0.1:$per_cpu_port/products?limit=20"
wait_for "http://127.0.0.1:$node_port/products?limit=20"
wait_for "http://127.0.0.1:$flask_port/recommendations?product_id=7&k=5"

echo "| side | requests/s | p99 ms | RSS at end of load, MB |"
echo "|---|---:|---:|---:|"
# Three rounds of the cached listing and nginx back to back, as for the uncached goal below:
# the round with the median ratio gives the goal its rates and nginx its CPU row.
: >"$work/cached-rounds"
for round in 1 2 3; do
    read -r one one_p99 one_rss < <(measure "$backend/products?limit=20" "$(field backend pid)")
    row "backend listing, cached (round $round)" "$one" "$one_p99" "$one_rss"
    read -r other other_p99 _ < <(measure "http://127.0.0.1:$nginx_port/products" "$nginx_pid" "nginx, same bytes")
    row "nginx, same bytes from a file (round $round)" "$other" "$other_p99" "–"
    echo "$one $one_p99 $one_rss $other $(tail -1 "$work/cpu.rows")" >>"$work/cached-rounds"
done
read -r cached cached_p99 cached_rss nginx nginx_row < <(awk '{print $1/$4, $0}' "$work/cached-rounds" | sort -g | sed -n 2p | cut -d' ' -f2-)
{ grep -v "^nginx, same bytes|" "$work/cpu.rows" || true; echo "$nginx_row"; } >"$work/cpu.median"
mv "$work/cpu.median" "$work/cpu.rows"
echo "| median round: cached / nginx | $(python3 -c "print(f'{$cached / $nginx:.2f}')") | – | – |"
if [ -n "${BEFORE_BACKEND:-}" ]; then
    read -r before before_p99 _ < <(measure "http://127.0.0.1:$before_port/products?limit=20")
    row "backend listing, BEFORE_BACKEND (Redis on)" "$before" "$before_p99" "–"
fi
read -r logged logged_p99 _ < <(measure "http://127.0.0.1:${logged_port[1]}/products?limit=20")
row "backend listing, cached, access log on (every line)" "$logged" "$logged_p99" "–"
read -r sampled sampled_p99 _ < <(measure "http://127.0.0.1:${logged_port[100]}/products?limit=20")
row "backend listing, cached, access log 1 in 100 (ACCESS_LOG_SAMPLE=100)" "$sampled" "$sampled_p99" "–"
echo "SELECT id, name, category, description, price_cents, stock FROM products WHERE TRUE ORDER BY id LIMIT 21;" >"$work/listing.sql"
# Three rounds of the uncached listing and pgbench back to back. The round with the median
# ratio gives the goal its rates and the CPU table its rows.
: >"$work/rounds"
for round in 1 2 3; do
    read -r uncached uncached_p99 _ < <(measure "http://127.0.0.1:$uncached_port/products?limit=20" "$uncached_pid" "backend listing, no cache")
    row "backend listing, no cache, one thread (round $round)" "$uncached" "$uncached_p99" "–"
    pg_before=$(cpu_snapshot 0)
    pgbench -n -M prepared -c16 -j2 -T10 -f "$work/listing.sql" "$database" >"$work/pgbench.out" 2>&1
    pg_after=$(cpu_snapshot 0)
    pgbench_tps=$(awk -F'= ' '/^tps/ {printf "%d", $2}' "$work/pgbench.out")
    row "pgbench, same SQL (16 clients, round $round)" "$pgbench_tps" "–" "–"
    pgbench_done=$(awk -F': ' '/actually processed/ {print $2}' "$work/pgbench.out" | cut -d/ -f1)
    echo "pgbench, same SQL|$pgbench_tps|$(cpu_per_request "$pg_before" "$pg_after" "$pgbench_done")" >>"$work/cpu.rows"
    echo "$uncached $pgbench_tps $(tail -2 "$work/cpu.rows" | tr '\n' '~')" >>"$work/rounds"
done
# The median round by ratio: its rates for the goal, its CPU rows for the table.
read -r uncached pgbench_tps median_rows < <(awk '{print $1/$2, $0}' "$work/rounds" | sort -g | sed -n 2p | cut -d' ' -f2-)
grep -v "^backend listing, no cache|\|^pgbench, same SQL|" "$work/cpu.rows" >"$work/cpu.other" || true
tr '~' '\n' <<<"$median_rows" | sed '/^$/d' >>"$work/cpu.other"
mv "$work/cpu.other" "$work/cpu.rows"
echo "| median round: uncached / pgbench | $(python3 -c "print(f'{$uncached / $pgbench_tps:.2f}')") | – | – |"
read -r per_cpu per_cpu_p99 _ < <(measure "http://127.0.0.1:$per_cpu_port/products?limit=20" "$per_cpu_pid" "backend listing, no cache, $(nproc) workers")
row "backend listing, no cache, $(nproc) worker threads (one per CPU)" "$per_cpu" "$per_cpu_p99" "–"
if [ -n "${BEFORE_BACKEND:-}" ]; then
    read -r before_uncached before_uncached_p99 _ < <(measure "http://127.0.0.1:$before_uncached_port/products?limit=20" "$before_uncached_pid" "backend listing, no cache, BEFORE_BACKEND")
    row "backend listing, no cache, BEFORE_BACKEND" "$before_uncached" "$before_uncached_p99" "–"
fi
{ echo '\startpipeline'; for _ in $(seq 16); do cat "$work/listing.sql"; done; echo '\endpipeline'; } >"$work/pipelined.sql"
pgbench -n -M prepared -c2 -j2 -T10 -f "$work/pipelined.sql" "$database" >"$work/pgbench-pipelined.out" 2>&1
pipelined_qps=$(awk -F'= ' '/^tps/ {printf "%d", $2 * 16}' "$work/pgbench-pipelined.out")
row "pgbench, same SQL, pipelined (2 clients, 16 per pipeline; queries/s)" "$pipelined_qps" "–" "–"
read -r node node_p99 node_rss < <(measure "http://127.0.0.1:$node_port/products?limit=20" "$node_pid")
row "Node/Express + pg + ioredis peer" "$node" "$node_p99" "$node_rss"
read -r mlrate ml_p99 _ < <(measure "$ml/recommendations?product_id=7&k=5" "$(field ml pid)")
row "ml recommendations" "$mlrate" "$ml_p99" "–"
read -r flask flask_p99 _ < <(measure "http://127.0.0.1:$flask_port/recommendations?product_id=7&k=5")
row "Flask + gunicorn (2 workers) peer" "$flask" "$flask_p99" "–"
read -r store store_p99 _ < <(measure "$frontend/" "$(field frontend pid)")
row "storefront catalogue page" "$store" "$store_p99" "–"
read -r rendered rendered_p99 _ < <(measure "http://127.0.0.1:$rendering_port/")
row "storefront catalogue page, PAGE_CACHE_MB=0 (rendered every time)" "$rendered" "$rendered_p99" "–"

echo
echo "Idle RSS, MB: backend $idle_backend, ml $idle_ml, frontend $idle_frontend"

# Whether the uncached goal fits this machine: a backend whose own work per request cost no
# more than nginx's serving of the same bytes would still need the PostgreSQL and the rest
# (load generator, softirq) its listing costs. Every core busy at that cost is its ceiling.
python3 - "$work/cpu.rows" "$(nproc)" <<'PY'
import sys
rows = {}
print("\nCPU per request, µs (machine: every core's busy time over the requests served)\n")
print("| side | requests/s | machine | server | PostgreSQL | load generator and the rest |")
print("|---|---:|---:|---:|---:|---:|")
for line in open(sys.argv[1]):
    label, rate, cpu = line.strip().split("|")
    machine, server, postgres, rest = map(int, cpu.split())
    rows[label] = (int(rate), server, postgres, rest)
    server_cell = "–" if label.startswith("pgbench") else server
    print(f"| {label} | {rate} | {machine} | {server_cell} | {postgres} | {rest} |")
_, nginx_server, _, _ = rows["nginx, same bytes"]
_, _, postgres, rest = rows["backend listing, no cache"]
pgbench = rows["pgbench, same SQL"][0]
ceiling = int(sys.argv[2]) * 1e6 / (nginx_server + postgres + rest)
print(f"\nUncached ceiling: nginx's {nginx_server} µs + PostgreSQL's {postgres} µs + the rest's "
      f"{rest} µs per request = {ceiling:,.0f}/s with every core busy, "
      f"{ceiling / pgbench:.2f} x pgbench")
PY
python3 - "$cached" "$nginx" "$cached_p99" "$uncached" "$pgbench_tps" "$node" "$cached_rss" "$node_rss" "$mlrate" "$flask" "$store" <<'PY'
import sys
cached, nginx, p99, uncached, pgbench, node, rss, node_rss, ml, flask, store = map(float, sys.argv[1:])
goals = [
    ("cached listing / nginx, median of 3 rounds", cached / nginx, ">= 0.5", cached / nginx >= 0.5),
    ("cached listing p99 ms (that round)", p99, "<= 10", p99 <= 10),
    ("uncached listing (one thread) / pgbench, median of 3 rounds", uncached / pgbench, ">= 0.7", uncached / pgbench >= 0.7),
    ("backend / Node", cached / node, ">= 3", cached / node >= 3),
    ("backend RSS / Node RSS", rss / node_rss, "<= 0.33", rss / node_rss <= 1 / 3),
    ("ml / Flask", ml / flask, ">= 10", ml / flask >= 10),
    ("storefront / backend listing", store / cached, ">= 0.5", store / cached >= 0.5),
]
print("\n| goal | measured | target | met |\n|---|---:|---:|---|")
for name, value, target, met in goals:
    print(f"| {name} | {value:.2f} | {target} | {'yes' if met else 'no'} |")
PY
