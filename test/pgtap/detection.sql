-- Detection v2 (issue 14), what one transaction can see: every malformed
-- sequence, absence and first-seen definition is refused by create_rule()
-- and test_rule() with its SQLSTATE and message, and nothing changes; a
-- direct INSERT that bypasses create_rule() meets alert_rule's CHECK; the
-- capture trigger records which steps an event matched (the bits in
-- "matched"'s v); create_rule() backfills a first-seen rule from the stored
-- events of its lookback; the rules view names each rule's type.  The
-- worker never sees this transaction (it rolls back).
BEGIN;
SELECT plan(45);
\ir ../lib/matched.sql
SET LOCAL client_min_messages = warning;

CREATE TABLE accounts (id text PRIMARY KEY, email text, password_hash text);
CREATE TABLE payments (id int PRIMARY KEY, account_id text, kind text, status text);
CREATE TABLE logins (id int PRIMARY KEY, account_id text, device text);
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id');
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.track('logins', 'login', subject_column => 'account_id');

-- history from before the first-seen rule
INSERT INTO logins VALUES (1, 'a1', 'phone'), (2, 'a1', 'laptop'), (3, 'a2', 'phone'), (4, 'a1', 'phone');

CREATE TEMP TABLE rules_before AS SELECT r::text AS r FROM activity_monitor.alert_rule r;
CREATE FUNCTION pg_temp.unchanged() RETURNS boolean
LANGUAGE sql AS $$
	SELECT NOT EXISTS (SELECT r::text FROM activity_monitor.alert_rule r EXCEPT SELECT r FROM rules_before)
	   AND NOT EXISTS (SELECT r FROM rules_before EXCEPT SELECT r::text FROM activity_monitor.alert_rule r)
	   AND NOT EXISTS (SELECT FROM activity_monitor.seen)
$$;

-- ---------------------------------------------------------------------------
-- Bad definitions: create_rule() and test_rule() refuse them alike
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.refused(args text, state text, msg text, what text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
	RETURN NEXT throws_ok(format('SELECT activity_monitor.create_rule(%L, %s)', 'bad', args), state, msg,
						  'create_rule(): ' || what);
	RETURN NEXT throws_ok(format('SELECT * FROM activity_monitor.test_rule(since => now() - interval %L, %s)',
								 '1 hour', regexp_replace(args, '^''([^'']*)''', 'predicate => ''\1''')),
						  state, msg, 'test_rule(): ' || what);
END
$$;

SELECT pg_temp.refused($$'true', steps => '{}'::jsonpath[], within => '1 hour'$$,
	'22023', 'a sequence or absence rule needs steps', 'empty steps');
SELECT pg_temp.refused($$'true', missing => '$.status_to == "done"', within => '1 hour'$$,
	'22023', 'a sequence or absence rule needs steps', 'a missing step (a timeout) without steps');
SELECT pg_temp.refused($$'true', steps => ARRAY['$.a == 1', NULL]::jsonpath[], within => '1 hour'$$,
	'22004', 'steps must not contain null', 'a null step');
SELECT pg_temp.refused($$'true', steps => ARRAY['$.a == 1']::jsonpath[], within => '1 hour'$$,
	'22023', 'a sequence needs at least two steps', 'a one-step sequence');
SELECT pg_temp.refused($$'true', steps => ARRAY['$.a == 1', '$.a == 2']::jsonpath[]$$,
	'22023', 'a sequence or absence rule needs within', 'a sequence without within');
SELECT pg_temp.refused($$'true', steps => (SELECT array_agg('$.a == 1'::jsonpath) FROM generate_series(1, 9)), within => '1 hour'$$,
	'22023', 'a rule has at most 8 steps', 'nine steps');
SELECT pg_temp.refused($$'true', steps => ARRAY['$.a == 1', '$.a == 2']::jsonpath[], within => '1 hour', threshold => 2$$,
	'22023', 'threshold, measure, measure_path and lookback do not apply to a sequence or absence rule', 'a sequence with a threshold');
SELECT pg_temp.refused($$'true', measure_path => '$.new.device', lookback => '0 seconds'$$,
	'22023', 'lookback must be positive and at most 366 days', 'a zero lookback');
SELECT pg_temp.refused($$'true', measure_path => '$.new.device', lookback => '367 days'$$,
	'22023', 'lookback must be positive and at most 366 days', 'a lookback out of range');
SELECT pg_temp.refused($$'true', lookback => '30 days'$$,
	'22023', 'a first-seen rule needs a measure_path', 'a first-seen rule without a measure');
SELECT pg_temp.refused($$'true', measure_path => '$.new.device', lookback => '30 days', measure => 'distinct'$$,
	'22023', 'within, threshold and measure do not apply to a first-seen rule', 'a first-seen rule with a measure');
SELECT pg_temp.refused($$'true', measure_path => '$.new.device', lookback => '30 days', measure => 'median'$$,
	'22023', 'unknown measure "median"', 'an unknown measure');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', 'true', steps => ARRAY['$.a == $x', '$.b == 1']::jsonpath[], within => '1 hour')$$,
	'22023', 'a step of rule "bad" uses the jsonpath variable "x"', 'create_rule(): a step that would fail at every evaluation');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', 'true', steps => ARRAY['$.a == 1']::jsonpath[], missing => '$.d.datetime("HH24%MI") > "2020-01-01".datetime()', within => '1 hour')$$,
	'22023', NULL, 'create_rule(): a missing step with a datetime template that does not parse');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', 'true', steps => ARRAY['$.a ==']::jsonpath[], within => '1 hour')$$,
	'42601', NULL, 'create_rule(): a step that is not a jsonpath fails in the cast');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', 'true', steps => ARRAY['$.a == 1', '$.b == 1']::jsonpath[], within => '2 days')$$,
	'22023', 'within must be at most 1 day', 'create_rule(): a sequence longer than max_window');
