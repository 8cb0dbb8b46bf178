#!/usr/bin/env bash
# Issue 10: rules can never break a platform write, and json values jsonb
# cannot hold never lose a write.  Against live, committed writes:
#   1. a catalogue of 16 hostile rules, 4 of them inserted past alert_rule's
#      check ($variables in predicate, group_by and measure_path, a datetime
#      template that does not parse; inserted by a superuser with
#      session_replication_role = replica, which skips triggers), the others through create_rule (a date compared with a
#      timestamptz, .** on a document deeper than it can walk, complex
#      regular expressions, strict-mode type errors, division by zero,
#      numeric overflow, .double() out of range, a non-boolean predicate,
#      datetime parsing of garbage, a $variable rule on every table):
#      every INSERT, UPDATE and DELETE commits, rule_errors names exactly the
#      rules that failed, and the worker adds each to
#      rule_stats.evaluation_errors;
#   2. a 0.1.0 database holding a rule 0.2.0 refuses: ALTER EXTENSION UPDATE
#      succeeds, disables that rule (WARNING), keeps the others, writes
#      commit, and the rule cannot be enabled again as it is;
#   3. a LATIN1 database: a json \u escape of a character LATIN1 has is
#      recorded as JSON, one it lacks (and \u0000) as the value's text, and
#      a rule comparing strings works there (evaluated guarded).
# Fails on 0.1.0: the first write raises 'could not find jsonpath variable'.
set -euo pipefail
db=am_rules_hostile
. "$AM_ROOT/test/lib/shell.sh"
legacy=am_rules_legacy
latin1=am_rules_latin1
cleanup() {
	am_db_drop
	for d in $legacy $latin1; do
		psql -X -q -d postgres -c "SET client_min_messages = warning" \
			-c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT

# --- 1. the catalogue, against live writes -----------------------------------------
am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE accounts (id int PRIMARY KEY, balance numeric, opened date, note text, doc jsonb);
CREATE TABLE payments (id int PRIMARY KEY, amount numeric);
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id');
SELECT activity_monitor.track('payments', 'payment');

-- past the check: what create_rule refuses
SET session_replication_role = replica;	-- a superuser's way past the check
INSERT INTO activity_monitor.alert_rule (name, predicate, tables, group_by, measure_path) VALUES
	('h_var', '$.new.balance > $limit', '{accounts}', '$.subject_id', NULL),
	('h_var_group', '$.new.balance > 0', '{accounts}', '$.new.id ? (@ > $min)', NULL),
	('h_var_measure', '$.new.balance > 0', '{accounts}', '$.subject_id', '$.new.balance * $rate'),
	('h_bad_tmpl', '$.new.opened.datetime("YYYY-FOO") < "2020-01-01".datetime()', '{accounts}', '$.subject_id', NULL),
	('h_var_all', '$.action == "truncate" || $.new.x > $v', NULL, '$.subject_id', NULL);
RESET session_replication_role;
INSERT INTO activity_monitor.rule_stats (rule_id) SELECT id FROM activity_monitor.alert_rule;

-- through create_rule
SELECT activity_monitor.create_rule('h_tz', '$.new.opened.datetime() < "2030-01-01 00:00:00+00".datetime()', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_deep', 'exists($.new.doc.** ? (@ == "needle"))', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_regex', '$.new.note like_regex "^(a|aa)*(b|c{1,200}){1,50}$"', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_regex_huge', format('$.new.note like_regex "^(%s)$" flag "i"',
	(SELECT string_agg('w' || g || '(x|y)*z', '|') FROM generate_series(1, 2000) g))::jsonpath, tables => '{accounts}');
