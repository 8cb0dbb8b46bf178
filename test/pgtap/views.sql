-- The back-office views over a small scenario, and maintain() creating the
-- partitions ahead.
BEGIN;
SELECT plan(32);
SET LOCAL client_min_messages = warning;
-- Partitions are days in UTC; name and count them in UTC whatever the server's zone.
SET LOCAL TimeZone = 'UTC';

-- ---------------------------------------------------------------------------
-- maintain().  Runs before any captured write: in a transaction that has
-- already captured one, ATTACH PARTITION fails (see pending_bugs.sql.txt).
-- ---------------------------------------------------------------------------
CREATE TEMP VIEW parts AS
	SELECT c.relname::text AS relname
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'activity_monitor.activity'::regclass;
CREATE TEMP TABLE ahead AS
	SELECT d, 'activity_p' || to_char((now() AT TIME ZONE 'UTC')::date + d, 'YYYYMMDD') AS relname
	FROM generate_series(30, 32) d;

SELECT is(activity_monitor.maintain(), 0,
	'maintain(): nothing to do when every partition exists');
SELECT is_empty($$SELECT relname FROM ahead INTERSECT SELECT relname FROM parts$$,
	'no partition exists 30 days ahead yet');

-- A row that lands in the default partition, in a range maintain() will create.
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type)
VALUES (now() + interval '31 days', 'system', 'insert', 'public.stray', 'system');
SELECT is((SELECT tableoid::regclass::text FROM activity_monitor.activity WHERE table_name = 'public.stray'),
	'activity_monitor.activity_default', 'a row with no dated partition lands in activity_default');

SELECT is(activity_monitor.maintain(now() + interval '30 days'), 3,
	'maintain(now + 30 days): creates the partition holding "now" and 2 ahead (premake)');
SELECT is_empty($$SELECT relname FROM ahead EXCEPT SELECT relname FROM parts$$,
	'the new partitions are attached (pg_inherits)');
SELECT is((SELECT tableoid::regclass::text FROM activity_monitor.activity WHERE table_name = 'public.stray'),
	'activity_monitor.' || (SELECT relname FROM ahead WHERE d = 31),
	'maintain(): the default partition''s row moved into its new partition');
SELECT is((SELECT count(*)::int FROM activity_monitor.activity_default), 0,
	'maintain(): the default partition is empty again');
SELECT is(activity_monitor.maintain(now() + interval '30 days'), 0,
	'maintain(now + 30 days) again: nothing to do');
SELECT is(activity_monitor.maintain(), 0,
	'maintain(): still nothing to do for today');
DELETE FROM activity_monitor.activity WHERE table_name = 'public.stray';

-- ---------------------------------------------------------------------------
-- Scenario
-- ---------------------------------------------------------------------------
CREATE TABLE accounts (id int PRIMARY KEY, email text, status text, balance numeric);
CREATE TABLE sessions (id int PRIMARY KEY, account_id int, status text);
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id',
	status_column => 'status', critical_columns => '{balance}');
-- (no critical status: a session closing is routine)
SELECT activity_monitor.track('sessions', 'login', subject_column => 'account_id',
	status_column => 'status');
-- The scenario is about captured events: the admin events of maintain() and
-- track() (test/pgtap/audit.sql) go.
DELETE FROM activity_monitor.activity WHERE kind = 'admin';

-- An event older than operational_activity's 24 hours.
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, actor_id)
VALUES (now() - interval '2 days', 'admin', 'update', 'public.old_stuff', 'system', 'cron');

SELECT activity_monitor.set_actor('user', 'u-1');
INSERT INTO accounts VALUES (1, 'a@example.com', 'active', 10);
INSERT INTO sessions VALUES (1, 1, 'active'), (2, 1, 'active');
SELECT activity_monitor.set_actor('employee', 'emp-7', reason => 'ticket 42',
	context => '{"ip": "203.0.113.9"}');
