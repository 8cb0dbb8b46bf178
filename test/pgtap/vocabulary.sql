-- Each vocabulary is defined once (issue 12): the activity kinds
-- (_kinds()), the statuses that end a session (_session_end_statuses()),
-- and what ends a session (the private view _activity_sessions), which
-- user_sessions and the rollup behind dashboard.active_sessions share.
-- 0.1.0 spelled the kinds out three times and the session-ending statuses
-- twice, and the rollup's list lacked 'failed': a session that failed
-- stayed active on the dashboard while user_sessions showed it ended.
BEGIN;
SELECT plan(17);
SET LOCAL client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- Spelled out once: no function body, view or constraint of the extension
-- but the vocabulary's own function names a kind or a session-ending status
-- ---------------------------------------------------------------------------
CREATE TEMP VIEW definitions AS
	SELECT p.oid::regprocedure::text AS obj, p.proname::text AS name, p.prosrc AS def
	FROM pg_proc p WHERE p.pronamespace = 'activity_monitor'::regnamespace
	UNION ALL
	SELECT c.oid::regclass::text, c.relname::text, pg_get_viewdef(c.oid)
	FROM pg_class c WHERE c.relnamespace = 'activity_monitor'::regnamespace AND c.relkind = 'v'
	UNION ALL
	SELECT co.conname::text, co.conname::text, pg_get_constraintdef(co.oid)
	FROM pg_constraint co WHERE co.connamespace = 'activity_monitor'::regnamespace;
SELECT is_empty(
	$$SELECT obj FROM definitions WHERE def ~ '\mprovider\M' AND name <> '_kinds'$$,
	'the activity kinds are spelled out only in _kinds()');
SELECT is_empty(
	$$SELECT obj FROM definitions WHERE def ~ '\mrevoked\M' AND name <> '_session_end_statuses'$$,
	'the session-ending statuses are spelled out only in _session_end_statuses()');
SELECT is_empty(
	$$SELECT obj FROM definitions WHERE def ~ '\mlogged_out_at\M' AND name <> '_activity_sessions'$$,
	'what ends a session is written only in _activity_sessions');

-- ---------------------------------------------------------------------------
-- The kinds: every place that checks one takes exactly _kinds()
-- ---------------------------------------------------------------------------
SELECT is(activity_monitor._kinds(), '{login,profile,payment,game,provider,admin,system}'::text[],
	'the kinds, in the README''s order');
CREATE TABLE voc_t (id int PRIMARY KEY);
SELECT lives_ok($$SELECT activity_monitor.track('voc_t', k) FROM unnest(activity_monitor._kinds()) k$$,
	'track() takes every kind');
SELECT lives_ok($$SELECT activity_monitor.create_rule('voc_' || k, '$.action == "insert"', kinds => ARRAY[k])
				  FROM unnest(activity_monitor._kinds()) k$$,
	'create_rule() takes every kind');
SELECT throws_ok($$SELECT activity_monitor.track('voc_t', 'bogus')$$,
	'22023', 'unknown activity kind "bogus"', 'track(): a kind outside _kinds() is refused');
SELECT throws_ok($$SELECT activity_monitor.create_rule('voc_bogus', '$.action == "insert"', kinds => '{bogus}')$$,
	'22023', 'unknown activity kind in {bogus}', 'create_rule(): a kind outside _kinds() is refused');
SELECT throws_ok($$UPDATE activity_monitor.tracked SET kind = 'bogus' WHERE tbl = 'voc_t'::regclass$$,
	'23514', NULL, 'tracked: its CHECK constraint refuses a kind outside _kinds()');

-- ---------------------------------------------------------------------------
-- The end of a session: user_sessions and dashboard.active_sessions agree
-- ---------------------------------------------------------------------------
CREATE TABLE voc_sessions (id int PRIMARY KEY, status text, ended_at timestamptz);
SELECT activity_monitor.track('voc_sessions', 'login', subject_column => 'id', status_column => 'status');
INSERT INTO voc_sessions (id, status) SELECT g, 'active' FROM generate_series(1, 8) g;
INSERT INTO voc_sessions VALUES (20, 'failed');				-- a failed attempt: never active
UPDATE voc_sessions SET status = 'failed' WHERE id = 1;		-- a session that failed (a second factor timed out)
SELECT activity_monitor._rollup(now() - interval '1 hour');
SELECT is((SELECT count(*)::int FROM activity_monitor.user_sessions WHERE active), 7,
	'user_sessions: 7 active sessions (8 started, 1 failed)');
SELECT is((SELECT active_sessions::int FROM activity_monitor.dashboard), 7,
	'dashboard: 7 active sessions, as user_sessions (0.1.0: 8, the failed session stayed active)');

UPDATE voc_sessions SET status = 'closed' WHERE id = 2;
UPDATE voc_sessions SET status = 'expired' WHERE id = 2;	-- closed, then expired: ends once
UPDATE voc_sessions SET status = 'closed' WHERE id = 3;
DELETE FROM voc_sessions WHERE id = 3;						-- closed, then deleted: ends once
UPDATE voc_sessions SET ended_at = now() WHERE id = 4;		-- ended by its ended_at column
DELETE FROM voc_sessions WHERE id = 5;						-- deleted while active
UPDATE voc_sessions SET status = 'idle' WHERE id = 6;		-- still active
-- a login table without a status column: its sessions end by logged_out_at
CREATE TABLE voc_logins (id int PRIMARY KEY, logged_out_at timestamptz);
SELECT activity_monitor.track('voc_logins', 'login', subject_column => 'id');
INSERT INTO voc_logins VALUES (1, NULL), (2, NULL);
UPDATE voc_logins SET logged_out_at = now() WHERE id = 2;
SELECT activity_monitor._rollup(now() - interval '1 hour');

SELECT set_eq($$SELECT session_key FROM activity_monitor.user_sessions
			   WHERE active AND table_name = 'public.voc_sessions'$$,
	$$VALUES ('6'), ('7'), ('8')$$, 'user_sessions: sessions 6, 7 and 8 are active');
SELECT is((SELECT status FROM activity_monitor.user_sessions
		   WHERE table_name = 'public.voc_sessions' AND session_key = '1'), 'failed',
	'user_sessions: the session that failed shows its status');
SELECT set_eq($$SELECT session_key, active FROM activity_monitor.user_sessions
			   WHERE table_name = 'public.voc_logins'$$,
	$$VALUES ('1', true), ('2', false)$$,
	'user_sessions: a session of a table without a status column is active (not NULL) until it ends');
SELECT is((SELECT active_sessions::int FROM activity_monitor.dashboard), 4,
	'dashboard: 4 active sessions (a session that failed has ended; one closed twice, or closed then deleted, ended once)');
SELECT is((SELECT sum(sessions_started)::int FROM activity_monitor.activity_minute), 10,
	'rollup: 10 sessions started (a failed attempt is not a session)');
SELECT is((SELECT active_sessions FROM activity_monitor.dashboard),
		  (SELECT count(*)::numeric FROM activity_monitor.user_sessions WHERE active),
	'dashboard.active_sessions equals the active rows of user_sessions');

SELECT * FROM finish();
ROLLBACK;
