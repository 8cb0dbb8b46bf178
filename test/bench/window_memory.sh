#!/usr/bin/env bash
# Memory of the alert engine for one windowed rule at the window bounds
# (issue 12, "Bounds"): for each measure (count with threshold 1,000, sum,
# distinct) and each shape (KEYS keys of PER_KEY events each), a database
# with that one rule receives the events, and once the worker has processed
# them it logs its memory contexts (pg_log_backend_memory_contexts); the
# figure is the total of the engine's contexts (activity_monitor alert
# windows and the hash tables in it), allocated and used.  The bounds are the
# server's (defaults: 10,000 keys and 100,000 events a rule, 1,000 events a
# window).
#
#   test/bench/window_memory.sh                  # the shapes of the README
#   WINDOW_SHAPES="10000x1 100x1000" test/bench/window_memory.sh
#
# Environment: WINDOW_SHAPES ("10000x1 100x1000 10000x10"), WINDOW_MEASURES
# ("count sum distinct"); BENCH_USE_EXISTING=1 with BENCH_LOG (the server's
# log file, which this script reads).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

shapes=${WINDOW_SHAPES:-10000x1 100x1000 10000x10}
measures=${WINDOW_MEASURES:-count sum distinct}
bench_cluster_up
if [ "${BENCH_USE_EXISTING:-0}" = 1 ]; then
	log=${BENCH_LOG:?BENCH_USE_EXISTING=1 needs BENCH_LOG, the server log file}
else
	log=$BENCH_TMP/cluster/server.log
fi
db=am_bench_window_memory_$$
q() { "${BENCH_PSQL[@]}" -At -d "$db" -c "$1"; }
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; bench_cleanup' EXIT

echo "| rule | keys x events | engine memory (allocated) | used | keys / events evicted |"
echo "|---|---|---|---|---|"
for m in $measures; do
	case $m in
	count) rule="within => '1 hour', threshold => 1000" ;;
	sum) rule="within => '1 hour', threshold => 1e12, measure => 'sum', measure_path => '\$.new.v'" ;;
	distinct) rule="within => '1 hour', threshold => 1000, measure => 'distinct', measure_path => '\$.new.d'" ;;
	*) echo "unknown measure $m" >&2; exit 1 ;;
	esac
	for shape in $shapes; do
		keys=${shape%x*}
		per=${shape#*x}
		"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
		"${BENCH_PSQL[@]}" -d "$db" >/dev/null <<SQL
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id bigserial PRIMARY KEY, k int, v numeric, d text);
SELECT activity_monitor.track('t', 'game', subject_column => 'k');
SELECT activity_monitor.create_rule('r', '\$.action == "insert"', group_by => '\$.new.k', $rule);
INSERT INTO t (k, v, d) SELECT g % $keys, 1000 + g % 997, 'device-' || g FROM generate_series(1, $keys * $per) g;
SQL
		mark=$(q "SELECT txid_current()")
		deadline=$(($(date +%s) + 600))
		until [ "$(q "SELECT txid_visible_in_snapshot($mark, last_snapshot) FROM activity_monitor.alert_state")" = t ]; do
			[ "$(date +%s)" -lt "$deadline" ] || { echo "the worker did not process the events" >&2; exit 1; }
			sleep 0.5
		done
		pid=$(q "SELECT pid FROM activity_monitor.worker_status")
		before=$(grep -c "\[$pid\] .*Grand total:" "$log" || true)
		q "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
		for _ in $(seq 100); do
			[ "$(grep -c "\[$pid\] .*Grand total:" "$log" || true)" -gt "$before" ] && break
			sleep 0.1
		done
		read -r total used <<<"$(grep "\[$pid\] " "$log" |
			awk '/logging memory contexts of PID/ { d = "" } { d = d $0 "\n" } END { printf "%s", d }' |
			awk '/level: [0-9]+; activity_monitor (alert windows|windows|distinct values|rule windows):/ {
				t = $0; sub(/.*: /, "", t); sub(/ total.*/, "", t);
				u = $0; sub(/.* free \([0-9]+ chunks\); /, "", u); sub(/ used.*/, "", u);
				total += t; used += u }
				END { print total + 0, used + 0 }')"
		ev=$(q "SELECT format('%s / %s', keys_evicted, events_evicted) FROM activity_monitor.rules")
		printf '| %s | %s x %s | %.1f MB | %.1f MB | %s |\n' "$m" "$keys" "$per" \
			"$(echo "$total / 1048576" | bc -l)" "$(echo "$used / 1048576" | bc -l)" "$ev"
	done
done