UPDATE accounts SET balance = 0 WHERE id = 1;
UPDATE accounts SET email = 'b@example.com' WHERE id = 1;
SELECT activity_monitor.set_actor('user', 'u-1');
UPDATE sessions SET status = 'closed' WHERE id = 2;

SELECT is((SELECT count(*)::int FROM activity_monitor.activity), 7,
	'scenario: 6 captured events and the old one');

-- ---------------------------------------------------------------------------
-- tracked_tables
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT table_name COLLATE "default", kind, subject_column::text COLLATE "default", status_column::text COLLATE "default",
			 critical_columns::text[] COLLATE "default", critical_statuses
	  FROM activity_monitor.tracked_tables$$,
	$$VALUES ('public.accounts'::text, 'profile'::text, 'id'::text, 'status'::text, '{balance}'::text[], '{}'::text[]),
			 ('public.sessions', 'login', 'account_id', 'status', '{}', '{}')$$,
	'tracked_tables: one row per tracked table, by name, with its settings');

-- ---------------------------------------------------------------------------
-- timeline
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT id FROM activity_monitor.timeline$$,
	$$SELECT id FROM activity_monitor.activity ORDER BY occurred_at DESC, id DESC$$,
	'timeline: every event, newest first');
SELECT results_eq(
	$$SELECT table_name, action, row_key, status_from, status_to FROM activity_monitor.timeline LIMIT 1$$,
	$$VALUES ('public.sessions'::text, 'update'::text, '2'::text, 'active'::text, 'closed'::text)$$,
	'timeline: the last change comes first');
SELECT is((SELECT table_name FROM activity_monitor.timeline OFFSET 6),
	'public.old_stuff', 'timeline: the oldest event comes last');
SELECT results_eq(
	$$SELECT row_key FROM activity_monitor.timeline WHERE table_name = 'public.sessions' AND action = 'insert'$$,
	$$VALUES ('2'::text), ('1')$$,
	'timeline: rows of one statement (same time), the later id first');

-- ---------------------------------------------------------------------------
-- admin_actions
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT employee_id, reason, actor_context, action, table_name, row_key, subject_id, critical,
			 old_values, new_values
	  FROM activity_monitor.admin_actions$$,
	$$VALUES ('emp-7'::text, 'ticket 42'::text, '{"ip": "203.0.113.9"}'::jsonb, 'update'::text,
			  'public.accounts'::text, '1'::text, '1'::text, false,
			  '{"email": "a@example.com"}'::jsonb, '{"email": "b@example.com"}'::jsonb),
			 ('emp-7', 'ticket 42', '{"ip": "203.0.113.9"}', 'update',
			  'public.accounts', '1', '1', true,
			  '{"balance": 10}', '{"balance": 0}'),
			 ('cron', NULL, NULL, 'update', 'public.old_stuff', NULL, NULL, false, NULL, NULL)$$,
	'admin_actions: the employee''s changes and the events of kind admin, newest first, with employee_id and reason');
SELECT is((SELECT count(*)::int FROM activity_monitor.admin_actions),
	(SELECT count(*)::int FROM activity_monitor.activity WHERE actor_type = 'employee' OR kind = 'admin'),
	'admin_actions: only (and every) actor_type employee or kind admin');

-- ---------------------------------------------------------------------------
-- critical_changes
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT table_name, action, actor_type, actor_id, status_from, status_to FROM activity_monitor.critical_changes$$,
	$$VALUES ('public.accounts'::text, 'update'::text, 'employee'::text, 'emp-7'::text, NULL::text, NULL::text)$$,
	'critical_changes: the critical column change; the session closing (a status not listed critical) is not');
SELECT set_eq(
	$$SELECT id FROM activity_monitor.critical_changes$$,
	$$SELECT id FROM activity_monitor.activity WHERE critical$$,
	'critical_changes: only (and every) critical event');