SELECT throws_ok($$INSERT INTO activity_monitor.alert_rule (name, predicate, steps, within, threshold)
				   VALUES ('bad', 'true', '{"$.a == 1","$.b == 1"}', '1 hour', 3)$$,
	'23514', NULL, 'a direct INSERT of a malformed sequence meets alert_rule''s CHECK');
SELECT throws_ok($$INSERT INTO activity_monitor.alert_rule (name, predicate, lookback)
				   VALUES ('bad', 'true', '1 day')$$,
	'23514', NULL, 'a direct INSERT of a first-seen rule without measure_path meets the CHECK');
SELECT ok(pg_temp.unchanged(), 'the refused definitions changed nothing');

-- ---------------------------------------------------------------------------
-- Capture: the steps an event matched, as bits of matched's v
-- ---------------------------------------------------------------------------
SELECT activity_monitor.create_rule('ato', 'true', kinds => '{profile,payment}',
	steps => ARRAY['$.changed[*] == "email"', '$.changed[*] == "password_hash"',
				   '$.table == "public.payments" && $.action == "insert"']::jsonpath[],
	within => '1 hour') AS ato \gset
SELECT activity_monitor.create_rule('stuck', '$.table == "public.payments"', group_by => '$.row_key',
	steps => ARRAY['$.status_to == "pending"']::jsonpath[],
	missing => '$.status_to == "completed"', within => '30 minutes') AS stuck \gset
INSERT INTO accounts VALUES ('a1', 'a@x', 'h');
UPDATE accounts SET email = 'b@x' WHERE id = 'a1';
SELECT is((SELECT pg_temp.match(matched, :'ato') FROM activity_monitor.activity ORDER BY id DESC LIMIT 1),
	'{"k": "a1", "v": 1}', 'an e-mail change matches step 1 (bit 0) of the sequence');
UPDATE accounts SET email = 'c@x', password_hash = 'x' WHERE id = 'a1';
SELECT is((SELECT pg_temp.match(matched, :'ato') FROM activity_monitor.activity ORDER BY id DESC LIMIT 1),
	'{"k": "a1", "v": 3}', 'one event can match steps 1 and 2 (bits 0 and 1)');
INSERT INTO payments VALUES (1, 'a1', 'withdrawal', 'pending');
SELECT is((SELECT matched FROM activity_monitor.activity ORDER BY id DESC LIMIT 1),
	format('{"k": "a1", "%s": 4, "%s": ["1", 1]}', :'ato', :'stuck')::jsonb,
	'a pending payment: step 3 of the sequence, the absence''s step (group key the row, another key: a pair)');
UPDATE payments SET status = 'completed' WHERE id = 1;
SELECT is((SELECT matched FROM activity_monitor.activity ORDER BY id DESC LIMIT 1),
	format('{"k": "1", "%s": 2}', :'stuck')::jsonb,
	'the completion matches the absence''s missing step (the bit after its steps)');
UPDATE payments SET status = 'review' WHERE id = 1;
SELECT is((SELECT matched FROM activity_monitor.activity ORDER BY id DESC LIMIT 1), NULL,
	'an event that matches no step is not recorded as a match');
SELECT is((SELECT rule_errors FROM activity_monitor.activity ORDER BY id DESC LIMIT 1), NULL,
	'... nor as an error');

-- ---------------------------------------------------------------------------
-- First seen: the backfill, and the rules view
-- ---------------------------------------------------------------------------
SELECT activity_monitor.create_rule('new_device', '$.table == "public.logins"',
	measure_path => '$.new.device', lookback => '30 days') AS nd \gset
SELECT results_eq($$SELECT group_key, value FROM activity_monitor.seen ORDER BY 1, 2$$,
	$$VALUES ('a1', 'laptop'), ('a1', 'phone'), ('a2', 'phone')$$,
	'create_rule() backfilled the (key, value) pairs of the lookback');
SELECT is((SELECT last_seen FROM activity_monitor.seen WHERE group_key = 'a1' AND value = 'phone'),
	(SELECT max(occurred_at) FROM activity_monitor.activity WHERE table_name = 'public.logins'
	 AND subject_id = 'a1' AND new_values ->> 'device' = 'phone'),
	'... each with its latest time');
INSERT INTO logins VALUES (5, 'a3', NULL);
SELECT is((SELECT pg_temp.match(matched, :'nd') FROM activity_monitor.activity ORDER BY id DESC LIMIT 1),
	'{"k": "a3", "v": null}', 'a login without a device is matched with a null value (never new)');
SELECT results_eq($$SELECT name, rule_type FROM activity_monitor.rules WHERE name IN ('ato', 'stuck', 'new_device') ORDER BY id$$,
	$$VALUES ('ato', 'sequence'), ('stuck', 'absence'), ('new_device', 'first_seen')$$,
	'the rules view names each rule''s type');
SELECT is((SELECT steps::text FROM activity_monitor.rules WHERE name = 'stuck'),
	'{"($.\"status_to\" == \"pending\")"}', '... and shows its steps');
SELECT is((SELECT new_values ->> 'lookback' FROM activity_monitor.activity
		   WHERE kind = 'admin' AND action = 'create_rule' AND row_key = 'new_device'),
	'30 days', 'create_rule() records the lookback in the audit of the auditors');
SELECT throws_ok($$SELECT activity_monitor.create_rule('new_device', '$.a == 1', measure_path => '$.b', lookback => '1 day')$$,
	'42710', 'rule "new_device" already exists', 'a duplicate name is refused');
SELECT is((SELECT count(*)::int FROM activity_monitor.seen), 3, '... and backfills nothing');

SELECT * FROM finish();
ROLLBACK;
