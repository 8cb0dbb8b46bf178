-- The security model (issue 10), function by function and role by role:
-- who may execute each function and read or write each relation of the
-- schema (the README's roles table), and the boundaries inside the
-- functions: track()/untrack() only by the table's owner, retention's floor,
-- maintain() in the future, alert handling by responders recorded under the
-- session user.  Roles act through SET SESSION AUTHORIZATION, so that
-- session_user is theirs, as in a real login.
BEGIN;
SELECT plan(38);
SET LOCAL client_min_messages = warning;

CREATE ROLE am_sec_owner NOLOGIN;
CREATE ROLE am_sec_nobody LOGIN;
CREATE ROLE am_sec_reader LOGIN IN ROLE activity_monitor_reader;
CREATE ROLE am_sec_responder LOGIN IN ROLE activity_monitor_responder;
CREATE ROLE am_sec_admin LOGIN IN ROLE activity_monitor_admin;
CREATE ROLE am_sec_admin_owner LOGIN IN ROLE activity_monitor_admin, am_sec_owner;
GRANT USAGE, CREATE ON SCHEMA public TO am_sec_owner;
CREATE TABLE secret_wallet (id int PRIMARY KEY, pin text);
ALTER TABLE secret_wallet OWNER TO am_sec_owner;
INSERT INTO secret_wallet VALUES (1, '1234');

-- ---------------------------------------------------------------------------
-- Who may execute what: every function of the schema, by name
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE fn_matrix (fn name, nobody bool, reader bool, responder bool, admin bool);
INSERT INTO fn_matrix VALUES
	('set_actor', true, true, true, true),
	('capture', true, true, true, true),
	('alert_payload', false, true, true, true),
	('_full_payload', false, true, true, true),
	('_session_end_statuses', false, true, true, true),
	('account_timeline', false, true, true, true),
	('employee_actions', false, true, true, true),
	('recent_critical_changes', false, true, true, true),
	('verify', false, true, true, true),
	('verify_head', false, true, true, true),
	('test_rule', false, true, true, true),
	('seal_head', false, true, true, true),
	('_dashboard', false, true, true, true),
	('_operational_activity', false, true, true, true),
	('_predicate_plan', false, true, true, true),
	('acknowledge', false, false, true, true),
	('resolve', false, false, true, true),
	('track', false, false, false, true),
	('untrack', false, false, false, true),
	('configure', false, false, false, true),
	('maintain', false, false, false, true),
	('create_rule', false, false, false, true),
	('drop_rule', false, false, false, true),
	('set_rule_enabled', false, false, false, true),
	('set_rule_full_payload', false, false, false, true),
	('start_worker', false, false, false, true);
GRANT SELECT ON fn_matrix TO PUBLIC;
-- any other function is private: the extension and superusers only
SELECT is_empty(
	$$SELECT p.oid::regprocedure::text,
			 has_function_privilege('am_sec_nobody', p.oid, 'EXECUTE') AS nobody,
			 has_function_privilege('activity_monitor_reader', p.oid, 'EXECUTE') AS reader,
			 has_function_privilege('activity_monitor_responder', p.oid, 'EXECUTE') AS responder,
			 has_function_privilege('activity_monitor_admin', p.oid, 'EXECUTE') AS admin
	  FROM pg_proc p LEFT JOIN fn_matrix m ON m.fn = p.proname
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace
		AND (has_function_privilege('am_sec_nobody', p.oid, 'EXECUTE') IS DISTINCT FROM coalesce(m.nobody, false)
		  OR has_function_privilege('activity_monitor_reader', p.oid, 'EXECUTE') IS DISTINCT FROM coalesce(m.reader, false)
		  OR has_function_privilege('activity_monitor_responder', p.oid, 'EXECUTE') IS DISTINCT FROM coalesce(m.responder, false)
		  OR has_function_privilege('activity_monitor_admin', p.oid, 'EXECUTE') IS DISTINCT FROM coalesce(m.admin, false))$$,
	'every function of the schema is executable by exactly the roles of the README''s table');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace AND p.prosecdef
		AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
	'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace
		AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
		AND NOT coalesce(EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%'), false)
		AND p.prokind = 'f'$$,
	'every SQL and PL/pgSQL function pins its search_path');

-- ---------------------------------------------------------------------------
-- Who may read and write what: every relation of the schema
-- ---------------------------------------------------------------------------
SELECT is_empty(
	$$SELECT c.relname, r.rolname
	  FROM pg_class c, pg_roles r
	  WHERE c.relnamespace = 'activity_monitor'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
		AND r.rolname IN ('am_sec_nobody', 'activity_monitor_reader', 'activity_monitor_responder', 'activity_monitor_admin')
		AND (has_table_privilege(r.oid, c.oid, 'INSERT') OR has_table_privilege(r.oid, c.oid, 'UPDATE')
		  OR has_table_privilege(r.oid, c.oid, 'DELETE') OR has_table_privilege(r.oid, c.oid, 'TRUNCATE')
		  OR has_table_privilege(r.oid, c.oid, 'REFERENCES') OR has_table_privilege(r.oid, c.oid, 'TRIGGER'))$$,
	'no role of the extension (nor any other) may write, truncate, reference or trigger any relation of the schema');
SELECT is_empty(
	$$SELECT c.relname FROM pg_class c
	  WHERE c.relnamespace = 'activity_monitor'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
		AND has_table_privilege('am_sec_nobody', c.oid, 'SELECT')$$,
	'a role without the extension''s roles reads nothing');
SELECT set_eq(
	$$SELECT c.relname::text FROM pg_class c
	  WHERE c.relnamespace = 'activity_monitor'::regnamespace AND c.relkind IN ('r', 'p', 'v')
		AND has_table_privilege('activity_monitor_reader', c.oid, 'SELECT')
		AND c.relname !~ '^activity_p[0-9]'$$,
	$$VALUES ('activity'), ('activity_default'), ('tracked'), ('config'), ('alerts'), ('activity_minute'), ('dashboard_counts'),
			 ('worker_state'), ('rules'), ('open_alerts'), ('settings'), ('worker_status'), ('dashboard'), ('sources'),
			 ('tracked_tables'), ('timeline'), ('admin_actions'), ('critical_changes'), ('user_sessions'),
			 ('operational_activity'), ('seal')$$,
	'reader: SELECT on exactly the activity, its views, alerts, settings and seals (and every partition)');
SELECT ok(pg_has_role('activity_monitor_responder', 'activity_monitor_reader', 'USAGE')
	  AND pg_has_role('activity_monitor_admin', 'activity_monitor_responder', 'USAGE')
	  AND NOT pg_has_role('activity_monitor_reader', 'activity_monitor_responder', 'USAGE')
	  AND NOT pg_has_role('activity_monitor_responder', 'activity_monitor_admin', 'USAGE'),
	'roles nest: admin > responder > reader');
SELECT ok(NOT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb AND NOT rolbypassrls,
	'activity_monitor_responder is NOLOGIN and has no special attribute')
FROM pg_roles WHERE rolname = 'activity_monitor_responder';

-- ---------------------------------------------------------------------------
-- track() / untrack(): only by the table's owner (or a superuser)
-- ---------------------------------------------------------------------------
SET SESSION AUTHORIZATION am_sec_admin;
SELECT throws_ok($$SELECT activity_monitor.track('secret_wallet', 'payment')$$,
	'42501', 'must be owner of table public.secret_wallet to start or change its capture',
	'admin: cannot track a table it does not own (it would read it through the log)');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*)::int FROM activity_monitor.tracked), 0, 'nothing tracked after the refusal');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'secret_wallet'::regclass), 0,
	'no trigger created after the refusal');

