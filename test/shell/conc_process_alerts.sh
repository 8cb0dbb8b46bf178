#!/usr/bin/env bash
# Regression test (issue 12, concurrency): _process_alerts() called by hand
# while another call (the worker's, or another session's) holds alert_state
# must not move last_snapshot backwards.  0.1.0 took the batch snapshot in
# the statement that waited for the row lock: a snapshot older than the
# last_snapshot the other call committed, stored all the same, so the
# events in between were processed again (duplicate alerts).
#
#   A: BEGIN; _process_alerts()              (holds alert_state)
#   B: _process_alerts()                     (waits for A)
#   an event some rule matches commits
#   A: _process_alerts() (alerts on it); COMMIT
#   B: goes on; then one more call
# The event must have exactly one alert, and last_snapshot never go back.
set -euo pipefail
db=am_conc_process
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/conc_process
mkdir -p "$work"
apid=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -n "$apid" ] && kill "$apid" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id int PRIMARY KEY);
SELECT activity_monitor.track('t', 'system');
SELECT activity_monitor.create_rule('each', '$.action == "insert"', tables => '{t}', channel => 'am_conc_process');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
caught_up

state() {	# application_name: its state and wait event type
	q "SELECT state || '/' || coalesce(wait_event_type, '') FROM pg_stat_activity WHERE application_name = '$1'"
}

# session A, fed statement by statement through a fifo
rm -f "$work/a.fifo"
mkfifo "$work/a.fifo"
PGAPPNAME=am_conc_a psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <"$work/a.fifo" >"$work/a.out" 2>&1 &
apid=$!
exec 3>"$work/a.fifo"
echo "BEGIN; SELECT events FROM activity_monitor._process_alerts();" >&3
am_wait_for 15 "$db" "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'am_conc_a' AND state = 'idle in transaction')" ||
	fail "session A did not hold alert_state: $(state am_conc_a)"

# session B waits for A's lock
PGAPPNAME=am_conc_b psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" \
	-c "SELECT events FROM activity_monitor._process_alerts()" >"$work/b.out" 2>&1 &
bpid=$!
am_wait_for 15 "$db" "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'am_conc_b' AND wait_event_type = 'Lock')" ||
	fail "session B is not waiting for the lock: $(state am_conc_b)"

q "INSERT INTO t VALUES (1)" >/dev/null
ev=$(q "SELECT id FROM activity_monitor.activity WHERE row_key = '1'")
# A processes the event and commits
echo "SELECT events FROM activity_monitor._process_alerts(); COMMIT;" >&3
exec 3>&-
wait "$apid" || fail "session A failed: $(cat "$work/a.out")"
apid=""
wait "$bpid" || fail "session B failed: $(cat "$work/b.out")"
# the event's transaction is in last_snapshot, as A left it
back=$(q "SELECT NOT txid_visible_in_snapshot(a.txid, s.last_snapshot) FROM activity_monitor.activity a,
	activity_monitor.alert_state s WHERE a.id = $ev")
q "SELECT events FROM activity_monitor._process_alerts()" >/dev/null
caught_up
got=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE event_id = $ev")
[ "$got" = 1 ] || fail "one event, one rule: expected 1 alert, got $got (last_snapshot moved back: $back)"
[ "$back" = f ] || fail "last_snapshot moved back behind the event A processed"
echo "ok"
