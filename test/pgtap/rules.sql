-- Alert rules (issue 4), what one transaction can see: every bad input of
-- create_rule(), drop_rule(), set_rule_enabled(), acknowledge() and
-- resolve() with its SQLSTATE and exact message, and nothing changed
-- afterwards; the alert lifecycle (who and when); the rules and open_alerts
-- views; and the predicates the capture trigger evaluates in the writing
-- transaction (activity.matched and activity.rule_errors): group key and
-- measure, type mismatches, kinds/tables limits, disabling, whole old/new
-- rows, redaction.  The worker never sees this transaction (it rolls back).
BEGIN;
SELECT plan(109);
\ir ../lib/matched.sql
SET LOCAL client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------
CREATE TABLE payments (
	id int PRIMARY KEY,
	account_id int NOT NULL,
	status text NOT NULL,
	amount numeric NOT NULL,
	password_hash text,
	note text
);
CREATE TABLE logins (id int PRIMARY KEY, account_id int, ip text, success boolean);
CREATE TABLE profiles (id int PRIMARY KEY, email text);
CREATE TABLE orders (id int PRIMARY KEY, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id',
		status_column => 'status', redact_columns => '{password_hash}');
SELECT activity_monitor.track('logins', 'login', subject_column => 'account_id');
SELECT activity_monitor.track('profiles', 'profile', subject_column => 'id');
SELECT activity_monitor.track('orders', 'payment', status_column => 'status');

-- The event the last write of table t recorded.
CREATE FUNCTION pg_temp.last_event(t text) RETURNS activity_monitor.activity
LANGUAGE sql AS $$
	SELECT a FROM activity_monitor.activity a WHERE a.table_name = t ORDER BY a.id DESC LIMIT 1
$$;
CREATE FUNCTION pg_temp.sorted(a bigint[]) RETURNS bigint[]
LANGUAGE sql AS $$ SELECT array_agg(x ORDER BY x) FROM unnest(a) x $$;
CREATE FUNCTION pg_temp.rid(n text) RETURNS text
LANGUAGE sql AS $$ SELECT id::text FROM activity_monitor.alert_rule WHERE name = n $$;

-- One valid rule, so that duplicates and unknown names have something to hit.
SELECT activity_monitor.create_rule('existing', '$.action == "insert"', tables => '{orders}') AS existing_id \gset

-- What must not change.
CREATE TEMP TABLE rules_before AS SELECT r::text AS r FROM activity_monitor.alert_rule r;
CREATE TEMP TABLE stats_before AS SELECT s::text AS s FROM activity_monitor.rule_stats s;
CREATE FUNCTION pg_temp.rules_unchanged() RETURNS boolean
LANGUAGE sql AS $$
	SELECT NOT EXISTS (SELECT r::text FROM activity_monitor.alert_rule r EXCEPT SELECT r FROM rules_before)
	   AND NOT EXISTS (SELECT r FROM rules_before EXCEPT SELECT r::text FROM activity_monitor.alert_rule r)
	   AND NOT EXISTS (SELECT s::text FROM activity_monitor.rule_stats s EXCEPT SELECT s FROM stats_before)
	   AND NOT EXISTS (SELECT s FROM stats_before EXCEPT SELECT s::text FROM activity_monitor.rule_stats s)
$$;
SELECT last_value AS seq_before FROM activity_monitor.alert_rule_id_seq \gset

