#!/usr/bin/env bash
# Regression test (issue 12, "Bounds"): after a restart the worker rebuilds
# its windows from the processed events; 0.1.0 read them all in one SPI
# result, so the rebuild's memory grew with the number of events (about
# 130 bytes each).  The rebuild reads through a cursor now, REBUILD_FETCH
# events at a time.
#
# BOUNDS_REBUILD_EVENTS (400,000) matched events of a windowed rule are
# processed; the worker is stopped and started again, and its first round is
# held on a lock of alert_state (before the rebuild) while its private memory
# (RssAnon in /proc/PID/status) is read; released, the rebuild runs while
# that figure is sampled every few milliseconds, until the worker waits for
# the rollup's lock on activity_minute, held meanwhile (the rollup, which
# comes after the alerts in a round, aggregates the last 10 minutes: these
# events).  The
# peak minus the figure before must stay under 16 MB (the sort of the events
# spills to disk beyond work_mem, 4 MB); 0.1.0 took about 50 MB.  The
# rebuilt window then behaves: the burst still inside it is not alerted on
# twice.
set -euo pipefail
db=am_bounds_rebuild
. "$AM_ROOT/test/lib/shell.sh"
events=${BOUNDS_REBUILD_EVENTS:-400000}
limit=$((16 * 1048576))
work=$AM_TMP/bounds_rebuild
rm -rf "$work"; mkdir -p "$work"
holder=""
rollup=""
sampler=""
cleanup() {
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
	[ -n "$holder" ] && kill "$holder" 2>/dev/null || true
	[ -n "$rollup" ] && kill "$rollup" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE ev (id bigint PRIMARY KEY, k int);
SELECT activity_monitor.track('ev', 'game', subject_column => 'k');
SELECT activity_monitor.create_rule('burst', '$.action == "insert"', within => '1 hour', threshold => 5,
	group_by => '$.new.k', channel => 'am_bounds_rebuild');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
for start in $(seq 1 50000 "$events"); do
	echo "INSERT INTO ev SELECT g, 1 FROM generate_series($start, $((start + 49999 < events ? start + 49999 : events))) g;"
done | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null || fail "the writes failed"
caught_up 600
[ "$(q "SELECT count(*) FROM activity_monitor.alerts")" = 1 ] || fail "expected one alert for the burst"

# stop the worker; hold alert_state so that its first round waits before
# the rebuild, and the rollup's lock (_rollup() locks activity_minute) so
# that the round stops after its alerts
old=$(q "SELECT pid FROM activity_monitor.worker_status")
q "SELECT pg_terminate_backend($old)" >/dev/null
am_wait_for 30 "$db" "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $old)" || fail "the worker did not stop"
psql -X -q -d "$db" -c "SET application_name = 'bounds_holder'" -c "BEGIN" \
	-c "SELECT 1 FROM activity_monitor.alert_state FOR UPDATE" -c "SELECT pg_sleep(300)" >/dev/null 2>&1 &
holder=$!
psql -X -q -d "$db" -c "SET application_name = 'bounds_rollup'" -c "BEGIN" \
	-c "LOCK TABLE activity_monitor.activity_minute IN SHARE UPDATE EXCLUSIVE MODE" \
	-c "SELECT pg_sleep(300)" >/dev/null 2>&1 &
rollup=$!
am_wait_for 15 "$db" "SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name IN ('bounds_holder', 'bounds_rollup')
	AND wait_event = 'PgSleep'" || fail "the lock holders did not start"
q "SELECT activity_monitor.start_worker()" >/dev/null
am_wait_for 30 "$db" "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker'
	AND datname = current_database() AND wait_event_type = 'Lock')" || fail "the new worker did not wait for alert_state"
wpid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = current_database()")

rss() { awk '/^RssAnon:/ { print $2 * 1024 }' "/proc/$wpid/status"; }
base=$(rss)
(
	peak=$base
	while [ ! -e "$work/stop" ]; do
		v=$(rss 2>/dev/null) || break
		[ -n "$v" ] && [ "$v" -gt "$peak" ] && { peak=$v; echo "$peak" >"$work/peak"; }
	done
	echo "$peak" >"$work/peak"
) &
sampler=$!
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'bounds_holder'" >/dev/null
wait "$holder" 2>/dev/null || true
holder=""
t0=$(date +%s.%N)
am_wait_for 300 "$db" "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $wpid
	AND relation = 'activity_monitor.activity_minute'::regclass AND NOT granted)" ||
	fail "the worker's round did not reach the rollup"
t1=$(date +%s.%N)
touch "$work/stop"
wait "$sampler" 2>/dev/null || true
sampler=""
peak=$(cat "$work/peak")
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'bounds_rollup'" >/dev/null
wait "$rollup" 2>/dev/null || true
rollup=""
caught_up
[ "$(q "SELECT pid FROM activity_monitor.worker_status")" = "$wpid" ] || fail "the worker restarted again"
echo "rebuild of $events events (and the round's alerts) in $(echo "$t1 - $t0" | bc) s: private memory $base -> peak $peak bytes" \
	"(growth $((peak - base)), limit $limit)"
[ $((peak - base)) -le "$limit" ] ||
	fail "the rebuild of $events events took $((peak - base)) bytes of memory (limit $limit)"

# the rebuilt window still holds the burst: 5 more of it fire nothing (an
# empty window would fire at the 5th)
q "INSERT INTO ev SELECT -g, 1 FROM generate_series(1, 5) g" >/dev/null
caught_up
[ "$(q "SELECT count(*) FROM activity_monitor.alerts")" = 1 ] ||
	fail "the burst alerted again after the restart: the window was not rebuilt"
errors=$(q "SELECT coalesce(last_error, '') FROM activity_monitor.worker_state")
[ -z "$errors" ] || fail "the worker recorded an error: $errors"
echo "ok"