SET SESSION AUTHORIZATION am_sec_admin_owner;
SELECT lives_ok($$SELECT activity_monitor.track('secret_wallet', 'payment', redact_columns => '{pin}')$$,
	'admin who is a member of the owner role: track()');
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION am_sec_admin;
SELECT throws_ok($$SELECT activity_monitor.track('secret_wallet', 'payment')$$,
	'42501', 'must be owner of table public.secret_wallet to start or change its capture',
	'admin: cannot re-configure (e.g. un-redact) a table it does not own');
SELECT throws_ok($$SELECT activity_monitor.untrack('secret_wallet')$$,
	'42501', 'must be owner of table public.secret_wallet to stop its capture',
	'admin: cannot untrack a table it does not own');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT redact_columns FROM activity_monitor.tracked WHERE tbl = 'secret_wallet'::regclass), '{pin}'::name[],
	'the settings are unchanged');

SET ROLE activity_monitor_admin;	-- session_user stays the superuser
SELECT lives_ok($$SELECT activity_monitor.untrack('secret_wallet')$$,
	'a superuser session (SET ROLE admin) may untrack any table');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Retention cannot erase history
-- ---------------------------------------------------------------------------
SELECT is(current_setting('activity_monitor.min_retention'), '30d', 'min_retention defaults to 30 days');
SELECT is((SELECT context FROM pg_settings WHERE name = 'activity_monitor.min_retention'), 'superuser',
	'min_retention can be set by superusers only');
SET SESSION AUTHORIZATION am_sec_admin;
SELECT throws_ok($$SELECT activity_monitor.configure(retention => '1 hour')$$,
	'22023', 'retention must be at least activity_monitor.min_retention (30 days)',
	'admin: a retention of 1 hour is refused');
