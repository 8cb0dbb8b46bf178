#!/usr/bin/env bash
# Regression test (a bug found while building the first release, fixed): a distinct
# rule counts "no value" as a value.
#
# measure distinct is "the number of distinct measure_path values".  When
# measure_path finds nothing (a NULL column, a missing field), the event's
# measure is JSON null, and count(DISTINCT ...) over jsonb counts that null
# as one more value.  Rule: per account, distinct devices within 1 hour,
# threshold 2.  One login from "phone", one with no device: one device, yet
# the rule fires with value 2.  (sum ignores such events: _num(null) is
# NULL.)  Expected: no alert until a second real device; then value 2.
set -euo pipefail
db=am_alerts_distinct
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE logins (id int PRIMARY KEY, account_id int, device text);
SELECT activity_monitor.track('logins', 'login', subject_column => 'account_id');
SELECT activity_monitor.create_rule('devices', '$.action == "insert"', within => '1 hour', threshold => 2,
	measure => 'distinct', measure_path => '$.new.device', channel => 'am_distinct');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
q "INSERT INTO logins VALUES (1, 9, 'phone')" >/dev/null
q "INSERT INTO logins VALUES (2, 9, NULL)" >/dev/null
caught_up
got=$(q "SELECT coalesce(string_agg(value::text, ','), 'none') FROM activity_monitor.alerts")
[ "$got" = none ] || fail "one device and one login without a device: expected no alert, got value $got"
q "INSERT INTO logins VALUES (3, 9, 'laptop')" >/dev/null
caught_up
got=$(q "SELECT coalesce(string_agg(format('%s rows %s', x.value,
			(SELECT array_agg(a.row_key ORDER BY a.id) FROM activity_monitor.activity a WHERE a.id = ANY (x.event_ids))), ','), 'none')
		 FROM activity_monitor.alerts x")
[ "$got" = "2 rows {1,2,3}" ] || fail "a second device: expected one alert of value 2 (rows 1 to 3 in the window), got $got"
echo "ok"
