-- Every bad-input path of track(), untrack(), set_actor(), the actor
-- settings and maintain(): the SQLSTATE and the exact message, and nothing
-- changed afterwards (configuration, triggers, actor, partitions, activity).
BEGIN;
SELECT plan(87);
SET LOCAL client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------
CREATE TABLE accounts (
	id int PRIMARY KEY,
	email text,
	status text,
	balance numeric,
	secret text,
	updated_at timestamptz
);
CREATE TABLE untracked_t (id int PRIMARY KEY, a int);
CREATE TABLE nopk (a int, b text);
CREATE TABLE nopk_parted (id int, k int) PARTITION BY RANGE (id);
CREATE VIEW v_accounts AS SELECT * FROM accounts;
CREATE MATERIALIZED VIEW mv_accounts AS SELECT * FROM accounts;
CREATE SEQUENCE some_seq;
CREATE INDEX accounts_email_idx ON accounts (email);
CREATE TYPE some_composite AS (a int);
CREATE FOREIGN DATA WRAPPER dummy;
CREATE SERVER dummy_srv FOREIGN DATA WRAPPER dummy;
CREATE FOREIGN TABLE ft (id int) SERVER dummy_srv;

SELECT activity_monitor.track('accounts', 'profile',
		subject_column => 'id', status_column => 'status',
		critical_columns => '{balance}', ignore_columns => '{updated_at}',
		redact_columns => '{secret}', critical_statuses => '{blocked}');

-- What must not change.
CREATE TEMP TABLE tracked_before AS
	SELECT tbl, kind, subject_column, status_column, critical_columns,
		   ignore_columns, redact_columns, tracked_since, critical_statuses
	FROM activity_monitor.tracked;
CREATE TEMP TABLE partitions_before AS
	SELECT inhrelid FROM pg_inherits WHERE inhparent = 'activity_monitor.activity'::regclass;

-- The error's detail and hint, which throws_ok does not show.
CREATE FUNCTION pg_temp.err_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	d text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN d;
END
$$;
CREATE FUNCTION pg_temp.err_hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	h text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
	RETURN h;
END
$$;

-- ---------------------------------------------------------------------------
-- track(): the table
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.track('no_such_table', 'profile')$$,
	'42P01', 'relation "no_such_table" does not exist',
	'track(): an unknown table name fails in the regclass cast');
SELECT throws_ok($$SELECT activity_monitor.track('4000000000'::oid::regclass, 'profile')$$,
	'42P01', 'relation with OID 4000000000 does not exist',
	'track(): an OID that is no relation');
SELECT throws_ok($$SELECT activity_monitor.track(NULL, 'profile')$$,
	'22004', 'table must not be null',
	'track(): NULL table');

SELECT throws_ok($$SELECT activity_monitor.track('v_accounts', 'profile')$$,
	'42809', 'cannot track "public.v_accounts"',
	'track(): a view');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('v_accounts', 'profile')$$),
	'"public.v_accounts" is a view.', 'track(): a view, the detail says so');
SELECT is(pg_temp.err_hint($$SELECT activity_monitor.track('v_accounts', 'profile')$$),
	'Only ordinary and partitioned tables can be tracked.', 'track(): a view, the hint');
SELECT throws_ok($$SELECT activity_monitor.track('mv_accounts', 'profile')$$,
	'42809', 'cannot track "public.mv_accounts"',
	'track(): a materialized view');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('mv_accounts', 'profile')$$),
	'"public.mv_accounts" is a materialized view.', 'track(): a materialized view, the detail says so');
SELECT throws_ok($$SELECT activity_monitor.track('ft', 'profile')$$,
	'42809', 'cannot track "public.ft"',
	'track(): a foreign table');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('ft', 'profile')$$),
	'"public.ft" is a foreign table.', 'track(): a foreign table, the detail says so');
SELECT throws_ok($$SELECT activity_monitor.track('some_seq', 'profile')$$,
	'42809', 'cannot track "public.some_seq"',
	'track(): a sequence');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('some_seq', 'profile')$$),
	'"public.some_seq" is a sequence.', 'track(): a sequence, the detail says so');
SELECT throws_ok($$SELECT activity_monitor.track('accounts_email_idx', 'profile')$$,
	'42809', 'cannot track "public.accounts_email_idx"',
	'track(): an index');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('accounts_email_idx', 'profile')$$),
	'"public.accounts_email_idx" is an index.', 'track(): an index, the detail says so');
