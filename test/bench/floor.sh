#!/usr/bin/env bash
# The floor of capture's cost under pgbench (issue 13's throughput targets):
# what writing the activity row alone costs, with none of the indexes the
# readers need and with the worker idle.  Three databases of the capture
# benchmark's schema, measured in interleaved rounds of the pgbench workload
# (workload.sql, -M simple -c 2 -j 2), each round's tps divided by none's in
# the same round:
#
#   none       no capture
#   capture    activity_monitor as the benchmark tracks the tables
#              (variant_activity_monitor.sql), every index of the activity
#              partitions in place
#   no_index   the same with every index of the activity partitions dropped:
#              the trigger builds and writes the same rows, nothing else
#
# The worker of every database is idle during the rounds (naptime and
# seal_interval an hour, on the benchmark's own cluster): without indexes its
# reads would scan the day's partition, and idle it costs the other variants
# nothing either.  So "capture" here is a little cheaper than run.sh's
# activity_monitor, and "no_index" is an upper bound for any layout of these
# rows: indexes, the worker and the rules only add to it.
#
#   test/bench/floor.sh     (FLOOR_ROUNDS 3, FLOOR_SECONDS 15)
#
# Prints one line per round (round variant tps ratio WAL-bytes-per-txn
# capture-bytes-per-change server-CPU-µs-per-txn CPU-µs-per-change-beyond-none
# load) and a table of medians.  The server's CPU (the postmaster and its
# children, bench_server_cpu_us) is steadier than tps on a shared machine:
# what a variant adds per change, measured in the same round as none.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
BENCH_CLUSTER_CONF=("activity_monitor.naptime = 3600" "activity_monitor.seal_interval = 3600")
. "$BENCH_DIR/common.sh"
trap 'echo "floor.sh: failed at line $LINENO" >&2' ERR

rounds=${FLOOR_ROUNDS:-3}
seconds=${FLOOR_SECONDS:-15}
case $rounds$seconds in *[!0-9]*) echo "FLOOR_ROUNDS and FLOOR_SECONDS must be numbers" >&2; exit 2 ;; esac
# BENCH_USE_EXISTING=1 (the test suite's smoke run): that server's worker
# settings, not an idle worker; the figures are then only a check that the
# script works
[ "${BENCH_USE_EXISTING:-0}" != 1 ] || echo "note: an existing server, its worker not idle" >&2

bench_cluster_up
variants=(none capture no_index)
for v in "${variants[@]}"; do
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS floor_$v" -c "CREATE DATABASE floor_$v"
	"${BENCH_PSQL[@]}" -d "floor_$v" -f "$BENCH_DIR/schema.sql" >/dev/null
done
for v in capture no_index; do
	"${BENCH_PSQL[@]}" -d "floor_$v" -f "$BENCH_DIR/variant_activity_monitor.sql" >/dev/null
done
# every index of every partition, the default's included
"${BENCH_PSQL[@]}" -d floor_no_index <<'SQL'
DO $$
DECLARE i regclass;
BEGIN
	FOR i IN SELECT x.indexrelid::regclass FROM pg_index x
			 JOIN pg_inherits h ON h.inhrelid = x.indrelid
			 WHERE h.inhparent = 'activity_monitor.activity'::regclass LOOP
		EXECUTE format('DROP INDEX %s', i);
	END LOOP;
END $$;
SQL
left=$(psql -X -At -d floor_no_index -c "SELECT count(*) FROM pg_index x JOIN pg_inherits h ON h.inhrelid = x.indrelid
	WHERE h.inhparent = 'activity_monitor.activity'::regclass")
[ "$left" = 0 ] || { echo "no_index still has $left indexes on the activity partitions" >&2; exit 1; }

capture_bytes() {
	psql -X -At -d "floor_$1" -c "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
		FROM pg_partition_tree('activity_monitor.activity') WHERE isleaf"
}
capture_count() {
	psql -X -At -d "floor_$1" -c "SELECT count(*) FROM activity_monitor.activity WHERE kind <> 'admin'"
}

results="$BENCH_WORK/rounds"
: >"$results"
cd "$BENCH_DIR"
for r in $(seq 1 "$rounds"); do
	base="" base_cpu=""
	for v in "${variants[@]}"; do
		"${BENCH_PSQL[@]}" -d "floor_$v" -c CHECKPOINT
		b0=0 n0=0
		[ "$v" = none ] || { b0=$(capture_bytes "$v"); n0=$(capture_count "$v"); }
		w0=$(psql -X -At -c "SELECT pg_current_wal_insert_lsn()")
		c0=$(bench_server_cpu_us) || c0=""
		out=$(pgbench -n -M simple -c 2 -j 2 -T "$seconds" -f workload.sql "floor_$v" 2>&1) ||
			{ echo "$out" >&2; exit 1; }
		w1=$(psql -X -At -c "SELECT pg_current_wal_insert_lsn()")
		bench_wait_pgbench_gone "floor_$v"
		c1=$(bench_server_cpu_us) || c1=""
		tps=$(echo "$out" | awk '/^tps/ { print $3 }')
		txns=$(echo "$out" | awk '/^number of transactions actually processed/ { print $NF }')
		[ -n "$tps" ] && [ "${txns:-0}" -gt 0 ] || { echo "$out" >&2; exit 1; }
		[ -n "$base" ] || base=$tps
		wal=$(psql -X -At -c "SELECT round(('$w1'::pg_lsn - '$w0'::pg_lsn) / $txns)")
		# server CPU µs per transaction ("-" when PGDATA is not readable here)
		cpu="-"
		[ -z "$c0" ] || [ -z "$c1" ] || cpu=$(( (c1 - c0) / txns ))
		[ -n "$base_cpu" ] || base_cpu=$cpu
		bpc="-" added="-"
		if [ "$v" != none ]; then
			b1=$(capture_bytes "$v"); n1=$(capture_count "$v")
			[ "$n1" -gt "$n0" ] || { echo "$v captured nothing" >&2; exit 1; }
			bpc=$(( (b1 - b0) / (n1 - n0) ))
			# server CPU µs per captured change beyond none's, in the same round
			[ "$cpu" = - ] || [ "$base_cpu" = - ] ||
				added=$(echo "scale=1; ($cpu - $base_cpu) * $txns / ($n1 - $n0)" | bc)
		fi
		printf '%d %s %.0f %.3f %s %s %s %s %s\n' "$r" "$v" "$tps" "$(echo "$tps / $base" | bc -l)" "$wal" "$bpc" \
			"$cpu" "$added" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$results"
	done
done
for v in "${variants[@]}"; do
	"${BENCH_PSQL[@]}" -c "DROP DATABASE floor_$v"
done

col() { awk -v v="$1" -v c="$2" '$2 == v && $c != "-" { print $c }' "$results"; }
echo
echo "| variant | throughput vs none (median) | range | server CPU µs per transaction | per change beyond none | WAL bytes per transaction | bytes on disk per change |"
echo "|---|---|---|---|---|---|---|"
for v in "${variants[@]}"; do
	cpu=$(col "$v" 7 | bench_median) added=$(col "$v" 8 | bench_median) bpc=$(col "$v" 6 | bench_median)
	printf '| %s | %.2f | %.2f–%.2f | %s | %s | %.0f | %s |\n' "$v" "$(col "$v" 4 | bench_median)" \
		"$(col "$v" 4 | sort -g | head -n 1)" "$(col "$v" 4 | sort -g | tail -n 1)" \
		"${cpu:-–}" "${added:-–}" "$(col "$v" 5 | bench_median)" "${bpc:-–}"
done
