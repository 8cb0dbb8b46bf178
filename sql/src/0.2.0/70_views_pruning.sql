/*
 * activity_monitor 0.2.0: years of history without locking every partition
 * (issue 16).
 *
 * The dashboard and operational_activity views bounded their reads of the
 * activity table with now() - interval, which cannot prune partitions at
 * plan time: the planner planned and locked every partition and index
 * (9,174 relation locks for the dashboard at 1,832 daily partitions).  They
 * now read through _dashboard() and _operational_activity(), which run the
 * same queries with constant bounds (same columns, same values).
 * _partitions() is read from the partition descriptor in C instead of
 * parsing every partition's bound, and _maintain() lists the partitions
 * once per run instead of once per candidate partition.
 */

/*
 * The dated partitions of the activity table and their bounds, by lower
 * bound, the default partition left out (src/partitions.c: read from the
 * partition descriptor, not by parsing every bound).  Locks the activity
 * table ACCESS SHARE until the end of the transaction.
 */
CREATE OR REPLACE FUNCTION activity_monitor._partitions(OUT part regclass, OUT lower timestamptz,
														OUT upper timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'activity_monitor_partitions'
LANGUAGE C STABLE;

/*
 * The partition maintenance the worker runs and maintain() exposes: create
 * every partition missing from the one holding "now" to premake intervals
 * ahead, and retire (drop or detach) those wholly older than the retention,
 * never than activity_monitor.min_retention (a retention configured below
 * it, as 0.1.0 allowed, counts as the floor).  Each DDL is its own
 * subtransaction under a short lock_timeout (2 s to create, 100 ms to retire,
 * which blocks writers while it waits): one that cannot get its lock is
 * skipped with a warning and retried next time.
 */
CREATE OR REPLACE FUNCTION activity_monitor._maintain("now" timestamptz DEFAULT pg_catalog.now(),
													  OUT created int, OUT retired int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
DECLARE
	cfg		activity_monitor.config;
	keep	interval;
	step	double precision;
	first	timestamptz;
	lower	timestamptz;
	p		record;
BEGIN
	IF "now" IS NULL THEN
		RAISE EXCEPTION 'argument "now" must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	created := 0;
	retired := 0;
	-- One maintenance at a time (the worker's and an admin's maintain()).  A
	-- table lock, not an advisory lock, which any role could take and hold.
	LOCK TABLE activity_monitor.config IN SHARE UPDATE EXCLUSIVE MODE;
	SELECT * INTO cfg FROM activity_monitor.config;
	IF NOT FOUND THEN
		-- no configuration row: a dump being restored (it brings its own row
		-- and its own partitions; CREATE EXTENSION inserts none then)
		RETURN;
	END IF;
	step := extract(epoch FROM cfg.partition_interval);
	-- Ranges are aligned on whole intervals since the epoch (midnight UTC for days).
	first := pg_catalog.to_timestamp(floor(extract(epoch FROM "now") / step) * step);
	-- The partitions are listed once (not once per candidate): only the
	-- missing ones go to _create_partition().
	FOR lower IN SELECT c.lower
				 FROM pg_catalog.generate_series(0, cfg.premake) i
				 CROSS JOIN LATERAL (SELECT first + i * cfg.partition_interval AS lower) c
				 WHERE NOT EXISTS (SELECT 1 FROM activity_monitor._partitions() q
								   WHERE coalesce(q.lower, '-infinity') < c.lower + cfg.partition_interval
									 AND coalesce(q.upper, 'infinity') > c.lower)
				 ORDER BY c.lower
	LOOP
		BEGIN
			IF activity_monitor._create_partition(lower, lower + cfg.partition_interval) THEN
				created := created + 1;
			END IF;
		EXCEPTION WHEN lock_not_available THEN
			RAISE WARNING 'activity_monitor: could not create the partition from % within lock_timeout', lower
				USING HINT = 'It is retried on the next maintenance run.';
		END;
	END LOOP;

	IF cfg.retention IS NOT NULL THEN
		keep := GREATEST(cfg.retention, activity_monitor._min_retention());
		-- Retiring takes ACCESS EXCLUSIVE on the activity table: waiting for
		-- it behind a reader's long query would queue every captured write
		-- behind the wait.  Wait briefly; a partition not retired now is
		-- retired on a later run.
		PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
		FOR p IN SELECT q.part FROM activity_monitor._partitions() q
				 WHERE q.upper <= _maintain."now" - keep ORDER BY q.lower
		LOOP
			BEGIN
				-- the partition first, without waiting: waiting for it while
				-- holding the parent would hold up every captured write
				EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', p.part);
				IF cfg.retention_mode = 'detach' THEN
					EXECUTE pg_catalog.format('ALTER TABLE activity_monitor.activity DETACH PARTITION %s', p.part);
				ELSE
					EXECUTE pg_catalog.format('DROP TABLE %s', p.part);
				END IF;
				retired := retired + 1;
			EXCEPTION WHEN lock_not_available THEN
				RAISE WARNING 'activity_monitor: could not % partition % within lock_timeout',
					cfg.retention_mode, p.part
					USING HINT = 'It is retried on the next maintenance run.';
			END;
		END LOOP;
	END IF;
END
$fn$;

/*
 * A view whose time filter is now() - interval cannot prune partitions at
 * plan time (now() is only stable): the planner plans, and locks, every
 * partition of the activity table and each of its indexes (issue 16: 9,174
 * relation locks for the dashboard at 1,832 daily partitions).  These
 * functions compute now() once and run the view's query as dynamic SQL,
 * planned for this call alone with the bounds as constants (EXECUTE ...
 * USING: the parameters are folded into the plan), so that only the
 * partitions of the range are planned.  Their views select from them with
 * the same columns and values.  SECURITY DEFINER, as a view reads with its
 * owner's rights; executable by the roles that may read the view.
 */

/* The dashboard view's one row (see activity_monitor.dashboard). */
-- The dashboard's counts as the last rollup left them (one row): computed
-- once per rollup from the day's minute rows, read by every dashboard
-- query (no row: the dashboard computes them itself).  Derived data, not
-- dumped: the first rollup after a restore writes it.
CREATE TABLE activity_monitor.dashboard_counts (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	computed_at			timestamptz NOT NULL,
	events				jsonb NOT NULL,
	active_sessions		numeric NOT NULL,
	busiest_employees	jsonb NOT NULL
);

/*
 * The dashboard's counts at t from the minute rows of the day before it:
 * per kind and actor type, events of the last 5 minutes, hour and day;
 * sessions started minus ended; the day's five busiest employees.  The
 * minute rows are read once, grouped both by kind and actor type and by
 * employee.
 */
CREATE FUNCTION activity_monitor._dashboard_counts(t timestamptz, OUT events jsonb,
												   OUT active_sessions numeric, OUT busiest_employees jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	WITH g AS MATERIALIZED (
		SELECT m.kind, m.actor_type, m.employee_id, GROUPING(m.employee_id) = 1 AS by_kind,
			   coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= t - interval '5 minutes'), 0) AS last_5m,
			   coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= t - interval '1 hour'), 0) AS last_hour,
			   pg_catalog.sum(m.events) AS last_day,
			   pg_catalog.sum(m.sessions_started - m.sessions_ended) AS sessions
		FROM activity_monitor.activity_minute m
		WHERE m.minute >= t - interval '1 day'
		GROUP BY GROUPING SETS ((m.kind, m.actor_type), (m.employee_id))
	)
	SELECT (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'kind', g.kind, 'actor_type', g.actor_type, 'last_5m', g.last_5m,
					'last_hour', g.last_hour, 'last_day', g.last_day)
					ORDER BY g.last_day DESC, g.kind, g.actor_type), '[]')
			FROM g WHERE g.by_kind),
		   (SELECT coalesce(pg_catalog.sum(g.sessions), 0) FROM g WHERE g.by_kind),
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('employee_id', b.employee_id,
																			   'actions', b.last_day)
												 ORDER BY b.last_day DESC, b.employee_id), '[]')
			FROM (SELECT g.employee_id, g.last_day FROM g
				  WHERE NOT g.by_kind AND g.employee_id <> ''
				  ORDER BY g.last_day DESC, g.employee_id LIMIT 5) b)
