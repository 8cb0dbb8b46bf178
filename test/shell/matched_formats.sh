#!/usr/bin/env bash
# The worker reads both forms of an event's "matched" document: 0.1.0's
# ({"rule id": {"k": key, "v": measure}}), which events stored before the
# update keep, and 0.2.0's compact one ({"k": shared key, "rule id":
# measure}, a rule whose key differs or whose measure is an array as
# "rule id": [key, measure]).  One event of each form, the old one written
# as 0.1.0's library wrote it, feeds the same windows: a sum by subject, a
# count by row (a key other than the shared one) and a distinct count of
# arrays.  Each rule fires once, on the two events together.
set -euo pipefail
db=am_matched_formats
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id text PRIMARY KEY, subject text, amount int, tags jsonb);
SELECT activity_monitor.track('t', 'game', subject_column => 'subject');
SELECT activity_monitor.create_rule('sum_a', '$.action == "insert"', within => '1 hour', threshold => 600,
	measure => 'sum', measure_path => '$.new.amount');
SELECT activity_monitor.create_rule('by_row', '$.action == "insert"', within => '1 hour', threshold => 2,
	group_by => '$.row_key');
SELECT activity_monitor.create_rule('arr', '$.action == "insert"', within => '1 hour', threshold => 2,
	measure => 'distinct', measure_path => '$.new.tags');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
id() { q "SELECT id FROM activity_monitor.alert_rule WHERE name = '$1'"; }
sum_a=$(id sum_a)
by_row=$(id by_row)
arr=$(id arr)

# an event as 0.1.0's library stored it
q "INSERT INTO activity_monitor.activity (kind, action, table_name, row_key, subject_id, actor_type, new_values, matched)
   VALUES ('game', 'insert', 'public.t', 'r1', '7', 'user', '{\"amount\": 100, \"tags\": [3]}',
	jsonb_build_object('$sum_a', '{\"k\": \"7\", \"v\": 100}'::jsonb, '$by_row', '{\"k\": \"r1\", \"v\": null}'::jsonb,
		'$arr', '{\"k\": \"7\", \"v\": [3]}'::jsonb))" >/dev/null
caught_up
[ "$(q "SELECT count(*) FROM activity_monitor.alerts")" = 0 ] || fail "one event fired"

# a captured one, compact
q "INSERT INTO t VALUES ('r1', '7', 500, '[1, 2]')" >/dev/null
got=$(q "SELECT matched FROM activity_monitor.activity WHERE table_name = 'public.t' ORDER BY id DESC LIMIT 1")
want=$(q "SELECT jsonb_build_object('k', '7', '$sum_a', 500, '$by_row', '[\"r1\", null]'::jsonb,
	'$arr', '[\"7\", [1, 2]]'::jsonb)")
[ "$got" = "$want" ] || fail "matched of a captured event: expected $want, got $got"
echo "ok: a captured event's matched is compact ($got)"
caught_up
got=$(q "SELECT coalesce(string_agg(format('%s %s=%s:%s', rule_name, group_key, value, array_length(event_ids, 1)), ', '
	ORDER BY rule_name), 'none') FROM activity_monitor.alerts")
[ "$got" = "arr 7=2:2, by_row r1=2:2, sum_a 7=600:2" ] ||
	fail "expected one alert of each rule on both events (arr 7=2:2, by_row r1=2:2, sum_a 7=600:2), got $got"
[ "$(q "SELECT last_error IS NULL FROM activity_monitor.worker_status")" = t ] || fail "the worker recorded an error"
echo "ok: the worker reads 0.1.0's matched and the compact one into the same windows"