-- ---------------------------------------------------------------------------
-- create_rule(): bad input
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a ==')$$,
	'42601', 'syntax error at end of jsonpath input',
	'create_rule(): an invalid predicate fails in the jsonpath cast');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', measure => 'sum', measure_path => '$[')$$,
	'42601', 'syntax error at end of jsonpath input',
	'create_rule(): an invalid measure_path fails in the jsonpath cast');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', group_by => '@.a')$$,
	'42601', '@ is not allowed in root expressions',
	'create_rule(): an invalid group_by fails in the jsonpath cast');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', severity => 'fatal')$$,
	'22023', 'unknown severity "fatal"',
	'create_rule(): unknown severity');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', severity => 'Critical')$$,
	'22023', 'unknown severity "Critical"',
	'create_rule(): severities are case-sensitive');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', measure => 'avg')$$,
	'22023', 'unknown measure "avg"',
	'create_rule(): unknown measure');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '1 minute', threshold => 10, measure => 'sum')$$,
	'22023', 'measure sum needs a measure_path',
	'create_rule(): sum without measure_path');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '1 minute', threshold => 10, measure => 'distinct')$$,
	'22023', 'measure distinct needs a measure_path',
	'create_rule(): distinct without measure_path');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', threshold => 5)$$,
	'22023', 'within and threshold go together',
	'create_rule(): threshold without within');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '1 minute')$$,
	'22023', 'within and threshold go together',
	'create_rule(): within without threshold');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '0', threshold => 5)$$,
	'22023', 'within must be positive',
	'create_rule(): zero within');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '-1 minute', threshold => 5)$$,
	'22023', 'within must be positive',
	'create_rule(): negative within');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '1 day -24 hours', threshold => 5)$$,
	'22023', 'within must be positive',
	'create_rule(): a within that adds up to zero');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '1 minute', threshold => 0)$$,
	'22023', 'threshold must be positive',
	'create_rule(): zero threshold');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', within => '1 minute', threshold => -3)$$,
	'22023', 'threshold must be positive',
	'create_rule(): negative threshold');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', cooldown => '0')$$,
	'22023', 'cooldown must be positive',
	'create_rule(): zero cooldown');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', cooldown => '-5 minutes')$$,
	'22023', 'cooldown must be positive',
	'create_rule(): negative cooldown');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', channel => '')$$,
	'22023', 'channel name must be 1 to 63 bytes long',
	'create_rule(): empty channel');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', channel => repeat('c', 64))$$,
	'22023', 'channel name must be 1 to 63 bytes long',
	'create_rule(): a 64-byte channel');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', channel => repeat('é', 32))$$,
	'22023', 'channel name must be 1 to 63 bytes long',
	'create_rule(): 32 characters but 64 bytes is too long a channel');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', kinds => '{login,logins}')$$,
	'22023', 'unknown activity kind in {login,logins}',
	'create_rule(): unknown kind');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', tables => '{no_such_table}')$$,
	'42P01', 'relation "no_such_table" does not exist',
	'create_rule(): unknown table fails in the regclass cast');
SELECT throws_ok($$SELECT activity_monitor.create_rule('existing', '$.a')$$,
	'42710', 'rule "existing" already exists',
	'create_rule(): duplicate name');
SELECT throws_ok($$SELECT activity_monitor.create_rule(NULL, '$.a')$$,
	'22004', 'name, predicate, severity, measure, group_by and channel must not be null',
	'create_rule(): NULL name');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', NULL)$$,
	'22004', 'name, predicate, severity, measure, group_by and channel must not be null',
	'create_rule(): NULL predicate');
SELECT throws_ok($$SELECT activity_monitor.create_rule('bad', '$.a', channel => NULL)$$,
	'22004', 'name, predicate, severity, measure, group_by and channel must not be null',
	'create_rule(): NULL channel');
SELECT throws_ok($$SELECT activity_monitor.create_rule('', '$.a')$$,
	'22023', 'rule name must be 1 to 63 bytes long',
	'create_rule(): empty name');
SELECT throws_ok($$SELECT activity_monitor.create_rule(repeat('n', 64), '$.a')$$,
	'22023', 'rule name must be 1 to 63 bytes long',
	'create_rule(): a 64-byte name');

-- ---------------------------------------------------------------------------
-- drop_rule(), set_rule_enabled(): bad input
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.drop_rule('no_such_rule')$$,
	'42704', 'rule "no_such_rule" does not exist',
	'drop_rule(): unknown rule');
SELECT throws_ok($$SELECT activity_monitor.drop_rule('Existing')$$,
	'42704', 'rule "Existing" does not exist',
	'drop_rule(): rule names are exact');
SELECT throws_ok($$SELECT activity_monitor.set_rule_enabled('no_such_rule', false)$$,
	'42704', 'rule "no_such_rule" does not exist',
	'set_rule_enabled(): unknown rule');
SELECT throws_ok($$SELECT activity_monitor.set_rule_enabled('existing', NULL)$$,
	'22004', 'enabled must not be null',
	'set_rule_enabled(): NULL enabled');

