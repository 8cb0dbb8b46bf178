/*
 * The views: the documented interface for reading (README), readable by
 * activity_monitor_reader (60_grants.sql).  A new column goes last, so that
 * the upgrade's CREATE OR REPLACE VIEW can add it.
 */

-- ---------------------------------------------------------------------------
-- Settings and the worker
-- ---------------------------------------------------------------------------

CREATE VIEW activity_monitor.settings AS
	SELECT c.partition_interval, c.premake, c.retention,
		   CASE WHEN c.retention IS NULL THEN 'none' ELSE c.retention_mode END AS retention_mode,
		   pg_catalog.current_setting('activity_monitor.naptime', true) AS naptime,
		   c.merge_after, c.merge_interval
	FROM activity_monitor.config c;

CREATE VIEW activity_monitor.worker_status AS
	SELECT pg_catalog.current_database() AS database,
		   w.pid,
		   EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
				   WHERE a.pid = w.pid AND a.backend_type = 'activity_monitor worker') AS running,
		   w.started_at, w.starts, w.last_run_at, w.last_result,
		   w.partitions_created, w.partitions_retired, w.last_error, w.last_error_at,
		   w.partitions_merged, w.last_merge, w.last_merge_at,
		   (SELECT pg_catalog.format('%s: %s rows copied, %s', m.target, m.rows_copied,
									 CASE WHEN m.built_xid IS NULL THEN 'copying' ELSE 'built' END)
			FROM activity_monitor.merge m) AS merge_in_progress,
		   -- a standby: no worker runs here, the primary's does the work
		   pg_catalog.pg_is_in_recovery() AS standby
	FROM activity_monitor.worker_state w;

-- ---------------------------------------------------------------------------
-- The activity
-- ---------------------------------------------------------------------------

CREATE VIEW activity_monitor.tracked_tables AS
	SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS table_name,
		   t.kind, t.subject_column, t.status_column,
		   t.critical_columns, t.ignore_columns, t.redact_columns, t.tracked_since,
		   t.critical_statuses
	FROM activity_monitor.tracked t
	JOIN pg_catalog.pg_class c ON c.oid = t.tbl
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	ORDER BY 1;

CREATE VIEW activity_monitor.timeline AS
	SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.actor_type, a.actor_id, a.actor_reason, a.status_from, a.status_to, a.critical,
		   a.old_values, a.new_values, a.client_addr, a.application_name, a.db_user,
		   a.source, a.source_id
	FROM activity_monitor.activity a
	ORDER BY a.occurred_at DESC, a.id DESC;

CREATE VIEW activity_monitor.admin_actions AS
	SELECT a.id, a.occurred_at, a.actor_id AS employee_id, a.actor_reason AS reason,
		   a.actor_context, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.status_from, a.status_to, a.critical, a.old_values, a.new_values,
		   a.client_addr, a.db_user, a.actor_type, a.source, a.source_id
	FROM activity_monitor.activity a
	WHERE a.actor_type = 'employee' OR a.kind = 'admin'
	ORDER BY a.occurred_at DESC, a.id DESC;

CREATE VIEW activity_monitor.critical_changes AS
	SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.actor_type, a.actor_id, a.actor_reason, a.status_from, a.status_to,
		   a.old_values, a.new_values, a.client_addr, a.source, a.source_id
	FROM activity_monitor.activity a
	WHERE a.critical
	ORDER BY a.occurred_at DESC, a.id DESC;

/*
 * Every event with what it means for a session, the one definition of a
 * session's start and end (user_sessions and the dashboard's rollup read
 * it).  A session is a row of a login-kind table; an event leaves it ended
 * (session_ended) when it deletes the row, gives it one of the statuses of
 * _session_end_statuses(), or sets its ended_at or logged_out_at column.
 * starts_session: the insert of a row not ended already (a failed attempt
 * starts nothing).  ends_session: the first event that ends it, as far as
 * the event shows (a status or column value that was already an end, such
 * as a closed row expired or deleted, does not end it twice).
 */
