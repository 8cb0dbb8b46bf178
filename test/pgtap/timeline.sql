-- account_timeline() (issue 16): the same rows, in the same order, as the
-- timeline view, over some sixty daily partitions and the default one; its
-- refusals (bad input, privileges, row-level security); and the point of
-- it: after the call the transaction holds no lock on any partition or
-- partition index, where the view's query holds five per partition.
--
-- The history is committed first, in this test's own database (test/run.sh
-- makes one per file): locks are counted in a transaction that has touched
-- no partition yet, which the setup (maintain(), inserts) would have.
-- Everything else, roles included, is rolled back.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
-- Partitions are days in UTC; name and count them in UTC whatever the server's zone.
SET TimeZone = 'UTC';

-- ---------------------------------------------------------------------------
-- History (committed): daily partitions from 51 days ago to 7 days ahead,
-- rows in them and in activity_default (older than the oldest partition,
-- later than the newest).
-- ---------------------------------------------------------------------------
BEGIN;
-- a daily layout: premake 7 as the test was written for, and no merging
-- (the worker would merge the month that ended while the test reads)
SELECT activity_monitor.configure(premake => 7, merge_interval => '0');
DO $$
BEGIN
	FOR d IN REVERSE 51..2 BY 7 LOOP
		PERFORM activity_monitor.maintain("now" => now() - make_interval(days => d));
	END LOOP;
	PERFORM activity_monitor.maintain();
END
$$;

-- four accounts over 60 days (the oldest 8 in activity_default), some rows
-- without a subject
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, subject_id, row_key)
SELECT date_trunc('day', now()) - make_interval(days => g % 60) + make_interval(mins => (g * 97) % 1440),
	   'profile', 'update', 'public.accounts', 'user',
	   CASE WHEN g % 11 = 0 THEN NULL ELSE 'acct' || (g / 3) % 4 END, g::text
FROM generate_series(1, 2400) g;
-- later than every partition: activity_default
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, subject_id, row_key)
SELECT now() + make_interval(days => 30 + g % 5), 'profile', 'update', 'public.accounts', 'user',
	   'acct' || g % 4, 'late' || g
FROM generate_series(1, 40) g;
-- a rare account: today, 40 days ago, 100 days ago (default)
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, subject_id)
SELECT now() - make_interval(days => d), 'login', 'insert', 'public.sessions', 'user', 'acct_rare'
FROM unnest('{0,40,100}'::int[]) d;
-- an account only in activity_default
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, subject_id)
SELECT now() + make_interval(days => d), 'login', 'insert', 'public.sessions', 'user', 'acct_default'
FROM unnest('{-70,-65,40}'::int[]) d;
-- ties on occurred_at, ids not in the order of the rows on disk: 12 in a
-- dated partition, 3 newer, 5 tied in activity_default
INSERT INTO activity_monitor.activity (id, occurred_at, kind, action, table_name, actor_type, subject_id, row_key)
SELECT 1000000 + (g * 7) % 12, date_trunc('day', now()) - interval '5 days' + interval '10 hours',
	   'payment', 'insert', 'public.payments', 'user', 'acct_tie', g::text
FROM generate_series(0, 11) g;
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, subject_id)
SELECT now() - make_interval(hours => g), 'payment', 'update', 'public.payments', 'user', 'acct_tie'
FROM generate_series(1, 3) g;
INSERT INTO activity_monitor.activity (id, occurred_at, kind, action, table_name, actor_type, subject_id, row_key)
SELECT 1000100 + (g * 3) % 5, date_trunc('day', now()) - interval '80 days',
	   'payment', 'insert', 'public.payments', 'user', 'acct_tie', g::text
FROM generate_series(0, 4) g;
-- a value stored out of line (TOAST), read after the partition's lock is gone
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, subject_id, new_values)
SELECT now() - interval '1 day', 'profile', 'update', 'public.accounts', 'user', 'acct1',
	   jsonb_build_object('blob', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) i));
COMMIT;

-- ---------------------------------------------------------------------------
-- Tests
-- ---------------------------------------------------------------------------
BEGIN;
SELECT plan(37);

