-- ---------------------------------------------------------------------------
-- The audit of the auditors (issue 11): every change to the monitoring is an
-- admin event (src/audit.c) written in the transaction that makes it, and
-- visible in admin_actions (whose WHERE and partial index now take kind
-- 'admin' too) and critical_changes.  The functions below change only by
-- the _record_admin() call at their end (and, where they know it, the old
-- state they pass it).  Existing partitions get admin_actions' new index in
-- place of the employee-only one.
-- ---------------------------------------------------------------------------

/*
 * An admin event (src/audit.c): a change to the monitoring, recorded in the
 * transaction that makes it.  Called by the extension's functions only.
 */
CREATE FUNCTION activity_monitor._record_admin(object text, action text, row_key text,
											   old_values jsonb, new_values jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_record_admin'
LANGUAGE C CALLED ON NULL INPUT VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION activity_monitor._record_admin(text, text, text, jsonb, jsonb) FROM PUBLIC;


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
CREATE OR REPLACE FUNCTION activity_monitor.track(tbl regclass, kind text,
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
	prev		jsonb;
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

	-- one track() at a time (concurrent first calls would both see no
	-- settings to record as replaced); capture only reads the table
	LOCK TABLE activity_monitor.tracked IN SHARE ROW EXCLUSIVE MODE;
	SELECT pg_catalog.to_jsonb(t) INTO prev
	FROM activity_monitor.tracked t WHERE t.tbl = track.tbl;
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
	PERFORM activity_monitor._record_admin('activity_monitor.tracked', 'track', tbl::text, prev,
		pg_catalog.jsonb_build_object('tbl', tbl::text, 'kind', kind,
			'subject_column', subject_column, 'status_column', status_column,
			'critical_columns', critical_columns, 'ignore_columns', ignore_columns,
			'redact_columns', redact_columns, 'critical_statuses', critical_statuses));
END
$fn$;

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
DECLARE
	prev	jsonb;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'table must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	DELETE FROM activity_monitor.tracked t WHERE t.tbl = untrack.tbl
	RETURNING pg_catalog.to_jsonb(t) INTO prev;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not tracked', tbl
			USING ERRCODE = 'undefined_object',
			HINT = 'See activity_monitor.tracked_tables for the tracked tables.';
	END IF;
	PERFORM activity_monitor._sync_capture(tbl, false);
	PERFORM activity_monitor._record_admin('activity_monitor.tracked', 'untrack', tbl::text, prev,
		pg_catalog.jsonb_build_object('tbl', tbl::text));
END
$fn$;

/*
 * configure(): change partitioning, retention and merging; NULL keeps a
 * value.  retention_mode 'none' switches retention off, merge_interval '0'
 * merging.  A retention below activity_monitor.min_retention is refused.
 * Everything is validated before anything changes.
 */
CREATE OR REPLACE FUNCTION activity_monitor.configure(partition_interval interval DEFAULT NULL,
										   premake int DEFAULT NULL,
										   retention interval DEFAULT NULL,
										   retention_mode text DEFAULT NULL,
										   merge_after interval DEFAULT NULL,
										   merge_interval interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	floor	interval := activity_monitor._min_retention();
	prev	jsonb;
BEGIN
	IF partition_interval IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('partition_interval', partition_interval);
	END IF;
	IF retention IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('retention', retention);
		IF retention < floor THEN
			RAISE EXCEPTION 'retention must be at least activity_monitor.min_retention (%)', floor
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = pg_catalog.format('The value given was %s.', retention),
				HINT = 'Only a superuser can lower activity_monitor.min_retention.';
		END IF;
	END IF;
	IF premake IS NOT NULL AND premake NOT BETWEEN 1 AND 365 THEN
		RAISE EXCEPTION 'premake must be between 1 and 365'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', premake);
	END IF;
	IF retention_mode IS NOT NULL AND retention_mode NOT IN ('drop', 'detach', 'none') THEN
		RAISE EXCEPTION 'unknown retention mode "%"', retention_mode
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use drop, detach, or none to keep every partition.';
	END IF;
	IF retention_mode = 'none' AND retention IS NOT NULL THEN
		RAISE EXCEPTION 'retention_mode none cannot take a retention'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF merge_after IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('merge_after', merge_after);
	END IF;
	-- (field by field: interval '30 days' = interval '1 month')
	IF merge_interval IS NOT NULL
	   AND (extract(year FROM merge_interval), extract(month FROM merge_interval),
			extract(day FROM merge_interval), extract(epoch FROM merge_interval))
		   NOT IN ((0, 0, 0, 0), (0, 1, 0, 2592000), (1, 0, 0, 31557600)) THEN
		RAISE EXCEPTION 'merge_interval must be 1 year, 1 month or 0'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', merge_interval),
			HINT = 'With 1 year old partitions merge into months, then years; with 0 they are never merged.';
	END IF;

	INSERT INTO activity_monitor.config DEFAULT VALUES ON CONFLICT DO NOTHING;
	SELECT pg_catalog.to_jsonb(c) - 'single' INTO prev FROM activity_monitor.config c FOR UPDATE;
	UPDATE activity_monitor.config c SET
		partition_interval = coalesce(configure.partition_interval, c.partition_interval),
		premake = coalesce(configure.premake, c.premake),
		retention = CASE WHEN configure.retention_mode = 'none' THEN NULL
						 ELSE coalesce(configure.retention, c.retention) END,
		retention_mode = CASE WHEN configure.retention_mode IN ('drop', 'detach')
							  THEN configure.retention_mode ELSE c.retention_mode END,
		merge_after = coalesce(configure.merge_after, c.merge_after),
		merge_interval = coalesce(configure.merge_interval, c.merge_interval);
	PERFORM activity_monitor._record_admin('activity_monitor.config', 'configure', NULL, prev,
		pg_catalog.jsonb_build_object('partition_interval', partition_interval, 'premake', premake,
			'retention', retention, 'retention_mode', retention_mode,
			'merge_after', merge_after, 'merge_interval', merge_interval));
END
$fn$;

/*
 * maintain(): run partition maintenance now, as the worker does.  Returns
 * the number of partitions created and retired.  A "now" in the future
 * would retire partitions early: only a superuser may give one.
 */
CREATE OR REPLACE FUNCTION activity_monitor.maintain("now" timestamptz DEFAULT pg_catalog.now())
RETURNS int
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	m	record;
BEGIN
	IF "now" > pg_catalog.now() AND NOT activity_monitor._session_is_superuser() THEN
		RAISE EXCEPTION 'only a superuser may run maintenance for a time in the future'
			USING ERRCODE = 'insufficient_privilege',
			DETAIL = pg_catalog.format('"now" was %s, the current time is %s.', "now", pg_catalog.now()),
			HINT = 'Partitions ahead are made by the worker, premake intervals in advance; see activity_monitor.configure(premake => ...).';
	END IF;
	SELECT * INTO m FROM activity_monitor._maintain("now") x;
	PERFORM activity_monitor._record_admin('activity_monitor.activity', 'maintain', NULL, NULL,
		pg_catalog.jsonb_build_object('now', "now", 'created', m.created, 'retired', m.retired));
	RETURN m.created + m.retired;
END
$fn$;

/*
 * create_rule(): validate everything, then insert.  Errors name the
 * parameter at fault; nothing changes on error.  full_payload comes last, so
 * that positional calls written for 0.1.0 still work.
 */
CREATE OR REPLACE FUNCTION activity_monitor.create_rule(name text, predicate jsonpath,
											 severity text DEFAULT 'warning',
											 kinds text[] DEFAULT NULL,
											 tables regclass[] DEFAULT NULL,
											 within interval DEFAULT NULL,
											 threshold numeric DEFAULT NULL,
											 measure text DEFAULT 'count',
											 measure_path jsonpath DEFAULT NULL,
											 group_by jsonpath DEFAULT '$.subject_id',
											 cooldown interval DEFAULT NULL,
											 channel text DEFAULT 'activity_monitor_alerts',
											 description text DEFAULT NULL,
											 full_payload boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	all_kinds	CONSTANT text[] := activity_monitor._kinds();
	new_id		bigint;
BEGIN
	IF name IS NULL OR predicate IS NULL OR severity IS NULL OR measure IS NULL
	   OR group_by IS NULL OR channel IS NULL THEN
		RAISE EXCEPTION 'name, predicate, severity, measure, group_by and channel must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF full_payload IS NULL THEN
		RAISE EXCEPTION 'full_payload must not be null'
			USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Use false (the notification carries only alert_id, rule, severity and fired_at) or true (the whole alert, readable by every role that can connect).';
	END IF;
	IF name = '' OR pg_catalog.octet_length(name) > 63 THEN
		RAISE EXCEPTION 'rule name must be 1 to 63 bytes long'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF severity NOT IN ('info', 'warning', 'critical') THEN
		RAISE EXCEPTION 'unknown severity "%"', severity
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use info, warning or critical.';
	END IF;
	IF measure NOT IN ('count', 'sum', 'distinct') THEN
		RAISE EXCEPTION 'unknown measure "%"', measure
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use count, sum or distinct.';
	END IF;
	IF measure IN ('sum', 'distinct') AND measure_path IS NULL THEN
		RAISE EXCEPTION 'measure % needs a measure_path', measure
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'For example measure_path => ''$.new.amount''.';
	END IF;
	IF (within IS NULL) <> (threshold IS NULL) THEN
		RAISE EXCEPTION 'within and threshold go together'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A rule with a window fires when the measure inside it reaches the threshold; a rule without one fires for each matching event.';
	END IF;
	IF within <= interval '0' THEN
		RAISE EXCEPTION 'within must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF threshold <= 0 THEN
		RAISE EXCEPTION 'threshold must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cooldown <= interval '0' THEN
		RAISE EXCEPTION 'cooldown must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF channel = '' OR pg_catalog.octet_length(channel) > 63 THEN
		RAISE EXCEPTION 'channel name must be 1 to 63 bytes long'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'NOTIFY takes channel names of at most 63 bytes.';
	END IF;
	IF pg_catalog.array_position(tables, NULL) IS NOT NULL
	   OR pg_catalog.array_position(kinds, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'kinds and tables must not contain null'
			USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Leave kinds or tables NULL to apply the rule to every kind or table.';
	END IF;
	IF kinds IS NOT NULL AND NOT kinds <@ all_kinds THEN
		RAISE EXCEPTION 'unknown activity kind in %', kinds
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use some of: ' || pg_catalog.array_to_string(all_kinds, ', ') || '.';
	END IF;
	IF EXISTS (SELECT 1 FROM activity_monitor.alert_rule r WHERE r.name = create_rule.name) THEN
		RAISE EXCEPTION 'rule "%" already exists', name
			USING ERRCODE = 'duplicate_object',
			HINT = 'Drop it first with activity_monitor.drop_rule(), or choose another name.';
	END IF;

	BEGIN
		INSERT INTO activity_monitor.alert_rule AS r
			(name, predicate, severity, kinds, tables, within, threshold, measure,
			 measure_path, group_by, cooldown, channel, description, full_payload)
		VALUES (name, predicate, severity, kinds, tables, within, threshold, measure,
				measure_path, group_by, cooldown, channel, description, full_payload)
		RETURNING r.id INTO new_id;
	EXCEPTION WHEN unique_violation THEN
		-- a concurrent create_rule() of the same name won
		RAISE EXCEPTION 'rule "%" already exists', name
			USING ERRCODE = 'duplicate_object',
			HINT = 'Drop it first with activity_monitor.drop_rule(), or choose another name.';
	END;
	INSERT INTO activity_monitor.rule_stats (rule_id) VALUES (new_id);
	PERFORM activity_monitor._record_admin('activity_monitor.alert_rule', 'create_rule', name, NULL,
		pg_catalog.jsonb_build_object('id', new_id, 'name', name, 'predicate', predicate,
			'severity', severity, 'kinds', kinds, 'tables', tables, 'within', within,
			'threshold', threshold, 'measure', measure, 'measure_path', measure_path,
			'group_by', group_by, 'cooldown', cooldown, 'channel', channel,
			'description', description, 'full_payload', full_payload));
	RETURN new_id;
END
$fn$;

CREATE OR REPLACE FUNCTION activity_monitor.drop_rule(name text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	prev	jsonb;
BEGIN
	SELECT pg_catalog.to_jsonb(r) INTO prev FROM activity_monitor.alert_rule r
	WHERE r.name = drop_rule.name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	-- recorded while the rule still applies: a rule watching for dropped
	-- rules sees its own drop
	PERFORM activity_monitor._record_admin('activity_monitor.alert_rule', 'drop_rule', name, prev,
		pg_catalog.jsonb_build_object('name', name));
	DELETE FROM activity_monitor.alert_rule r WHERE r.name = drop_rule.name;
END
$fn$;

CREATE OR REPLACE FUNCTION activity_monitor.set_rule_enabled(name text, enabled boolean)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	was		boolean;
BEGIN
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'enabled must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT r.enabled INTO was FROM activity_monitor.alert_rule r
	WHERE r.name = set_rule_enabled.name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	-- recorded before the change: a rule watching for rules switched off
	-- sees itself switched off
	PERFORM activity_monitor._record_admin('activity_monitor.alert_rule', 'set_rule_enabled', name,
		pg_catalog.jsonb_build_object('enabled', was),
		pg_catalog.jsonb_build_object('name', name, 'enabled', enabled));
	UPDATE activity_monitor.alert_rule r SET enabled = set_rule_enabled.enabled
	WHERE r.name = set_rule_enabled.name;
END
$fn$;

/*
 * Turn the full payload of an existing rule on or off (rules of 0.1.0 send
 * the public payload after the update; this gives one back its 0.1.0
 * notifications without dropping it, its counters and its alerts' link).
 */
CREATE OR REPLACE FUNCTION activity_monitor.set_rule_full_payload(name text, full_payload boolean)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	was		boolean;
BEGIN
	IF full_payload IS NULL THEN
		RAISE EXCEPTION 'full_payload must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT r.full_payload INTO was FROM activity_monitor.alert_rule r
	WHERE r.name = set_rule_full_payload.name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM activity_monitor._record_admin('activity_monitor.alert_rule', 'set_rule_full_payload', name,
		pg_catalog.jsonb_build_object('full_payload', was),
		pg_catalog.jsonb_build_object('name', name, 'full_payload', full_payload));
	UPDATE activity_monitor.alert_rule r SET full_payload = set_rule_full_payload.full_payload
	WHERE r.name = set_rule_full_payload.name;
END
$fn$;

/*
 * Move an alert to "acknowledged" or "resolved", recording the session user,
 * the declared actor, when, and the note, and the change as an admin event;
 * an unknown alert and a resolved one are errors.
 */
CREATE OR REPLACE FUNCTION activity_monitor._set_alert_status(alert_id bigint, new_status text, note text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	st		text;
	actor	text := nullif(pg_catalog.current_setting('activity_monitor.actor_id', true), '');
BEGIN
	SELECT a.status INTO st FROM activity_monitor.alerts a WHERE a.id = alert_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'alert % does not exist', alert_id USING ERRCODE = 'undefined_object';
	END IF;
	IF st = 'resolved' THEN
		RAISE EXCEPTION 'alert % is already resolved', alert_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	UPDATE activity_monitor.alerts a
	SET status = new_status,
		acknowledged_by = CASE WHEN new_status = 'acknowledged' THEN SESSION_USER::text ELSE a.acknowledged_by END,
		acknowledged_actor = CASE WHEN new_status = 'acknowledged' THEN actor ELSE a.acknowledged_actor END,
		acknowledged_at = CASE WHEN new_status = 'acknowledged' THEN pg_catalog.now() ELSE a.acknowledged_at END,
		resolved_by = CASE WHEN new_status = 'resolved' THEN SESSION_USER::text ELSE a.resolved_by END,
		resolved_actor = CASE WHEN new_status = 'resolved' THEN actor ELSE a.resolved_actor END,
		resolved_at = CASE WHEN new_status = 'resolved' THEN pg_catalog.now() ELSE a.resolved_at END,
		note = coalesce(_set_alert_status.note, a.note)
	WHERE a.id = alert_id;
	PERFORM activity_monitor._record_admin('activity_monitor.alerts',
		CASE new_status WHEN 'acknowledged' THEN 'acknowledge' ELSE 'resolve' END,
		alert_id::text, pg_catalog.jsonb_build_object('status', st),
		pg_catalog.jsonb_build_object('alert_id', alert_id, 'status', new_status, 'note', note));
END
$fn$;

/*
 * Indexes live on each partition, made by _index_partition(), not on the
 * parent: a parent index would make pg_restore's ATTACH PARTITION create
 * partition indexes that collide with the dump's own CREATE INDEX.
 *
 * An account's events are found through an index led by subject_id.  A
 * partition that capture writes to (a day's, the default) has it on
 * subject_id alone: every change inserts into it at a random place, and
 * with the key alone the entries of one account share one deduplicated
 * posting list, so the index is about a sixth of (subject_id, occurred_at)'s
 * size and stays in shared buffers as the day's partition fills (on a
 * partition of 5 million events: 34 MB against 225 MB).  A reader of one
 * account's events of such a partition reads all of them and sorts them.
 * A merged partition (merged true: a month or a year, which receives no
 * more writes) has it on (subject_id, occurred_at), read newest first and
 * stopped early.
 */
CREATE OR REPLACE FUNCTION activity_monitor._index_partition(part regclass, merged boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	-- time order, ties by id: the views' ORDER BY occurred_at DESC, id DESC
	-- read straight off it (a LIMIT stops early, no sort)
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (occurred_at, id)', part);
	-- critical events only, in that order (critical_changes, the dashboard):
	-- the latest of them without reading every event of the period
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (occurred_at, id) WHERE critical', part);
	IF merged THEN
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (subject_id, occurred_at)', part);
	ELSE
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (subject_id)', part);
	END IF;
	-- employees' actions and admin events (admin_actions, whose WHERE is
	-- this predicate); users are found by subject
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (actor_id, occurred_at) '
		'WHERE actor_type = ''employee'' OR kind = ''admin''', part);
	-- only events some rule matched: the worker's batches
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (txid) '
		'WHERE matched IS NOT NULL OR rule_errors IS NOT NULL', part);
END
$fn$;

CREATE OR REPLACE VIEW activity_monitor.admin_actions AS
	SELECT a.id, a.occurred_at, a.actor_id AS employee_id, a.actor_reason AS reason,
		   a.actor_context, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.status_from, a.status_to, a.critical, a.old_values, a.new_values,
		   a.client_addr, a.db_user, a.actor_type
	FROM activity_monitor.activity a
	WHERE a.actor_type = 'employee' OR a.kind = 'admin'
	ORDER BY a.occurred_at DESC, a.id DESC;


-- admin_actions' index on the partitions there are (and a merge's build
-- table): the employee-only one replaced by the one whose predicate is the
-- view's WHERE
DO $upgrade$
DECLARE
	ix	record;
BEGIN
	FOR ix IN
		SELECT i.indexrelid::pg_catalog.regclass AS idx, i.indrelid::pg_catalog.regclass AS tbl
		FROM pg_catalog.pg_index i
		WHERE (i.indrelid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree('activity_monitor.activity') t
							  WHERE t.isleaf)
			   OR i.indrelid IN (SELECT pg_catalog.to_regclass(pg_catalog.format('activity_monitor.%I', m.target))
								 FROM activity_monitor.merge m))
		  AND pg_catalog.pg_get_expr(i.indpred, i.indrelid) = '(actor_type = ''employee''::text)'
	LOOP
		EXECUTE pg_catalog.format('DROP INDEX %s', ix.idx);
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (actor_id, occurred_at) '
			'WHERE actor_type = ''employee'' OR kind = ''admin''', ix.tbl);
	END LOOP;
END
$upgrade$;
