-- ---------------------------------------------------------------------------
-- Partitions of tracked tables (issue 12): attach and detach in any order,
-- each change captured once, partitions added by the table's owner
-- captured, TRUNCATE included (src/partitions.c).
-- ---------------------------------------------------------------------------

/*
 * A partitioned table's row trigger is cloned onto each partition created
 * or attached later, and PostgreSQL checks EXECUTE on the trigger function
 * for the role adding the partition: the table's owner could not add one.
 * EXECUTE on a trigger function only lets a role use it in triggers on
 * tables it may put triggers on; capture() records through a table's own
 * activity_monitor_capture and activity_monitor_truncate triggers only, and
 * only for the rows of tables a tracked table governs (src/capture.c): a
 * trigger of any other name, or on any other table, records nothing.
 */
GRANT EXECUTE ON FUNCTION activity_monitor.capture() TO PUBLIC;

/*
 * Put the capture triggers of tbl's partition tree in order (see
 * src/partitions.c); reset replaces those of tbl's subtree (track()).
 */
CREATE FUNCTION activity_monitor._sync_capture(tbl regclass, reset boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_sync_capture'
LANGUAGE C;
REVOKE ALL ON FUNCTION activity_monitor._sync_capture(regclass, boolean) FROM PUBLIC;

/*
 * After CREATE TABLE ... PARTITION OF (also inside CREATE SCHEMA), ATTACH
 * PARTITION and DETACH PARTITION, the trees touched get the capture triggers
 * their tracked tables call for: a new partition its TRUNCATE trigger, a
 * detached one its own triggers (tracked) or none.
 */
CREATE FUNCTION activity_monitor._partitions_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'activity_monitor_partitions_ddl'
LANGUAGE C;
REVOKE ALL ON FUNCTION activity_monitor._partitions_ddl() FROM PUBLIC;
COMMENT ON FUNCTION activity_monitor._partitions_ddl() IS
	'gives partitions created, attached or detached the capture triggers their tracked tables call for';

CREATE EVENT TRIGGER activity_monitor_partitions ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'CREATE SCHEMA', 'ALTER TABLE')
	EXECUTE FUNCTION activity_monitor._partitions_ddl();

-- track() gains critical_statuses (issue 13, see 80_critical_statuses.sql):
-- a new signature, so the 0.1.0 function goes and its privileges are given
-- again below.
DROP FUNCTION activity_monitor.track(regclass, text, name, name, name[], name[], name[]);

/*
 * Start (or re-configure) capture on a table.  Validates everything first,
 * then records the settings and replaces the capture triggers of the table
 * and its partitions (_sync_capture); trigger changes invalidate every
 * backend's cached metadata for the table.  A partition may be tracked
 * unless a table above it is: its rows are captured with that table's
 * settings.  critical_statuses: a status transition into one of them is
 * critical; NULL (unlike the column arrays, where NULL means none) makes
 * every transition critical, as 0.1.0 did.
 */