CREATE TEMP VIEW parts AS
	SELECT h.inhrelid AS relid FROM pg_inherits h
	WHERE h.inhparent = 'activity_monitor.activity'::regclass;
-- relation locks this session holds on partitions and their indexes
CREATE TEMP VIEW part_locks AS
	SELECT count(*)::int AS n FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
	  AND (l.relation IN (SELECT relid FROM parts)
		   OR l.relation IN (SELECT i.indexrelid FROM pg_index i JOIN parts p ON p.relid = i.indrelid));
CREATE TEMP VIEW parent_locks AS
	SELECT string_agg(l.mode, ',') AS modes FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
	  AND l.relation = 'activity_monitor.activity'::regclass;

-- Locks first, while this transaction has touched no partition.  Each
-- measure in a savepoint rolled back after it (which releases what it took).
SAVEPOINT measure;
SELECT count(*) AS fn_rows FROM activity_monitor.account_timeline('acct1') \gset
SELECT (SELECT n FROM part_locks) AS fn_locks, (SELECT modes FROM parent_locks) AS fn_parent \gset
ROLLBACK TO SAVEPOINT measure;
SAVEPOINT measure;
SELECT count(*) AS absent_rows FROM activity_monitor.account_timeline('nobody', NULL) \gset
SELECT (SELECT n FROM part_locks) AS absent_locks \gset
ROLLBACK TO SAVEPOINT measure;
SAVEPOINT measure;
SELECT count(*) AS view_rows FROM (SELECT * FROM activity_monitor.timeline WHERE subject_id = 'acct1'
	ORDER BY occurred_at DESC, id DESC LIMIT 50) v \gset
SELECT (SELECT n FROM part_locks) AS view_locks \gset
ROLLBACK TO SAVEPOINT measure;
SELECT count(*)::int AS nparts FROM parts \gset

SELECT cmp_ok(:nparts, '>=', 60, 'the history has at least 60 partitions (59 days and the default)');
SELECT is(:fn_rows::int, 50, 'account_timeline(subject): 50 rows by default');
SELECT is(:fn_locks, 0, 'after account_timeline(): no lock on any partition or partition index');
SELECT is(:'fn_parent'::text, 'AccessShareLock',
	'after account_timeline(): ACCESS SHARE on activity, until the end of the transaction');
SELECT is(:absent_rows::int, 0, 'an absent account: no rows');
SELECT is(:absent_locks, 0, 'an absent account, every partition read: no lock on any of them');
SELECT is(:view_rows::int, 50, 'the view''s latest 50');
SELECT is(:view_locks, 6 * :nparts, 'the view''s latest 50 hold 6 locks per partition (the table and its 5 indexes)');
SELECT diag(format('%s partitions: the view''s latest 50 hold %s locks on partitions and their indexes, account_timeline() %s',
				   :nparts, :view_locks, :fn_locks));

-- ---------------------------------------------------------------------------
-- The declaration
-- ---------------------------------------------------------------------------
SELECT is(pg_get_function_result('activity_monitor.account_timeline(text, int, timestamptz, timestamptz)'::regprocedure),
	'SETOF activity_monitor.timeline', 'returns SETOF activity_monitor.timeline (the view''s columns, in order)');
SELECT is(pg_get_function_arguments('activity_monitor.account_timeline(text, int, timestamptz, timestamptz)'::regprocedure),
	'subject text, lim integer DEFAULT 50, before timestamp with time zone DEFAULT NULL::timestamp with time zone, since timestamp with time zone DEFAULT NULL::timestamp with time zone',
	'arguments subject, lim (50), before, since (NULL)');
SELECT ok(NOT p.prosecdef AND NOT p.proisstrict AND p.provolatile = 's', 'not SECURITY DEFINER, not STRICT, STABLE')
FROM pg_proc p WHERE p.oid = 'activity_monitor.account_timeline(text, int, timestamptz, timestamptz)'::regprocedure;