SELECT ok(pg_temp.rules_unchanged(), 'after every bad input: rules and their counters unchanged');
SELECT is((SELECT last_value FROM activity_monitor.alert_rule_id_seq), :seq_before::bigint,
	'after every bad input: no rule id was used up');
SELECT is((SELECT enabled FROM activity_monitor.alert_rule WHERE name = 'existing'), true,
	'after every bad input: the existing rule is still enabled');

-- ---------------------------------------------------------------------------
-- The rules view
-- ---------------------------------------------------------------------------
SELECT activity_monitor.create_rule('view_check', '$.kind == "login"', severity => 'critical',
		kinds => '{login}', within => '10 minutes', threshold => 3, measure => 'distinct',
		measure_path => '$.new.ip', group_by => '$.new.account_id', cooldown => '1 hour',
		channel => 'sec_alerts', description => 'one account, many IPs') AS view_check_id \gset
SELECT results_eq(
	$$SELECT id, name, enabled, severity, predicate::text, kinds, tables, within, threshold,
			 measure, measure_path::text, group_by::text, cooldown, channel, description,
			 events_matched, alerts_fired, evaluation_errors, last_fired_at
	  FROM activity_monitor.rules WHERE name = 'view_check'$$,
	format($$VALUES (%s::bigint, 'view_check'::text, true, 'critical'::text,
			'($."kind" == "login")'::text, '{login}'::text[], NULL::regclass[],
			'10 minutes'::interval, 3::numeric, 'distinct'::text, '$."new"."ip"'::text,
			'$."new"."account_id"'::text, '1 hour'::interval, 'sec_alerts'::text,
			'one account, many IPs'::text, 0::bigint, 0::bigint, 0::bigint, NULL::timestamptz)$$,
		:view_check_id),
	'rules: a new rule with its settings, counters 0 and never fired');
SELECT results_eq(
	$$SELECT severity, measure, group_by::text, channel, within, threshold, cooldown, enabled
	  FROM activity_monitor.rules WHERE name = 'existing'$$,
	$$VALUES ('warning'::text, 'count'::text, '$."subject_id"'::text, 'activity_monitor_alerts'::text,
			  NULL::interval, NULL::numeric, NULL::interval, true)$$,
	'rules: the defaults of create_rule()');
SELECT is((SELECT tables FROM activity_monitor.rules WHERE name = 'existing'), '{orders}'::regclass[],
	'rules: the tables a rule is limited to');
SELECT ok((SELECT array_agg(id ORDER BY id) = array_agg(id) FROM activity_monitor.rules),
	'rules: ordered by id');
SELECT activity_monitor.set_rule_enabled('view_check', false);
SELECT is((SELECT enabled FROM activity_monitor.rules WHERE name = 'view_check'), false,
	'set_rule_enabled(false): the rules view shows it');
SELECT activity_monitor.drop_rule('view_check');
SELECT is((SELECT count(*)::int FROM activity_monitor.rules WHERE name = 'view_check'), 0,
	'drop_rule(): the rule is gone from the view');
SELECT is((SELECT count(*)::int FROM activity_monitor.rule_stats WHERE rule_id = :view_check_id), 0,
	'drop_rule(): its counters are gone');
SELECT throws_ok($$SELECT activity_monitor.drop_rule('view_check')$$,
	'42704', 'rule "view_check" does not exist',
	'drop_rule(): twice');

-- ---------------------------------------------------------------------------
-- Alerts: acknowledge() and resolve()
-- ---------------------------------------------------------------------------
INSERT INTO activity_monitor.alerts (id, rule_name, severity, channel, event_id, event_ids,
		occurred_at, kind, action, table_name, fired_at, note)
VALUES (-1, 'r_warn', 'warning', 'c', 1, '{1}', now(), 'payment', 'update', 'public.payments',
		now() - interval '3 minutes', NULL),
	   (-2, 'r_crit_old', 'critical', 'c', 2, '{2}', now(), 'payment', 'update', 'public.payments',
		now() - interval '2 minutes', 'first note'),
	   (-3, 'r_info', 'info', 'c', 3, '{3}', now(), 'login', 'insert', 'public.logins',
		now() - interval '1 minute', NULL),
	   (-4, 'r_crit_new', 'critical', 'c', 4, '{4}', now(), 'payment', 'update', 'public.payments',
		now() - interval '30 seconds', NULL),
	   (-5, 'r_warn_new', 'warning', 'c', 5, '{5}', now(), 'payment', 'update', 'public.payments',
		now() - interval '10 seconds', NULL);

