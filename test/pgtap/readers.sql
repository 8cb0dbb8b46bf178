-- employee_actions() and recent_critical_changes() (issue 13: the readers of
-- today's hourly partitions): the same rows, in the same order, as the
-- admin_actions and critical_changes views, over today in hourly
-- partitions, past days, and the default partition; the partial indexes
-- they read through, and one whose predicate does not cover the view
-- (not used: its partition is read another way); their refusals; no lock
-- left on any partition; and the dashboard's latest critical changes.
--
-- The history is committed first, in this test's own database (test/run.sh
-- makes one per file): locks are counted in a transaction that has touched
-- no partition yet.  Everything else is rolled back.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET TimeZone = 'UTC';

-- ---------------------------------------------------------------------------
-- History (committed): the days before yesterday one partition each, the
-- last 30 hours or more (from midnight UTC before them) in hourly
-- partitions (premake 3 hours), whatever the time of day; rows older than
-- all in activity_default
-- ---------------------------------------------------------------------------
BEGIN;
SELECT activity_monitor.configure(merge_interval => '0');
DO $$
DECLARE
	q	regclass;
	h0	timestamptz := date_trunc('day', now() - interval '30 hours', 'UTC');
BEGIN
	FOR d IN REVERSE 12..1 BY 3 LOOP
		PERFORM activity_monitor.maintain("now" => now() - make_interval(days => d));
	END LOOP;
	FOR q IN SELECT x.part FROM activity_monitor._partitions() x WHERE x.upper > h0 LOOP
		EXECUTE format('DROP TABLE %s', q);
	END LOOP;
	PERFORM activity_monitor.configure(partition_interval => '1 hour', premake => 3);
	PERFORM activity_monitor.maintain(now => g)
	FROM generate_series(h0, now(), interval '1 hour') g;
END
$$;
-- 3,000 events over the last 11 days (5 employees, admin events, critical
-- ones), 40 older than every partition (activity_default)
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, actor_id,
									   actor_reason, subject_id, row_key, critical)
SELECT now() - make_interval(secs => (g * 317) % (11 * 86400)),
	   CASE WHEN g % 7 = 0 THEN 'admin' ELSE 'payment' END, 'update', 'public.payments',
	   CASE WHEN g % 3 = 0 THEN 'employee' ELSE 'user' END,
	   CASE WHEN g % 3 = 0 OR g % 7 = 0 THEN 'emp' || g % 5 ELSE 'u' || g % 40 END,
	   CASE WHEN g % 3 = 0 THEN 'ticket ' || g END, 'acct' || g % 9, g::text, g % 4 = 0
FROM generate_series(1, 3000) g;
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, actor_id, critical)
SELECT now() - make_interval(days => 200 + g), 'admin', 'update', 'public.payments', 'employee', 'emp' || g % 5, true
FROM generate_series(1, 40) g;
-- ties on occurred_at: 12 of emp_tie, critical, ids not in disk order
INSERT INTO activity_monitor.activity (id, occurred_at, kind, action, table_name, actor_type, actor_id, critical)
SELECT 2000000 + (g * 7) % 12, date_trunc('hour', now()) - interval '2 hours', 'payment', 'update',
	   'public.payments', 'employee', 'emp_tie', true
FROM generate_series(0, 11) g;
COMMIT;

-- ---------------------------------------------------------------------------
-- Tests
-- ---------------------------------------------------------------------------
BEGIN;
SELECT plan(30);

CREATE TEMP VIEW parts AS
	SELECT h.inhrelid AS relid FROM pg_inherits h
	WHERE h.inhparent = 'activity_monitor.activity'::regclass;
CREATE TEMP VIEW part_locks AS
	SELECT count(*)::int AS n FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
	  AND (l.relation IN (SELECT relid FROM parts)
		   OR l.relation IN (SELECT i.indexrelid FROM pg_index i JOIN parts p ON p.relid = i.indrelid));

-- index scans of this transaction so far, by the indexes' kind
CREATE TEMP VIEW scans AS
	SELECT coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid)) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%WHERE critical'), 0)::int AS critical,
		   coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid)) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%(actor_id, occurred_at) WHERE%'), 0)::int AS admin,
		   coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid)), 0)::int AS all_
	FROM pg_index i JOIN parts p ON p.relid = i.indrelid;