CREATE VIEW activity_monitor._activity_sessions AS
	SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.actor_type, a.actor_id, a.actor_context, a.status_from, a.status_to, a.critical,
		   a.new_values, a.client_addr, a.application_name,
		   e.ended AS session_ended,
		   a.kind OPERATOR(pg_catalog.=) 'login' AND a.action OPERATOR(pg_catalog.=) 'insert'
			   AND NOT e.ended AS starts_session,
		   a.kind OPERATOR(pg_catalog.=) 'login' AND a.action OPERATOR(pg_catalog.<>) 'insert'
			   AND e.ended AND NOT e.was_ended AS ends_session,
		   a.source, a.txid
	FROM activity_monitor.activity a
	CROSS JOIN LATERAL (
		SELECT a.action OPERATOR(pg_catalog.=) 'delete'
				   OR coalesce(a.status_to OPERATOR(pg_catalog.=) ANY (activity_monitor._session_end_statuses()), false)
				   OR a.new_values OPERATOR(pg_catalog.->>) 'ended_at' IS NOT NULL
				   OR a.new_values OPERATOR(pg_catalog.->>) 'logged_out_at' IS NOT NULL AS ended,
			   coalesce(a.status_from OPERATOR(pg_catalog.=) ANY (activity_monitor._session_end_statuses()), false)
				   OR a.old_values OPERATOR(pg_catalog.->>) 'ended_at' IS NOT NULL
				   OR a.old_values OPERATOR(pg_catalog.->>) 'logged_out_at' IS NOT NULL AS was_ended
	) e;

/*
 * One row per session row of a login-kind table: first and last event of
 * the row; ended when an event ended it (_activity_sessions).
 */
CREATE VIEW activity_monitor.user_sessions AS
	SELECT s.table_name, s.row_key AS session_key, s.subject_id,
		   s.started_at,
		   CASE WHEN s.ended THEN s.last_at END AS ended_at,
		   NOT s.ended AS active,
		   s.ip, s.client_addr, s.application_name, s.last_status AS status,
		   s.source
	FROM (
		SELECT a.source, a.table_name, a.row_key,
			   (pg_catalog.array_agg(a.subject_id ORDER BY a.id))[1] AS subject_id,
			   pg_catalog.min(a.occurred_at) AS started_at,
			   pg_catalog.max(a.occurred_at) AS last_at,
			   (pg_catalog.array_agg(coalesce(a.status_to, a.status_from) ORDER BY a.id DESC)
					FILTER (WHERE coalesce(a.status_to, a.status_from) IS NOT NULL))[1] AS last_status,
			   pg_catalog.bool_or(a.session_ended) AS ended,
			   -- where from: the row's own ip column, else what the application said
			   (pg_catalog.array_agg(coalesce(a.new_values ->> 'ip', a.actor_context ->> 'ip') ORDER BY a.id)
					FILTER (WHERE coalesce(a.new_values ->> 'ip', a.actor_context ->> 'ip') IS NOT NULL))[1] AS ip,
			   (pg_catalog.array_agg(a.client_addr ORDER BY a.id) FILTER (WHERE a.client_addr IS NOT NULL))[1] AS client_addr,
			   (pg_catalog.array_agg(a.application_name ORDER BY a.id))[1] AS application_name
		FROM activity_monitor._activity_sessions a
		WHERE a.kind = 'login' AND a.action <> 'truncate'
		GROUP BY a.source, a.table_name, a.row_key
	) s;

/*
 * Events per minute, kind and actor type over the last 24 hours.  Read
 * through _operational_activity(), which plans only the partitions of the
 * last 24 hours (a now() - interval bound in the view would plan them all).
 */
CREATE VIEW activity_monitor.operational_activity AS
	SELECT o.minute, o.kind, o.actor_type, o.events, o.critical_events
	FROM activity_monitor._operational_activity() o
	ORDER BY 1 DESC, 2, 3;

-- ---------------------------------------------------------------------------
-- Alert rules and alerts
-- ---------------------------------------------------------------------------

