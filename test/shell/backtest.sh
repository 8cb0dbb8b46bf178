#!/usr/bin/env bash
# Backtesting (issue 14): test_rule() over the stored history returns the
# alerts the worker fired live for the same definitions, and writes nothing.
#
# Rules of every existing type are created, then payments and logins are
# written by one session over about 6 seconds (so that windows of 1 to 2
# seconds open and close, and commit order is time order); once the worker
# has caught up, test_rule() with each rule's definition over the period
# must return exactly the rule's live alerts (event, group key, value, the
# window's events).  Then: what test_rule() cannot see (an update's
# unchanged columns), bad input refused with its errcode and nothing
# written, the privileges, and the rate over the events written.
set -euo pipefail
db=am_backtest
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id bigserial PRIMARY KEY, account_id int, amount numeric,
	currency text, ip text, status text);
CREATE TABLE logins (id bigserial PRIMARY KEY, account_id int, success boolean, device text);
CREATE TABLE adjustments (id bigserial PRIMARY KEY, account_id int, amount numeric);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id',
	status_column => 'status');
SELECT activity_monitor.track('logins', 'login', subject_column => 'account_id');
-- a tracked table of kind admin records row events, which rules see like any other
SELECT activity_monitor.track('adjustments', 'admin', subject_column => 'account_id');
CREATE TABLE defs (name text PRIMARY KEY, predicate jsonpath, kinds text[], tables regclass[],
	within interval, threshold numeric, measure text, measure_path jsonpath,
	group_by jsonpath, cooldown interval);
INSERT INTO defs VALUES
 ('big',       '$.action == "insert" && $.new.amount > 900', NULL, '{payments}', NULL, NULL, 'count', NULL, '$.subject_id', NULL),
 ('big_cool',  '$.action == "insert" && $.new.amount > 800', '{payment}', NULL, NULL, NULL, 'count', '$.new.amount', '$.subject_id', '1 second'),
 ('completed', '$.action == "update" && $.status_to == "completed"', NULL, '{payments}', NULL, NULL, 'count', NULL, '$.new.status', NULL),
 ('burst',     '$.action == "insert"', '{payment}', NULL, '1 second', 4, 'count', NULL, '$.subject_id', NULL),
 ('ip_sum',    '$.action == "insert"', '{payment}', NULL, '2 seconds', 2500, 'sum', '$.new.amount', '$.new.ip', NULL),
 ('currencies','$.action == "insert"', '{payment}', NULL, '2 seconds', 2, 'distinct', '$.new.currency', '$.subject_id', '1 second'),
 ('failures',  '$.new.success == false', '{login}', '{logins}', '1 second', 2, 'count', NULL, '$.subject_id', NULL),
 ('devices',   '$.kind == "login"', NULL, NULL, '2 seconds', 2, 'distinct', '$.new.device', '$.subject_id', NULL),
 ('adjusted',  '$.table == "public.adjustments" && $.new.amount > 20', NULL, NULL, NULL, NULL, 'count', NULL, '$.subject_id', NULL),
 ('changed',   '$.action == "insert" && $.changed[*] == "device"', NULL, NULL, NULL, NULL, 'count', NULL, '$.subject_id', NULL);
SELECT activity_monitor.create_rule(name, predicate, kinds => kinds, tables => tables,
	within => within, threshold => threshold, measure => measure, measure_path => measure_path,
	group_by => group_by, cooldown => cooldown, channel => 'am_backtest')
FROM defs ORDER BY name;
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
start=$(q "SELECT clock_timestamp()")

# 12 rounds half a second apart, one transaction per statement
for round in $(seq 1 12); do
	q "INSERT INTO payments (account_id, amount, currency, ip, status)
	   SELECT 1 + (g * 7 + $round) % 20, (g * 37 + $round * 11) % 1000,
	          (ARRAY['EUR','USD','BRL','GBP'])[1 + (g / 3 + $round) % 4], '10.0.0.' || (g % 5), 'pending'
	   FROM generate_series(1, 25) g" >/dev/null
	q "UPDATE payments SET status = CASE WHEN id % 3 = 0 THEN 'failed' ELSE 'completed' END
	   WHERE status = 'pending' AND id % 2 = $((round % 2))" >/dev/null
	q "INSERT INTO logins (account_id, success, device)
	   SELECT 1 + (g + $round) % 10, (g + $round) % 4 <> 0, 'd' || ((g * $round) % 3)
	   FROM generate_series(1, 12) g" >/dev/null
	q "INSERT INTO adjustments (account_id, amount) SELECT g, (g * $round) % 50 FROM generate_series(1, 3) g" >/dev/null
	q "SELECT pg_sleep(0.5)" >/dev/null
done
caught_up
until=$(q "SELECT clock_timestamp()")

