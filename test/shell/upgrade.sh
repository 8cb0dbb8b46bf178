#!/usr/bin/env bash
# ALTER EXTENSION activity_monitor UPDATE on a database full of 0.1.0 data:
# 0.1.0 installed with tracked tables, captured events, rules and alerts
# (open, acknowledged, resolved), then updated.  Afterwards the extension's
# objects are exactly those of a fresh install (test/lib/describe_extension.sql,
# compared line by line; and pg_dump --schema-only, outside the tables that
# hold data), no event, rule or alert is lost or changed, and
# capture and the worker go on: a new matching write is captured and alerted.
#
# The library is this release's: until the update, capture goes on and the
# worker waits (its SQL functions are the new ones); the events captured
# meanwhile are alerted after the update, none lost.  The 0.1.0 alerts are
# rows written as 0.1.0's worker wrote them.
#
# Issue 13's contract changes: db_user becomes text (the library writes a
# name into 0.1.0's column until the update; a view of the platform's over
# timeline stops the update with its name), and the tables 0.1.0 tracked
# keep every status transition critical (critical_statuses NULL) before and
# after the update, while a table tracked afterwards has none by default.
set -euo pipefail
db=am_upgrade
. "$AM_ROOT/test/lib/shell.sh"
trap 'am_db_drop; psql -X -q -d postgres -c "DROP ROLE IF EXISTS am_upgrade_clerk" >/dev/null 2>&1' EXIT
fresh=am_upgrade_fresh
describe() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -f "$AM_ROOT/test/lib/describe_extension.sql"; }

version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$AM_ROOT/activity_monitor.control")
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $fresh WITH (FORCE)" \
	-c "CREATE DATABASE $fresh" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$fresh" -c "CREATE EXTENSION activity_monitor" >/dev/null
[ "$(psql -X -At -d "$fresh" -c "SELECT extversion FROM pg_extension WHERE extname = 'activity_monitor'")" = "$version" ] ||
	fail "a fresh install is not version $version"
describe "$fresh" >"$AM_TMP/upgrade.fresh"
# pg_dump --schema-only of the database, leaving out what must differ: the
# tables of public (the tracked ones) and the partitions of activity (which
# hold data: their number, bounds and, for 0.1.0's, indexes differ).  What
# remains is CREATE EXTENSION and whatever an update would leave different
# from an install: privileges changed from the extension's initial ones,
# objects outside the extension.
schema_dump() {
	pg_dump --schema-only --no-owner -N public -T 'activity_monitor.activity_*' "$1" |
		grep -v -e '^--' -e '^$' -e '^\\restrict ' -e '^\\unrestrict '
}
schema_dump "$fresh" >"$AM_TMP/upgrade.fresh.dump"
psql -X -q -d postgres -c "DROP DATABASE $fresh WITH (FORCE)" >/dev/null

am_db_new
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor VERSION '0.1.0';
SET client_min_messages = warning;
DROP ROLE IF EXISTS am_upgrade_clerk;
CREATE TABLE accounts (id int PRIMARY KEY, email text, password_hash text, balance numeric);
CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id',
	critical_columns => '{balance}', redact_columns => '{password_hash}');
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.create_rule('big', '$.new.amount > 1000', severity => 'critical', kinds => '{payment}');
SELECT activity_monitor.create_rule('many', '$.action == "insert"', kinds => '{payment}',
	within => '1 hour', threshold => 3);
