/*
 * employee_actions() and recent_critical_changes(): the admin_actions and
 * critical_changes views' rows read as account_timeline() reads them
 * (src/timeline.c, one reader for the three), newest partition first,
 * without planning or keeping a lock per partition; the dashboard's latest
 * critical changes come from recent_critical_changes().
 */

CREATE FUNCTION activity_monitor.employee_actions(employee text, lim int DEFAULT 50,
												  before timestamptz DEFAULT NULL,
												  since timestamptz DEFAULT NULL)
RETURNS SETOF activity_monitor.admin_actions
AS 'MODULE_PATHNAME', 'activity_monitor_employee_actions'
LANGUAGE C STABLE CALLED ON NULL INPUT;
COMMENT ON FUNCTION activity_monitor.employee_actions(text, int, timestamptz, timestamptz) IS
	'an employee''s actions newest first, as the admin_actions view gives them, without a lock per partition';

CREATE FUNCTION activity_monitor.recent_critical_changes(lim int DEFAULT 50,
														 before timestamptz DEFAULT NULL,
														 since timestamptz DEFAULT NULL)
RETURNS SETOF activity_monitor.critical_changes
AS 'MODULE_PATHNAME', 'activity_monitor_recent_critical_changes'
LANGUAGE C STABLE CALLED ON NULL INPUT;
COMMENT ON FUNCTION activity_monitor.recent_critical_changes(int, timestamptz, timestamptz) IS
	'the latest critical changes, as the critical_changes view gives them, without a lock per partition';

REVOKE ALL ON FUNCTION activity_monitor.employee_actions(text, int, timestamptz, timestamptz),
	activity_monitor.recent_critical_changes(int, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.employee_actions(text, int, timestamptz, timestamptz),
	activity_monitor.recent_critical_changes(int, timestamptz, timestamptz) TO activity_monitor_reader;

/*
 * The dashboard view's row: the counts the last rollup computed (up to a
 * naptime old, as the minute rows they come from; computed here when no
 * rollup has run), the open alerts, and the latest critical changes of the
 * last day read live by recent_critical_changes() (newest partition first,
 * stopping at ten: with today in hourly partitions, the current hour or
 * two are read, not the day's thirty).
 */
CREATE OR REPLACE FUNCTION activity_monitor._dashboard(OUT generated_at timestamptz, OUT events jsonb,
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
	SELECT pg_catalog.jsonb_build_object(
			   'critical', pg_catalog.count(*) FILTER (WHERE a.severity = 'critical'),
			   'warning', pg_catalog.count(*) FILTER (WHERE a.severity = 'warning'),
			   'info', pg_catalog.count(*) FILTER (WHERE a.severity = 'info'))
	INTO open_alerts
	FROM activity_monitor.alerts a WHERE a.status <> 'resolved';
	SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c) ORDER BY c.occurred_at DESC, c.id DESC), '[]')
	INTO latest_critical
	FROM (SELECT r.id, r.occurred_at, r.kind, r.action, r.table_name, r.row_key, r.subject_id,
				 r.actor_type, r.actor_id, r.status_from, r.status_to
		  FROM activity_monitor.recent_critical_changes(10, NULL, t - interval '1 day') r) c;
END
$fn$;

