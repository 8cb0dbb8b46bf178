-- ---------------------------------------------------------------------------
-- critical is chosen, not automatic (issue 13).  0.1.0 marked every status
-- transition of a tracked table critical, which flooded critical_changes
-- with routine logouts and completions.  A table's critical_statuses now
-- lists the statuses a transition into is critical; the default for
-- track() is none ('{}').  NULL means every transition into any status is
-- critical: 0.1.0's behaviour, which the tables 0.1.0 tracked keep (the
-- column is added without a default, so their rows read NULL, and gets its
-- default afterwards).  track(..., critical_statuses => ...) changes it.
-- track() itself is redefined in 50_partitions.sql.
-- ---------------------------------------------------------------------------

ALTER TABLE activity_monitor.tracked ADD COLUMN critical_statuses text[]
	CONSTRAINT tracked_critical_statuses_check
	CHECK (pg_catalog.array_position(critical_statuses, NULL) IS NULL
		   AND '' OPERATOR(pg_catalog.<>) ALL (critical_statuses));
ALTER TABLE activity_monitor.tracked ALTER COLUMN critical_statuses SET DEFAULT '{}';
COMMENT ON COLUMN activity_monitor.tracked.critical_statuses IS
	'a status transition into one of these statuses is critical; NULL: into any status (0.1.0''s behaviour)';

CREATE OR REPLACE VIEW activity_monitor.tracked_tables AS
	SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS table_name,
		   t.kind, t.subject_column, t.status_column,
		   t.critical_columns, t.ignore_columns, t.redact_columns, t.tracked_since,
		   t.critical_statuses
	FROM activity_monitor.tracked t
	JOIN pg_catalog.pg_class c ON c.oid = t.tbl
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	ORDER BY 1;
