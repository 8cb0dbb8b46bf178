#!/usr/bin/env bash
# The alert worker's CPU per matched event under the capture workload
# (issue 13): a database as variant_activity_monitor_rules.sql makes it (10
# rules on payments, every payment change matched by at least one windowed
# rule), pgbench -M simple -c 2 -j 2 with workload.sql for WORKER_CPU_SECONDS,
# and the worker's user + system CPU time (/proc/PID/stat) over the run
# divided by the events some rule matched in it; also the capture tps.
# Repeated WORKER_CPU_RUNS times, each on a fresh database.
#
#   test/bench/worker_cpu.sh
#
# Environment: WORKER_CPU_SECONDS (20), WORKER_CPU_RUNS (3), WORKER_CPU_VARIANT
# (activity_monitor_rules; activity_monitor_book: rule_book.sql's thirty
# detection rules, whose first-seen rules fire on each account's first
# payment), BENCH_USE_EXISTING=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"
secs=${WORKER_CPU_SECONDS:-20}
runs=${WORKER_CPU_RUNS:-3}
variant=${WORKER_CPU_VARIANT:-activity_monitor_rules}
[ -f "$BENCH_DIR/variant_$variant.sql" ] || { echo "WORKER_CPU_VARIANT: no variant_$variant.sql" >&2; exit 2; }
bench_cluster_up
db=am_bench_worker_cpu_$$
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; bench_cleanup' EXIT
hz=$(getconf CLK_TCK)
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
for r in $(seq 1 "$runs"); do
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
	(cd "$BENCH_DIR" && "${BENCH_PSQL[@]}" -d "$db" -f schema.sql -f "variant_$variant.sql") >/dev/null
	pid=""
	for _ in $(seq 1 100); do
		pid=$(psql -X -At -d "$db" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = current_database()")
		[ -n "$pid" ] && break
		sleep 0.1
	done
	[ -n "$pid" ] || { echo "no worker for $db" >&2; exit 1; }
	"${BENCH_PSQL[@]}" -d "$db" -c "CHECKPOINT" >/dev/null
	m0=$(psql -X -At -d "$db" -c "SELECT count(*) FROM activity_monitor.activity WHERE matched IS NOT NULL")
	c0=$(cpu_of "$pid")
	tps=$(pgbench -n -M simple -c 2 -j 2 -T "$secs" -f "$BENCH_DIR/workload.sql" "$db" 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
	# the worker's last round: the events committed before the end
	sleep 2
	c1=$(cpu_of "$pid")
	m1=$(psql -X -At -d "$db" -c "SELECT count(*) FROM activity_monitor.activity WHERE matched IS NOT NULL")
	a1=$(psql -X -At -d "$db" -c "SELECT count(*) FROM activity_monitor.alerts")
	awk -v r="$r" -v t="$tps" -v c="$((c1 - c0))" -v hz="$hz" -v m="$((m1 - m0))" -v s="$secs" -v a="$a1" 'BEGIN {
		printf "run %d: %.0f tps, %d matched events, %d alerts, worker CPU %.2f s (%.0f%% of a core), %.1f µs per matched event\n",
			r, t, m, a, c / hz, 100 * c / hz / s, (m > 0 ? 1e6 * c / hz / m : 0) }'
done