INSERT INTO accounts SELECT g, 'a' || g || '@x', 'secret', 100 FROM generate_series(1, 50) g;
INSERT INTO payments SELECT g, g % 5 + 1, g * 100, 'pending' FROM generate_series(1, 30) g;
UPDATE payments SET status = 'completed' WHERE id % 2 = 0;
-- a change by another role, whose name capture records in db_user (a
-- name column until the update; the library writes it as text since 0.2.0)
CREATE ROLE am_upgrade_clerk;
GRANT UPDATE, SELECT ON accounts TO am_upgrade_clerk;
SET ROLE am_upgrade_clerk;
UPDATE accounts SET email = 'clerk@x' WHERE id = 1;
RESET ROLE;
SQL
# before the update: db_user right, every status transition critical (the
# library reads 0.1.0's missing critical_statuses as NULL)
[ "$(q "SELECT string_agg(DISTINCT db_user || ':' || pg_typeof(db_user), ',') FROM activity_monitor.activity
	WHERE row_key = '1' AND table_name = 'public.accounts' AND action = 'update'")" = "am_upgrade_clerk:name" ] ||
	fail "db_user of a change captured into 0.1.0's activity table: $(q "SELECT db_user FROM activity_monitor.activity ORDER BY id DESC LIMIT 1")"
[ "$(q "SELECT count(*) FILTER (WHERE critical) || '/' || count(*) FROM activity_monitor.activity
	WHERE table_name = 'public.payments' AND action = 'update'")" = "15/15" ] ||
	fail "before the update, a status transition of a 0.1.0 table is not critical"
echo "ok: before the update, the new library captures db_user into a name column and every transition as critical"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
INSERT INTO activity_monitor.alerts (rule_id, rule_name, severity, channel, group_key, value, event_id,
	event_ids, occurred_at, kind, action, table_name, subject_id, actor_type, actor_id)
SELECT r.id, r.name, r.severity, r.channel, a.subject_id, NULL, a.id, ARRAY[a.id], a.occurred_at, a.kind,
	a.action, a.table_name, a.subject_id, a.actor_type, a.actor_id
FROM activity_monitor.activity a, activity_monitor.alert_rule r
WHERE r.name = 'big' AND a.table_name = 'public.payments' AND a.id % 3 = 0;
SELECT activity_monitor.acknowledge(min(id)) FROM activity_monitor.alerts;
SELECT activity_monitor.resolve(max(id)) FROM activity_monitor.alerts;
SQL
n_alerts=$(q "SELECT count(*) FROM activity_monitor.alerts")
last_alert=$(q "SELECT max(id) FROM activity_monitor.alerts")
snapshot() {
	q "SELECT md5(string_agg((to_jsonb(a) - 'source' - 'source_id')::text, '|' ORDER BY id)) FROM activity_monitor.activity a"
	# (the worker alerts on the events captured before the update as soon as
	# it commits: the alerts written before it are compared)
	q "SELECT md5(string_agg(format('%s %s %s %s %s %s %s %s', id, rule_name, group_key, value, event_ids, status,
		acknowledged_at, resolved_at), '|' ORDER BY id)) FROM activity_monitor.alerts WHERE id <= $last_alert"
	q "SELECT md5(string_agg(format('%s %s %s %s', id, name, predicate, within), '|' ORDER BY id)) FROM activity_monitor.alert_rule"
	q "SELECT string_agg(format('%s %s %s', tbl, kind, redact_columns), '|' ORDER BY tbl::text) FROM activity_monitor.tracked"
}
before=$(snapshot)

# A view of the platform's over a view the update recreates: the update
# refuses, names it and says what to do, and changes nothing
# (or over db_user of a partition, or a function returning admin_actions' rows)
q "CREATE VIEW public.my_timeline AS SELECT id, db_user FROM activity_monitor.timeline" >/dev/null
q "CREATE VIEW public.my_default AS SELECT db_user FROM activity_monitor.activity_default" >/dev/null
q "CREATE FUNCTION public.my_rows() RETURNS SETOF activity_monitor.admin_actions LANGUAGE sql
	AS 'SELECT * FROM activity_monitor.admin_actions'" >/dev/null