-- ---------------------------------------------------------------------------
-- The same rows as the view, in the same order
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE cases AS
	SELECT s, l, b, si
	FROM unnest('{acct0,acct1,acct3,acct_rare,acct_tie,acct_default,nobody}'::text[]) s,
		 unnest('{0,1,3,13,50,NULL}'::int[]) l,
		 unnest(ARRAY[NULL, date_trunc('day', now()) - interval '5 days' + interval '10 hours',
					  date_trunc('day', now()) - interval '5 days' + interval '10 hours 1 microsecond',
					  now() - interval '20 days', now() - interval '55 days', now() + interval '60 days']::timestamptz[]) b,
		 unnest(ARRAY[NULL, date_trunc('day', now()) - interval '5 days' + interval '10 hours',
					  now() - interval '30 days', now() + interval '10 days']::timestamptz[]) si;
CREATE TEMP VIEW compared AS
	SELECT c.*,
		   (SELECT array_agg(t::text) FROM activity_monitor.account_timeline(c.s, c.l, c.b, c.si) t) AS fn,
		   (SELECT array_agg(t::text) FROM (SELECT * FROM activity_monitor.timeline
											WHERE subject_id = c.s AND (c.b IS NULL OR occurred_at < c.b)
											  AND (c.si IS NULL OR occurred_at >= c.si)
											ORDER BY occurred_at DESC, id DESC LIMIT c.l) t) AS v
	FROM cases c;
CREATE TEMP TABLE result AS SELECT * FROM compared;
SELECT is_empty($$SELECT s, l, b, si FROM result WHERE fn IS DISTINCT FROM v$$,
	'1008 calls (7 accounts x lim 0, 1, 3, 13, 50, NULL x 6 before x 4 since): the view''s rows in its order');
SELECT cmp_ok((SELECT sum(cardinality(fn))::int FROM result), '>', 10000, 'and they return rows');

SELECT results_eq($$SELECT id FROM activity_monitor.account_timeline('acct_tie', 15)$$,
	$$SELECT id FROM activity_monitor.timeline WHERE subject_id = 'acct_tie' ORDER BY occurred_at DESC, id DESC LIMIT 15$$,
	'ties on occurred_at: by id, newest first');
SELECT results_eq($$SELECT id FROM activity_monitor.account_timeline('acct_tie', 10) OFFSET 3$$,
	$$SELECT 1000000::bigint + g FROM generate_series(11, 5, -1) g$$,
	'ties across the limit: the 7 highest ids of the 12 tied rows');
SELECT results_eq($$SELECT id FROM activity_monitor.account_timeline('acct_tie', NULL, since => date_trunc('day', now()) - interval '90 days') OFFSET 15$$,
	$$SELECT 1000100::bigint + g FROM generate_series(4, 0, -1) g$$,
	'ties in activity_default: by id');
SELECT is((SELECT count(*)::int FROM activity_monitor.account_timeline('acct0', NULL)),
		  (SELECT count(*)::int FROM activity_monitor.timeline WHERE subject_id = 'acct0'),
	'lim NULL: every row of the account');
SELECT is_empty($$SELECT * FROM activity_monitor.account_timeline('acct0', 0)$$, 'lim 0: no rows');
SELECT is_empty($$SELECT * FROM activity_monitor.account_timeline(NULL)$$, 'subject NULL: no rows');
SELECT results_eq($$SELECT occurred_at::date - now()::date FROM activity_monitor.account_timeline('acct_default', NULL)$$,
	$$VALUES (40), (-65), (-70)$$, 'an account only in activity_default');
SELECT results_eq($$SELECT occurred_at::date - now()::date FROM activity_monitor.account_timeline('acct_rare', 2, before => now() - interval '1 day')$$,
	$$VALUES (-40), (-100)$$, 'before: a dated partition, then activity_default');
SELECT is((SELECT length(new_values->>'blob') FROM activity_monitor.account_timeline('acct1', NULL, before => now(), since => now() - interval '25 hours') WHERE new_values ? 'blob'),
	32000, 'a value stored out of line is returned whole');

