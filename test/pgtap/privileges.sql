-- Roles and privileges: who may read the activity, who may configure
-- capture, that capture needs no privilege from the writer, that nobody but
-- the owner may alter the log, and the catalog facts behind it
-- (SECURITY DEFINER with a pinned search_path, extension config tables,
-- partitions that are data and not extension members).
BEGIN;
SELECT plan(92);
SET LOCAL client_min_messages = warning;
-- Partitions are days in UTC; name and count them in UTC whatever the server's zone.
SET LOCAL TimeZone = 'UTC';

-- Test roles are cluster-wide; the transaction rolls them back.
CREATE ROLE am_tap_owner NOLOGIN;
CREATE ROLE am_tap_writer NOLOGIN;
CREATE ROLE am_tap_nobody NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO am_tap_owner;

-- A table the admin does not own, and one the writer may only write.
CREATE TABLE owned_elsewhere (id int PRIMARY KEY, v text);
ALTER TABLE owned_elsewhere OWNER TO am_tap_owner;
CREATE TABLE wallet (id int PRIMARY KEY, balance numeric, status text);
ALTER TABLE wallet OWNER TO am_tap_owner;
GRANT INSERT, UPDATE ON wallet TO am_tap_writer;
SELECT activity_monitor.track('wallet', 'payment', subject_column => 'id',
	status_column => 'status', critical_columns => '{balance}', critical_statuses => '{closed}');

-- The dated partitions every install must have: today (UTC) and 7 days ahead.
CREATE TEMP TABLE expected_parts AS
	SELECT 'activity_p' || to_char((now() AT TIME ZONE 'UTC')::date + d, 'YYYYMMDD') AS relname
	FROM generate_series(0, 7) d;
CREATE TEMP VIEW parts AS
	SELECT c.oid, c.relname::text AS relname, c.relowner
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'activity_monitor.activity'::regclass;
GRANT SELECT ON expected_parts, parts TO PUBLIC;

-- Partitions maintain() makes later, when the admin runs it; checked at the
-- end.  It runs first: in a transaction that has already captured a write,
-- ATTACH PARTITION fails (see pending_bugs.sql.txt).
SET ROLE activity_monitor_admin;
SELECT activity_monitor.configure(premake => 30);
SELECT cmp_ok(activity_monitor.maintain(), '>', 0,
	'admin: maintain() with a longer premake creates partitions');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------
SELECT has_role('activity_monitor_reader');
SELECT has_role('activity_monitor_admin');
SELECT is_member_of('activity_monitor_reader', 'activity_monitor_admin');
SELECT ok(NOT rolcanlogin AND NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb AND NOT rolbypassrls,
	rolname || ' is NOLOGIN and has no special attribute')
FROM pg_roles WHERE rolname IN ('activity_monitor_reader', 'activity_monitor_admin') ORDER BY rolname;

-- ---------------------------------------------------------------------------
-- PUBLIC
-- ---------------------------------------------------------------------------
SELECT ok(NOT has_table_privilege('public', 'activity_monitor.activity', 'SELECT'),
	'PUBLIC has no SELECT on activity_monitor.activity');
SELECT is_empty(
	$$SELECT c.relname, a.privilege_type
	  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
	  WHERE c.relnamespace = 'activity_monitor'::regnamespace AND a.grantee = 0$$,
	'PUBLIC holds no privilege on any table, view, partition or sequence of the schema');
SELECT ok(has_schema_privilege('public', 'activity_monitor', 'USAGE')
		  AND NOT has_schema_privilege('public', 'activity_monitor', 'CREATE'),
	'PUBLIC may look up names in the schema but not create in it');
SELECT set_eq(
	$$SELECT p.oid::regprocedure::text FROM pg_proc p
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace
		AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
	$$VALUES ('activity_monitor.set_actor(text,text,text,jsonb,boolean)'), ('activity_monitor.capture()')$$,
	'PUBLIC may execute set_actor() and the trigger function capture(), no other function of the schema');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace AND p.prosecdef
		AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
	'no SECURITY DEFINER function is executable by PUBLIC');