SAVEPOINT measure;
SELECT critical AS s0_crit, admin AS s0_admin, all_ AS s0_all FROM scans \gset
SELECT count(*) AS emp_rows FROM activity_monitor.employee_actions('emp1', NULL, since => now() - interval '1 day') \gset
SELECT (SELECT n FROM part_locks) AS emp_locks \gset
SELECT critical AS s1_crit, admin AS s1_admin, all_ AS s1_all FROM scans \gset
ROLLBACK TO SAVEPOINT measure;
SAVEPOINT measure;
SELECT critical AS s2_crit, admin AS s2_admin, all_ AS s2_all FROM scans \gset
SELECT count(*) AS crit_rows FROM activity_monitor.recent_critical_changes(10) \gset
SELECT (SELECT n FROM part_locks) AS crit_locks \gset
SELECT critical AS s3_crit, admin AS s3_admin, all_ AS s3_all FROM scans \gset
ROLLBACK TO SAVEPOINT measure;
SAVEPOINT measure;
SELECT count(*) FROM activity_monitor.admin_actions
	WHERE employee_id = 'emp1' AND occurred_at >= now() - interval '1 day' \gset
SELECT (SELECT n FROM part_locks) AS view_locks \gset
ROLLBACK TO SAVEPOINT measure;
SELECT count(*)::int AS nparts FROM parts \gset
SELECT count(*)::int AS hours FROM activity_monitor._partitions()
	WHERE upper - lower = interval '1 hour' \gset

SELECT cmp_ok(:hours, '>=', 33, 'the last 30 hours and more are in hourly partitions');
SELECT cmp_ok(:emp_rows::int, '>', 0, 'employee_actions(): an employee''s day has rows');
SELECT is(:emp_locks, 0, 'after employee_actions(): no lock on any partition or partition index');
SELECT is(:crit_rows::int, 10, 'recent_critical_changes(10): 10 rows');
SELECT is(:crit_locks, 0, 'after recent_critical_changes(): no lock on any partition or partition index');
SELECT ok(:s1_admin - :s0_admin >= 24 AND :s1_all - :s0_all = :s1_admin - :s0_admin,
	'employee_actions() reads through the partitions'' index of employees'' and admin events, and no other');
SELECT ok(:s3_crit - :s2_crit >= 1 AND :s3_all - :s2_all = :s3_crit - :s2_crit,
	'recent_critical_changes() reads through the partitions'' index of critical events, and no other');
SELECT cmp_ok(:view_locks, '>', 2 * 24, 'where the view''s query over the last day locks its partitions and their indexes');
SELECT diag(format('%s partitions, %s of them hours: an employee''s day through the view holds %s locks on partitions and their indexes, employee_actions() %s',
				   :nparts, :hours, :view_locks, :emp_locks));

-- ---------------------------------------------------------------------------
-- The declarations
-- ---------------------------------------------------------------------------
SELECT is(pg_get_function_result('activity_monitor.employee_actions(text, int, timestamptz, timestamptz)'::regprocedure),
	'SETOF activity_monitor.admin_actions', 'employee_actions() returns SETOF admin_actions');
SELECT is(pg_get_function_arguments('activity_monitor.employee_actions(text, int, timestamptz, timestamptz)'::regprocedure),
	'employee text, lim integer DEFAULT 50, before timestamp with time zone DEFAULT NULL::timestamp with time zone, since timestamp with time zone DEFAULT NULL::timestamp with time zone',
	'arguments employee, lim (50), before, since (NULL)');
SELECT is(pg_get_function_result('activity_monitor.recent_critical_changes(int, timestamptz, timestamptz)'::regprocedure),
	'SETOF activity_monitor.critical_changes', 'recent_critical_changes() returns SETOF critical_changes');
SELECT is(pg_get_function_arguments('activity_monitor.recent_critical_changes(int, timestamptz, timestamptz)'::regprocedure),
	'lim integer DEFAULT 50, before timestamp with time zone DEFAULT NULL::timestamp with time zone, since timestamp with time zone DEFAULT NULL::timestamp with time zone',
	'arguments lim (50), before, since (NULL)');
SELECT ok(bool_and(NOT p.prosecdef AND NOT p.proisstrict AND p.provolatile = 's'), 'not SECURITY DEFINER, not STRICT, STABLE')
FROM pg_proc p WHERE p.oid IN ('activity_monitor.employee_actions(text, int, timestamptz, timestamptz)'::regprocedure,
							   'activity_monitor.recent_critical_changes(int, timestamptz, timestamptz)'::regprocedure);