CREATE FUNCTION activity_monitor.track(tbl regclass, kind text,
									   subject_column name DEFAULT NULL,
									   status_column name DEFAULT NULL,
									   critical_columns name[] DEFAULT '{}',
									   ignore_columns name[] DEFAULT '{}',
									   redact_columns name[] DEFAULT '{}',
									   critical_statuses text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $fn$
DECLARE
	relkind		"char";
	relns		name;
	col			name;
	above		regclass;
	kinds		CONSTANT text[] := activity_monitor._kinds();
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF kind IS NULL THEN
		RAISE EXCEPTION 'kind must not be null' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Use one of: ' || pg_catalog.array_to_string(kinds, ', ') || '.';
	END IF;
	critical_columns := coalesce(critical_columns, '{}');
	ignore_columns := coalesce(ignore_columns, '{}');
	redact_columns := coalesce(redact_columns, '{}');
	-- critical_statuses NULL stays NULL: every transition is critical
	IF pg_catalog.array_ndims(critical_statuses) > 1 THEN
		RAISE EXCEPTION 'critical_statuses must be a one-dimensional array'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF pg_catalog.array_position(critical_statuses, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'critical_statuses must not contain null'
			USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Pass critical_statuses => NULL to make every status transition critical.';
	END IF;
	IF '' = ANY (critical_statuses) THEN
		RAISE EXCEPTION 'critical_statuses must not contain an empty string'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT c.relkind, n.nspname INTO relkind, relns
	FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE c.oid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid
			USING ERRCODE = 'undefined_table';
	END IF;
	IF relns = 'activity_monitor' THEN
		RAISE EXCEPTION 'cannot track "%"', tbl
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Tables of the activity_monitor schema hold the capture itself.';
	END IF;
	SELECT a.relid INTO above
	FROM pg_catalog.pg_partition_ancestors(track.tbl) WITH ORDINALITY a (relid, level)
	JOIN activity_monitor.tracked t ON t.tbl = a.relid
	WHERE a.relid <> track.tbl
	ORDER BY a.level DESC LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'cannot track "%"', tbl
			USING ERRCODE = 'wrong_object_type',
			DETAIL = pg_catalog.format('"%s" is a partition of tracked table "%s", whose settings its rows are captured with.',
				tbl, above),
			HINT = pg_catalog.format('Change the settings of %s with track(), or detach the partition first.', above);
	END IF;
	IF relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION 'cannot track "%"', tbl
			USING ERRCODE = 'wrong_object_type',
			DETAIL = pg_catalog.format('"%s" is %s.', tbl,
				CASE relkind WHEN 'v' THEN 'a view' WHEN 'm' THEN 'a materialized view'
					WHEN 'f' THEN 'a foreign table' WHEN 'S' THEN 'a sequence'
					WHEN 'i' THEN 'an index' WHEN 'I' THEN 'an index'
					ELSE 'not a table' END),
			HINT = 'Only ordinary and partitioned tables can be tracked.';
	END IF;
	IF kind <> ALL (kinds) THEN
		RAISE EXCEPTION 'unknown activity kind "%"', kind
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use one of: ' || pg_catalog.array_to_string(kinds, ', ') || '.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index
				   WHERE indrelid = tbl AND indisprimary) THEN
		RAISE EXCEPTION 'table "%" has no primary key', tbl
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = 'Every captured event names its row by primary key.',
			HINT = pg_catalog.format('Add one with ALTER TABLE %s ADD PRIMARY KEY (...), then track it.', tbl);
	END IF;

	FOR col IN
		SELECT c FROM pg_catalog.unnest(ARRAY[subject_column, status_column]
			|| critical_columns || ignore_columns || redact_columns) AS c
		WHERE c IS NOT NULL
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
					   WHERE attrelid = tbl AND attname = col
						 AND attnum > 0 AND NOT attisdropped) THEN
			RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl
				USING ERRCODE = 'undefined_column';
		END IF;
	END LOOP;
	IF ignore_columns && (ARRAY[subject_column, status_column] || critical_columns || redact_columns) THEN
		RAISE EXCEPTION 'a column cannot be both ignored and used'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Ignored columns are never recorded, so they cannot be the subject, the status, critical or redacted.';
	END IF;

	INSERT INTO activity_monitor.tracked AS t
		(tbl, kind, subject_column, status_column, critical_columns, ignore_columns, redact_columns,
		 critical_statuses)
	VALUES (tbl, kind, subject_column, status_column, critical_columns, ignore_columns, redact_columns,
			critical_statuses)
	ON CONFLICT ON CONSTRAINT tracked_pkey DO UPDATE
		SET kind = excluded.kind, subject_column = excluded.subject_column,
			status_column = excluded.status_column, critical_columns = excluded.critical_columns,
			ignore_columns = excluded.ignore_columns, redact_columns = excluded.redact_columns,
			critical_statuses = excluded.critical_statuses;

	PERFORM activity_monitor._sync_capture(tbl, true);
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor.track(regclass, text, name, name, name[], name[], name[], text[])
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.track(regclass, text, name, name, name[], name[], name[], text[])
	TO activity_monitor_admin;

/*
 * Stop capture.  The history stays.  A tracked table below tbl (tracked
 * while it stood alone) is captured with its own settings again.
 */
CREATE OR REPLACE FUNCTION activity_monitor.untrack(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $fn$
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	DELETE FROM activity_monitor.tracked t WHERE t.tbl = untrack.tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not tracked', tbl
			USING ERRCODE = 'undefined_object',
			HINT = 'See activity_monitor.tracked_tables for the tracked tables.';
	END IF;
	PERFORM activity_monitor._sync_capture(tbl, false);
END
$fn$;

-- replaced by _sync_capture
DROP FUNCTION activity_monitor._drop_triggers(regclass);

-- 0.1.0 left partitions added after track() without a TRUNCATE trigger
SELECT activity_monitor._sync_capture(t.tbl, false) FROM activity_monitor.tracked t;
