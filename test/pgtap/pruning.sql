-- Views over a time range plan only the partitions of that range (issue 16,
-- "years of history"): the dashboard and operational_activity read through
-- functions that run their query with constant bounds, so the planner prunes
-- the activity table's partitions at plan time and locks only those of the
-- last day (with their indexes), the premade ones and the default; with a
-- now() - interval bound it planned and locked every partition and index.
-- Same columns, same values as the 0.1.0 definitions (inline below), for the
-- same roles.
BEGIN;
SELECT plan(21);
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
-- The tables the worker's duties lock first, so that it waits for this
-- transaction rather than deadlock with it: maintain() below holds ACCESS
-- EXCLUSIVE on activity_default (it attaches partitions) until the end, and
-- a rollup reading the activity would hold the parent that CREATE TABLE ...
-- PARTITION OF needs.
LOCK activity_monitor.alert_state, activity_monitor.config, activity_monitor.received, activity_monitor.activity_minute;

-- ---------------------------------------------------------------------------
-- 64 past days of daily partitions: maintain(now => a day) makes that day's
-- and 7 ahead.  Before any captured write (ATTACH PARTITION fails in a
-- transaction that has captured one).
-- ---------------------------------------------------------------------------
-- (this test reads a daily layout: premake 7 as it was written for, and no
-- merging)
SELECT activity_monitor.configure(premake => 7, merge_interval => '0');
SELECT activity_monitor.maintain(now() - d * interval '1 day') FROM generate_series(64, 8, -8) d;
SELECT cmp_ok((SELECT count(*)::int FROM activity_monitor._partitions() WHERE upper <= now() - interval '1 day'),
	'>=', 60, '60 and more daily partitions wholly older than a day');

-- The activity table's relations: every partition, the default, the parent,
-- and their indexes (from the catalog: pg_partition_tree() would lock them).
CREATE TEMP VIEW activity_rels AS
	WITH t AS (SELECT 'activity_monitor.activity'::regclass::oid AS relid
			   UNION ALL
			   SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = 'activity_monitor.activity'::regclass)
	SELECT t.relid AS rel, t.relid AS part FROM t
	UNION ALL
	SELECT i.indexrelid, t.relid FROM t JOIN pg_index i ON i.indrelid = t.relid;
-- What a read may lock: the parent, and 6 relations (a partition and its 5
-- indexes) per partition of the last day, premade partition and the default.
CREATE TEMP TABLE allowed AS
	SELECT 2 + 6 * ((SELECT count(*) FROM activity_monitor._partitions() WHERE upper > now() - interval '1 day') + 1)
		AS locks;
-- Relations of partitions wholly older than the last day.
CREATE TEMP TABLE old_rels AS
	SELECT r.rel FROM activity_rels r JOIN activity_monitor._partitions() p ON p.part = r.part
	WHERE p.upper <= now() - interval '1 day';
-- The relation locks a read took (the setup above takes no ACCESS SHARE on
-- dated partitions: it creates them).
CREATE FUNCTION pg_temp.read_locks() RETURNS int LANGUAGE sql AS $$
	SELECT count(*)::int FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.mode = 'AccessShareLock'
	  AND l.relation IN (SELECT rel FROM activity_rels)
$$;
CREATE FUNCTION pg_temp.old_locks() RETURNS int LANGUAGE sql AS $$
	SELECT count(*)::int FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.mode = 'AccessShareLock'
	  AND l.relation IN (SELECT rel FROM old_rels)
$$;

-- ---------------------------------------------------------------------------
-- Data: events over the last days and ahead, the minute rollup, alerts
-- ---------------------------------------------------------------------------
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, row_key, subject_id,
	actor_type, actor_id, status_from, status_to, critical)
SELECT now() - h * interval '1 hour', (ARRAY['payment', 'login', 'profile'])[1 + k % 3], 'update',
	'public.t' || k % 4, h::text, 'acct-' || k % 7, (ARRAY['user', 'employee', 'service'])[1 + k % 3],
	'id-' || k % 5, 'a', 'b', k % 2 = 0