SELECT throws_ok($$SELECT activity_monitor.configure(retention => '29 days', retention_mode => 'drop')$$,
	'22023', 'retention must be at least activity_monitor.min_retention (30 days)',
	'admin: 29 days is refused');
SELECT throws_ok($$SET activity_monitor.min_retention = '1h'$$,
	'42501', 'permission denied to set parameter "activity_monitor.min_retention"',
	'admin: cannot lower the floor');
SELECT throws_ok($$SELECT activity_monitor.maintain(now() + interval '1 day')$$,
	'42501', 'only a superuser may run maintenance for a time in the future',
	'admin: maintain() with a "now" in the future is refused');
SELECT lives_ok($$SELECT activity_monitor.configure(retention => '30 days', retention_mode => 'drop')$$,
	'admin: 30 days is accepted');
SELECT lives_ok($$SELECT activity_monitor.maintain(now() - interval '1 day')$$,
	'admin: maintain() with a "now" in the past is allowed');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT retention FROM activity_monitor.config), '30 days'::interval, 'only the accepted retention was stored');

-- A retention below the floor already stored (0.1.0 allowed it) retires
-- nothing younger than the floor.
SELECT activity_monitor.maintain(now() - d * interval '1 day') FROM generate_series(20, 1, -1) d;
UPDATE activity_monitor.config SET retention = '1 hour';
SET SESSION AUTHORIZATION am_sec_admin;
SELECT lives_ok($$SELECT activity_monitor.maintain()$$, 'admin: maintain() with a stored retention of 1 hour');
RESET SESSION AUTHORIZATION;
SELECT ok((SELECT count(*) FROM activity_monitor._partitions() WHERE upper < now() - interval '10 days') >= 5,
	'partitions 10 to 20 days old are kept: the floor applies to a stored retention too');
SET LOCAL activity_monitor.min_retention = '1h';
SELECT is(activity_monitor._min_retention(), '01:00:00'::interval, 'a superuser may lower the floor');
SELECT lives_ok($$SELECT activity_monitor.configure(retention => '2 hours')$$,
	'superuser with a lowered floor: retention 2 hours accepted');
SELECT cmp_ok(activity_monitor.maintain(), '>=', 8, 'and maintain() retires the old partitions');
RESET activity_monitor.min_retention;

-- ---------------------------------------------------------------------------
-- Alert handling: responders, recorded under the session user
-- ---------------------------------------------------------------------------
INSERT INTO activity_monitor.alerts (id, rule_name, severity, channel, event_id, event_ids,
		occurred_at, kind, action, table_name)
VALUES (-11, 'r', 'warning', 'c', 1, '{1}', now(), 'payment', 'update', 'public.payments'),
	   (-12, 'r', 'warning', 'c', 2, '{2}', now(), 'payment', 'update', 'public.payments');
SET SESSION AUTHORIZATION am_sec_reader;
SELECT activity_monitor.set_actor('employee', 'emp-boss');
SELECT throws_ok($$SELECT activity_monitor.resolve(-11)$$,
	'42501', 'permission denied for function resolve',
	'reader: cannot resolve an alert (even declaring another person as actor)');
SELECT throws_ok($$SELECT activity_monitor.acknowledge(-11)$$,
	'42501', 'permission denied for function acknowledge',
	'reader: cannot acknowledge an alert');
SELECT is((SELECT count(*)::int FROM activity_monitor.open_alerts WHERE id IN (-11, -12)), 2,
	'reader: reads the open alerts');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION am_sec_responder;
SELECT activity_monitor.set_actor('employee', 'emp-boss');
SELECT lives_ok($$SELECT activity_monitor.acknowledge(-11)$$, 'responder: acknowledge()');
SELECT lives_ok($$SELECT activity_monitor.resolve(-12)$$, 'responder: resolve()');
RESET SESSION AUTHORIZATION;
SELECT results_eq(
	$$SELECT acknowledged_by, acknowledged_actor, resolved_by, resolved_actor
	  FROM activity_monitor.alerts WHERE id IN (-11, -12) ORDER BY id DESC$$,
	$$VALUES ('am_sec_responder'::text, 'emp-boss'::text, NULL::text, NULL::text),
			 (NULL, NULL, 'am_sec_responder', 'emp-boss')$$,
	'the alert records the session user who handled it, the declared actor only beside it');
SELECT is((SELECT acknowledged_by FROM activity_monitor.open_alerts WHERE id = -11), 'am_sec_responder',
	'open_alerts shows the role that acknowledged');
SET SESSION AUTHORIZATION am_sec_admin;
SELECT lives_ok($$SELECT activity_monitor.resolve(-11)$$, 'admin: is a responder too');
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;