-- ---------------------------------------------------------------------------
-- The same rows as the views, in the same order
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE cases AS
	SELECT e, l, b, si
	FROM unnest('{emp0,emp1,emp3,emp_tie,u1,nobody}'::text[]) e,
		 unnest('{0,1,5,20,NULL}'::int[]) l,
		 unnest(ARRAY[NULL, date_trunc('hour', now()) - interval '2 hours',
					  date_trunc('hour', now()) - interval '2 hours' + interval '1 microsecond',
					  now() - interval '30 hours', now() - interval '8 days']::timestamptz[]) b,
		 unnest(ARRAY[NULL, now() - interval '1 day', date_trunc('hour', now()) - interval '2 hours',
					  now() - interval '300 days']::timestamptz[]) si;
CREATE TEMP VIEW compared AS
	SELECT c.*,
		   (SELECT array_agg(t::text) FROM activity_monitor.employee_actions(c.e, c.l, c.b, c.si) t) AS fn,
		   (SELECT array_agg(t::text) FROM (SELECT * FROM activity_monitor.admin_actions
											WHERE employee_id = c.e AND (c.b IS NULL OR occurred_at < c.b)
											  AND (c.si IS NULL OR occurred_at >= c.si)
											ORDER BY occurred_at DESC, id DESC LIMIT c.l) t) AS v
	FROM cases c;
CREATE TEMP VIEW compared_crit AS
	SELECT c.l, c.b, c.si,
		   (SELECT array_agg(t::text) FROM activity_monitor.recent_critical_changes(c.l, c.b, c.si) t) AS fn,
		   (SELECT array_agg(t::text) FROM (SELECT * FROM activity_monitor.critical_changes
											WHERE (c.b IS NULL OR occurred_at < c.b)
											  AND (c.si IS NULL OR occurred_at >= c.si)
											ORDER BY occurred_at DESC, id DESC LIMIT c.l) t) AS v
	FROM (SELECT DISTINCT l, b, si FROM cases) c;
SELECT is_empty($$SELECT e, l, b, si FROM compared WHERE fn IS DISTINCT FROM v$$,
	'600 calls of employee_actions() (6 keys x 5 lim x 5 before x 4 since): the view''s rows in its order');
SELECT cmp_ok((SELECT sum(cardinality(fn))::int FROM compared), '>', 1000, 'and they return rows');
SELECT is_empty($$SELECT l, b, si FROM compared_crit WHERE fn IS DISTINCT FROM v$$,
	'100 calls of recent_critical_changes() (5 lim x 5 before x 4 since): the view''s rows in its order');
SELECT cmp_ok((SELECT sum(cardinality(fn))::int FROM compared_crit), '>', 500, 'and they return rows');
SELECT results_eq($$SELECT id FROM activity_monitor.employee_actions('emp_tie', 7)$$,
	$$SELECT 2000000::bigint + g FROM generate_series(11, 5, -1) g$$,
	'ties on occurred_at across the limit: the highest ids');
SELECT is_empty($$SELECT * FROM activity_monitor.employee_actions(NULL)$$, 'employee NULL: no rows');
SELECT is((SELECT count(*)::int FROM activity_monitor.recent_critical_changes(NULL)),
		  (SELECT count(*)::int FROM activity_monitor.critical_changes), 'lim NULL: every critical change');

-- Whatever indexes the partitions have: the admin index dropped from a
-- third (read whole), replaced on a third by one whose predicate leaves
-- admin events out (it must not be used: the view has them), and a third
-- with the critical index on occurred_at DESC.
SAVEPOINT fallback;
DO $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN SELECT i.indexrelid::regclass AS idx, i.indrelid::regclass AS tbl, pg_get_indexdef(i.indexrelid) AS def
			 FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid
			 WHERE h.inhparent = 'activity_monitor.activity'::regclass
			   AND (pg_get_indexdef(i.indexrelid) LIKE '%(actor_id, occurred_at) WHERE%'
					OR pg_get_indexdef(i.indexrelid) LIKE '%(occurred_at, id) WHERE critical')
			 ORDER BY i.indrelid::regclass::text, 3
	LOOP
		n := n + 1;
		CONTINUE WHEN n % 3 = 0;
		EXECUTE format('DROP INDEX %s', r.idx);
		IF n % 3 = 1 AND r.def LIKE '%actor_id%' THEN
			EXECUTE format('CREATE INDEX ON %s (actor_id, occurred_at) WHERE actor_type = ''employee''', r.tbl);
		ELSIF n % 3 = 1 THEN
			EXECUTE format('CREATE INDEX ON %s (occurred_at DESC) WHERE critical', r.tbl);
		END IF;
	END LOOP;