SELECT activity_monitor.create_rule('h_strict', 'strict $.new.note.size() > 1', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_div0', '$.new.balance / 0 > 1', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_overflow', '$.new.balance * 1e131071 * 1e131071 > 1', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_double', '$.new.note.double() > 1', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_notbool', '$.new.balance', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_tmpl_data', '$.new.note.datetime("YYYY-MM-DD") > "2020-01-01".datetime()', tables => '{accounts}');
SELECT activity_monitor.create_rule('h_plain', '$.new.balance > 1', tables => '{accounts}', measure_path => '$.new.balance');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
[ "$(q "SELECT count(*) FROM activity_monitor.alert_rule WHERE name LIKE 'h\_%'")" = 16 ] || fail "the catalogue is not complete"

# The rule_errors of the last event of table t, as sorted rule names.
errors_of() {
	q "SELECT coalesce(string_agg(r.name, ',' ORDER BY r.name), '-')
	   FROM activity_monitor.alert_rule r
	   WHERE r.id = ANY ((SELECT a.rule_errors FROM activity_monitor.activity a
	                      WHERE a.table_name = '$1' ORDER BY a.id DESC LIMIT 1)::bigint[])"
}
matched_of() {
	q "SELECT coalesce(string_agg(r.name, ',' ORDER BY r.name), '-')
	   FROM activity_monitor.alert_rule r
	   WHERE (SELECT a.matched FROM activity_monitor.activity a
	          WHERE a.table_name = '$1' ORDER BY a.id DESC LIMIT 1) ? r.id::text"
}
always=h_bad_tmpl,h_div0,h_double,h_notbool,h_overflow,h_strict,h_tmpl_data,h_var,h_var_all,h_var_group,h_var_measure

q "INSERT INTO accounts VALUES (1, 5000, '2020-06-01', '1e400', '{\"a\": 1}')" >/dev/null ||
	fail "an INSERT failed"
[ "$(q "SELECT count(*) FROM accounts")" = 1 ] || fail "the INSERT did not commit"
got=$(errors_of public.accounts)
[ "$got" = "$always" ] || fail "INSERT: rule_errors = $got, expected $always"
got=$(matched_of public.accounts)
[ "$got" = h_plain,h_tz ] || fail "INSERT: matched = $got, expected h_plain,h_tz"
echo "ok: INSERT committed; 11 rules failed, h_tz (date < timestamptz) and h_plain matched"

q "UPDATE accounts SET note = 'aab', balance = 6000 WHERE id = 1" >/dev/null || fail "an UPDATE failed"
[ "$(q "SELECT note FROM accounts WHERE id = 1")" = aab ] || fail "the UPDATE did not commit"
got=$(errors_of public.accounts)
[ "$got" = "$always" ] || fail "UPDATE: rule_errors = $got, expected $always"
got=$(matched_of public.accounts)
[ "$got" = h_plain,h_regex,h_tz ] || fail "UPDATE: matched = $got, expected h_plain,h_regex,h_tz"
echo "ok: UPDATE committed, same errors; h_regex matched"

# The deepest document capture can hold (tried from 4000 levels down, with a
# small stack so that it is quick) is deeper than .** can walk.  Without the
# guard each try would fail on h_deep's stack overflow, and the loop would
# end on a depth .** can walk: h_deep would match instead of failing.
depth=$(PGOPTIONS="-c max_stack_depth=400kB -c client_min_messages=notice" psql -X -q -v ON_ERROR_STOP=1 -d "$db" 2>&1 <<'SQL' | sed -n 's/.*NOTICE:  depth \([0-9]*\).*/\1/p'
DO $$
BEGIN
	FOR d IN REVERSE 4000 .. 500 BY 100 LOOP
		BEGIN
			INSERT INTO accounts VALUES (2, 7, '2021-01-01', 'x',
				(repeat('{"n": [', d) || '"needle"' || repeat(']}', d))::jsonb);
			RAISE NOTICE 'depth %', d;
			RETURN;
		EXCEPTION WHEN statement_too_complex THEN
			NULL;
		END;
	END LOOP;
END $$;
SQL
) || true
[ -n "$depth" ] && [ "$(q "SELECT count(*) FROM accounts WHERE id = 2")" = 1 ] || fail "no deep document could be written"
got=$(errors_of public.accounts)
want=h_bad_tmpl,h_deep,h_div0,h_double,h_notbool,h_overflow,h_strict,h_tmpl_data,h_var,h_var_all,h_var_group,h_var_measure
[ "$got" = "$want" ] || fail "deep INSERT ($depth levels): rule_errors = $got, expected $want"
echo "ok: INSERT of a document $depth levels deep committed; h_deep (.** overflowing the stack) failed"

q "DELETE FROM accounts WHERE id = 1" >/dev/null || fail "a DELETE failed"
[ "$(q "SELECT count(*) FROM accounts WHERE id = 1")" = 0 ] || fail "the DELETE did not commit"
got=$(errors_of public.accounts)
case ",$got," in *,h_var,*h_var_all,*) ;; *) fail "DELETE: rule_errors = $got, expected h_var and h_var_all among them" ;; esac
q "INSERT INTO payments VALUES (1, 10)" >/dev/null || fail "an INSERT into payments failed"
[ "$(errors_of public.payments)" = h_var_all ] || fail "payments: rule_errors = $(errors_of public.payments), expected h_var_all"
q "TRUNCATE payments" >/dev/null || fail "a TRUNCATE failed"
echo "ok: DELETE, another table's INSERT and a TRUNCATE committed"