SELECT throws_ok($$SELECT activity_monitor.track('some_composite', 'profile')$$,
	'42809', 'cannot track "public.some_composite"',
	'track(): a composite type');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('some_composite', 'profile')$$),
	'"public.some_composite" is not a table.', 'track(): a composite type, the detail says so');

SELECT throws_ok($$SELECT activity_monitor.track('nopk', 'profile')$$,
	'55000', 'table "public.nopk" has no primary key',
	'track(): a table without primary key');
SELECT is(pg_temp.err_hint($$SELECT activity_monitor.track('nopk', 'profile')$$),
	'Add one with ALTER TABLE public.nopk ADD PRIMARY KEY (...), then track it.',
	'track(): a table without primary key, the hint says how to fix it');
SELECT throws_ok($$SELECT activity_monitor.track('nopk_parted', 'profile')$$,
	'55000', 'table "public.nopk_parted" has no primary key',
	'track(): a partitioned table without primary key');

SELECT throws_ok($$SELECT activity_monitor.track('activity_monitor.activity', 'system')$$,
	'22023', 'cannot track "activity_monitor.activity"',
	'track(): the activity table itself');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('activity_monitor.activity', 'system')$$),
	'Tables of the activity_monitor schema hold the capture itself.',
	'track(): the activity table, the detail says why');
SELECT throws_ok($$SELECT activity_monitor.track('activity_monitor.activity_default', 'system')$$,
	'22023', 'cannot track "activity_monitor.activity_default"',
	'track(): the default partition of activity');
SELECT throws_ok(
	format($$SELECT activity_monitor.track(%L, 'system')$$,
		   (SELECT inhrelid::regclass::text FROM pg_inherits
			WHERE inhparent = 'activity_monitor.activity'::regclass
			  AND inhrelid <> 'activity_monitor.activity_default'::regclass LIMIT 1)),
	'22023',
	format('cannot track "%s"',
		   (SELECT inhrelid::regclass::text FROM pg_inherits
			WHERE inhparent = 'activity_monitor.activity'::regclass
			  AND inhrelid <> 'activity_monitor.activity_default'::regclass LIMIT 1)),
	'track(): a dated partition of activity');
SELECT throws_ok($$SELECT activity_monitor.track('activity_monitor.tracked', 'system')$$,
	'22023', 'cannot track "activity_monitor.tracked"',
	'track(): the configuration table');
SELECT throws_ok($$SELECT activity_monitor.track('activity_monitor.config', 'system')$$,
	'22023', 'cannot track "activity_monitor.config"',
	'track(): the partitioning settings table');
SELECT throws_ok($$SELECT activity_monitor.track('activity_monitor.timeline', 'system')$$,
	'22023', 'cannot track "activity_monitor.timeline"',
	'track(): anything in the activity_monitor schema, even a view');
SELECT throws_ok($$SELECT activity_monitor.track('pg_catalog.pg_class', 'system')$$,
	'42501', 'permission denied: "pg_class" is a system catalog',
	'track(): a system catalog is refused when its trigger cannot be created');

-- ---------------------------------------------------------------------------
-- track(): the kind
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.track('untracked_t', 'bogus')$$,
	'22023', 'unknown activity kind "bogus"',
	'track(): unknown kind');
SELECT is(pg_temp.err_hint($$SELECT activity_monitor.track('untracked_t', 'bogus')$$),
	'Use one of: login, profile, payment, game, provider, admin, system.',
	'track(): unknown kind, the hint lists the kinds');
SELECT throws_ok($$SELECT activity_monitor.track('untracked_t', 'Login')$$,
	'22023', 'unknown activity kind "Login"',
	'track(): kinds are case-sensitive');
SELECT throws_ok($$SELECT activity_monitor.track('untracked_t', '')$$,
	'22023', 'unknown activity kind ""',
	'track(): empty kind');
SELECT throws_ok($$SELECT activity_monitor.track('untracked_t', NULL)$$,
	'22004', 'kind must not be null',
	'track(): NULL kind');