SELECT is((SELECT status FROM activity_monitor.alerts WHERE id = -1), 'open', 'a new alert is open');
SELECT results_eq(
	$$SELECT id FROM activity_monitor.open_alerts WHERE id < 0$$,
	$$VALUES (-4::bigint), (-2), (-5), (-1), (-3)$$,
	'open_alerts: critical first, then warning, then info; newest first within a severity');

-- acknowledge with no actor set: the session user
SELECT lives_ok($$SELECT activity_monitor.acknowledge(-1)$$, 'acknowledge(): an open alert');
SELECT results_eq(
	$$SELECT status, acknowledged_by, acknowledged_at, resolved_by, resolved_at, note
	  FROM activity_monitor.alerts WHERE id = -1$$,
	$$VALUES ('acknowledged'::text, session_user::text COLLATE "default", now(), NULL::text, NULL::timestamptz, NULL::text)$$,
	'acknowledge(): status, by the session user when no actor is set, at now()');
SELECT is((SELECT status FROM activity_monitor.open_alerts WHERE id = -1), 'acknowledged',
	'open_alerts: an acknowledged alert is still there');

-- with an actor: the session user, and the declared actor in addition
SELECT activity_monitor.set_actor('employee', 'emp-7', 'on call');
SELECT lives_ok($$SELECT activity_monitor.acknowledge(-2, 'looking')$$, 'acknowledge(): with a note');
SELECT results_eq(
	$$SELECT status, acknowledged_by, acknowledged_actor, acknowledged_at, note FROM activity_monitor.alerts WHERE id = -2$$,
	$$VALUES ('acknowledged'::text, session_user::text COLLATE "default", 'emp-7'::text, now(), 'looking'::text)$$,
	'acknowledge(): by the session user, set_actor''s actor_id beside it, the note replaces the old one');
SELECT lives_ok($$SELECT activity_monitor.resolve(-2)$$, 'resolve(): an acknowledged alert');
SELECT results_eq(
	$$SELECT status, acknowledged_by, resolved_by, resolved_actor, resolved_at, note FROM activity_monitor.alerts WHERE id = -2$$,
	$$VALUES ('resolved'::text, session_user::text COLLATE "default", session_user::text COLLATE "default", 'emp-7'::text, now(), 'looking'::text)$$,
	'resolve(): by the session user and the actor, at now(); no note keeps the old one');
SELECT activity_monitor.set_actor('employee', 'emp-9');
SELECT lives_ok($$SELECT activity_monitor.resolve(-3, 'false positive')$$, 'resolve(): an open alert directly');
SELECT results_eq(
	$$SELECT status, acknowledged_by, acknowledged_at, resolved_by, resolved_actor, resolved_at, note
	  FROM activity_monitor.alerts WHERE id = -3$$,
	$$VALUES ('resolved'::text, NULL::text, NULL::timestamptz, session_user::text COLLATE "default", 'emp-9'::text, now(), 'false positive'::text)$$,
	'resolve(): of an open alert, by the session user and the current actor, with the note');
SELECT results_eq(
	$$SELECT id FROM activity_monitor.open_alerts WHERE id < 0$$,
	$$VALUES (-4::bigint), (-5), (-1)$$,
	'open_alerts: resolved alerts are gone, the order stays');

-- bad input: unknown and resolved alerts; nothing changes
CREATE TEMP TABLE alerts_before AS SELECT * FROM activity_monitor.alerts;
SELECT throws_ok($$SELECT activity_monitor.acknowledge(424242)$$,
	'42704', 'alert 424242 does not exist', 'acknowledge(): unknown alert');
SELECT throws_ok($$SELECT activity_monitor.resolve(424242)$$,
	'42704', 'alert 424242 does not exist', 'resolve(): unknown alert');
SELECT throws_ok($$SELECT activity_monitor.acknowledge(-2, 'again')$$,
	'55000', 'alert -2 is already resolved', 'acknowledge(): a resolved alert');
SELECT throws_ok($$SELECT activity_monitor.resolve(-2, 'again')$$,
	'55000', 'alert -2 is already resolved', 'resolve(): a resolved alert');