-- ---------------------------------------------------------------------------
-- The reader's grants, from the catalog
-- ---------------------------------------------------------------------------
SELECT table_privs_are('activity_monitor', 'activity', 'activity_monitor_reader', ARRAY['SELECT'],
	'reader: SELECT only on activity');
SELECT table_privs_are('activity_monitor', 'activity_default', 'activity_monitor_reader', ARRAY['SELECT'],
	'reader: SELECT only on activity_default');
SELECT table_privs_are('activity_monitor', 'tracked', 'activity_monitor_reader', ARRAY['SELECT'],
	'reader: SELECT only on tracked');
SELECT table_privs_are('activity_monitor', 'config', 'activity_monitor_reader', ARRAY['SELECT'],
	'reader: SELECT only on config');
SELECT table_privs_are('activity_monitor', v, 'activity_monitor_reader', ARRAY['SELECT'],
	'reader: SELECT only on view ' || v)
FROM unnest(ARRAY['tracked_tables', 'timeline', 'admin_actions', 'critical_changes',
				  'user_sessions', 'operational_activity']) v;
SELECT is_empty(
	$$SELECT c.relname, a.privilege_type
	  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
	  WHERE c.relnamespace = 'activity_monitor'::regnamespace
		AND a.grantee = 'activity_monitor_admin'::regrole$$,
	'admin: no direct grant on any table (it reads as a member of reader, configures through track())');

-- ---------------------------------------------------------------------------
-- A writer with only INSERT/UPDATE on a tracked table is captured
-- ---------------------------------------------------------------------------
SELECT is_empty(
	$$SELECT c.relname FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
	  WHERE c.relnamespace = 'activity_monitor'::regnamespace AND a.grantee = 'am_tap_writer'::regrole
	  UNION ALL
	  SELECT p.proname FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace AND a.grantee = 'am_tap_writer'::regrole$$,
	'the writer holds no grant on any activity_monitor object');
SELECT ok(NOT pg_has_role('am_tap_writer', 'activity_monitor_reader', 'USAGE'),
	'the writer is not a reader');

SET ROLE am_tap_writer;
SELECT lives_ok($$INSERT INTO wallet VALUES (1, 10, 'open'), (2, 20, 'open')$$,
	'writer: INSERT into the tracked table');
SELECT lives_ok($$UPDATE wallet SET balance = 100$$,
	'writer: UPDATE the tracked table');
SELECT lives_ok($$SELECT activity_monitor.set_actor('user', 'u-9', reason => 'top-up')$$,
	'writer: set_actor()');
SELECT lives_ok($$UPDATE wallet SET status = 'closed'$$,
	'writer: UPDATE as the actor it set');
SELECT throws_ok($$SELECT count(*) FROM activity_monitor.activity$$,
	'42501', 'permission denied for table activity',
	'writer: cannot read the activity it produced');
SELECT throws_ok($$SELECT count(*) FROM activity_monitor.timeline$$,
	'42501', 'permission denied for view timeline',
	'writer: cannot read the timeline');
SELECT throws_ok($$SELECT activity_monitor.untrack('wallet')$$,
	'42501', 'permission denied for function untrack',
	'writer: cannot stop its own capture');
SELECT throws_ok($$INSERT INTO activity_monitor.activity (kind, action, table_name, actor_type)
				   VALUES ('payment', 'insert', 'public.wallet', 'system')$$,
	'42501', 'permission denied for table activity',
	'writer: cannot forge activity rows');
RESET ROLE;

