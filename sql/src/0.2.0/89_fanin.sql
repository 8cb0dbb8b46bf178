-- ---------------------------------------------------------------------------
-- Fan-in (issue 15): a reporting cluster receives other clusters' activity by
-- logical replication.  The activity gains source and source_id (NULL for
-- events captured here), the activity a trigger that makes a received event this cluster's
-- (src/receive.c), the event views the two columns (user_sessions: source),
-- and the view sources the subscriptions' state.
-- ---------------------------------------------------------------------------

ALTER TABLE activity_monitor.activity ADD COLUMN source text, ADD COLUMN source_id bigint;
COMMENT ON COLUMN activity_monitor.activity.source IS
	'on a reporting cluster, the subscription an event was received from (NULL: captured here)';
COMMENT ON COLUMN activity_monitor.activity.source_id IS
	'on a reporting cluster, the event''s id in its source (source, source_id: unique)';

/*
 * Fan-in: the oldest event time each transaction that received events from
 * another cluster wrote (src/receive.c).  The dashboard's rollup reads
 * the events back to it (and marks the note rolled), the sealing rounds
 * and the alert batches read their pairs of snapshots down to it, and the
 * sealing rounds delete the notes all three are done with.
 */
CREATE TABLE activity_monitor.received (
	txid	bigint PRIMARY KEY,
	oldest	timestamptz NOT NULL,
	rolled	boolean NOT NULL DEFAULT false
);

CREATE FUNCTION activity_monitor._receive()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_receive'
LANGUAGE C;
REVOKE ALL ON FUNCTION activity_monitor._receive() FROM PUBLIC;

-- Fan-in (src/receive.c): fires in logical replication's workers too
-- (ALWAYS), where it makes a received event this cluster's; it leaves every
-- other insert as it is (capture writes the partitions directly, without it).
CREATE TRIGGER receive
	BEFORE INSERT ON activity_monitor.activity
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._receive();
ALTER TABLE activity_monitor.activity ENABLE ALWAYS TRIGGER receive;
-- and refuses a subscription's TRUNCATE of the activity (a publication that
-- sends truncates would empty every source's activity here)
CREATE TRIGGER receive_truncate
	BEFORE TRUNCATE ON activity_monitor.activity
	FOR EACH STATEMENT EXECUTE FUNCTION activity_monitor._receive();
ALTER TABLE activity_monitor.activity ENABLE ALWAYS TRIGGER receive_truncate;

CREATE OR REPLACE VIEW activity_monitor.timeline AS
	SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.actor_type, a.actor_id, a.actor_reason, a.status_from, a.status_to, a.critical,
		   a.old_values, a.new_values, a.client_addr, a.application_name, a.db_user,
		   a.source, a.source_id
	FROM activity_monitor.activity a
	ORDER BY a.occurred_at DESC, a.id DESC;

CREATE OR REPLACE VIEW activity_monitor.admin_actions AS
	SELECT a.id, a.occurred_at, a.actor_id AS employee_id, a.actor_reason AS reason,
		   a.actor_context, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.status_from, a.status_to, a.critical, a.old_values, a.new_values,
		   a.client_addr, a.db_user, a.actor_type, a.source, a.source_id
	FROM activity_monitor.activity a
	WHERE a.actor_type = 'employee' OR a.kind = 'admin'
	ORDER BY a.occurred_at DESC, a.id DESC;

CREATE OR REPLACE VIEW activity_monitor.critical_changes AS
	SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.actor_type, a.actor_id, a.actor_reason, a.status_from, a.status_to,
		   a.old_values, a.new_values, a.client_addr, a.source, a.source_id
	FROM activity_monitor.activity a
	WHERE a.critical
	ORDER BY a.occurred_at DESC, a.id DESC;

CREATE OR REPLACE VIEW activity_monitor._activity_sessions AS
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

CREATE OR REPLACE VIEW activity_monitor.user_sessions AS
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
GRANT SELECT ON activity_monitor.sources TO activity_monitor_reader;
