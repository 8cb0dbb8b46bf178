-- Issue 10, what one transaction can see: rules can never break a platform
-- write, and json values jsonb cannot hold are recorded all the same.
--   * alert_rule's check refuses (SQLSTATE 22023, a hint) an enabled rule
--     whose predicate, group_by or measure_path uses a $variable or a
--     .datetime() template that does not parse, whatever the way in
--     (create_rule, set_rule_enabled, a superuser's INSERT or UPDATE), and
--     nothing changes; what can only fail on some data is accepted.
--   * rules that get past the check (inserted with session_replication_role
--     = replica, which skips triggers)
--     never fail the write: each is an error in rule_errors, the other
--     rules are evaluated, guarded or not; a date compared with a
--     timestamptz is evaluated (the _tz semantics), not an error.
--   * a json column holding \u0000, a number beyond numeric's range, or a
--     value nesting them, INSERTed or UPDATEd, is recorded as a JSON string
--     of its text; ordinary json values stay JSON; numbers at numeric's
--     limits are JSON exactly when numeric_in accepts them.
-- Fails on 0.1.0: create_rule accepts every refused rule, the bypassing
-- rules raise out of the trigger, the json INSERTs raise.
BEGIN;
SELECT plan(44);
\ir ../lib/matched.sql
SET LOCAL client_min_messages = warning;

CREATE TABLE accounts (id int PRIMARY KEY, balance numeric, opened date, note text, doc jsonb);
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id');

-- The SQLSTATE, message and hint an SQL statement raises (NULL: none).
CREATE FUNCTION pg_temp.refusal(sql text, OUT state text, OUT message text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;
-- Is the refusal 22023 with this message and some hint?
CREATE FUNCTION pg_temp.refused(sql text, msg text) RETURNS text
LANGUAGE sql AS $$
	SELECT format('%s | %s | %s', r.state, r.message, r.hint IS NOT NULL AND r.hint <> '')
	FROM pg_temp.refusal(sql) r
$$;
CREATE FUNCTION pg_temp.last_event(t text) RETURNS activity_monitor.activity
LANGUAGE sql AS $$
	SELECT a FROM activity_monitor.activity a WHERE a.table_name = t ORDER BY a.id DESC LIMIT 1
$$;
CREATE FUNCTION pg_temp.rid(n text) RETURNS bigint
LANGUAGE sql AS $$ SELECT id FROM activity_monitor.alert_rule WHERE name = n $$;

SELECT activity_monitor.create_rule('valid', '$.new.balance > 1000', tables => '{accounts}') AS valid_id \gset
CREATE TEMP TABLE rules_before AS SELECT r::text AS r FROM activity_monitor.alert_rule r;
CREATE TEMP TABLE stats_before AS SELECT s::text AS s FROM activity_monitor.rule_stats s;
CREATE FUNCTION pg_temp.rules_unchanged() RETURNS boolean
LANGUAGE sql AS $$
	SELECT NOT EXISTS (SELECT r::text FROM activity_monitor.alert_rule r EXCEPT SELECT r FROM rules_before)
	   AND NOT EXISTS (SELECT r FROM rules_before EXCEPT SELECT r::text FROM activity_monitor.alert_rule r)
	   AND NOT EXISTS (SELECT s::text FROM activity_monitor.rule_stats s EXCEPT SELECT s FROM stats_before)
	   AND NOT EXISTS (SELECT s FROM stats_before EXCEPT SELECT s::text FROM activity_monitor.rule_stats s)
$$;

-- ---------------------------------------------------------------------------
-- Refused: $variables and datetime templates that do not parse
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.refused($$SELECT activity_monitor.create_rule('typo', '$.new.balance > $limit')$$, ''),
	'22023 | predicate of rule "typo" uses the jsonpath variable "limit" | t',
	'create_rule(): a $variable in the predicate (the reproduction of issue 10)');
SELECT is(pg_temp.refused($$SELECT activity_monitor.create_rule('v', '$.kind == "profile" || $.new.note starts with $p')$$, ''),
	'22023 | predicate of rule "v" uses the jsonpath variable "p" | t',
	'create_rule(): a $variable in a branch that is not always reached');
SELECT is(pg_temp.refused($$SELECT activity_monitor.create_rule('v', '$.new.balance > 0', group_by => '$.new.id ? (@ > $min)')$$, ''),
	'22023 | group_by of rule "v" uses the jsonpath variable "min" | t',
	'create_rule(): a $variable in group_by');
SELECT is(pg_temp.refused($$SELECT activity_monitor.create_rule('v', '$.new.balance > 0', measure => 'sum', measure_path => '$.new.balance * $rate', within => '1 hour', threshold => 5)$$, ''),
	'22023 | measure_path of rule "v" uses the jsonpath variable "rate" | t',
	'create_rule(): a $variable in measure_path');
SELECT is(pg_temp.refused($$SELECT activity_monitor.create_rule('t', '$.new.opened.datetime("YYYY-FOO") < "2020-01-01".datetime()')$$, ''),
	'22023 | predicate of rule "t" has an invalid datetime template "YYYY-FOO" | t',
	'create_rule(): a datetime template that does not parse (raises whatever the data, even silent)');
SELECT is(pg_temp.refused($$SELECT activity_monitor.create_rule('t', '$.new.balance > 0', group_by => '$.new.opened.datetime("HH24%MI")')$$, ''),
	'22023 | group_by of rule "t" has an invalid datetime template "HH24%MI" | t',
	'create_rule(): a bad datetime template in group_by');
SELECT is(pg_temp.refused($$SELECT activity_monitor.create_rule('t', '$.new.balance > 0', measure_path => '$.new.opened.datetime("YYYY-FOO").type()')$$, ''),
	'22023 | measure_path of rule "t" has an invalid datetime template "YYYY-FOO" | t',
	'create_rule(): a bad datetime template in measure_path');
SELECT is(pg_temp.refused($$INSERT INTO activity_monitor.alert_rule (name, predicate) VALUES ('direct', '$.new.balance > $limit')$$, ''),
	'22023 | predicate of rule "direct" uses the jsonpath variable "limit" | t',
	'a superuser''s INSERT into alert_rule is checked too');
SELECT is(pg_temp.refused(format($$UPDATE activity_monitor.alert_rule SET predicate = '$.new.balance > $limit' WHERE id = %s$$, :valid_id), ''),
	'22023 | predicate of rule "valid" uses the jsonpath variable "limit" | t',
	'an UPDATE that gives an enabled rule a $variable is refused');
SELECT ok(pg_temp.rules_unchanged(), 'after every refusal: rules and their counters unchanged');

-- A disabled rule is never evaluated and not checked; it cannot be enabled as it is.
INSERT INTO activity_monitor.alert_rule (name, predicate, enabled) VALUES ('dormant', '$.new.balance > $limit', false);
SELECT is(pg_temp.refused($$SELECT activity_monitor.set_rule_enabled('dormant', true)$$, ''),
	'22023 | predicate of rule "dormant" uses the jsonpath variable "limit" | t',
	'set_rule_enabled(): a rule with a $variable cannot be enabled');
SELECT is((SELECT enabled FROM activity_monitor.alert_rule WHERE name = 'dormant'), false,
	'... and stays disabled');
DELETE FROM activity_monitor.alert_rule WHERE name = 'dormant';

-- Accepted: what fails only on some data is evaluated guarded.
SELECT lives_ok($$SELECT activity_monitor.create_rule('tz', '$.new.opened.datetime() < "2020-06-01 12:00:00+02".datetime()', tables => '{accounts}')$$,
	'create_rule(): a date compared with a timestamptz (evaluated with the session time zone)');
SELECT lives_ok($$SELECT activity_monitor.create_rule('deep', 'exists($.new.doc.** ? (@ == "needle"))', tables => '{accounts}')$$,
	'create_rule(): .** (deep documents are caught at evaluation)');
SELECT lives_ok($$SELECT activity_monitor.create_rule('re', '$.new.note like_regex "^(a|aa)*b$" flag "i"', tables => '{accounts}')$$,
	'create_rule(): like_regex');
SELECT lives_ok($$SELECT activity_monitor.create_rule('tmpl', '$.new.note.datetime("YYYY-MM-DD HH24:MI") > "2020-01-01".datetime()', tables => '{accounts}')$$,
	'create_rule(): a datetime template that parses');

-- ---------------------------------------------------------------------------
-- Evaluation: nothing raises out of the trigger
-- ---------------------------------------------------------------------------
SET LOCAL session_replication_role = replica;	-- a superuser's way past the check
INSERT INTO activity_monitor.alert_rule (name, predicate, tables, group_by, measure_path) VALUES
	('var', '$.new.balance > $limit', '{accounts}', '$.subject_id', NULL),
	('var_group', '$.new.balance > 0', '{accounts}', '$.new.id ? (@ > $min)', NULL),
	('var_measure', '$.new.balance > 0', '{accounts}', '$.subject_id', '$.new.balance * $rate'),
	('bad_tmpl', '$.new.opened.datetime("YYYY-FOO") < "2020-01-01".datetime()', '{accounts}', '$.subject_id', NULL);
SET LOCAL session_replication_role = origin;
SELECT activity_monitor.create_rule('after', '$.new.balance > 1', tables => '{accounts}',
	measure_path => '$.new.balance') AS after_id \gset
SELECT activity_monitor.create_rule('strict_type', 'strict $.new.note.size() > 1', tables => '{accounts}') AS strict_id \gset
SELECT activity_monitor.create_rule('div0', '$.new.balance / 0 > 1', tables => '{accounts}') AS div0_id \gset
SELECT activity_monitor.create_rule('overflow', '$.new.balance * 1e131071 * 1e131071 > 1', tables => '{accounts}') AS overflow_id \gset
SELECT activity_monitor.create_rule('double', '$.new.note.double() > 1', tables => '{accounts}') AS double_id \gset

SET LOCAL TimeZone = 'UTC';
SELECT lives_ok($$INSERT INTO accounts VALUES (1, 5000, '2020-06-01', '1e400', '{"a": 1}')$$,
	'an INSERT commits with four rules that raise and five that fail silently');
SELECT is((SELECT array_agg(x ORDER BY x) FROM unnest((pg_temp.last_event('public.accounts')).rule_errors) x),
	(SELECT array_agg(id ORDER BY id) FROM activity_monitor.alert_rule
	 WHERE name IN ('var', 'var_group', 'var_measure', 'bad_tmpl', 'strict_type', 'div0', 'overflow', 'double', 'tmpl')),
	'rule_errors: every rule that raised or failed, and no other');
SELECT is(pg_temp.match((pg_temp.last_event('public.accounts')).matched, :'after_id'), '{"k": "1", "v": 5000}'::jsonb,
	'a bare rule after the failing ones is evaluated');
SELECT ok((pg_temp.last_event('public.accounts')).matched ? pg_temp.rid('tz')::text,
	'date 2020-06-01 < timestamptz 2020-06-01 12:00+02 in UTC: matched, not an error');
SELECT ok((pg_temp.last_event('public.accounts')).matched ? :'valid_id',
	'the rule created before is evaluated');
SELECT ok(NOT (pg_temp.last_event('public.accounts')).matched ? pg_temp.rid('re')::text
	AND NOT (pg_temp.last_event('public.accounts')).matched ? pg_temp.rid('deep')::text,
	'guarded rules that do not match: neither matched nor errors');

SET LOCAL TimeZone = 'Pacific/Pago_Pago';
SELECT lives_ok($$UPDATE accounts SET note = 'AAAB', doc = '{"x": ["needle"]}', balance = 6000 WHERE id = 1$$,
	'an UPDATE commits');
SELECT ok((pg_temp.last_event('public.accounts')).matched ?& ARRAY[pg_temp.rid('re')::text, pg_temp.rid('deep')::text, :'after_id'],
	'guarded rules (like_regex, .**) match; bare ones too');
SELECT ok(NOT (pg_temp.last_event('public.accounts')).matched ? pg_temp.rid('tz')::text
	AND NOT (pg_temp.last_event('public.accounts')).rule_errors @> ARRAY[pg_temp.rid('tz')],
	'date 2020-06-01 at -11:00 is after 2020-06-01 12:00+02: no match, and no error');
SELECT is(cardinality((pg_temp.last_event('public.accounts')).rule_errors), 9,
	'the UPDATE: the same nine rules are errors');

-- The deepest row that can be captured (tried from 4000 levels down) is
-- deeper than .** can walk: without the guard, the rule's stack overflow
-- would fail each try and the loop would end on a depth the rule can walk.
CREATE FUNCTION pg_temp.insert_deepest() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	FOR d IN REVERSE 4000 .. 500 BY 100 LOOP
		BEGIN
			INSERT INTO accounts VALUES (2, 1, '2020-01-01', 'x',
				(repeat('[', d) || '"needle"' || repeat(']', d))::jsonb);
			RETURN d;
		EXCEPTION WHEN statement_too_complex THEN
			NULL;
		END;
	END LOOP;
	RETURN 0;
END $$;
SET LOCAL max_stack_depth = '400kB';
SELECT cmp_ok(pg_temp.insert_deepest(), '>', 0, 'an INSERT of a row as deep as capture can hold commits');
SELECT ok((pg_temp.last_event('public.accounts')).rule_errors @> ARRAY[pg_temp.rid('deep')],
	'... and the .** rule, whose walk overflowed the stack, is an error');
RESET max_stack_depth;

-- ---------------------------------------------------------------------------
-- json values jsonb cannot hold
-- ---------------------------------------------------------------------------
CREATE TABLE callbacks (id int PRIMARY KEY, payload json, parts json[]);
SELECT activity_monitor.track('callbacks', 'provider');

SELECT lives_ok($$INSERT INTO callbacks VALUES (1, '{"a":"\u0000"}')$$, 'INSERT of a json string holding \u0000');
SELECT is((pg_temp.last_event('public.callbacks')).new_values -> 'payload', to_jsonb('{"a":"\u0000"}'::text),
	'... recorded as a JSON string of its text');
SELECT lives_ok($$INSERT INTO callbacks VALUES (2, '1e1000000')$$, 'INSERT of a json number beyond numeric''s range');
SELECT is((pg_temp.last_event('public.callbacks')).new_values -> 'payload', '"1e1000000"'::jsonb,
	'... recorded as a JSON string of its text');
SELECT lives_ok($$INSERT INTO callbacks VALUES (3, '{"ok": [1, {"deep": ["\u0000", 2]}], "n": 1e-20000}',
	ARRAY['{"a": 1}', '[1e1000000]', '{"\u0000": true}', '"\ud800"']::json[])$$,
	'INSERT of an object and a json[] nesting such values');
SELECT is((pg_temp.last_event('public.callbacks')).new_values -> 'payload',
	to_jsonb('{"ok": [1, {"deep": ["\u0000", 2]}], "n": 1e-20000}'::text),
	'... the object, as a JSON string of its text');
SELECT is((pg_temp.last_event('public.callbacks')).new_values -> 'parts',
	jsonb_build_array('{"a": 1}'::jsonb, '[1e1000000]'::text, '{"\u0000": true}'::text, '"\ud800"'::text),
	'... the json[]: each element that jsonb cannot hold as its text, the others as JSON (a \u0000 key, a lone surrogate)');
SELECT lives_ok($$UPDATE callbacks SET payload = '{"b":["\u0000"]}' WHERE id = 2$$, 'UPDATE to such a value');
SELECT is((pg_temp.last_event('public.callbacks')).new_values -> 'payload', to_jsonb('{"b":["\u0000"]}'::text),
	'... the new value as its text');
SELECT is((pg_temp.last_event('public.callbacks')).old_values -> 'payload', '"1e1000000"'::jsonb,
	'... the old value as its text');
SELECT lives_ok($$UPDATE callbacks SET payload = '{"a": "\u00e9\u0041", "b": [true, null, 2.5e3, -0.0], "c": {}}' WHERE id = 1$$,
	'UPDATE to an ordinary value');
SELECT is((pg_temp.last_event('public.callbacks')).new_values -> 'payload',
	'{"a": "éA", "b": [true, null, 2500, 0.0], "c": {}}'::jsonb,
	'... recorded as JSON, escapes decoded, numbers as numbers (what ::jsonb gives)');
SELECT is((pg_temp.last_event('public.callbacks')).old_values -> 'payload', to_jsonb('{"a":"\u0000"}'::text),
	'... the old value as its text');
INSERT INTO callbacks VALUES (4, '"text"'), (5, '42'), (6, 'null'), (7, '[{"k": [1, "two", false]}]');
SELECT is((SELECT jsonb_agg(a.new_values -> 'payload' ORDER BY a.id) FROM activity_monitor.activity a
		   WHERE a.table_name = 'public.callbacks' AND (a.new_values ->> 'id')::int BETWEEN 4 AND 7),
	'["text", 42, null, [{"k": [1, "two", false]}]]'::jsonb,
	'scalars and arrays stay JSON');

-- numbers at numeric's limits: JSON exactly when numeric_in accepts them
CREATE FUNCTION pg_temp.numeric_accepts(t text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM t::numeric;
	RETURN true;
EXCEPTION WHEN numeric_value_out_of_range THEN
	RETURN false;
END $$;
CREATE TEMP TABLE limits (id serial, t text);
INSERT INTO limits (t) VALUES ('1e131071'), ('1e131072'), ('9.999e131071'), ('99999e131067'), ('99999e131068'),
	('0.0001e131075'), ('0.0001e131076'), ('-1e131071'), ('-1e131072'), ('1e-16383'), ('1e-16384'), ('0e-16383'), ('0e-16384'),
	('1.5e-16382'), ('1.5e-16383'), ('0e1073741822'), ('0e1073741823'), ('0e-1073741822'), ('0e-1073741823'),
	('1e99999999999999999999'), ('0E+00000000000000000000001'), ('-0'), ('123.456e-10'), ('1e-131072'),
	('1' || repeat('0', 131071)), ('1' || repeat('0', 131072)), ('0.' || repeat('0', 16382) || '1'),
	('0.' || repeat('0', 16383) || '1'), ('0.' || repeat('0', 16383)), ('0.' || repeat('0', 16382)),
	('12345678901234567890e-16363'), ('12345678901234567890e-16364'), ('0.000012e131076'), ('0.000012e131077');
SELECT is((SELECT count(*)::int FROM limits WHERE NOT pg_temp.numeric_accepts(t)), 15,
	'the limit cases: 15 of the 34 out of numeric''s range');
INSERT INTO callbacks (id, payload) SELECT 100 + id, t::json FROM limits;
SELECT is((SELECT count(*)::int FROM limits l JOIN activity_monitor.activity a
		   ON a.table_name = 'public.callbacks' AND (a.new_values ->> 'id')::int = 100 + l.id
		   WHERE (jsonb_typeof(a.new_values -> 'payload') = 'number') = pg_temp.numeric_accepts(l.t)
			 AND (jsonb_typeof(a.new_values -> 'payload') = 'number' OR a.new_values ->> 'payload' = l.t)), 34,
	'each limit case: a JSON number if numeric_in accepts it, else the string of its text');

SELECT * FROM finish();
ROLLBACK;