SELECT results_eq(
	$$SELECT action, row_key, db_user::text COLLATE "default", actor_type, actor_id, actor_reason, critical
	  FROM activity_monitor.activity WHERE table_name = 'public.wallet' ORDER BY id$$,
	$$VALUES ('insert'::text, '1'::text, 'am_tap_writer'::text, 'service'::text, (session_user::text COLLATE "default"), NULL::text, false),
			 ('insert', '2', 'am_tap_writer', 'service', (session_user::text COLLATE "default"), NULL, false),
			 ('update', '1', 'am_tap_writer', 'service', (session_user::text COLLATE "default"), NULL, true),
			 ('update', '2', 'am_tap_writer', 'service', (session_user::text COLLATE "default"), NULL, true),
			 ('update', '1', 'am_tap_writer', 'user', 'u-9', 'top-up', true),
			 ('update', '2', 'am_tap_writer', 'user', 'u-9', 'top-up', true)$$,
	'every write of the unprivileged writer was captured, as that role, with its actor');
-- The writer's set_actor() was transaction-scoped: back to the default.
SELECT activity_monitor.set_actor('service', 'tap');

-- ---------------------------------------------------------------------------
-- The reader
-- ---------------------------------------------------------------------------
SET ROLE activity_monitor_reader;
SELECT is((SELECT count(*)::int FROM activity_monitor.activity WHERE kind <> 'admin'), 6,
	'reader: SELECT activity');
SELECT lives_ok(format('SELECT * FROM activity_monitor.%I', v),
	'reader: SELECT the view ' || v)
FROM unnest(ARRAY['tracked_tables', 'timeline', 'admin_actions', 'critical_changes',
				  'user_sessions', 'operational_activity']) v;
SELECT is((SELECT count(*)::int FROM activity_monitor.timeline WHERE kind <> 'admin'), 6,
	'reader: the timeline shows every event');
SELECT is((SELECT table_name FROM activity_monitor.tracked_tables), 'public.wallet',
	'reader: tracked_tables shows the tracked table');
SELECT is((SELECT count(*)::int FROM activity_monitor.tracked), 1,
	'reader: SELECT tracked');
SELECT is((SELECT count(*)::int FROM activity_monitor.config), 1,
	'reader: SELECT config');
SELECT throws_ok($$SELECT activity_monitor.track('owned_elsewhere', 'profile')$$,
	'42501', 'permission denied for function track',
	'reader: cannot call track()');
SELECT throws_ok($$SELECT activity_monitor.untrack('wallet')$$,
	'42501', 'permission denied for function untrack',
	'reader: cannot call untrack()');
SELECT throws_ok($$SELECT activity_monitor.maintain()$$,
	'42501', 'permission denied for function maintain',
	'reader: cannot call maintain()');
SELECT throws_ok($$UPDATE activity_monitor.activity SET actor_id = 'someone else'$$,
	'42501', 'permission denied for table activity',
	'reader: cannot UPDATE activity');
SELECT throws_ok($$DELETE FROM activity_monitor.activity$$,
	'42501', 'permission denied for table activity',
	'reader: cannot DELETE from activity');
SELECT throws_ok($$TRUNCATE activity_monitor.activity$$,
	'42501', 'permission denied for table activity',
	'reader: cannot TRUNCATE activity');
SELECT throws_ok($$INSERT INTO activity_monitor.activity (kind, action, table_name, actor_type)
				   VALUES ('payment', 'insert', 'public.wallet', 'system')$$,
	'42501', 'permission denied for table activity',
	'reader: cannot INSERT into activity');
SELECT throws_ok($$DELETE FROM activity_monitor.activity_default$$,
	'42501', 'permission denied for table activity_default',
	'reader: cannot DELETE from the default partition');
SELECT throws_ok(format('DELETE FROM activity_monitor.%I', (SELECT relname FROM expected_parts ORDER BY 1 LIMIT 1)),
	'42501', format('permission denied for table %s', (SELECT relname FROM expected_parts ORDER BY 1 LIMIT 1)),
	'reader: cannot DELETE from today''s partition');
SELECT throws_ok($$UPDATE activity_monitor.tracked SET redact_columns = '{}'$$,
	'42501', 'permission denied for table tracked',
	'reader: cannot change the configuration directly');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- The admin