SELECT throws_ok($$SELECT activity_monitor.resolve(-3)$$,
	'55000', 'alert -3 is already resolved', 'resolve(): twice');
SELECT ok(NOT EXISTS (SELECT * FROM activity_monitor.alerts EXCEPT SELECT * FROM alerts_before)
		  AND NOT EXISTS (SELECT * FROM alerts_before EXCEPT SELECT * FROM activity_monitor.alerts),
	'after the refused calls: every alert unchanged (status, who, when, note)');

-- ---------------------------------------------------------------------------
-- Predicates in the capture trigger: matched = {"k": key, "rule id": v}
-- ---------------------------------------------------------------------------
SELECT activity_monitor.create_rule('big_completed',
		'$.action == "update" && $.new.status == "completed" && $.new.amount > 5000',
		severity => 'critical', tables => '{payments}', measure_path => '$.new.amount') AS big_id \gset
SELECT activity_monitor.create_rule('pw_leak',
		'$.action == "update" && $.new.status == "completed" && $.new.password_hash == "secret"',
		tables => '{payments}') AS pw_leak_id \gset
SELECT activity_monitor.create_rule('pw_masked',
		'$.action == "update" && $.new.status == "completed" && $.new.password_hash == "[redacted]" && $.old.password_hash == "[redacted]"',
		tables => '{payments}', group_by => '$.row_key') AS pw_masked_id \gset

INSERT INTO payments VALUES (1, 42, 'pending', 6000, 'secret', 'first'),
							(2, 43, 'pending', 100, 'secret', 'second');
SELECT is((pg_temp.last_event('public.payments')).matched, NULL,
	'an insert no rule matches: matched is NULL');
SELECT is((pg_temp.last_event('public.payments')).rule_errors, NULL,
	'an insert no rule matches: rule_errors is NULL');

UPDATE payments SET status = 'completed' WHERE id = 1;
SELECT is((pg_temp.last_event('public.payments')).new_values, '{"status": "completed"}'::jsonb,
	'update of the status only: the activity row keeps only what changed');
SELECT is(pg_temp.match((pg_temp.last_event('public.payments')).matched, :'big_id'),
	'{"k": "42", "v": 6000}'::jsonb,
	'a status-only update matches a predicate on the whole new row (amount): group key = subject, measure = amount');
SELECT ok(NOT (pg_temp.last_event('public.payments')).matched ? :'pw_leak_id',
	'a redacted column is masked in the document: the real value never matches');
SELECT is(pg_temp.match((pg_temp.last_event('public.payments')).matched, :'pw_masked_id'),
	'{"k": "1", "v": null}'::jsonb,
	'the redacted column is in old and new as "[redacted]"; group_by $.row_key; no measure_path: v null');
SELECT is((SELECT count(*)::int FROM jsonb_object_keys((pg_temp.last_event('public.payments')).matched) k WHERE k <> 'k'), 2,
	'matched holds exactly the matching rules');
SELECT is((pg_temp.last_event('public.payments')).rule_errors, NULL,
	'a matching update: no evaluation error');

UPDATE payments SET status = 'completed' WHERE id = 2;
SELECT ok(NOT (pg_temp.last_event('public.payments')).matched ? :'big_id',
	'amount 100 does not match amount > 5000');
UPDATE payments SET status = 'failed' WHERE id = 1;
SELECT is((pg_temp.last_event('public.payments')).matched, NULL,
	'an update no rule matches: matched is NULL');
UPDATE payments SET note = 'x' WHERE id = 2;
SELECT ok((pg_temp.last_event('public.payments')).matched ? :'pw_masked_id',
	'an update of another column only: $.new.status is still there (whole row) and matches');
SELECT is(pg_temp.match((pg_temp.last_event('public.payments')).matched, :'pw_masked_id') ->> 'k', '2',
	'... with this row''s key as the group key');

-- the same rule on a multi-row statement: one match per row, each with its own key
INSERT INTO payments VALUES (3, 44, 'pending', 7000, NULL, NULL), (4, 45, 'pending', 8000.5, NULL, NULL);
UPDATE payments SET status = 'completed' WHERE id IN (3, 4);
SELECT results_eq(
	$$SELECT row_key, pg_temp.match(matched, $$ || quote_literal(pg_temp.rid('big_completed')) || $$)
	  FROM activity_monitor.activity WHERE table_name = 'public.payments' AND action = 'update'
	   AND row_key IN ('3', '4') ORDER BY row_key$$,
	$$VALUES ('3'::text, '{"k": "44", "v": 7000}'::jsonb), ('4', '{"k": "45", "v": 8000.5}'::jsonb)$$,
	'a multi-row update: each row evaluated with its own group key and measure');
