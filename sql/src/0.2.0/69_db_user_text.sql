-- ---------------------------------------------------------------------------
-- activity.db_user becomes text (issue 13): a name takes 64 bytes in every
-- row whatever the role's name (401 -> 346 bytes per change measured).
--
-- ALTER COLUMN ... TYPE rewrites every partition and rebuilds its indexes,
-- holding ACCESS EXCLUSIVE on the activity table and every partition until
-- the update commits: capture (every write to a tracked table) and every
-- reader wait meanwhile (README, "Upgrading from 0.1.0", gives the time per
-- million events).  The views returning db_user (timeline, admin_actions)
-- depend on the column: they are dropped and created again as they are,
-- with their privileges.  This piece runs before 70_timeline.sql, which
-- creates account_timeline() on timeline's row type.  Objects outside the
-- extension that depend on the column (of the table or of a partition) or
-- on those views (a view of the platform's over activity_monitor.timeline,
-- a function returning its rows) would make the update fail with
-- PostgreSQL's own message: they are named first, with what to do.
-- ---------------------------------------------------------------------------

DO $check$
DECLARE
	deps	text;
BEGIN
	SELECT pg_catalog.string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ')
	INTO deps
	FROM pg_catalog.pg_depend d
	LEFT JOIN pg_catalog.pg_rewrite r
		ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
		   AND r.oid OPERATOR(pg_catalog.=) d.objid
	WHERE d.deptype OPERATOR(pg_catalog.=) 'n'
	  AND (-- db_user of the activity table or of one of its partitions
		   d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
		   AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree('activity_monitor.activity') t
					   JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.relid
					   WHERE t.relid OPERATOR(pg_catalog.=) d.refobjid
						 AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid
						 AND a.attname OPERATOR(pg_catalog.=) 'db_user')
		   -- the views dropped below, and their row types
		   OR d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
			  AND d.refobjid OPERATOR(pg_catalog.=) ANY
				  (ARRAY['activity_monitor.timeline'::pg_catalog.regclass,
						 'activity_monitor.admin_actions'::pg_catalog.regclass]::pg_catalog.oid[])
		   OR d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
			  AND d.refobjid OPERATOR(pg_catalog.=) ANY
				  (ARRAY['activity_monitor.timeline'::pg_catalog.regtype,
						 'activity_monitor.admin_actions'::pg_catalog.regtype]::pg_catalog.oid[]))
	  -- the views' own rules go with them
	  AND (r.ev_class IS NULL
		   OR r.ev_class OPERATOR(pg_catalog.<>) ALL
			  (ARRAY['activity_monitor.timeline'::pg_catalog.regclass,
					 'activity_monitor.admin_actions'::pg_catalog.regclass]::pg_catalog.oid[]));
	IF deps IS NOT NULL THEN
		RAISE EXCEPTION 'cannot change the type of activity_monitor.activity.db_user to text: % depend on it', deps
			USING ERRCODE = 'dependent_objects_still_exist',
			DETAIL = 'The update to 0.2.0 stores db_user as text, and drops and creates again the views timeline and admin_actions.',
			HINT = 'Save and drop these objects, run ALTER EXTENSION activity_monitor UPDATE, then create them again.';
	END IF;
END
$check$;

DROP VIEW activity_monitor.timeline;
DROP VIEW activity_monitor.admin_actions;

ALTER TABLE activity_monitor.activity ALTER COLUMN db_user TYPE text;

CREATE VIEW activity_monitor.timeline AS
	SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.actor_type, a.actor_id, a.actor_reason, a.status_from, a.status_to, a.critical,
		   a.old_values, a.new_values, a.client_addr, a.application_name, a.db_user
	FROM activity_monitor.activity a
	ORDER BY a.occurred_at DESC, a.id DESC;

CREATE VIEW activity_monitor.admin_actions AS
	SELECT a.id, a.occurred_at, a.actor_id AS employee_id, a.actor_reason AS reason,
		   a.actor_context, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.status_from, a.status_to, a.critical, a.old_values, a.new_values,
		   a.client_addr, a.db_user
	FROM activity_monitor.activity a
	WHERE a.actor_type = 'employee'
	ORDER BY a.occurred_at DESC, a.id DESC;

GRANT SELECT ON activity_monitor.timeline, activity_monitor.admin_actions TO activity_monitor_reader;