-- ---------------------------------------------------------------------------
SET ROLE activity_monitor_admin;
SELECT lives_ok($$SELECT activity_monitor.track('owned_elsewhere', 'profile', subject_column => 'id')$$,
	'admin: track() a table it does not own');
SELECT is((SELECT kind FROM activity_monitor.tracked_tables WHERE table_name = 'public.owned_elsewhere'),
	'profile', 'admin: the table is tracked');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM pg_trigger
		   WHERE tgrelid = 'owned_elsewhere'::regclass AND tgfoid = 'activity_monitor.capture'::regproc),
	2, 'admin: track() created both triggers on the table of another owner');
SET ROLE activity_monitor_admin;
SELECT lives_ok($$SELECT activity_monitor.untrack('owned_elsewhere')$$,
	'admin: untrack() a table it does not own');
SELECT is((SELECT count(*)::int FROM activity_monitor.tracked_tables WHERE table_name = 'public.owned_elsewhere'),
	0, 'admin: the table is no longer tracked');
SELECT lives_ok($$SELECT activity_monitor.maintain()$$, 'admin: maintain()');
SELECT is((SELECT count(*)::int FROM activity_monitor.timeline WHERE kind <> 'admin'), 6,
	'admin: reads the views as a member of reader');
SELECT throws_ok($$UPDATE activity_monitor.activity SET actor_id = 'someone else'$$,
	'42501', 'permission denied for table activity',
	'admin: cannot UPDATE activity');
SELECT throws_ok($$DELETE FROM activity_monitor.activity$$,
	'42501', 'permission denied for table activity',
	'admin: cannot DELETE from activity');
SELECT throws_ok($$TRUNCATE activity_monitor.activity$$,
	'42501', 'permission denied for table activity',
	'admin: cannot TRUNCATE activity');
SELECT throws_ok($$TRUNCATE activity_monitor.activity_default$$,
	'42501', 'permission denied for table activity_default',
	'admin: cannot TRUNCATE the default partition');
SELECT throws_ok(format('UPDATE activity_monitor.%I SET critical = false', (SELECT relname FROM expected_parts ORDER BY 1 LIMIT 1)),
	'42501', format('permission denied for table %s', (SELECT relname FROM expected_parts ORDER BY 1 LIMIT 1)),
	'admin: cannot UPDATE today''s partition');
SELECT throws_ok($$UPDATE activity_monitor.tracked SET redact_columns = '{}'$$,
	'42501', 'permission denied for table tracked',
	'admin: configures through track(), not by writing tracked');
RESET ROLE;

-- A role in neither group.
SET ROLE am_tap_nobody;
SELECT throws_ok($$SELECT * FROM activity_monitor.activity$$,
	'42501', 'permission denied for table activity',
	'a role without grants cannot read activity');
SELECT throws_ok($$SELECT * FROM activity_monitor.tracked$$,
	'42501', 'permission denied for table tracked',
	'a role without grants cannot read tracked');
SELECT throws_ok($$SELECT activity_monitor.track('wallet', 'login')$$,
	'42501', 'permission denied for function track',
	'a role without grants cannot call track()');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM activity_monitor.activity WHERE kind <> 'admin'), 6,
	'after all refused attempts the log still holds its 6 rows');

-- ---------------------------------------------------------------------------
-- Functions: SECURITY DEFINER and search_path
-- ---------------------------------------------------------------------------
SELECT ok(p.prosecdef, p.oid::regprocedure || ' is SECURITY DEFINER')
FROM pg_proc p
WHERE p.oid IN ('activity_monitor.track(regclass,text,name,name,name[],name[],name[],text[])'::regprocedure,
				'activity_monitor.untrack(regclass)'::regprocedure,
				'activity_monitor.maintain(timestamptz)'::regprocedure)
ORDER BY p.proname;
SELECT ok('search_path=pg_catalog, pg_temp' = ANY (p.proconfig),
	p.oid::regprocedure || ' pins search_path to pg_catalog, pg_temp')
