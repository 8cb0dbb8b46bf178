#!/usr/bin/env bash
# Regression test (a bug found while building the first release, fixed): one event
# whose measure is a very long number stops every alert of the database.
#
# alert_payload() cuts the free-text fields to keep the (full, opted-in) payload under
# NOTIFY's 8000-byte limit, but not "value": a per-event rule with
# measure_path on a numeric column and an event with a 9001-digit amount
# make pg_notify() fail with "payload string too long".  The whole batch
# rolls back and is retried on every wake-up, failing each time: no alert is
# ever fired again in that database, for any rule (worker_state.last_error =
# "alert processing: payload string too long").  The same happens when
# _num() casts a digit string longer than numeric accepts (a text column
# used as a measure).  Expected: both events alert, the payload stays under
# 8000 bytes and is valid JSON, the worker records no error.
set -euo pipefail
db=am_alerts_poison
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id int PRIMARY KEY, amount numeric, code text);
SELECT activity_monitor.track('payments', 'payment');
SELECT activity_monitor.create_rule('any_amount', '$.new.amount > 0', tables => '{payments}',
	measure_path => '$.new.amount', channel => 'am_poison', full_payload => true);
SELECT activity_monitor.create_rule('code_sum', '$.new.code starts with "9"', tables => '{payments}',
	within => '1 hour', threshold => 1, measure => 'sum', measure_path => '$.new.code', group_by => '$.table',
	channel => 'am_poison', full_payload => true);
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"

q "INSERT INTO payments VALUES (1, 10::numeric ^ 9000, NULL)" >/dev/null
q "INSERT INTO payments VALUES (2, 5, NULL)" >/dev/null
am_wait_for 20 "$db" "SELECT count(*) = 2 FROM activity_monitor.alerts WHERE rule_name = 'any_amount'" ||
	fail "a 9001-digit measure: expected 2 alerts of any_amount, got $(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'any_amount'")"
[ "$(q "SELECT bool_and(octet_length(activity_monitor.alert_payload(a)) < 8000
		AND (activity_monitor.alert_payload(a)::json ->> 'alert_id')::bigint = a.id)
		FROM activity_monitor.alerts a")" = t ] || fail "payload over the limit or not JSON"

q "INSERT INTO payments VALUES (3, NULL, repeat('9', 200000))" >/dev/null
q "INSERT INTO payments VALUES (4, 6, NULL)" >/dev/null
am_wait_for 20 "$db" "SELECT count(*) = 3 FROM activity_monitor.alerts WHERE rule_name = 'any_amount'" ||
	fail "a 200000-digit string as a sum measure blocks the alert of the next event"
[ "$(q "SELECT last_error IS NULL FROM activity_monitor.worker_status")" = t ] || fail "the worker recorded an error"
echo "ok"