caught_up
bad=$(q "SELECT coalesce(string_agg(format('%s: %s counted, %s events', r.name, s.evaluation_errors, e.n), '; '), '')
	FROM activity_monitor.alert_rule r
	JOIN activity_monitor.rule_stats s ON s.rule_id = r.id
	CROSS JOIN LATERAL (SELECT count(*) AS n FROM activity_monitor.activity a WHERE r.id = ANY (a.rule_errors)) e
	WHERE s.evaluation_errors <> e.n")
[ -z "$bad" ] || fail "rule_stats.evaluation_errors differs from the events' rule_errors: $bad"
[ "$(q "SELECT count(*) FROM activity_monitor.rules WHERE name LIKE 'h\_%' AND evaluation_errors > 0")" = 12 ] ||
	fail "expected 12 rules with evaluation errors, got $(q "SELECT string_agg(name || '=' || evaluation_errors, ' ') FROM activity_monitor.rules")"
[ "$(q "SELECT evaluation_errors FROM activity_monitor.rules WHERE name = 'h_var'")" -ge 4 ] || fail "h_var: errors not counted"
[ "$(q "SELECT last_error IS NULL FROM activity_monitor.worker_status")" = t ] || fail "the worker recorded an error"
echo "ok: the worker counted every error in rule_stats.evaluation_errors"

# --- 2. a 0.1.0 rule that 0.2.0 refuses does not break the update ---------------------
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $legacy WITH (FORCE)" \
	-c "CREATE DATABASE $legacy" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$legacy" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor VERSION '0.1.0';
CREATE TABLE accounts (id int PRIMARY KEY, balance numeric);
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id');
SELECT activity_monitor.create_rule('legacy_var', '$.new.balance > $limit');
SELECT activity_monitor.create_rule('legacy_ok', '$.new.balance > 100');
SQL
out=$(psql -X -q -v ON_ERROR_STOP=1 -d "$legacy" -c "ALTER EXTENSION activity_monitor UPDATE" 2>&1) ||
	{ echo "$out"; fail "the update failed on a database with a refused rule"; }
grep -q 'WARNING:  alert rule "legacy_var" disabled by the update' <<<"$out" || { echo "$out"; fail "no WARNING naming legacy_var"; }
[ "$(psql -X -At -d "$legacy" -c "SELECT string_agg(name || '=' || enabled, ' ' ORDER BY name) FROM activity_monitor.alert_rule")" = \
	"legacy_ok=true legacy_var=false" ] || fail "after the update: rules $(psql -X -At -d "$legacy" -c "SELECT string_agg(name || '=' || enabled, ' ') FROM activity_monitor.alert_rule")"
psql -X -q -v ON_ERROR_STOP=1 -d "$legacy" -c "INSERT INTO accounts VALUES (1, 500)" >/dev/null || fail "a write after the update failed"
[ "$(psql -X -At -d "$legacy" -c "SELECT matched ? (SELECT id::text FROM activity_monitor.alert_rule WHERE name = 'legacy_ok') AND rule_errors IS NULL FROM activity_monitor.activity ORDER BY id DESC LIMIT 1")" = t ] ||
	fail "after the update: legacy_ok did not match cleanly"
err=$(psql -X -q -d "$legacy" -c "SELECT activity_monitor.set_rule_enabled('legacy_var', true)" 2>&1 || true)
grep -q 'ERROR:  predicate of rule "legacy_var" uses the jsonpath variable "limit"' <<<"$err" || { echo "$err"; fail "legacy_var could be enabled"; }
echo "ok: the update disabled the refused 0.1.0 rule (WARNING), kept the other, writes commit"

# --- 3. json escapes in a LATIN1 database -----------------------------------------------
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $latin1 WITH (FORCE)" \
	-c "CREATE DATABASE $latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$latin1" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE callbacks (id int PRIMARY KEY, payload json);
SELECT activity_monitor.track('callbacks', 'provider');
SELECT activity_monitor.create_rule('l_str', '$.new.payload.a > "a"', tables => '{callbacks}');
SQL
for v in '{"a": "\u00e9"}' '{"a": "\u4e2d"}' '{"a": "\u0000"}' '{"a": "plain"}'; do
	psql -X -q -v ON_ERROR_STOP=1 -d "$latin1" -c "INSERT INTO callbacks VALUES ((SELECT count(*) FROM callbacks) + 1, '$v')" >/dev/null ||
		fail "LATIN1: the INSERT of $v failed"
done
got=$(PGCLIENTENCODING=UTF8 psql -X -At -d "$latin1" -c "SELECT string_agg(jsonb_typeof(new_values -> 'payload'), ',' ORDER BY id) FROM activity_monitor.activity WHERE kind <> 'admin'")
[ "$got" = object,string,string,object ] || fail "LATIN1: payload types $got, expected object,string,string,object"
got=$(PGCLIENTENCODING=UTF8 psql -X -At -d "$latin1" -c "SELECT new_values -> 'payload' ->> 'a' FROM activity_monitor.activity WHERE kind <> 'admin' ORDER BY id LIMIT 1")
[ "$got" = "é" ] || fail "LATIN1: \\u00e9 recorded as $got"
[ "$(psql -X -At -d "$latin1" -c "SELECT new_values ->> 'payload' FROM activity_monitor.activity WHERE kind <> 'admin' ORDER BY id OFFSET 1 LIMIT 1")" = '{"a": "\u4e2d"}' ] ||
	fail "LATIN1: \\u4e2d not recorded as its text"
[ "$(psql -X -At -d "$latin1" -c "SELECT string_agg((matched IS NOT NULL) || '/' || (rule_errors IS NOT NULL), ',' ORDER BY id) FROM activity_monitor.activity WHERE kind <> 'admin'")" = \
	true/false,false/false,false/false,true/false ] || fail "LATIN1: rule l_str should match the two objects, without errors"
echo "ok: LATIN1: escapes the encoding has are JSON, others the value's text; rules evaluated"