FROM pg_proc p
WHERE p.oid IN ('activity_monitor.track(regclass,text,name,name,name[],name[],name[],text[])'::regprocedure,
				'activity_monitor.untrack(regclass)'::regprocedure,
				'activity_monitor.maintain(timestamptz)'::regprocedure)
ORDER BY p.proname;
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace AND p.prosecdef
		AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
	'every SECURITY DEFINER function of the schema pins search_path');
SELECT ok(NOT prosecdef,
	'set_actor() is not SECURITY DEFINER (it would undo SET LOCAL)')
FROM pg_proc WHERE oid = 'activity_monitor.set_actor(text,text,text,jsonb,boolean)'::regprocedure;
SELECT is(proconfig, NULL,
	'set_actor() has no SET clause (it would undo SET LOCAL)')
FROM pg_proc WHERE oid = 'activity_monitor.set_actor(text,text,text,jsonb,boolean)'::regprocedure;
SELECT ok(has_function_privilege('activity_monitor_admin',
		  'activity_monitor.track(regclass,text,name,name,name[],name[],name[],text[])', 'EXECUTE')
	  AND has_function_privilege('activity_monitor_admin', 'activity_monitor.untrack(regclass)', 'EXECUTE')
	  AND has_function_privilege('activity_monitor_admin', 'activity_monitor.maintain(timestamptz)', 'EXECUTE'),
	'admin may execute track(), untrack() and maintain()');

-- ---------------------------------------------------------------------------
-- Extension membership
-- ---------------------------------------------------------------------------
SELECT ok(t::regclass::oid = ANY (e.extconfig), t || ' is registered in pg_extension.extconfig')
FROM pg_extension e,
	 unnest(ARRAY['activity_monitor.tracked', 'activity_monitor.config',
				  'activity_monitor.activity_default']) t
WHERE e.extname = 'activity_monitor'
ORDER BY t;
SELECT is_empty(
	$$SELECT relname FROM expected_parts EXCEPT SELECT relname FROM parts$$,
	'a dated partition exists for today and each of the next 7 days');
SELECT is_empty(
	$$SELECT p.relname FROM parts p JOIN pg_depend d
		ON d.classid = 'pg_class'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	  WHERE p.relname <> 'activity_default'$$,
	'no dated partition is a member of the extension (pg_dump must dump them)');
SELECT is_empty(
	$$SELECT relname FROM parts WHERE NOT has_table_privilege('activity_monitor_reader', oid, 'SELECT')$$,
	'reader has SELECT on every partition');
SELECT is_empty(
	$$SELECT relname FROM parts
	  WHERE has_table_privilege('activity_monitor_reader', oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
		 OR has_table_privilege('activity_monitor_admin', oid, 'INSERT, UPDATE, DELETE, TRUNCATE')$$,
	'neither reader nor admin may write any partition');

-- Partitions that maintain() made when the admin ran it (at the top).
SELECT is_empty(
	$$SELECT p.relname FROM parts p JOIN pg_depend d
		ON d.classid = 'pg_class'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	  WHERE p.relname <> 'activity_default'$$,
	'partitions made by maintain() are not extension members either');
SELECT is_empty(
	$$SELECT relname FROM parts
	  WHERE relowner <> (SELECT relowner FROM pg_class WHERE oid = 'activity_monitor.activity'::regclass)$$,
	'every partition belongs to the owner of activity, not to whoever ran maintain()');
SELECT is_empty(
	$$SELECT relname FROM parts WHERE NOT has_table_privilege('activity_monitor_reader', oid, 'SELECT')$$,
	'reader has SELECT on the new partitions too');
SELECT is_empty(
	$$SELECT c.relname, a.privilege_type
	  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
	  WHERE c.relnamespace = 'activity_monitor'::regnamespace AND a.grantee = 0$$,
	'PUBLIC holds no privilege on the new partitions either');

SELECT * FROM finish();
ROLLBACK;