CREATE VIEW activity_monitor.rules AS
	SELECT r.id, r.name, r.enabled, r.severity, r.predicate, r.kinds, r.tables,
		   r.within, r.threshold, r.measure, r.measure_path, r.group_by, r.cooldown,
		   r.channel, r.description, r.created_at,
		   coalesce(s.events_matched, 0) AS events_matched,
		   coalesce(s.alerts_fired, 0) AS alerts_fired,
		   coalesce(s.evaluation_errors, 0) AS evaluation_errors,
		   s.last_fired_at,
		   r.full_payload,
		   coalesce(s.keys_evicted, 0) AS keys_evicted,
		   coalesce(s.events_evicted, 0) AS events_evicted,
		   activity_monitor._predicate_plan(r.predicate) AS evaluation,
		   CASE WHEN r.steps IS NOT NULL AND r.missing IS NOT NULL THEN 'absence'
				WHEN r.steps IS NOT NULL THEN 'sequence'
				WHEN r.lookback IS NOT NULL THEN 'first_seen'
				WHEN r.within IS NOT NULL THEN 'window'
				ELSE 'event' END AS rule_type,
		   r.steps, r.missing, r.lookback
	FROM activity_monitor.alert_rule r
	LEFT JOIN activity_monitor.rule_stats s ON s.rule_id OPERATOR(pg_catalog.=) r.id
	ORDER BY r.id;

CREATE VIEW activity_monitor.open_alerts AS
	SELECT a.id, a.fired_at, a.severity, a.rule_name, a.group_key, a.value, a.status,
		   a.kind, a.action, a.table_name, a.subject_id, a.actor_type, a.actor_id,
		   a.event_id, a.event_ids, a.acknowledged_by, a.acknowledged_at, a.note,
		   a.acknowledged_actor
	FROM activity_monitor.alerts a
	WHERE a.status <> 'resolved'
	ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, a.fired_at DESC;

-- ---------------------------------------------------------------------------
-- Dashboard
-- ---------------------------------------------------------------------------

/*
 * The one query an activity dashboard needs, one row: events in the last 5
 * minutes, hour and day by kind and actor type, active sessions (started
 * minus ended in the last day), open alerts by severity, the busiest
 * employees of the day and the latest critical changes.  Counts come from
 * activity_minute (up to one naptime behind); the critical changes are read
 * live by recent_critical_changes(), newest partition first, stopping at ten.
 */
CREATE VIEW activity_monitor.dashboard AS
	SELECT d.generated_at, d.events, d.active_sessions, d.open_alerts, d.busiest_employees,
		   d.latest_critical
	FROM activity_monitor._dashboard() d;

/*
 * Fan-in: the subscriptions of this database that receive the activity of
 * other clusters (see README, Fan-in), with what PostgreSQL's statistics
 * say of each: its apply worker, the last message and WAL position
 * received, and the errors that stopped it (a version mismatch, a lost
 * slot).
 */
CREATE VIEW activity_monitor.sources AS
	SELECT s.subname::text AS source, s.subenabled AS enabled,
		   w.pid IS NOT NULL AS receiving,
		   w.received_lsn, w.last_msg_send_time, w.last_msg_receipt_time,
		   w.latest_end_lsn, w.latest_end_time,
		   coalesce(st.apply_error_count, 0) AS apply_errors,
		   coalesce(st.sync_error_count, 0) AS sync_errors,
		   (SELECT pg_catalog.bool_and(r.srsubstate OPERATOR(pg_catalog.=) 'r')
			FROM pg_catalog.pg_subscription_rel r
			WHERE r.srsubid OPERATOR(pg_catalog.=) s.oid) AS synchronized
	FROM pg_catalog.pg_subscription s
	LEFT JOIN pg_catalog.pg_stat_subscription w
		ON w.subid OPERATOR(pg_catalog.=) s.oid AND w.relid IS NULL
	LEFT JOIN pg_catalog.pg_stat_subscription_stats st ON st.subid OPERATOR(pg_catalog.=) s.oid
	WHERE s.subdbid OPERATOR(pg_catalog.=)
		(SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
		AND EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel r
					WHERE r.srsubid OPERATOR(pg_catalog.=) s.oid
					  AND r.srrelid OPERATOR(pg_catalog.=) 'activity_monitor.activity'::pg_catalog.regclass)
	ORDER BY 1;