$fn$;

/*
 * The dashboard view's row: the counts the last rollup computed (up to a
 * naptime old, as the minute rows they come from; computed here when no
 * rollup has run), the open alerts, and the latest critical changes read
 * live from the partitions of the last day (EXECUTE with the bounds as
 * parameters: pruned at plan time).
 */
CREATE FUNCTION activity_monitor._dashboard(OUT generated_at timestamptz, OUT events jsonb,
											OUT active_sessions numeric, OUT open_alerts jsonb,
											OUT busiest_employees jsonb, OUT latest_critical jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t	timestamptz := pg_catalog.now();
BEGIN
	generated_at := t;
	SELECT c.events, c.active_sessions, c.busiest_employees INTO events, active_sessions, busiest_employees
	FROM activity_monitor.dashboard_counts c;
	IF NOT FOUND THEN
		SELECT d.events, d.active_sessions, d.busiest_employees INTO events, active_sessions, busiest_employees
		FROM activity_monitor._dashboard_counts(t) d;
	END IF;
	EXECUTE $q$
	SELECT (SELECT pg_catalog.jsonb_build_object(
					'critical', pg_catalog.count(*) FILTER (WHERE a.severity = 'critical'),
					'warning', pg_catalog.count(*) FILTER (WHERE a.severity = 'warning'),
					'info', pg_catalog.count(*) FILTER (WHERE a.severity = 'info'))
			FROM activity_monitor.alerts a WHERE a.status <> 'resolved'),
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c) ORDER BY c.occurred_at DESC, c.id DESC), '[]')
			FROM (SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
						 a.actor_type, a.actor_id, a.status_from, a.status_to
				  FROM activity_monitor.activity a
				  WHERE a.critical AND a.occurred_at >= $1
				  ORDER BY a.occurred_at DESC, a.id DESC LIMIT 10) c)
	$q$
	INTO open_alerts, latest_critical
	USING t - interval '1 day';