got=$(psql -X -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$db" -c "ALTER EXTENSION activity_monitor UPDATE" 2>&1) &&
	fail "the update went ahead with views depending on activity_monitor.timeline and a partition's db_user"
grep -q "2BP01" <<<"$got" && grep -q "view public.my_timeline" <<<"$got" &&
	grep -q "view public.my_default" <<<"$got" && grep -q "function public.my_rows()" <<<"$got" &&
	grep -q "HINT:  Save and drop these objects" <<<"$got" ||
	fail "the update's refusal does not name the dependent views: $got"
[ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'activity_monitor'")" = 0.1.0 ] ||
	fail "a refused update changed the version"
q "DROP VIEW public.my_timeline, public.my_default" >/dev/null
q "DROP FUNCTION public.my_rows()" >/dev/null
echo "ok: views over timeline or a partition's db_user, a function returning admin_actions' rows stop the update, named, with a hint"

q "ALTER EXTENSION activity_monitor UPDATE" >/dev/null
[ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'activity_monitor'")" = "$version" ] ||
	fail "the update did not reach $version"
after=$(snapshot)
[ "$before" = "$after" ] || { echo "before: $before"; echo "after: $after"; fail "the update changed events, alerts, rules or settings"; }
echo "ok: 0.1.0 data unchanged by the update ($n_alerts alerts)"
# db_user is text now, with the same values
[ "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	WHERE attrelid = 'activity_monitor.activity'::regclass AND attname = 'db_user'")" = text ] &&
	[ "$(q "SELECT count(*) FROM pg_attribute a JOIN pg_inherits i ON i.inhrelid = a.attrelid
		WHERE i.inhparent = 'activity_monitor.activity'::regclass AND a.attname = 'db_user'
		  AND a.atttypid <> 'text'::regtype")" = 0 ] ||
	fail "db_user is not text in the activity table and every partition after the update"
[ "$(q "SELECT db_user FROM activity_monitor.timeline WHERE row_key = '1' AND table_name = 'public.accounts'
	AND action = 'update'")" = am_upgrade_clerk ] || fail "db_user of an event before the update reads differently"
echo "ok: db_user is text, in every partition, with the same values"
# the tables 0.1.0 tracked keep every transition critical (NULL), new ones default to none
[ "$(q "SELECT string_agg(format('%s %s', tbl, coalesce(critical_statuses::text, 'NULL')), '|' ORDER BY tbl::text)
	FROM activity_monitor.tracked")" = "accounts NULL|payments NULL" ] ||
	fail "0.1.0's tracked tables do not keep critical_statuses NULL: $(q "SELECT critical_statuses FROM activity_monitor.tracked")"
# 0.1.0 rules send the public payload (no personal data) after the update
[ "$(q "SELECT bool_and(NOT full_payload) FROM activity_monitor.rules")" = t ] &&
	[ "$(q "SELECT bool_and(activity_monitor.alert_payload(a) = activity_monitor.alert_payload(a, false))
		FROM activity_monitor.alerts a")" = t ] || fail "0.1.0 rules do not default to the public payload"

describe "$db" >"$AM_TMP/upgrade.updated"
if ! diff "$AM_TMP/upgrade.fresh" "$AM_TMP/upgrade.updated" >"$AM_TMP/upgrade.diff"; then
	head -40 "$AM_TMP/upgrade.diff"
	fail "the updated extension differs from a fresh install of $version (above: < fresh, > updated)"
fi
echo "ok: updated objects equal a fresh install ($(wc -l <"$AM_TMP/upgrade.fresh") lines compared)"
schema_dump "$db" >"$AM_TMP/upgrade.updated.dump"
if ! diff "$AM_TMP/upgrade.fresh.dump" "$AM_TMP/upgrade.updated.dump" >"$AM_TMP/upgrade.dump.diff"; then
	head -40 "$AM_TMP/upgrade.dump.diff"
	fail "pg_dump --schema-only of the updated database differs from a fresh install's (above: < fresh, > updated)"
fi
grep -q 'CREATE EXTENSION IF NOT EXISTS activity_monitor' "$AM_TMP/upgrade.fresh.dump" ||
	fail "the schema dump has no CREATE EXTENSION: $(head -5 "$AM_TMP/upgrade.fresh.dump")"
echo "ok: pg_dump --schema-only equal to a fresh install's ($(wc -l <"$AM_TMP/upgrade.fresh.dump") lines)"

# capture and alerting go on after the update; the events captured before
# it are alerted now
q "INSERT INTO payments VALUES (1000, 7, 5000, 'pending')" >/dev/null
q "UPDATE payments SET status = 'whatever' WHERE id = 1" >/dev/null
[ "$(q "SELECT critical FROM activity_monitor.activity WHERE table_name = 'public.payments' AND row_key = '1'
	AND status_to = 'whatever'")" = t ] ||
	fail "after the update, a status transition of a table 0.1.0 tracked is not critical"
q "CREATE TABLE refunds (id int PRIMARY KEY, status text)" >/dev/null
q "SELECT activity_monitor.track('refunds', 'payment', status_column => 'status')" >/dev/null
q "INSERT INTO refunds VALUES (1, 'open')" >/dev/null
q "UPDATE refunds SET status = 'done'" >/dev/null
[ "$(q "SELECT coalesce(critical_statuses::text, 'NULL') FROM activity_monitor.tracked WHERE tbl = 'refunds'::regclass")" = "{}" ] &&
	[ "$(q "SELECT critical FROM activity_monitor.activity WHERE table_name = 'public.refunds' AND action = 'update'")" = f ] ||
	fail "a table tracked after the update does not default to no critical status"
echo "ok: after the update, 0.1.0's tables keep every transition critical, new ones none"
# admin_actions: 0.1.0's partitions have its index (the predicate is the
# view's WHERE), and the track() above is an admin event it shows
[ "$(q "SELECT count(*) FROM pg_partition_tree('activity_monitor.activity') t
	WHERE t.isleaf AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.relid
		AND pg_get_expr(i.indpred, i.indrelid) = '((actor_type = ''employee''::text) OR (kind = ''admin''::text))')")" = 0 ] &&
	[ "$(q "SELECT count(*) FROM pg_index i JOIN pg_partition_tree('activity_monitor.activity') t ON t.relid = i.indrelid
		WHERE pg_get_expr(i.indpred, i.indrelid) = '(actor_type = ''employee''::text)'")" = 0 ] ||
	fail "after the update, a partition lacks admin_actions' index or keeps the employee-only one"
