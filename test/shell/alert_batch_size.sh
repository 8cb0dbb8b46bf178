#!/usr/bin/env bash
# Regression test (issue 12, "one path"): the worker calls its alert engine
# directly, in batches of activity_monitor.alert_batch_size events.
#
# 0.1.0's worker ran "SELECT ... FROM activity_monitor._process_alerts()"
# (10,000 events a batch, fixed).  Here:
# 1. activity_monitor.alert_batch_size exists (default 10000), is reloaded
#    on SIGHUP and refuses 0 (22023);
# 2. with alert_batch_size = 3, ten matching events committed together are
#    processed in batches of at most 3 events (a trigger on alert_state
#    records each batch), every one alerted once;
# 3. the worker alerts with the SQL entry point _process_alerts() renamed
#    away (0.1.0's worker then failed every round: function does not exist);
# 4. an error in a batch is recorded (worker_status.last_error "alert
#    processing: ...") and the worker goes on: once the cause is gone, the
#    events are alerted.
set -euo pipefail
db=am_batch_size
. "$AM_ROOT/test/lib/shell.sh"
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET activity_monitor.alert_batch_size" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	am_db_drop
}
trap cleanup EXIT

# 1. the setting
[ "$(psql -X -At -d postgres -c "SELECT current_setting('activity_monitor.alert_batch_size', true)" 2>&1)" = 10000 ] ||
	{ echo "FAIL: activity_monitor.alert_batch_size is not a setting with default 10000"; exit 1; }
out=$(psql -X -At -d postgres -c "ALTER SYSTEM SET activity_monitor.alert_batch_size = 0" 2>&1 || true)
case $out in
*"outside the valid range"*) ;;
*) echo "FAIL: alert_batch_size = 0 accepted: $out"; exit 1 ;;
esac
echo "ok: alert_batch_size defaults to 10000 and refuses 0"

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id int PRIMARY KEY);
SELECT activity_monitor.track('t', 'system');
SELECT activity_monitor.create_rule('each', '$.action == "insert"', tables => '{t}', channel => 'am_batch');
-- each batch of the alert engine moves alert_state once: record its size
CREATE TABLE public.batches (at timestamptz DEFAULT clock_timestamp(), n bigint);
CREATE TABLE public.refuse (why text);
CREATE FUNCTION public.record_batch() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM public.refuse) THEN
		RAISE EXCEPTION 'batch refused by the test';
	END IF;
	INSERT INTO public.batches (n) VALUES (NEW.events_processed OPERATOR(pg_catalog.-) OLD.events_processed);
	RETURN NEW;
END $$;
CREATE TRIGGER record_batch BEFORE UPDATE ON activity_monitor.alert_state
	FOR EACH ROW EXECUTE FUNCTION public.record_batch();
SQL
am_wait_for 15 "$db" "SELECT running AND last_run_at IS NOT NULL FROM activity_monitor.worker_status" ||
	fail "no worker"

# 2. batches of 3
psql -X -q -d postgres -c "ALTER SYSTEM SET activity_monitor.alert_batch_size = 3" \
	-c "SELECT pg_reload_conf()" >/dev/null
# the postmaster signals its children before new sessions see the value ...
am_wait_for 15 "$db" "SELECT current_setting('activity_monitor.alert_batch_size') = '3'" ||
	fail "the new alert_batch_size was not loaded"
# ... and the worker reloads at the start of its next round: after two
# rounds (one may have been under way), it has
for i in 1 2; do
	q "INSERT INTO t VALUES (-$i)" >/dev/null
	caught_up
done
q "DELETE FROM public.batches" >/dev/null
q "INSERT INTO t SELECT g FROM generate_series(1, 10) g" >/dev/null
caught_up
am_wait_for 15 "$db" "SELECT count(*) = 12 FROM activity_monitor.alerts" ||
	fail "expected 12 alerts, got $(q "SELECT count(*) FROM activity_monitor.alerts")"
read -r total biggest batches <<<"$(q "SELECT sum(n), max(n), count(*) FILTER (WHERE n > 0) FROM public.batches" | tr '|' ' ')"
[ "$total" = 10 ] || fail "the batches processed $total events, not 10"
[ "$biggest" -le 3 ] || fail "a batch processed $biggest events with alert_batch_size = 3"
[ "$batches" -ge 4 ] || fail "10 events in $batches batches"
[ "$(q "SELECT count(DISTINCT event_id) FROM activity_monitor.alerts")" = 12 ] || fail "an event alerted twice"
echo "ok: 10 events in $batches batches of at most $biggest"

# 3. no SQL on the way to the engine
q "ALTER FUNCTION activity_monitor._process_alerts(int) RENAME TO _process_alerts_away" >/dev/null
q "INSERT INTO t VALUES (11)" >/dev/null
am_wait_for 30 "$db" "SELECT count(*) = 13 FROM activity_monitor.alerts" ||
	fail "no alert with _process_alerts() renamed: $(q "SELECT last_error FROM activity_monitor.worker_status")"
q "ALTER FUNCTION activity_monitor._process_alerts_away(int) RENAME TO _process_alerts" >/dev/null
echo "ok: the worker alerts without the SQL entry point"

# 4. an error in a batch is recorded, the worker goes on
q "INSERT INTO public.refuse VALUES ('test')" >/dev/null
q "INSERT INTO t VALUES (12)" >/dev/null
am_wait_for 30 "$db" "SELECT last_error LIKE 'alert processing: %batch refused by the test%' AND running
	FROM activity_monitor.worker_status" ||
	fail "the batch error was not recorded"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts")" = 13 ] || fail "an alert of a failed batch was kept"
q "DELETE FROM public.refuse" >/dev/null
q "INSERT INTO t VALUES (13)" >/dev/null
am_wait_for 30 "$db" "SELECT count(*) = 15 FROM activity_monitor.alerts" ||
	fail "the worker did not go on after a failed batch"
echo "ok: a failed batch is recorded and retried"