-- ---------------------------------------------------------------------------
-- track(): the columns (on the already tracked table: its settings must stay)
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', subject_column => 'no_subject')$$,
	'42703', 'column "no_subject" of relation "public.accounts" does not exist',
	'track(): subject_column that does not exist');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', status_column => 'no_status')$$,
	'42703', 'column "no_status" of relation "public.accounts" does not exist',
	'track(): status_column that does not exist');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', critical_columns => '{balance,no_critical}')$$,
	'42703', 'column "no_critical" of relation "public.accounts" does not exist',
	'track(): a critical column that does not exist');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', ignore_columns => '{no_ignore}')$$,
	'42703', 'column "no_ignore" of relation "public.accounts" does not exist',
	'track(): an ignored column that does not exist');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', redact_columns => '{secret,no_redact}')$$,
	'42703', 'column "no_redact" of relation "public.accounts" does not exist',
	'track(): a redacted column that does not exist');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', subject_column => 'ctid')$$,
	'42703', 'column "ctid" of relation "public.accounts" does not exist',
	'track(): a system column is no column');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', subject_column => 'ID')$$,
	'42703', 'column "ID" of relation "public.accounts" does not exist',
	'track(): column names are exact, not case-folded');

SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', critical_columns => '{balance}', ignore_columns => '{balance}')$$,
	'22023', 'a column cannot be both ignored and used',
	'track(): a column both ignored and critical');
SELECT is(pg_temp.err_detail($$SELECT activity_monitor.track('accounts', 'profile', critical_columns => '{balance}', ignore_columns => '{balance}')$$),
	'Ignored columns are never recorded, so they cannot be the subject, the status, critical or redacted.',
	'track(): ignored and critical, the detail says why');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id', ignore_columns => '{id}')$$,
	'22023', 'a column cannot be both ignored and used',
	'track(): a column both ignored and the subject');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', status_column => 'status', ignore_columns => '{email,status}')$$,
	'22023', 'a column cannot be both ignored and used',
	'track(): a column both ignored and the status');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', redact_columns => '{secret}', ignore_columns => '{secret}')$$,
	'22023', 'a column cannot be both ignored and used',
	'track(): a column both ignored and redacted');

-- ---------------------------------------------------------------------------
-- track(): critical_statuses (NULL itself is allowed: every transition)
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', status_column => 'status',
		critical_statuses => '{closed,NULL}')$$,
	'22004', 'critical_statuses must not contain null',
	'track(): a NULL critical status');
SELECT is(pg_temp.err_hint($$SELECT activity_monitor.track('accounts', 'profile', critical_statuses => ARRAY[NULL::text])$$),
	'Pass critical_statuses => NULL to make every status transition critical.',
	'track(): a NULL critical status, the hint says what NULL itself means');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', status_column => 'status',
		critical_statuses => '{closed,""}')$$,
	'22023', 'critical_statuses must not contain an empty string',
	'track(): an empty critical status');
SELECT throws_ok($$SELECT activity_monitor.track('accounts', 'profile', status_column => 'status',
		critical_statuses => '{{closed,blocked}}')$$,
	'22023', 'critical_statuses must be a one-dimensional array',
	'track(): a two-dimensional array of critical statuses');
-- the table's check refuses the same written directly (a superuser)
SELECT throws_ok($$UPDATE activity_monitor.tracked SET critical_statuses = '{a,NULL}' WHERE tbl = 'accounts'::regclass$$,
	'23514', NULL, 'tracked: a NULL critical status written directly is refused');
SELECT throws_ok($$UPDATE activity_monitor.tracked SET critical_statuses = '{""}' WHERE tbl = 'accounts'::regclass$$,
	'23514', NULL, 'tracked: an empty critical status written directly is refused');

-- ---------------------------------------------------------------------------
-- After the failed track() calls: nothing changed
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT tbl, kind, subject_column, status_column, critical_columns, ignore_columns,
			 redact_columns, tracked_since, critical_statuses FROM activity_monitor.tracked ORDER BY tbl$$,
	$$SELECT * FROM tracked_before ORDER BY tbl$$,
	'failed track() calls left the configuration as it was');
SELECT results_eq(
	$$SELECT tgrelid::regclass::text, tgname::text COLLATE "default" FROM pg_trigger
	  WHERE tgfoid = 'activity_monitor.capture'::regproc ORDER BY 1, 2$$,
	$$VALUES ('accounts'::text, 'activity_monitor_capture'::text), ('accounts', 'activity_monitor_truncate')$$,
	'failed track() calls created no trigger anywhere');