END
$$;
SELECT count(*) AS fallback_bad FROM compared WHERE fn IS DISTINCT FROM v \gset
SELECT count(*) AS fallback_crit_bad FROM compared_crit WHERE fn IS DISTINCT FROM v \gset
SELECT count(*) AS narrow FROM pg_index i JOIN parts p ON p.relid = i.indrelid
	WHERE pg_get_indexdef(i.indexrelid) LIKE '%WHERE (actor_type = ''employee''::text)' \gset
ROLLBACK TO SAVEPOINT fallback;
SELECT cmp_ok(:narrow::int, '>=', 5, 'partitions with an index of employees only (admin events left out)');
SELECT is(:fallback_bad::int, 0, 'employee_actions(), whatever the indexes: the same rows');
SELECT is(:fallback_crit_bad::int, 0, 'recent_critical_changes(), whatever the indexes: the same rows');

-- The dashboard's latest critical changes: the view's ten latest of the last day.
SELECT is((SELECT jsonb_path_query_array(latest_critical, '$[*].id') FROM activity_monitor.dashboard),
		  (SELECT jsonb_agg(id ORDER BY occurred_at DESC, id DESC) FROM
			 (SELECT id, occurred_at FROM activity_monitor.critical_changes
			  WHERE occurred_at >= now() - interval '1 day' ORDER BY occurred_at DESC, id DESC LIMIT 10) c),
	'the dashboard''s latest_critical: the ten latest critical changes of the last day');

-- ---------------------------------------------------------------------------
-- Bad input and privileges
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM activity_monitor.recent_critical_changes(-1)$$,
	'22023', 'lim must not be negative', 'lim < 0: 22023');
CREATE ROLE am_rd_exec NOLOGIN;
GRANT USAGE ON SCHEMA activity_monitor TO am_rd_exec;
GRANT EXECUTE ON FUNCTION activity_monitor.employee_actions(text, int, timestamptz, timestamptz),
	activity_monitor.recent_critical_changes(int, timestamptz, timestamptz) TO am_rd_exec;
GRANT SELECT ON activity_monitor.timeline TO am_rd_exec;
CREATE ROLE am_rd_reader NOLOGIN IN ROLE activity_monitor_reader;
SELECT ok(NOT has_function_privilege('public', 'activity_monitor.employee_actions(text, int, timestamptz, timestamptz)', 'EXECUTE')
		  AND NOT has_function_privilege('public', 'activity_monitor.recent_critical_changes(int, timestamptz, timestamptz)', 'EXECUTE'),
	'PUBLIC cannot execute them');
SET ROLE am_rd_exec;
SELECT throws_ok($$SELECT * FROM activity_monitor.employee_actions('emp1')$$,
	'42501', 'permission denied for view admin_actions',
	'employee_actions(): EXECUTE and SELECT on timeline, not on admin_actions: 42501');
SELECT throws_ok($$SELECT * FROM activity_monitor.recent_critical_changes()$$,
	'42501', 'permission denied for view critical_changes',
	'recent_critical_changes(): not on critical_changes: 42501');
RESET ROLE;
SET ROLE am_rd_reader;
SELECT results_eq($$SELECT id FROM activity_monitor.employee_actions('emp2', 15)$$,
	$$SELECT id FROM activity_monitor.admin_actions WHERE employee_id = 'emp2' ORDER BY occurred_at DESC, id DESC LIMIT 15$$,
	'reader: the view''s rows');
RESET ROLE;
-- row-level security on activity applying to the view's owner: refused
CREATE ROLE am_rd_view_owner NOLOGIN;
GRANT USAGE ON SCHEMA activity_monitor TO am_rd_view_owner;
GRANT SELECT ON activity_monitor.activity TO am_rd_view_owner;
ALTER VIEW activity_monitor.admin_actions OWNER TO am_rd_view_owner;
ALTER TABLE activity_monitor.activity ENABLE ROW LEVEL SECURITY;
CREATE POLICY am_rd_hide ON activity_monitor.activity FOR SELECT USING (actor_id <> 'emp1');
SET ROLE am_rd_reader;
SELECT throws_ok($$SELECT * FROM activity_monitor.employee_actions('emp1')$$,
	'0A000', 'employee_actions() cannot apply the row-level security of activity_monitor.activity',
	'row-level security applying to the view: refused');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