FROM generate_series(-50, 24 * 40, 1) h, LATERAL (SELECT h + 60 AS k) x;
-- exactly a day and 24 hours ago, far ahead (the default partition)
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type, critical)
VALUES (now() - interval '1 day', 'payment', 'delete', 'public.edge', 'user', true),
	   (now() - interval '1 day' - interval '1 microsecond', 'payment', 'delete', 'public.edge', 'user', true),
	   (now() + interval '60 days', 'system', 'insert', 'public.ahead', 'system', true);
INSERT INTO activity_monitor.activity_minute
SELECT date_trunc('minute', now()) - m * interval '1 minute', (ARRAY['payment', 'login'])[1 + m % 2],
	(ARRAY['user', 'employee'])[1 + m % 2], CASE WHEN m % 2 = 1 THEN 'emp-' || m % 9 ELSE '' END,
	m % 13 + 1, m % 3, m % 4, m % 5
FROM generate_series(0, 2 * 24 * 60, 7) m;
-- (the counts a rollup stored are of the minute rows before these: without
-- them the dashboard computes its counts from the rows, as 0.1.0's did;
-- pgtap/dashboard checks that the stored counts are the same)
DELETE FROM activity_monitor.dashboard_counts;
INSERT INTO activity_monitor.alerts (rule_name, severity, channel, event_id, event_ids, occurred_at, kind, action, table_name, status)
VALUES ('r', 'critical', 'c', 1, '{1}', now(), 'login', 'insert', 'public.sessions', 'open'),
	   ('r', 'warning', 'c', 1, '{1}', now(), 'login', 'insert', 'public.sessions', 'acknowledged'),
	   ('r', 'info', 'c', 1, '{1}', now(), 'login', 'insert', 'public.sessions', 'open'),
	   ('r', 'critical', 'c', 1, '{1}', now(), 'login', 'insert', 'public.sessions', 'resolved');
SELECT is(pg_temp.old_locks(), 0, 'setup: no ACCESS SHARE lock on the old partitions yet');

-- ---------------------------------------------------------------------------
-- Locks: each view read alone in a subtransaction (rolled back, which
-- releases its locks), counted into psql variables
-- ---------------------------------------------------------------------------
SAVEPOINT dash;
SELECT * FROM activity_monitor.dashboard \g /dev/null
SELECT pg_temp.read_locks() AS dash_locks, pg_temp.old_locks() AS dash_old \gset
ROLLBACK TO SAVEPOINT dash;
SAVEPOINT ops;
SELECT * FROM activity_monitor.operational_activity \g /dev/null
SELECT pg_temp.read_locks() AS ops_locks, pg_temp.old_locks() AS ops_old \gset
ROLLBACK TO SAVEPOINT ops;

