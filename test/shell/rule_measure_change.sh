#!/usr/bin/env bash
# A rule's measure changed by an UPDATE of alert_rule while its windows are
# live (a count rule made a sum rule): the worker's windows of that rule
# start anew with the new measure, so the sum reaches its threshold on the
# events that came after the change, and fires once with them.  (Windows
# kept their first measure before: the count window of the key went on
# counting, and the sum rule never fired.)
set -euo pipefail
db=am_rule_measure_change
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id serial PRIMARY KEY, k text, amount int);
SELECT activity_monitor.track('t', 'game', subject_column => 'k');
SELECT activity_monitor.create_rule('m', '$.action == "insert"', within => '1 hour', threshold => 3,
	group_by => '$.new.k');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"

q "INSERT INTO t (k, amount) VALUES ('a', 10), ('a', 10)" >/dev/null
caught_up
[ "$(q "SELECT count(*) FROM activity_monitor.alerts")" = 0 ] || fail "two events fired a count of 3"

q "UPDATE activity_monitor.alert_rule SET measure = 'sum', measure_path = '\$.new.amount', threshold = 25
   WHERE name = 'm'" >/dev/null
for _ in 1 2 3; do q "INSERT INTO t (k, amount) VALUES ('a', 10)" >/dev/null; done
caught_up
got=$(q "SELECT coalesce(string_agg(format('%s=%s:%s', group_key, value, array_length(event_ids, 1)), ','), 'none')
	FROM activity_monitor.alerts WHERE rule_name = 'm'")
[ "$got" = "a=30:3" ] ||
	fail "after the measure became sum: expected one alert a=30 with the 3 events after the change, got $got"
[ "$(q "SELECT last_error IS NULL FROM activity_monitor.worker_status")" = t ] || fail "the worker recorded an error"
echo "ok: a rule whose measure changed starts its windows anew"