-- a NULL column in the document: a predicate on it does not match, no error
SELECT ok(NOT coalesce((pg_temp.last_event('public.payments')).matched ? :'pw_masked_id', false),
	'a NULL redacted column is null in the document (not "[redacted]")');

-- ---------------------------------------------------------------------------
-- Evaluation errors: recorded, never raised into the write
-- ---------------------------------------------------------------------------
SELECT activity_monitor.create_rule('type_mismatch', '$.new.status > 5', tables => '{orders}')
	AS mismatch_id \gset
SELECT activity_monitor.create_rule('not_boolean', '$.new.status', tables => '{orders}')
	AS not_bool_id \gset
SELECT lives_ok($$INSERT INTO orders VALUES (1, 'open')$$,
	'a predicate with a type mismatch does not abort the write');
SELECT is((SELECT status FROM orders WHERE id = 1), 'open', '... and the row is written');
SELECT is(pg_temp.sorted((pg_temp.last_event('public.orders')).rule_errors),
	ARRAY[:mismatch_id, :not_bool_id]::bigint[],
	'rule_errors = the ids of the rules that could not be evaluated (text > number; not a boolean)');
SELECT is(pg_temp.match((pg_temp.last_event('public.orders')).matched, :'mismatch_id'), NULL,
	'a rule in error does not match');
SELECT ok((pg_temp.last_event('public.orders')).matched ? pg_temp.rid('existing'),
	'the other rules of the table are still evaluated (existing matches the insert)');
SELECT lives_ok($$UPDATE orders SET status = '7' WHERE id = 1$$,
	'an update with the failing rules');
SELECT is(pg_temp.sorted((pg_temp.last_event('public.orders')).rule_errors),
	ARRAY[:mismatch_id, :not_bool_id]::bigint[],
	'a string that looks like a number is still a string: error, no match');
SELECT activity_monitor.drop_rule('type_mismatch');
SELECT activity_monitor.drop_rule('not_boolean');
INSERT INTO orders VALUES (2, 'open');
SELECT is((pg_temp.last_event('public.orders')).rule_errors, NULL,
	'dropped rules are no longer evaluated in the same session');

-- ---------------------------------------------------------------------------
-- kinds and tables limit where a rule is evaluated
-- ---------------------------------------------------------------------------
SELECT activity_monitor.create_rule('any_payment', '$.id > 0', kinds => '{payment}') AS any_pay_id \gset
SELECT activity_monitor.create_rule('payment_err', '$.id > "x"', kinds => '{payment,game}') AS pay_err_id \gset
SELECT activity_monitor.create_rule('orders_only', '$.id > 0', tables => '{orders}') AS orders_only_id \gset
SELECT activity_monitor.create_rule('orders_err', '$.id > "x"', tables => '{orders,logins}') AS orders_err_id \gset
SELECT activity_monitor.create_rule('failed_login', '$.new.success == false', kinds => '{login}',
		within => '10 minutes', threshold => 3, measure => 'distinct', measure_path => '$.subject_id',
		group_by => '$.new.ip') AS failed_login_id \gset

INSERT INTO profiles VALUES (1, 'a@example.com');
SELECT is((pg_temp.last_event('public.profiles')).matched, NULL,
	'rules limited to other kinds and tables: not evaluated (matched NULL)');
SELECT is((pg_temp.last_event('public.profiles')).rule_errors, NULL,
	'rules limited to other kinds and tables: not evaluated (no error although they would fail)');

INSERT INTO payments VALUES (10, 50, 'pending', 1, NULL, NULL);
SELECT is((SELECT array_agg(k ORDER BY k::bigint) FROM jsonb_object_keys((pg_temp.last_event('public.payments')).matched) k WHERE k <> 'k'),
	ARRAY[:'any_pay_id']::text[],
	'payments: the kind-limited rule matches, the orders rules do not apply');