-- a rollup round (by hand, as the worker's): its partitions only, those
-- of the last two days at most (its bound was computed in the query: every
-- round planned, locked and JIT-compiled every partition, minutes at 1,848)
CREATE TEMP TABLE old3_rels AS
	SELECT r.rel FROM activity_rels r JOIN activity_monitor._partitions() p ON p.part = r.part
	WHERE p.upper <= now() - interval '3 days';
SAVEPOINT roll;
SELECT activity_monitor._rollup() \g /dev/null
SELECT count(*) AS roll_old FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.mode = 'AccessShareLock'
	  AND l.relation IN (SELECT rel FROM old3_rels) \gset
ROLLBACK TO SAVEPOINT roll;

SELECT cmp_ok(:dash_locks, '<=', (SELECT locks::int + 4 FROM allowed),
	'dashboard: locks only the partitions of the last day, premade and default, with their indexes (0.1.0: 5 per partition)');
SELECT is(:dash_old, 0, 'dashboard: no lock on a partition older than a day, nor on its indexes');
SELECT is(:roll_old::int, 0, 'rollup: no lock on a partition older than its two days, nor on its indexes');
SELECT cmp_ok(:ops_locks, '<=', (SELECT locks::int + 4 FROM allowed),
	'operational_activity: locks only the partitions of the last 24 hours, premade and default, with their indexes');
SELECT is(:ops_old, 0, 'operational_activity: no lock on a partition older than a day, nor on its indexes');

-- ---------------------------------------------------------------------------
-- Same columns and values as the 0.1.0 definitions
-- ---------------------------------------------------------------------------
CREATE TEMP VIEW old_operational_activity AS
	SELECT pg_catalog.date_trunc('minute', a.occurred_at) AS minute, a.kind, a.actor_type,
		   pg_catalog.count(*) AS events,
		   pg_catalog.count(*) FILTER (WHERE a.critical) AS critical_events
	FROM activity_monitor.activity a
	WHERE a.occurred_at >= pg_catalog.now() - interval '24 hours'
	GROUP BY 1, 2, 3
	ORDER BY 1 DESC, 2, 3;
CREATE TEMP VIEW old_dashboard AS
	SELECT pg_catalog.now() AS generated_at,
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(e) ORDER BY e.last_day DESC, e.kind, e.actor_type), '[]')
			FROM (SELECT m.kind, m.actor_type,
						 coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= pg_catalog.now() - interval '5 minutes'), 0) AS last_5m,
						 coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= pg_catalog.now() - interval '1 hour'), 0) AS last_hour,
						 pg_catalog.sum(m.events) AS last_day
				  FROM activity_monitor.activity_minute m
				  WHERE m.minute >= pg_catalog.now() - interval '1 day'
				  GROUP BY m.kind, m.actor_type) e) AS events,
		   (SELECT coalesce(pg_catalog.sum(m.sessions_started - m.sessions_ended), 0)
			FROM activity_monitor.activity_minute m
			WHERE m.minute >= pg_catalog.now() - interval '1 day') AS active_sessions,
		   (SELECT pg_catalog.jsonb_build_object(
					'critical', pg_catalog.count(*) FILTER (WHERE a.severity = 'critical'),
					'warning', pg_catalog.count(*) FILTER (WHERE a.severity = 'warning'),
					'info', pg_catalog.count(*) FILTER (WHERE a.severity = 'info'))
			FROM activity_monitor.alerts a WHERE a.status <> 'resolved') AS open_alerts,
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(b) ORDER BY b.actions DESC, b.employee_id), '[]')
			FROM (SELECT m.employee_id, pg_catalog.sum(m.events) AS actions
				  FROM activity_monitor.activity_minute m
				  WHERE m.employee_id <> '' AND m.minute >= pg_catalog.now() - interval '1 day'
				  GROUP BY m.employee_id
				  ORDER BY 2 DESC, 1 LIMIT 5) b) AS busiest_employees,
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c) ORDER BY c.occurred_at DESC, c.id DESC), '[]')
			FROM (SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
						 a.actor_type, a.actor_id, a.status_from, a.status_to
				  FROM activity_monitor.activity a
				  WHERE a.critical AND a.occurred_at >= pg_catalog.now() - interval '1 day'
				  ORDER BY a.occurred_at DESC, a.id DESC LIMIT 10) c) AS latest_critical;

CREATE FUNCTION pg_temp.columns(v regclass) RETURNS TABLE (name name, type regtype, coll oid)
LANGUAGE sql AS $$
	SELECT a.attname, a.atttypid::regtype, a.attcollation FROM pg_attribute a
	WHERE a.attrelid = v AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
$$;
SELECT results_eq($$SELECT * FROM pg_temp.columns('activity_monitor.dashboard')$$,
	$$SELECT * FROM pg_temp.columns('old_dashboard')$$,
	'dashboard: the same columns, names, types and order as before');
SELECT results_eq($$SELECT * FROM pg_temp.columns('activity_monitor.operational_activity')$$,
	$$SELECT * FROM pg_temp.columns('old_operational_activity')$$,
	'operational_activity: the same columns, names, types and order as before');

SELECT is((SELECT jsonb_array_length(latest_critical) FROM old_dashboard), 10,
	'the scenario has more critical changes in the last day than the dashboard shows');
SELECT is((SELECT to_jsonb(d) FROM activity_monitor.dashboard d), (SELECT to_jsonb(o) FROM old_dashboard o),
	'dashboard: the same row as the 0.1.0 definition');
