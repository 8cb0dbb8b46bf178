#!/usr/bin/env bash
# Storage layout study (issue 13): what other row and index shapes of a
# day's activity partition would cost, measured on events the capture
# trigger really wrote.  The pgbench capture workload (workload.sql, the
# activity_monitor variant) runs until STORAGE_EVENTS events are captured;
# then copies of them are written, in id order as capture writes them, into
# four free-standing tables:
#
#   today       the activity table's columns, a day partition's indexes
#               (activity_monitor._index_partition: what 0.2.0 writes)
#   brin        the same, the (occurred_at, id) B-tree replaced by a BRIN
#               index on occurred_at (16 pages a range)
#   codes       fixed-width columns first (no alignment padding), kind,
#               action and actor type as "char" codes, table name and
#               database user as int codes of a dictionary; the same indexes
#   codes_brin  both
#
# For STORAGE_RUNS runs, interleaved, each table is emptied, CHECKPOINTed,
# and filled by one INSERT ... SELECT from a staging copy (the codes already
# resolved, so that only the write is timed): bytes on disk per event (heap
# and indexes), WAL bytes per event (median), and the wall-clock and backend
# CPU µs per event (minimum), with ratios to today's.  What it leaves out:
# the capture trigger's own work (building the row, the dictionary look-up a
# coded layout would add, about one hash probe per event), and what readers
# would pay (BRIN answers "since T" by reading the ranges after T and
# sorting them; "the latest N overall" has no index to stop early on).
#
#   test/bench/storage.sh
#
# Environment: STORAGE_EVENTS (400000), STORAGE_RUNS (3), STORAGE_OUT (also
# write the markdown there), BENCH_USE_EXISTING=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

events=${STORAGE_EVENTS:-400000}
runs=${STORAGE_RUNS:-3}
case $events$runs in *[!0-9]*) echo "STORAGE_EVENTS and STORAGE_RUNS must be numbers" >&2; exit 2 ;; esac

bench_cluster_up
db=am_bench_storage_$$
"${BENCH_PSQL[@]}" -c "CREATE DATABASE $db"
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; bench_cleanup' EXIT
q() { "${BENCH_PSQL[@]}" -At -d "$db" -c "$1"; }
(cd "$BENCH_DIR" && "${BENCH_PSQL[@]}" -d "$db" -f schema.sql -f variant_activity_monitor.sql) >/dev/null

# Capture: 3.2 events a transaction.
echo "capturing $events events with the pgbench workload" >&2
pgbench -n -M simple -c 2 -j 2 -t $(((events / 2 + 5) * 10 / 32)) -f "$BENCH_DIR/workload.sql" "$db" >"$BENCH_WORK/pgbench.log" 2>&1 ||
	{ cat "$BENCH_WORK/pgbench.log" >&2; exit 1; }

"${BENCH_PSQL[@]}" -d "$db" >/dev/null <<SQL
CREATE SCHEMA study;
CREATE TABLE study.src AS SELECT * FROM activity_monitor.activity
	WHERE kind <> 'admin' ORDER BY id LIMIT $events;
CREATE TABLE study.tables (code serial PRIMARY KEY, name text UNIQUE);
INSERT INTO study.tables (name) SELECT DISTINCT table_name FROM study.src;
CREATE TABLE study.users (code serial PRIMARY KEY, name text UNIQUE);
INSERT INTO study.users (name) SELECT DISTINCT db_user FROM study.src;
CREATE TABLE study.src_codes AS
SELECT s.id, s.occurred_at, s.txid, s.backend_pid, t.code AS table_code, u.code AS user_code,
	(CASE s.kind WHEN 'payment' THEN 'p' WHEN 'profile' THEN 'r' WHEN 'login' THEN 'l' ELSE 'x' END)::"char" AS kind,
	(CASE s.action WHEN 'insert' THEN 'i' WHEN 'update' THEN 'u' WHEN 'delete' THEN 'd' ELSE 'x' END)::"char" AS action,
	(CASE s.actor_type WHEN 'user' THEN 'u' WHEN 'employee' THEN 'e' WHEN 'service' THEN 's' ELSE 'x' END)::"char" AS actor_type,
	s.critical, s.row_key, s.subject_id, s.actor_id, s.actor_reason, s.actor_context, s.status_from, s.status_to,
	s.old_values, s.new_values, s.application_name, s.client_addr, s.matched, s.rule_errors, s.source, s.source_id
FROM study.src s JOIN study.tables t ON t.name = s.table_name JOIN study.users u ON u.name = s.db_user
ORDER BY s.id;
VACUUM ANALYZE study.src, study.src_codes;