SELECT is((pg_temp.last_event('public.payments')).rule_errors, ARRAY[:pay_err_id]::bigint[],
	'payments: the failing rule of its kind is evaluated (error recorded)');

INSERT INTO orders VALUES (3, 'open');
SELECT is((SELECT array_agg(k ORDER BY k::bigint) FROM jsonb_object_keys((pg_temp.last_event('public.orders')).matched) k WHERE k <> 'k'),
	ARRAY[pg_temp.rid('existing'), :'any_pay_id', :'orders_only_id']::text[],
	'orders (kind payment): the kind rule and the table rules');
SELECT is(pg_temp.sorted((pg_temp.last_event('public.orders')).rule_errors), ARRAY[:pay_err_id, :orders_err_id]::bigint[],
	'orders: both failing rules that apply to it are in rule_errors');

INSERT INTO logins VALUES (1, 42, '10.0.0.9', false);
SELECT is((pg_temp.last_event('public.logins')).matched,
	jsonb_build_object('k', '10.0.0.9', :'failed_login_id', '42'),
	'logins: group_by $.new.ip, measure_path $.subject_id (the subject as text)');
SELECT is((pg_temp.last_event('public.logins')).rule_errors, ARRAY[:orders_err_id]::bigint[],
	'logins: a rule limited to {orders,logins} applies to logins');
INSERT INTO logins VALUES (2, 42, '10.0.0.9', true);
SELECT ok(NOT coalesce((pg_temp.last_event('public.logins')).matched ? :'failed_login_id', false),
	'logins: a successful login does not match');

-- ---------------------------------------------------------------------------
-- set_rule_enabled(): takes effect in this session right away
-- ---------------------------------------------------------------------------
SELECT activity_monitor.set_rule_enabled('any_payment', false);
INSERT INTO payments VALUES (11, 51, 'pending', 1, NULL, NULL);
SELECT ok(NOT coalesce((pg_temp.last_event('public.payments')).matched ? :'any_pay_id', false),
	'a disabled rule stops matching at once');
SELECT is((pg_temp.last_event('public.payments')).matched, NULL,
	'a disabled rule: matched NULL when it was the only matching rule');
SELECT is((pg_temp.last_event('public.payments')).rule_errors, ARRAY[:pay_err_id]::bigint[],
	'other rules are still evaluated');
SELECT activity_monitor.set_rule_enabled('payment_err', false);
INSERT INTO payments VALUES (12, 52, 'pending', 1, NULL, NULL);
SELECT is((pg_temp.last_event('public.payments')).rule_errors, NULL,
	'a disabled failing rule is not evaluated (no error)');
SELECT activity_monitor.set_rule_enabled('any_payment', true);
INSERT INTO payments VALUES (13, 53, 'pending', 1, NULL, NULL);
SELECT is(pg_temp.match((pg_temp.last_event('public.payments')).matched, :'any_pay_id'), '{"k": "53", "v": null}'::jsonb,
	'enabled again: matches again at once');

-- a rule created in this transaction applies to the next write
INSERT INTO profiles VALUES (2, 'b@example.com');
SELECT is((pg_temp.last_event('public.profiles')).matched, NULL, 'profiles: no rule yet');
SELECT activity_monitor.create_rule('email_change', '$.kind == "profile" && $.new.email like_regex "@example\\.com$"',
		kinds => '{profile}', group_by => '$.new.email') AS email_id \gset
INSERT INTO profiles VALUES (3, 'c@example.com');
SELECT is((pg_temp.last_event('public.profiles')).matched,
	jsonb_build_object('k', 'c@example.com', :'email_id', NULL),
	'a rule created in this session applies to its next write');

-- the document: every field the contract names
SELECT activity_monitor.create_rule('doc_fields', format(
		'$.id > 0 && $.occurred_at != "" && $.kind == "profile" && $.action == "update" && $.table == "public.profiles"'
		' && $.row_key == "3" && $.subject_id == "3" && $.actor_type == "employee" && $.actor_id == "emp-9"'
		' && $.changed == "email" && $.old.email == "c@example.com" && $.new.email == "d@example.com"'
		' && $.db_user == %s && $.critical == false && exists($.actor_reason) && exists($.status_from)'
		' && exists($.status_to) && exists($.application_name) && exists($.client_addr)',
		to_json(current_user::text))::jsonpath,
		kinds => '{profile}') AS doc_id \gset
