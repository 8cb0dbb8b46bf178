#!/usr/bin/env bash
# Regression test (issue 12, "Bounds"): a writer must not be able to grow
# the worker's memory at will with distinct group keys.  A flood of
# BOUNDS_KEYS (1 million) distinct keys, one event each, into a windowed
# rule grouped by the varying column: the alert engine's memory contexts
# hold at most max_keys_per_rule x 512 bytes (a key holding one event costs
# about 290: its window in the hash table and a 2-entry array), and the
# worker's memory ("Grand total" of pg_log_backend_memory_contexts, logged
# while it is idle) grows by at most that plus 1 MB; 0.1.0 kept every key
# (about 500 bytes each, 500 MB).  The rule counts the evicted keys
# (rules.keys_evicted: every key but the last max_keys_per_rule), and still
# alerts: a burst of 3 on one key afterwards fires.
set -euo pipefail
db=am_bounds_keys
. "$AM_ROOT/test/lib/shell.sh"
keys=${BOUNDS_KEYS:-1000000}
log=$AM_TMP/cluster/server.log
mb=1048576
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE flood (id bigint PRIMARY KEY, k bigint);
SELECT activity_monitor.track('flood', 'game', subject_column => 'k');
SELECT activity_monitor.create_rule('per_key', '$.action == "insert"', within => '1 hour', threshold => 3,
	group_by => '$.new.k', channel => 'am_bounds_keys');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
pid=$(q "SELECT pid FROM activity_monitor.worker_status")
# (0.1.0 has no such setting: the default, for the bound it fails)
max_keys=$(q "SELECT coalesce(current_setting('activity_monitor.max_keys_per_rule', true), '10000')")

# The worker's memory, logged by pg_log_backend_memory_contexts(pid) while
# it is idle (no statement running: a round's transient memory, the rollup's
# hash table for one, is not what is measured), the smallest of three such
# figures: "grand engine", the Grand total and the total of the alert
# engine's contexts (activity_monitor alert windows and the hash tables in
# it).
worker_memory() {
	local best="" n before dump v tries=0 idle=0
	while [ "$idle" -lt 3 ]; do
		tries=$((tries + 1))
		[ "$tries" -le 100 ] || fail "the worker was never idle when it logged its memory"
		before=$(grep -c "\[$pid\] .*Grand total:" "$log" || true)
		[ "$(q "SELECT pg_log_backend_memory_contexts($pid)")" = t ] || fail "cannot log the worker's memory"
		for _ in $(seq 200); do
			n=$(grep -c "\[$pid\] .*Grand total:" "$log" || true)
			[ "$n" -gt "$before" ] && break
			sleep 0.05
		done
		[ "$n" -gt "$before" ] || fail "the worker did not log its memory"
		dump=$(grep "\[$pid\] " "$log" | awk '/logging memory contexts of PID/ { d = "" } { d = d $0 "\n" } END { printf "%s", d }')
		if printf '%b' "$dump" | grep -q "SPI Exec\|ExecutorState"; then
			sleep 0.3
			continue
		fi
		idle=$((idle + 1))
		v=$(printf '%b' "$dump" | awk '
			/Grand total:/ { sub(/.*Grand total: /, ""); grand = $1 + 0 }
			/level: [0-9]+; activity_monitor (alert windows|windows|distinct values|rule windows):/ {
				sub(/.*activity_monitor [a-z ]*: /, ""); engine += $1 }
			END { print grand, engine + 0 }')
		{ [ -z "$best" ] || [ "${v% *}" -lt "${best% *}" ]; } && best=$v
		sleep 0.2
	done
	echo "$best"
}

# the engine exists (one key) before the baseline
q "INSERT INTO flood VALUES (0, 0)" >/dev/null
caught_up
read -r m1 e1 <<<"$(worker_memory)"

# the flood: one event per key, 50,000 rows a transaction
t0=$(date +%s)
for start in $(seq 1 50000 "$keys"); do
	echo "INSERT INTO flood SELECT g, g FROM generate_series($start, $((start + 49999 < keys ? start + 49999 : keys))) g;"
done | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null || fail "the flood failed"
t1=$(date +%s)
caught_up 900
t2=$(date +%s)
[ "$(q "SELECT pid FROM activity_monitor.worker_status")" = "$pid" ] || fail "the worker restarted during the flood"
read -r m2 e2 <<<"$(worker_memory)"
bound=$((max_keys * 512))
echo "flood: $keys keys written in $((t1 - t0)) s, processed $((t2 - t1)) s later;" \
	"worker memory $m1 -> $m2 bytes (growth $((m2 - m1))), alert engine $e1 -> $e2 bytes" \
	"(bound $bound for max_keys_per_rule = $max_keys, the worker's growth $((bound + mb)))"
[ "$e2" -le "$bound" ] ||
	fail "the alert engine holds $e2 bytes after $keys distinct keys (bound $bound)"
[ $((m2 - m1)) -le $((bound + mb)) ] ||
	fail "the worker grew by $((m2 - m1)) bytes with $keys distinct keys (bound $((bound + mb)))"

# still alerting: a burst of 3 on one key
q "INSERT INTO flood VALUES (-1, -1), (-2, -1), (-3, -1)" >/dev/null
caught_up
got=$(q "SELECT coalesce(string_agg(format('%s=%s', group_key, value), ','), 'none') FROM activity_monitor.alerts")
[ "$got" = "-1=3" ] || fail "a burst of 3 on key -1 after the flood: expected one alert -1=3, got $got"

# every key but the last max_keys_per_rule was evicted (the burst's key too
# evicted one); no window lost an event to the per-window bound
stats=$(q "SELECT format('%s/%s/%s', events_matched, keys_evicted, events_evicted) FROM activity_monitor.rules")
want="$((keys + 4))/$((keys + 2 - max_keys))/0"
[ "$stats" = "$want" ] || fail "rules: events_matched/keys_evicted/events_evicted $stats, expected $want"
errors=$(q "SELECT coalesce(last_error, '') FROM activity_monitor.worker_state")
[ -z "$errors" ] || fail "the worker recorded an error: $errors"
echo "ok: bounded ($((m2 - m1)) bytes for $keys keys), $stats, alerting"