CREATE TABLE study.today (LIKE activity_monitor.activity);
SELECT activity_monitor._index_partition('study.today');
CREATE TABLE study.brin (LIKE activity_monitor.activity);
SELECT activity_monitor._index_partition('study.brin');
CREATE TABLE study.codes (
	id bigint NOT NULL, occurred_at timestamptz NOT NULL, txid bigint NOT NULL,
	backend_pid int NOT NULL, table_code int NOT NULL, user_code int NOT NULL,
	kind "char" NOT NULL, action "char" NOT NULL, actor_type "char" NOT NULL, critical boolean NOT NULL,
	row_key text, subject_id text, actor_id text, actor_reason text, actor_context jsonb,
	status_from text, status_to text, old_values jsonb, new_values jsonb,
	application_name text, client_addr inet, matched jsonb, rule_errors bigint[], source text, source_id bigint);
CREATE INDEX ON study.codes (occurred_at, id);
CREATE INDEX ON study.codes (occurred_at, id) WHERE critical;
CREATE INDEX ON study.codes (subject_id);
CREATE INDEX ON study.codes (actor_id, occurred_at) WHERE actor_type = 'e' OR kind = 'a';
CREATE INDEX ON study.codes (txid) WHERE matched IS NOT NULL OR rule_errors IS NOT NULL;
CREATE TABLE study.codes_brin (LIKE study.codes INCLUDING INDEXES);
-- the BRIN variants: the time B-tree (not partial) out, a BRIN index in
DO \$\$
DECLARE
	i regclass;
BEGIN
	FOR i IN SELECT x.indexrelid::regclass FROM pg_index x
			 WHERE x.indrelid IN ('study.brin'::regclass, 'study.codes_brin'::regclass)
			   AND x.indpred IS NULL AND pg_get_indexdef(x.indexrelid) LIKE '%(occurred_at, id)'
	LOOP
		EXECUTE format('DROP INDEX %s', i);
	END LOOP;
END
\$\$;
CREATE INDEX ON study.brin USING brin (occurred_at) WITH (pages_per_range = 16);
CREATE INDEX ON study.codes_brin USING brin (occurred_at) WITH (pages_per_range = 16);
SQL
n=$(q "SELECT count(*) FROM study.src")
[ "$n" -gt 0 ] || { echo "nothing captured" >&2; exit 1; }

cpu_sql="(SELECT a[12]::bigint + a[13]::bigint FROM pg_catalog.string_to_array(pg_catalog.split_part(pg_catalog.pg_read_file('/proc/' || pg_catalog.pg_backend_pid() || '/stat'), ') ', 2), ' ') a)"
tick_us=$((1000000 / $(getconf CLK_TCK)))
shapes="today brin codes codes_brin"
{
	echo '\set ON_ERROR_STOP 1'
	for r in $(seq 1 "$runs"); do
		for s in $shapes; do
			src=study.src
			case $s in codes*) src=study.src_codes ;; esac
			echo "TRUNCATE study.$s;"
			echo "CHECKPOINT;"
			echo "SELECT pg_current_wal_insert_lsn() AS l0, $cpu_sql AS c0, clock_timestamp() AS t0 \\gset"
			echo "INSERT INTO study.$s SELECT * FROM $src;"
			echo "SELECT 'R $s ' || (extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1e6)::bigint"
			echo "	|| ' ' || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0') || ' ' || ($cpu_sql - :c0) * $tick_us;"
		done
	done
	for s in $shapes; do
		echo "SELECT 'S $s ' || pg_relation_size('study.$s') || ' ' || pg_indexes_size('study.$s');"
	done
} >"$BENCH_WORK/storage_run.sql"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"${BENCH_PSQL[@]}" -At -d "$db" -f "$BENCH_WORK/storage_run.sql" >"$BENCH_WORK/storage_out"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# min / median of column $2 of the R lines of shape $1
stat_of() {
	awk -v s="$1" -v c="$2" '$1 == "R" && $2 == s { print $c }' "$BENCH_WORK/storage_out" | sort -n |
		awk -v how="$3" '{ a[NR] = $1 } END { if (how == "min") print a[1]; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
{
	echo "### Storage layouts of a day's partition ($(date -u +%Y-%m-%d), $n events of the pgbench capture workload, $runs runs; load $load_before before, $load_after after)"
	echo
	echo "| layout | heap B/event | indexes B/event | total B/event | WAL B/event | µs/event (min) | CPU µs/event (min) | total vs today | WAL vs today |"
	echo "|---|---|---|---|---|---|---|---|---|"
	base_total="" base_wal=""
	for s in $shapes; do
		read -r heap idx < <(awk -v s="$s" '$1 == "S" && $2 == s { print $3, $4 }' "$BENCH_WORK/storage_out")
		wal=$(stat_of "$s" 4 median)
		us=$(stat_of "$s" 3 min)
		cpu=$(stat_of "$s" 5 min)
		total=$((heap + idx))
		[ -n "$base_total" ] || { base_total=$total; base_wal=$wal; }
		awk -v s="$s" -v n="$n" -v h="$heap" -v i="$idx" -v w="$wal" -v u="$us" -v c="$cpu" -v bt="$base_total" -v bw="$base_wal" \
			'BEGIN { printf "| %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", s, h / n, i / n, (h + i) / n, w / n, u / n, c / n, (h + i) / bt, w / bw }'
	done
} | tee ${STORAGE_OUT:+"$STORAGE_OUT"}