-- A day's partition has an index on subject_id alone (every row of the
-- account read, then sorted); one with (subject_id, occurred_at) is read
-- newest first and stopped early (merged partitions have it), backward, or
-- forward when ordered occurred_at DESC; one without any is read whole.  A
-- quarter of the partitions each way.
-- (In a savepoint rolled back after: the count is asserted after it.)
SAVEPOINT fallback;
DO $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN SELECT i.indexrelid::regclass AS idx, i.indrelid::regclass AS tbl
			 FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid
			 WHERE h.inhparent = 'activity_monitor.activity'::regclass
			   AND pg_get_indexdef(i.indexrelid) LIKE '%(subject_id)'
			 ORDER BY i.indrelid::regclass::text
	LOOP
		n := n + 1;
		CONTINUE WHEN n % 4 = 0;
		EXECUTE format('DROP INDEX %s', r.idx);
		IF n % 4 = 1 THEN
			EXECUTE format('CREATE INDEX ON %s (subject_id, occurred_at DESC)', r.tbl);
		ELSIF n % 4 = 3 THEN
			EXECUTE format('CREATE INDEX ON %s (subject_id, occurred_at)', r.tbl);
		END IF;
	END LOOP;
END
$$;
SELECT count(*) AS fallback_bad FROM compared WHERE fn IS DISTINCT FROM v \gset
SELECT count(*) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%(subject_id, occurred_at DESC)') AS fallback_desc,
	   count(*) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%(subject_id, occurred_at)') AS fallback_asc,
	   count(*) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%(subject_id)') AS fallback_alone
	FROM pg_index i JOIN parts p ON p.relid = i.indrelid \gset
ROLLBACK TO SAVEPOINT fallback;
SELECT ok(:fallback_desc::int >= 15 AND :fallback_asc::int >= 15 AND :fallback_alone::int >= 15,
	'a quarter of the partitions each: (subject_id, occurred_at DESC), (subject_id, occurred_at), subject_id alone, none');
SELECT is(:fallback_bad::int, 0,
	'whatever index leads by subject_id, or none: the same rows');

-- A busy account read with no limit under a small work_mem: the rows are
-- sorted in a tuplesort that spills to temporary files (20,000 rows, a few
-- MB, against 64 kB), not gathered in the backend's memory; a limit too
-- large for a bounded sort within work_mem spills too.  (In a savepoint
-- rolled back after, SET LOCAL with it.)
SAVEPOINT big;
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, subject_id, row_key, new_values)
SELECT date_trunc('day', now()) + interval '1 hour' - make_interval(mins => (g / 2) * 8),
	   'profile', 'update', 'public.accounts', 'user', 'acct_big', g::text,
	   jsonb_build_object('note', repeat(md5(g::text), 4))
FROM generate_series(1, 20000) g;
SET LOCAL work_mem = '64kB';
SELECT (SELECT array_agg(t::text) FROM activity_monitor.account_timeline('acct_big', NULL) t)
	   IS NOT DISTINCT FROM
	   (SELECT array_agg(t::text) FROM (SELECT * FROM activity_monitor.timeline WHERE subject_id = 'acct_big'
										ORDER BY occurred_at DESC, id DESC) t) AS big_all_same,
	   (SELECT count(*) FROM activity_monitor.account_timeline('acct_big', NULL)) AS big_all_rows,
	   (SELECT array_agg(t::text) FROM activity_monitor.account_timeline('acct_big', 15000, before => now() - interval '1 day') t)
	   IS NOT DISTINCT FROM
	   (SELECT array_agg(t::text) FROM (SELECT * FROM activity_monitor.timeline WHERE subject_id = 'acct_big'
										  AND occurred_at < now() - interval '1 day'
										ORDER BY occurred_at DESC, id DESC LIMIT 15000) t) AS big_lim_same \gset
ROLLBACK TO SAVEPOINT big;
SELECT ok(:'big_all_same'::bool AND :big_all_rows = 20000,
	'lim NULL, 20,000 rows, work_mem 64kB: the view''s rows in its order (the sort spills)');
SELECT ok(:'big_lim_same'::bool,
	'lim 15000, work_mem 64kB (too small for a bounded sort): the view''s rows in its order');

-- ---------------------------------------------------------------------------
-- Bad input
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM activity_monitor.account_timeline('acct1', -1)$$,
	'22023', 'lim must not be negative', 'lim < 0: 22023');