SELECT results_eq($$SELECT * FROM activity_monitor.operational_activity$$,
	$$SELECT * FROM old_operational_activity$$,
	'operational_activity: the same rows in the same order as the 0.1.0 definition');
SELECT cmp_ok((SELECT count(*)::int FROM activity_monitor.operational_activity), '>', 20,
	'operational_activity: the scenario gives it rows to compare');

-- The bounds are the same instants whatever the session's zone and date style.
SET LOCAL TimeZone = 'America/New_York';
SET LOCAL DateStyle = 'SQL, DMY';
SELECT is((SELECT to_jsonb(d) FROM activity_monitor.dashboard d), (SELECT to_jsonb(o) FROM old_dashboard o),
	'dashboard: the same row in another time zone and date style');
SELECT results_eq($$SELECT * FROM activity_monitor.operational_activity$$,
	$$SELECT * FROM old_operational_activity$$,
	'operational_activity: the same rows in another time zone and date style');
SET LOCAL TimeZone = 'UTC';
SET LOCAL DateStyle TO DEFAULT;

-- ---------------------------------------------------------------------------
-- The same roles read them: a reader (through the view, with the view
-- owner's rights), and nobody else
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE expected_dashboard AS SELECT to_jsonb(o) AS j FROM old_dashboard o;
CREATE TEMP TABLE expected_ops AS SELECT * FROM old_operational_activity;
GRANT SELECT ON expected_dashboard, expected_ops TO PUBLIC;
CREATE ROLE am_tap_pruning_nobody NOLOGIN;

SET ROLE activity_monitor_reader;
SELECT is((SELECT to_jsonb(d) FROM activity_monitor.dashboard d), (SELECT j FROM expected_dashboard),
	'reader: reads the dashboard, the same row');
SELECT results_eq($$SELECT * FROM activity_monitor.operational_activity$$,
	$$SELECT * FROM expected_ops ORDER BY 1 DESC, 2, 3$$,
	'reader: reads operational_activity, the same rows');
RESET ROLE;

SET ROLE am_tap_pruning_nobody;
SELECT throws_ok($$SELECT * FROM activity_monitor.dashboard$$,
	'42501', 'permission denied for view dashboard',
	'a role that is not a reader cannot read the dashboard');
SELECT throws_ok($$SELECT * FROM activity_monitor.operational_activity$$,
	'42501', 'permission denied for view operational_activity',
	'a role that is not a reader cannot read operational_activity');
SELECT throws_ok($$SELECT * FROM activity_monitor._dashboard()$$,
	'42501', 'permission denied for function _dashboard',
	'nor call the function behind the dashboard');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- _partitions(), now read from the partition descriptor (src/partitions.c),
-- lists what 0.1.0's SQL parsed from every bound: also around a gap, from
-- MINVALUE (last, as a NULL lower bound sorts) and to MAXVALUE
-- ---------------------------------------------------------------------------
CREATE TABLE activity_monitor.x_min PARTITION OF activity_monitor.activity FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
CREATE TABLE activity_monitor.x_gap PARTITION OF activity_monitor.activity FOR VALUES FROM ('2001-01-01') TO ('2001-02-01');
CREATE TABLE activity_monitor.x_max PARTITION OF activity_monitor.activity FOR VALUES FROM ('2099-01-01') TO (MAXVALUE);
SELECT results_eq($$SELECT * FROM activity_monitor._partitions()$$,
	$$SELECT c.oid::regclass,
			 (regexp_match(b, 'FROM \(''([^'']*)''\)'))[1]::timestamptz AS lower,
			 (regexp_match(b, 'TO \(''([^'']*)''\)'))[1]::timestamptz AS upper
	  FROM pg_catalog.pg_inherits i
	  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
	  CROSS JOIN LATERAL pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS b
	  WHERE i.inhparent = 'activity_monitor.activity'::regclass AND b <> 'DEFAULT'
	  ORDER BY 2$$,
	'_partitions(): the partitions and bounds 0.1.0''s SQL version gave, in the same order');

SELECT * FROM finish();
ROLLBACK;