SELECT is((SELECT count(*)::int FROM activity_monitor.activity WHERE kind <> 'admin'), 0,
	'failed track() calls recorded no activity');
SELECT is((SELECT count(*)::int FROM activity_monitor.activity WHERE kind = 'admin'), 1,
	'only the successful track() is an admin event');

-- ---------------------------------------------------------------------------
-- Re-track: the settings are replaced, still one row and two triggers
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT activity_monitor.track('accounts', 'payment',
		subject_column => 'email', critical_columns => '{status}',
		ignore_columns => NULL, redact_columns => '{secret,balance}')$$,
	'track() of a tracked table re-configures it');
SELECT is((SELECT count(*)::int FROM activity_monitor.tracked WHERE tbl = 'accounts'::regclass), 1,
	're-track: still one configuration row');
SELECT results_eq(
	$$SELECT kind, subject_column::text COLLATE "default", status_column::text COLLATE "default",
			 critical_columns::text[] COLLATE "default", ignore_columns::text[] COLLATE "default",
			 redact_columns::text[] COLLATE "default", critical_statuses
	  FROM activity_monitor.tracked WHERE tbl = 'accounts'::regclass$$,
	$$VALUES ('payment'::text, 'email'::text, NULL::text, '{status}'::text[], '{}'::text[], '{secret,balance}'::text[],
			  '{}'::text[])$$,
	're-track: every setting replaced, a NULL column array stored as empty, critical_statuses back to its default');
SELECT is((SELECT tracked_since FROM activity_monitor.tracked WHERE tbl = 'accounts'::regclass),
	(SELECT tracked_since FROM tracked_before WHERE tbl = 'accounts'::regclass),
	're-track: tracked_since kept');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'accounts'::regclass
		   AND tgfoid = 'activity_monitor.capture'::regproc), 2,
	're-track: still exactly two triggers');
INSERT INTO accounts (id, email, status, balance, secret) VALUES (1, 'a@example.com', 'new', 5, 'pw');
SELECT results_eq(
	$$SELECT kind, subject_id, new_values ->> 'balance', new_values ->> 'updated_at'
	  FROM activity_monitor.activity WHERE kind <> 'admin'$$,
	$$VALUES ('payment'::text, 'a@example.com'::text, '[redacted]'::text, NULL::text)$$,
	're-track: capture uses the new settings at once');

-- ---------------------------------------------------------------------------
-- untrack()
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.untrack('untracked_t')$$,
	'42704', 'table "public.untracked_t" is not tracked',
	'untrack(): a table that is not tracked');
SELECT is(pg_temp.err_hint($$SELECT activity_monitor.untrack('untracked_t')$$),
	'See activity_monitor.tracked_tables for the tracked tables.',
	'untrack(): not tracked, the hint says where to look');
SELECT throws_ok($$SELECT activity_monitor.untrack('no_such_table')$$,
	'42P01', 'relation "no_such_table" does not exist',
	'untrack(): an unknown table name fails in the regclass cast');
SELECT throws_ok($$SELECT activity_monitor.untrack(NULL)$$,
	'22004', 'table must not be null',
	'untrack(): NULL');
SELECT is((SELECT count(*)::int FROM activity_monitor.tracked), 1,
	'failed untrack() calls removed nothing');
SELECT lives_ok($$SELECT activity_monitor.untrack('accounts')$$, 'untrack() of a tracked table');
SELECT throws_ok($$SELECT activity_monitor.untrack('accounts')$$,
	'42704', 'table "public.accounts" is not tracked',
	'untrack(): twice');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgfoid = 'activity_monitor.capture'::regproc), 0,
	'untrack(): its triggers are gone');
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id');

-- ---------------------------------------------------------------------------
-- set_actor()
-- ---------------------------------------------------------------------------
SELECT activity_monitor.set_actor('employee', 'emp-1', reason => 'ticket 7',
	context => '{"ip": "203.0.113.9"}');

SELECT throws_ok($$SELECT activity_monitor.set_actor('robot', 'x')$$,
	'22023', 'unknown actor type "robot"',
	'set_actor(): unknown actor type');
SELECT is(pg_temp.err_hint($$SELECT activity_monitor.set_actor('robot', 'x')$$),
	'Use one of: user, employee, service, system.',
	'set_actor(): unknown actor type, the hint lists the types');