-- ---------------------------------------------------------------------------
-- user_sessions
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT table_name, session_key, subject_id, active, ended_at IS NOT NULL, status
	  FROM activity_monitor.user_sessions ORDER BY session_key$$,
	$$VALUES ('public.sessions'::text, '1'::text, '1'::text, true, false, 'active'::text),
			 ('public.sessions', '2', '1', false, true, 'closed')$$,
	'user_sessions: one row per session, one active, one ended');
SELECT is((SELECT started_at FROM activity_monitor.user_sessions WHERE session_key = '2'),
	(SELECT occurred_at FROM activity_monitor.activity
	 WHERE table_name = 'public.sessions' AND row_key = '2' AND action = 'insert'),
	'user_sessions: started_at is when the session row was inserted');
SELECT is((SELECT ended_at FROM activity_monitor.user_sessions WHERE session_key = '2'),
	(SELECT occurred_at FROM activity_monitor.activity
	 WHERE table_name = 'public.sessions' AND row_key = '2' AND action = 'update'),
	'user_sessions: ended_at is when its status became closed');
SELECT is((SELECT application_name FROM activity_monitor.user_sessions WHERE session_key = '1'),
	nullif(current_setting('application_name'), ''),
	'user_sessions: the application that opened the session');
SELECT is_empty(
	$$SELECT * FROM activity_monitor.user_sessions WHERE table_name <> 'public.sessions'$$,
	'user_sessions: only login-kind tables');

-- ---------------------------------------------------------------------------
-- operational_activity
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT kind, actor_type, sum(events)::int, sum(critical_events)::int
	  FROM activity_monitor.operational_activity GROUP BY 1, 2 ORDER BY 1, 2$$,
	$$VALUES ('login'::text, 'user'::text, 3, 0), ('profile', 'employee', 2, 1), ('profile', 'user', 1, 0)$$,
	'operational_activity: events and critical events per kind and actor type');
SELECT set_eq(
	$$SELECT minute, kind, actor_type, events, critical_events FROM activity_monitor.operational_activity$$,
	$$SELECT date_trunc('minute', occurred_at) AS minute, kind, actor_type, count(*) AS events,
			 count(*) FILTER (WHERE critical) AS critical_events
	  FROM activity_monitor.activity WHERE occurred_at >= now() - interval '24 hours' GROUP BY 1, 2, 3$$,
	'operational_activity: one row per minute, kind and actor type');
SELECT is_empty(
	$$SELECT * FROM activity_monitor.operational_activity WHERE minute <> date_trunc('minute', minute)$$,
	'operational_activity: minutes are whole minutes');
SELECT is_empty(
	$$SELECT * FROM activity_monitor.operational_activity WHERE kind = 'admin'$$,
	'operational_activity: events older than 24 hours are left out');
SELECT results_eq(
	$$SELECT minute, kind, actor_type FROM activity_monitor.operational_activity$$,
	$$SELECT minute, kind, actor_type FROM activity_monitor.operational_activity ORDER BY 1 DESC, 2, 3$$,
	'operational_activity: newest minute first, then kind and actor type');

-- ---------------------------------------------------------------------------
-- The views follow later changes at once (they are views, not snapshots)
-- ---------------------------------------------------------------------------
DELETE FROM sessions WHERE id = 1;
SELECT results_eq(
	$$SELECT session_key, active, status FROM activity_monitor.user_sessions ORDER BY session_key$$,
	$$VALUES ('1'::text, false, 'active'::text), ('2', false, 'closed')$$,
	'user_sessions: a deleted session row is ended (its last status kept)');
SELECT is((SELECT action FROM activity_monitor.timeline LIMIT 1), 'delete',
	'timeline: the delete comes first now');
SELECT is((SELECT count(*)::int FROM activity_monitor.critical_changes), 2,
	'critical_changes: a delete is critical');

SELECT * FROM finish();
ROLLBACK;