# the live alerts and the backtest of each definition, the same rows
fired=$(q "SELECT count(*) FROM activity_monitor.alerts")
for name in $(q "SELECT name FROM defs ORDER BY name"); do
	live=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = '$name'")
	[ "$live" -gt 0 ] || fail "rule $name fired no alert live: the scenario does not exercise it"
	diff=$(q "WITH d AS (SELECT * FROM defs WHERE name = '$name'),
		bt AS (SELECT t.event_id, t.group_key, t.value, t.event_ids
		       FROM d, activity_monitor.test_rule(d.predicate, '$start', '$until', d.kinds, d.tables,
		            d.within, d.threshold, d.measure, d.measure_path, d.group_by, d.cooldown) t),
		live AS (SELECT x.event_id, x.group_key, x.value, x.event_ids
		         FROM activity_monitor.alerts x WHERE x.rule_name = '$name')
		SELECT coalesce(string_agg(format('%s %s', w, r), '; '), '') FROM (
		  (SELECT 'backtest only', bt::text FROM bt EXCEPT ALL SELECT 'backtest only', live::text FROM live)
		  UNION ALL
		  (SELECT 'live only', live::text FROM live EXCEPT ALL SELECT 'live only', bt::text FROM bt)) s(w, r)")
	[ -z "$diff" ] || fail "rule $name: test_rule() and the live alerts differ: $diff"
	echo "rule $name: $live alerts, test_rule() the same"
done
[ "$(q "SELECT count(*) FROM activity_monitor.alerts")" = "$fired" ] || fail "test_rule() wrote alerts"

# An update's unchanged columns are not stored: a predicate on them matches
# live (the trigger sees whole rows) and not in a backtest (documented).
q "SELECT activity_monitor.create_rule('completed_big', '\$.action == \"update\" && \$.new.amount > 500',
	tables => '{payments}', channel => 'am_backtest')" >/dev/null
s2=$(q "SELECT clock_timestamp()")
q "UPDATE payments SET status = 'refunded' WHERE status = 'completed' AND amount > 500" >/dev/null
caught_up
live=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'completed_big'")
bt=$(q "SELECT count(*) FROM activity_monitor.test_rule('\$.action == \"update\" && \$.new.amount > 500',
	'$s2', tables => '{payments}')")
[ "$live" -gt 0 ] && [ "$bt" = 0 ] ||
	fail "an update's unchanged column: expected live alerts and none in the backtest, got $live and $bt"

# Bad input: errcode, and nothing written
expect_error() {
	local code=$1 sql=$2 out
	out=$(psql -X -At -d "$db" -v VERBOSITY=verbose -c "$sql" 2>&1) && fail "accepted: $sql"
	grep -q "ERROR:  $code:" <<<"$out" || fail "expected $code for: $sql; got: $out"
}
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now(), now() - interval '1 day')"
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day', measure => 'median')"
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day', measure => 'sum', within => '1 hour', threshold => 5)"
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day', within => '1 hour')"
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day', within => '400 days', threshold => 2)"
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day', within => '1 hour', threshold => 1e9)"
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == \$x', now() - interval '1 day')"
expect_error 22023 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day', kinds => '{bets}')"
expect_error 22004 "SELECT * FROM activity_monitor.test_rule(NULL, now() - interval '1 day')"
expect_error 22004 "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day', kinds => '{payment,NULL}')"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name <> 'completed_big'")" = "$fired" ] ||
	fail "test_rule() wrote alerts"
[ "$(q "SELECT count(*) FROM activity_monitor.alert_rule")" = 11 ] || fail "test_rule() changed the rules"
# the C part, called directly (superuser), refuses what would crash it
expect_error 22023 "SELECT * FROM activity_monitor._test_rule('\$.a == 1', now() - interval '1 day', now(), NULL, NULL, '1 hour', NULL, 'count', NULL, '\$.subject_id', NULL, NULL, NULL, NULL)"
expect_error 22023 "SELECT * FROM activity_monitor._test_rule('\$.a == 1', now() - interval '1 day', now(), NULL, NULL, NULL, NULL, 'sum', NULL, '\$.subject_id', NULL, NULL, NULL, NULL)"
# an empty tables list, or tables since dropped, applies to no table (as live)
[ "$(q "SELECT count(*) FROM activity_monitor.test_rule('\$.new.amount > 40', '$start', tables => '{}')")" = 0 ] ||
	fail "test_rule() with an empty tables list matched"
q "CREATE TABLE gone (id int)" >/dev/null
gone=$(q "SELECT 'gone'::regclass::oid")
q "DROP TABLE gone" >/dev/null
[ "$(q "SELECT count(*) FROM activity_monitor.test_rule('\$.new.amount > 40', '$start', tables => '{$gone}')")" = 0 ] ||
	fail "test_rule() with a dropped table's oid matched"

# Privileges: readers may backtest (they read the activity anyway), others not
q "CREATE ROLE am_bt_reader LOGIN IN ROLE activity_monitor_reader; CREATE ROLE am_bt_other LOGIN" >/dev/null
n=$(psql -X -At -d "$db" -U am_bt_reader -c "SELECT count(*) FROM activity_monitor.test_rule('\$.action == \"insert\" && \$.new.amount > 900', '$start', tables => '{payments}')")
[ "$n" = "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'big'")" ] || fail "the reader's backtest: $n"
out=$(psql -X -At -d "$db" -U am_bt_other -v VERBOSITY=verbose -c "SELECT * FROM activity_monitor.test_rule('\$.a == 1', now() - interval '1 day')" 2>&1) &&
	fail "a role without the reader role ran test_rule()"
grep -q 'ERROR:  42501' <<<"$out" || fail "expected 42501, got: $out"
out=$(psql -X -At -d "$db" -U am_bt_reader -v VERBOSITY=verbose -c "SELECT * FROM activity_monitor._test_rule('\$.a == 1', now() - interval '1 day', now(), NULL, NULL, NULL, NULL, 'count', NULL, '\$.subject_id', NULL, NULL, NULL, NULL)" 2>&1) &&
	fail "a reader ran the unchecked _test_rule()"
q "DROP ROLE am_bt_reader; DROP ROLE am_bt_other" >/dev/null

echo "ok"