SELECT throws_ok($$SELECT activity_monitor.set_actor('', 'x')$$,
	'22023', 'unknown actor type ""',
	'set_actor(): empty actor type');
SELECT throws_ok($$SELECT activity_monitor.set_actor(NULL, 'x')$$,
	'22004', 'actor_type must not be null',
	'set_actor(): NULL actor type');
SELECT throws_ok($$SELECT activity_monitor.set_actor('user', NULL)$$,
	'22004', 'actor_id must not be null',
	'set_actor(): NULL actor id');
SELECT throws_ok($$SELECT activity_monitor.set_actor('user', '')$$,
	'22023', 'actor_id must not be empty',
	'set_actor(): empty actor id');
SELECT throws_ok($$SELECT activity_monitor.set_actor('user', 'u-1', is_local => NULL)$$,
	'22004', 'is_local must not be null',
	'set_actor(): NULL is_local');

-- ---------------------------------------------------------------------------
-- The settings themselves
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SET activity_monitor.actor_type = 'robot'$$,
	'22023', 'unknown actor type "robot"',
	'SET activity_monitor.actor_type: unknown type');
SELECT throws_ok($$SET LOCAL activity_monitor.actor_type = 'Employee'$$,
	'22023', 'unknown actor type "Employee"',
	'SET LOCAL activity_monitor.actor_type: types are case-sensitive');
SELECT throws_ok($$SELECT set_config('activity_monitor.actor_type', 'robot', true)$$,
	'22023', 'unknown actor type "robot"',
	'set_config(activity_monitor.actor_type): unknown type');
SELECT throws_ok($$SET activity_monitor.actor_context = 'not json'$$,
	'22P02', 'activity_monitor.actor_context must be JSON',
	'SET activity_monitor.actor_context: not JSON');
SELECT is(pg_temp.err_detail($$SET activity_monitor.actor_context = 'not json'$$),
	'Token "not" is invalid.',
	'SET activity_monitor.actor_context: the detail says where');
SELECT throws_ok($$SET LOCAL activity_monitor.actor_context = '{"ip": '$$,
	'22P02', 'activity_monitor.actor_context must be JSON',
	'SET LOCAL activity_monitor.actor_context: truncated JSON');
SELECT throws_ok($$SET activity_monitor.actor_context = '{"a": "\u0000"}'$$,
	'22P02', 'activity_monitor.actor_context must be JSON',
	'SET activity_monitor.actor_context: JSON that jsonb cannot hold');

-- After the failed calls: the actor is the one set before.
SELECT results_eq(
	$$SELECT current_setting('activity_monitor.actor_type'), current_setting('activity_monitor.actor_id'),
			 current_setting('activity_monitor.actor_reason'), current_setting('activity_monitor.actor_context')$$,
	$$VALUES ('employee'::text, 'emp-1'::text, 'ticket 7'::text, '{"ip": "203.0.113.9"}'::text)$$,
	'failed set_actor() and SET calls left the actor as it was');
UPDATE accounts SET email = 'b@example.com';
SELECT results_eq(
	$$SELECT actor_type, actor_id, actor_reason, actor_context FROM activity_monitor.activity
	  ORDER BY id DESC LIMIT 1$$,
	$$VALUES ('employee'::text, 'emp-1'::text, 'ticket 7'::text, '{"ip": "203.0.113.9"}'::jsonb)$$,
	'and the next capture carries it');

-- ---------------------------------------------------------------------------
-- maintain()
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.maintain(NULL)$$,
	'22004', 'argument "now" must not be null',
	'maintain(): NULL');
SELECT set_eq(
	$$SELECT inhrelid FROM pg_inherits WHERE inhparent = 'activity_monitor.activity'::regclass$$,
	$$SELECT inhrelid FROM partitions_before$$,
	'maintain(NULL) created and dropped no partition');

-- ---------------------------------------------------------------------------
-- Overall: only the two successful captures were recorded
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT action FROM activity_monitor.activity ORDER BY id$$,
	$$VALUES ('track'::text), ('track'), ('insert'), ('untrack'), ('track'), ('update')$$,
	'no failed call recorded activity: only the two captures and the successful calls');

SELECT * FROM finish();
ROLLBACK;
