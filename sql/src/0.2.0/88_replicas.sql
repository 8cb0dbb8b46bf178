-- ---------------------------------------------------------------------------
-- Read replicas (issue 15): worker_status says whether this is a standby,
-- where no worker runs (the primary's worker does the work, and the views
-- read what it wrote).
-- ---------------------------------------------------------------------------

CREATE OR REPLACE VIEW activity_monitor.worker_status AS
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