UPDATE profiles SET email = 'd@example.com' WHERE id = 3;
SELECT ok((pg_temp.last_event('public.profiles')).matched ? :'doc_id',
	'the document has id, occurred_at, kind, action, table, row_key, subject_id, actor_*, changed, old, new, db_user, critical, ...');
SELECT is((pg_temp.last_event('public.profiles')).rule_errors, NULL, '... evaluated without error');

-- the document holds what a table's rules read, whatever else they read: a
-- rule that reads only old, one that reads every key through a wildcard,
-- one that reads a key in a filter, each alone on its table
CREATE TABLE ledger1 (id int PRIMARY KEY, amount int);
CREATE TABLE ledger2 (id int PRIMARY KEY, amount int);
CREATE TABLE ledger3 (id int PRIMARY KEY, amount int);
SELECT activity_monitor.track(t, 'game') FROM unnest(ARRAY['ledger1', 'ledger2', 'ledger3']::regclass[]) t;
SELECT activity_monitor.create_rule('old_only', '$.old.amount > 5', tables => '{ledger1}') AS old_only_id \gset
SELECT activity_monitor.create_rule('wildcard', 'exists($.* ? (@ == "public.ledger2"))', tables => '{ledger2}') AS wild_id \gset
SELECT activity_monitor.create_rule('filter_root', 'exists($.new.amount ? (@ > 0 && $.table == "public.ledger3"))',
		tables => '{ledger3}') AS filter_id \gset
INSERT INTO ledger1 VALUES (1, 10);
SELECT is((pg_temp.last_event('public.ledger1')).matched, NULL, 'old_only: an insert has no old row');
UPDATE ledger1 SET amount = 3;
SELECT ok(coalesce((pg_temp.last_event('public.ledger1')).matched ? :'old_only_id', false),
	'old_only: the document of an update has the whole old row when only old is read');
INSERT INTO ledger2 VALUES (1, 1);
SELECT ok(coalesce((pg_temp.last_event('public.ledger2')).matched ? :'wild_id', false),
	'$.*: the document has every key');
INSERT INTO ledger3 VALUES (1, 1);
SELECT ok(coalesce((pg_temp.last_event('public.ledger3')).matched ? :'filter_id', false),
	'$ inside a filter: the document has the key it names');
SELECT is((SELECT count(*) FROM activity_monitor.activity
		   WHERE table_name LIKE 'public.ledger_' AND rule_errors IS NOT NULL), 0::bigint,
	'... all evaluated without error');

-- the document's critical is the event's: a transition into a listed
-- critical status only, into any with critical_statuses NULL
CREATE TABLE shipments (id int PRIMARY KEY, status text);
SELECT activity_monitor.track('shipments', 'game', status_column => 'status',
		critical_statuses => '{lost}');
SELECT activity_monitor.create_rule('critical_doc', '$.critical == true', tables => '{shipments}') AS crit_id \gset
INSERT INTO shipments VALUES (1, 'packed');
UPDATE shipments SET status = 'sent';
UPDATE shipments SET status = 'lost';
SELECT activity_monitor.track('shipments', 'game', status_column => 'status', critical_statuses => NULL);
UPDATE shipments SET status = 'found';
SELECT results_eq(
	$$SELECT status_to, critical, coalesce(matched ? $$ || quote_literal(:'crit_id') || $$, false)
	  FROM activity_monitor.activity WHERE table_name = 'public.shipments' ORDER BY id$$,
	$$VALUES ('packed'::text, false, false), ('sent', false, false), ('lost', true, true), ('found', true, true)$$,
	'the document''s critical follows the event''s: into a listed status, or any with critical_statuses NULL');
SELECT is((SELECT count(*)::int FROM activity_monitor.activity WHERE table_name = 'public.shipments'
		   AND critical IS DISTINCT FROM coalesce((matched ? :'crit_id'), false)), 0,
	'every shipment event: critical in the table and in the document agree');
SELECT is((SELECT rule_errors FROM activity_monitor.activity WHERE table_name = 'public.shipments'
		   AND rule_errors IS NOT NULL LIMIT 1), NULL, '... evaluated without error');

SELECT * FROM finish();
ROLLBACK;
