#!/usr/bin/env bash
# Worker throughput: how many matched events per second the alert worker
# processes with 10 windowed rules (issue 5).  One transaction inserts
# WORKER_EVENTS payments that every rule matches (10 rules: count, sum and
# distinct windows over accounts, IPs and currencies); the figure is events
# divided by the time from that commit until the worker's alert state shows
# them processed.  Repeated WORKER_RUNS times; the best and median are printed,
# of all runs and of the runs after the first (which also creates the rules'
# state: with WORKER_DETECTION=1 every account's IP is new to every
# first-seen rule, and fires).
# WORKER_EXTRA_RULES more windowed rules apply to the payments and match
# none of them (issue 17: 190 makes 200 rules, 10 matching each event).
# WORKER_DETECTION=1 adds 10 rules of each detection v2 type, all matching
# every event (issue 14): sequences by account (two steps the payments match
# in turn, a third they never do), absences by payment (none completed:
# each waits, beyond max_keys_per_rule the oldest are evicted), first seen
# IPs by account (new in the first run only).
#
#   test/bench/worker_throughput.sh
#
# Environment: WORKER_EVENTS (20000), WORKER_RUNS (3), WORKER_EXTRA_RULES (0),
# WORKER_DETECTION (0), BENCH_USE_EXISTING=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

events=${WORKER_EVENTS:-20000}
runs=${WORKER_RUNS:-3}
extra=${WORKER_EXTRA_RULES:-0}
detection=${WORKER_DETECTION:-0}
bench_cluster_up
db=am_bench_worker_$$
q() { "${BENCH_PSQL[@]}" -At -d "$db" -c "$1"; }
"${BENCH_PSQL[@]}" -c "CREATE DATABASE $db"
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; bench_cleanup' EXIT
"${BENCH_PSQL[@]}" -d "$db" <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id bigserial PRIMARY KEY, account_id int, amount numeric,
	currency text, ip text, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id',
	status_column => 'status');
SELECT activity_monitor.create_rule('r' || i, '$.action == "insert"',
	within => '1 hour', threshold => CASE WHEN i % 3 = 1 THEN 1e9 ELSE 1000 END,
	measure => (ARRAY['count', 'sum', 'distinct'])[1 + i % 3],
	measure_path => CASE WHEN i % 3 = 0 THEN NULL WHEN i % 3 = 1 THEN '$.new.amount' ELSE '$.new.ip' END::jsonpath,
	group_by => (ARRAY['$.subject_id', '$.new.ip', '$.new.currency'])[1 + i % 3]::jsonpath)
FROM generate_series(1, 10) i;
SQL
[ "$extra" -gt 0 ] && q "SELECT count(activity_monitor.create_rule('x' || i, '\$.new.amount < 0', within => '1 hour',
	threshold => 1000, group_by => '\$.subject_id')) FROM generate_series(1, $extra) i" >/dev/null
nmatching=10
if [ "$detection" = 1 ]; then
	q "SELECT count(activity_monitor.create_rule('seq' || i, '\$.action == \"insert\"',
			steps => ARRAY['\$.new.currency == \"EUR\"', '\$.new.currency == \"USD\"', '\$.new.amount < 0']::jsonpath[],
			within => '1 hour')),
		   count(activity_monitor.create_rule('abs' || i, '\$.action == \"insert\"',
			steps => ARRAY['\$.new.status == \"pending\"']::jsonpath[], missing => '\$.new.status == \"completed\"',
			within => '1 hour')),
		   count(activity_monitor.create_rule('seen' || i, '\$.action == \"insert\"', measure_path => '\$.new.ip',
			lookback => '30 days'))
		   FROM generate_series(1, 10) i" >/dev/null
	nmatching=40
fi
rates=()
for r in $(seq 1 "$runs"); do
	before=$(q "SELECT events_processed FROM activity_monitor.alert_state")
	alerts0=$(q "SELECT count(*) FROM activity_monitor.alerts")
	# the commit time: the clock read just before COMMIT, in the same session
	times=$("${BENCH_PSQL[@]}" -At -d "$db" <<SQL
BEGIN;
SELECT extract(epoch FROM clock_timestamp());
INSERT INTO payments (account_id, amount, currency, ip, status)
SELECT g % 5000, g % 100, (ARRAY['EUR','USD','BRL'])[1 + g % 3], '10.0.' || (g % 200) || '.1', 'pending'
FROM generate_series(1, $events) g;
SELECT extract(epoch FROM clock_timestamp());
COMMIT;
SQL
)
	start=$(echo "$times" | sed -n 1p)
	committed=$(echo "$times" | sed -n 2p)
	deadline=$(($(date +%s) + 600))
	until [ "$(q "SELECT events_processed >= $before + $events AND batch_snapshot IS NULL FROM activity_monitor.alert_state")" = t ]; do
		[ "$(date +%s)" -lt "$deadline" ] || { echo "worker did not finish" >&2; exit 1; }
		sleep 0.05
	done
	done_at=$(q "SELECT extract(epoch FROM last_run_at) FROM activity_monitor.alert_state")
	rate=$(echo "$events / ($done_at - $committed)" | bc -l)
	fired=$(($(q "SELECT count(*) FROM activity_monitor.alerts") - alerts0))
	printf 'run %d: %d events (x'"$nmatching"' rules matching, %d rules) in %.2f s after commit (insert took %.2f s), %d alerts: %.0f events/s\n' \
		"$r" "$events" "$((nmatching + extra))" "$(echo "$done_at - $committed" | bc -l)" "$(echo "$committed - $start" | bc -l)" "$fired" "$rate"
	rates+=("$rate")
done
summary() {	# label, rates...
	local label=$1
	shift
	printf '%s\n' "$@" | sort -n | awk -v l="$label" '{a[NR]=$1} END {
		m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
		printf "worker throughput, '"$nmatching"' rules matching each event, '"$((nmatching + extra))"' rules, %s: best %.0f events/s, median %.0f events/s\n", l, a[NR], m }'
}
summary "all $runs runs" "${rates[@]}"
# the first run also creates every rule's state (with WORKER_DETECTION=1:
# each account's IP is new to each first-seen rule, an alert each)
[ "$runs" -gt 2 ] && summary "runs 2 to $runs" "${rates[@]:1}"
exit 0