-- ---------------------------------------------------------------------------
-- Privileges: what the view gives, to whom the view gives it
-- ---------------------------------------------------------------------------
CREATE ROLE am_tl_nobody NOLOGIN;
CREATE ROLE am_tl_reader NOLOGIN IN ROLE activity_monitor_reader;
CREATE ROLE am_tl_exec NOLOGIN;
GRANT EXECUTE ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz) TO am_tl_exec;
GRANT USAGE ON SCHEMA activity_monitor TO am_tl_exec;
CREATE ROLE am_tl_view NOLOGIN;
GRANT EXECUTE ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz) TO am_tl_view;
GRANT USAGE ON SCHEMA activity_monitor TO am_tl_view;
GRANT SELECT ON activity_monitor.timeline TO am_tl_view;

SELECT ok(NOT has_function_privilege('public', 'activity_monitor.account_timeline(text, int, timestamptz, timestamptz)', 'EXECUTE'),
	'PUBLIC cannot execute account_timeline()');
SELECT ok(has_function_privilege('activity_monitor_reader', 'activity_monitor.account_timeline(text, int, timestamptz, timestamptz)', 'EXECUTE'),
	'activity_monitor_reader can');

SET ROLE am_tl_nobody;
SELECT throws_ok($$SELECT * FROM activity_monitor.account_timeline('acct1')$$,
	'42501', NULL, 'a plain role: 42501');
RESET ROLE;
SET ROLE am_tl_exec;
SELECT throws_ok($$SELECT * FROM activity_monitor.account_timeline('acct1')$$,
	'42501', 'permission denied for view timeline',
	'EXECUTE without SELECT on the view: 42501');
RESET ROLE;
SET ROLE am_tl_view;
SELECT is((SELECT count(*)::int FROM activity_monitor.account_timeline('acct1')), 50,
	'EXECUTE and SELECT on the view (not on activity): the rows');
RESET ROLE;
SET ROLE am_tl_reader;
SELECT results_eq($$SELECT id FROM activity_monitor.account_timeline('acct2', 20, before => now() - interval '3 days')$$,
	$$SELECT id FROM activity_monitor.timeline WHERE subject_id = 'acct2' AND occurred_at < now() - interval '3 days'
	  ORDER BY occurred_at DESC, id DESC LIMIT 20$$,
	'reader: the view''s rows');
RESET ROLE;

-- Row-level security on activity that applies to the view's owner: the
-- view filters, the function refuses (it cannot filter).
CREATE ROLE am_tl_view_owner NOLOGIN;
GRANT USAGE ON SCHEMA activity_monitor TO am_tl_view_owner;
GRANT SELECT ON activity_monitor.activity TO am_tl_view_owner;
ALTER VIEW activity_monitor.timeline OWNER TO am_tl_view_owner;
ALTER TABLE activity_monitor.activity ENABLE ROW LEVEL SECURITY;
CREATE POLICY am_tl_hide ON activity_monitor.activity FOR SELECT USING (subject_id <> 'acct1');
SET ROLE am_tl_reader;
SELECT is((SELECT count(*)::int FROM activity_monitor.timeline WHERE subject_id = 'acct1'), 0,
	'row-level security: the view hides acct1');
SELECT throws_ok($$SELECT * FROM activity_monitor.account_timeline('acct1')$$,
	'0A000', 'account_timeline() cannot apply the row-level security of activity_monitor.activity',
	'row-level security applying to the view: refused');
RESET ROLE;
ALTER TABLE activity_monitor.activity DISABLE ROW LEVEL SECURITY;
SET ROLE am_tl_reader;
SELECT is((SELECT count(*)::int FROM activity_monitor.account_timeline('acct1')), 50,
	'row-level security off again: the rows');
RESET ROLE;
REVOKE SELECT ON activity_monitor.activity FROM am_tl_view_owner;
SET ROLE am_tl_reader;
SELECT throws_ok($$SELECT * FROM activity_monitor.account_timeline('acct1')$$,
	'42501', 'permission denied for table activity',
	'the view''s owner cannot read activity: 42501, as the view');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