END
$fn$;

/* The operational_activity view's rows: the last 24 hours by minute, kind and actor type. */
CREATE FUNCTION activity_monitor._operational_activity()
RETURNS TABLE (minute timestamptz, kind text, actor_type text, events bigint, critical_events bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	RETURN QUERY EXECUTE $q$
	SELECT pg_catalog.date_trunc('minute', a.occurred_at), a.kind, a.actor_type,
		   pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE a.critical)
	FROM activity_monitor.activity a
	WHERE a.occurred_at >= $1
	GROUP BY 1, 2, 3
	ORDER BY 1 DESC, 2, 3
	$q$
	USING pg_catalog.now() - interval '24 hours';
END
$fn$;

/*
 * Events per minute, kind and actor type over the last 24 hours.  Read
 * through _operational_activity(), which plans only the partitions of the
 * last 24 hours (a now() - interval bound in the view would plan them all).
 */
CREATE OR REPLACE VIEW activity_monitor.operational_activity AS
	SELECT o.minute, o.kind, o.actor_type, o.events, o.critical_events
	FROM activity_monitor._operational_activity() o
	ORDER BY 1 DESC, 2, 3;

/*
 * The one query an activity dashboard needs, one row: events in the last 5
 * minutes, hour and day by kind and actor type, active sessions (started
 * minus ended in the last day), open alerts by severity, the busiest
 * employees of the day and the latest critical changes.  Counts come from
 * activity_minute (up to one naptime behind); the critical changes are read
 * live, newest first through the partitions' occurred_at index, from the
 * partitions of the last day only: _dashboard() runs the query with its
 * bounds as constants.
 */
CREATE OR REPLACE VIEW activity_monitor.dashboard AS
	SELECT d.generated_at, d.events, d.active_sessions, d.open_alerts, d.busiest_employees,
		   d.latest_critical
	FROM activity_monitor._dashboard() d;

REVOKE ALL ON FUNCTION activity_monitor._dashboard(), activity_monitor._operational_activity() FROM PUBLIC;
REVOKE ALL ON FUNCTION activity_monitor._dashboard_counts(timestamptz) FROM PUBLIC;
GRANT SELECT ON activity_monitor.dashboard_counts TO activity_monitor_reader;
GRANT EXECUTE ON FUNCTION activity_monitor._dashboard(), activity_monitor._operational_activity()
	TO activity_monitor_reader;