[ "$(q "SELECT action || ' ' || row_key FROM activity_monitor.admin_actions WHERE kind = 'admin'")" = "track public.refunds" ] ||
	fail "after the update, track() is not an admin event in admin_actions: $(q "SELECT action FROM activity_monitor.admin_actions WHERE kind = 'admin'")"
echo "ok: after the update, every partition has admin_actions' index and track() is an admin event"
caught_up
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'many' AND group_key = '2'")" -gt 0 ] ||
	fail "no windowed alert for the events captured before the update"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'big' AND subject_id = '7'")" = 1 ] ||
	fail "no alert for a payment written after the update"
echo "ok: capture and alerts work after the update"

# 0.1.0's history is sealed by the first sealing rounds after the update
# (the worker's, or ours: the chain's lock serialises them), and verifies
for _ in $(seq 1 50); do
	[ "$(q "SELECT s.events FROM activity_monitor._seal() s")" = 0 ] && break
done
n=$(q "SELECT count(*) FROM activity_monitor.activity")
[ "$(q "SELECT coalesce(sum(event_count), 0) FROM activity_monitor.seal WHERE kind = 'events'")" = "$n" ] ||
	fail "after the update the seals cover $(q "SELECT sum(event_count) FROM activity_monitor.seal") of $n events"
bad=$(q "SELECT string_agg(problem, ', ') FROM activity_monitor.verify()")
[ -z "$bad" ] || fail "verify() after the update: $bad"
echo "ok: the $n events (0.1.0's and since) are sealed and verify"
