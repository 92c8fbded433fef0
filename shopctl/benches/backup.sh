#!/usr/bin/env bash
# Benchmark: `shopctl db backup` and `shopctl db restore` of a database of at least 1 GB,
# next to a plain `pg_dump -Fc > file` and `pg_restore` of the same database, on the same
# machine and server. Method: pgbench -i -s 80 builds the database (~1.2 GB); each command
# runs 3 times (hyperfine) against the local PostgreSQL; restores go into a fresh database
# each time. shopctl does more work than pg_dump (a consistent snapshot, per-table row
# counts and content checksums, SHA-256 of the artefact; on restore, the checksum check
# and the comparison): this measures what that costs.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 2; }
# The server's own tools (on Debian, PATH has only version-switching wrappers).
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
ADMIN=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SOURCE=${ADMIN%/*}/shopctl_bench_source
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$ADMIN" -qc "DROP DATABASE IF EXISTS shopctl_bench_source" -c "DROP DATABASE IF EXISTS shopctl_bench_target" >/dev/null 2>&1 || true' EXIT
cargo build --release --locked -p shopctl
psql "$ADMIN" -qc "DROP DATABASE IF EXISTS shopctl_bench_source" -c "CREATE DATABASE shopctl_bench_source"
"$PGBIN/pgbench" -q -i -s 80 "$SOURCE" 2>&1 | tail -1
psql "$SOURCE" -Atc "SELECT 'database size: ' || pg_size_pretty(pg_database_size(current_database()))"
reset_target='psql '"$ADMIN"' -qc "DROP DATABASE IF EXISTS shopctl_bench_target WITH (FORCE)" -c "CREATE DATABASE shopctl_bench_target"'
target=${ADMIN%/*}/shopctl_bench_target
hyperfine --runs 3 --export-markdown target/backup-bench.md \
    --prepare "rm -rf $work/shopctl $work/plain.pgc" \
    "target/release/shopctl db backup --database-url $SOURCE --to $work/shopctl" \
    "$PGBIN/pg_dump -Fc --dbname=$SOURCE -f $work/plain.pgc"
target/release/shopctl db backup --database-url "$SOURCE" --to "$work/keep" >/dev/null
"$PGBIN/pg_dump" -Fc --dbname="$SOURCE" -f "$work/keep.pgc"
ls -l "$work"/keep/*/dump.pgc "$work/keep.pgc" | awk '{print $5, $9}'
hyperfine --runs 3 --export-markdown target/restore-bench.md \
    --prepare "$reset_target" \
    "target/release/shopctl db restore --database-url $target --from $work/keep --yes" \
    "$PGBIN/pg_restore --no-owner --single-transaction --dbname=$target $work/keep.pgc"
cat target/backup-bench.md target/restore-bench.md
