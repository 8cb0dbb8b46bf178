/*
 * The extension's public functions: the documented interface (README), with
 * their comments.  Who may execute each is in 60_grants.sql.
 */

-- ---------------------------------------------------------------------------
-- Capture
-- ---------------------------------------------------------------------------

/*
 * The capture trigger function (src/capture.c): a row trigger records each
 * change of a tracked table, a statement trigger each TRUNCATE.
 */
CREATE FUNCTION activity_monitor.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_capture'
LANGUAGE C;

CREATE FUNCTION activity_monitor.set_actor(actor_type text, actor_id text,
										   reason text DEFAULT NULL,
										   context jsonb DEFAULT NULL,
										   is_local boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_set_actor'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION activity_monitor.set_actor(text, text, text, jsonb, boolean) IS
	'say who acts in this transaction (or session, with is_local => false)';

-- ---------------------------------------------------------------------------
-- Tracking
-- ---------------------------------------------------------------------------

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
CREATE FUNCTION activity_monitor.untrack(tbl regclass)
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

-- ---------------------------------------------------------------------------
-- Partitions and the worker
-- ---------------------------------------------------------------------------

/*
 * configure(): change partitioning, retention and merging; NULL keeps a
 * value.  retention_mode 'none' switches retention off, merge_interval '0'
 * merging.  A retention below activity_monitor.min_retention is refused.
 * Everything is validated before anything changes.
 */
CREATE FUNCTION activity_monitor.configure(partition_interval interval DEFAULT NULL,
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
CREATE FUNCTION activity_monitor.maintain("now" timestamptz DEFAULT pg_catalog.now())
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
 * Start this database's worker once the current transaction commits (a
 * worker already serving the database makes the new one exit at once).
 */
CREATE FUNCTION activity_monitor.start_worker()
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_start_worker'
LANGUAGE C STRICT;

-- ---------------------------------------------------------------------------
-- Alert rules and alerts
-- ---------------------------------------------------------------------------

/*
 * create_rule(): validate everything, then insert.  Errors name the
 * parameter at fault; nothing changes on error.  full_payload comes after
 * the parameters of 0.1.0, steps, missing and lookback after it, so that
 * positional calls written for earlier versions still work.  What a rule
 * is follows from what it has (README, "Alert rules"): steps, a sequence
 * (with missing, an absence); lookback, a first-seen rule, whose history
 * is backfilled here from the stored events of the lookback.
 */
CREATE FUNCTION activity_monitor.create_rule(name text, predicate jsonpath,
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
											 full_payload boolean DEFAULT false,
											 steps jsonpath[] DEFAULT NULL,
											 missing jsonpath DEFAULT NULL,
											 lookback interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	new_id		bigint;
	backfill_at	CONSTANT timestamptz := pg_catalog.now();
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
	PERFORM activity_monitor._check_rule_shape(kinds, tables, within, threshold, measure,
											   measure_path, cooldown, steps, missing, lookback);
	IF channel = '' OR pg_catalog.octet_length(channel) > 63 THEN
		RAISE EXCEPTION 'channel name must be 1 to 63 bytes long'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'NOTIFY takes channel names of at most 63 bytes.';
	END IF;
	IF EXISTS (SELECT 1 FROM activity_monitor.alert_rule r WHERE r.name = create_rule.name) THEN
		RAISE EXCEPTION 'rule "%" already exists', name
			USING ERRCODE = 'duplicate_object',
			HINT = 'Drop it first with activity_monitor.drop_rule(), or choose another name.';
	END IF;

	BEGIN
		INSERT INTO activity_monitor.alert_rule AS r
			(name, predicate, severity, kinds, tables, within, threshold, measure,
			 measure_path, group_by, cooldown, channel, description, full_payload,
			 steps, missing, lookback)
		VALUES (name, predicate, severity, kinds, tables, within, threshold, measure,
				measure_path, group_by, cooldown, channel, description, full_payload,
				steps, missing, lookback)
		RETURNING r.id INTO new_id;
	EXCEPTION WHEN unique_violation THEN
		-- a concurrent create_rule() of the same name won
		RAISE EXCEPTION 'rule "%" already exists', name
			USING ERRCODE = 'duplicate_object',
			HINT = 'Drop it first with activity_monitor.drop_rule(), or choose another name.';
	END;
	INSERT INTO activity_monitor.rule_stats (rule_id) VALUES (new_id);
	IF lookback IS NOT NULL THEN
		-- a key's history before the rule counts: the values of the lookback
		INSERT INTO activity_monitor.seen (rule_id, group_key, value, last_seen)
		SELECT new_id, m.group_key, m.value, pg_catalog.max(m.occurred_at)
		FROM activity_monitor._rule_matches(predicate, backfill_at - lookback, 'infinity', kinds,
				activity_monitor._table_names(tables), within, threshold, measure, measure_path,
				group_by, cooldown, steps, missing, lookback) m
		WHERE m.value IS NOT NULL
		GROUP BY m.group_key, m.value;
	END IF;
	PERFORM activity_monitor._record_admin('activity_monitor.alert_rule', 'create_rule', name, NULL,
		pg_catalog.jsonb_build_object('id', new_id, 'name', name, 'predicate', predicate,
			'severity', severity, 'kinds', kinds, 'tables', tables, 'within', within,
			'threshold', threshold, 'measure', measure, 'measure_path', measure_path,
			'group_by', group_by, 'cooldown', cooldown, 'channel', channel,
			'description', description, 'full_payload', full_payload)
		OPERATOR(pg_catalog.||) pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
			'steps', steps, 'missing', missing, 'lookback', lookback)));
	RETURN new_id;
END
$fn$;

/*
 * Backtesting: the alerts a rule of this definition would have fired over
 * the stored events of [since, until), computed by src/backtest.c, without
 * writing an alert or sending a NOTIFY.  The definition is checked as
 * create_rule() checks it (and the window's bounds as alert_rule's
 * trigger does).  SECURITY DEFINER: it reads the whole activity, what a
 * reader may read anyway, hence granted to readers.
 */
CREATE FUNCTION activity_monitor.test_rule(predicate jsonpath, since timestamptz,
										   until timestamptz DEFAULT pg_catalog.now(),
										   kinds text[] DEFAULT NULL,
										   tables regclass[] DEFAULT NULL,
										   within interval DEFAULT NULL,
										   threshold numeric DEFAULT NULL,
										   measure text DEFAULT 'count',
										   measure_path jsonpath DEFAULT NULL,
										   group_by jsonpath DEFAULT '$.subject_id',
										   cooldown interval DEFAULT NULL,
										   steps jsonpath[] DEFAULT NULL,
										   missing jsonpath DEFAULT NULL,
										   lookback interval DEFAULT NULL)
RETURNS TABLE (event_id bigint, occurred_at timestamptz, group_key text, value numeric,
			   event_ids bigint[], kind text, action text, table_name text,
			   subject_id text, actor_type text, actor_id text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF predicate IS NULL OR since IS NULL OR until IS NULL OR measure IS NULL
	   OR group_by IS NULL THEN
		RAISE EXCEPTION 'predicate, since, until, measure and group_by must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF since >= until THEN
		RAISE EXCEPTION 'since must be before until'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The range asked for is [%s, %s).', since, until);
	END IF;
	PERFORM activity_monitor._check_rule_shape(kinds, tables, within, threshold, measure,
											   measure_path, cooldown, steps, missing, lookback);
	PERFORM activity_monitor._check_window_bounds(within, measure, threshold);
	RETURN QUERY
	SELECT * FROM activity_monitor._test_rule(predicate, since, until, kinds,
		activity_monitor._table_names(tables), within, threshold, measure, measure_path,
		group_by, cooldown, steps, missing, lookback);
END
$fn$;
COMMENT ON FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval) IS
	'the alerts a rule of this definition would have fired over the stored events of [since, until), without writing or notifying';

CREATE FUNCTION activity_monitor.drop_rule(name text)
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

CREATE FUNCTION activity_monitor.set_rule_enabled(name text, enabled boolean)
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
CREATE FUNCTION activity_monitor.set_rule_full_payload(name text, full_payload boolean)
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

CREATE FUNCTION activity_monitor.acknowledge(alert_id bigint, note text DEFAULT NULL)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT activity_monitor._set_alert_status(alert_id, 'acknowledged', note)
$fn$;

CREATE FUNCTION activity_monitor.resolve(alert_id bigint, note text DEFAULT NULL)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT activity_monitor._set_alert_status(alert_id, 'resolved', note)
$fn$;

/*
 * An alert as JSON: full_payload = false gives the public notification
 * payload (alert_id, rule, severity, fired_at), true the whole alert (the
 * 0.1.0 payload; what the consumer prints).  Free-text values are cut
 * (marked with "…") so the text stays under NOTIFY's 8000-byte limit and
 * valid JSON.  Times are in UTC whatever the session's TimeZone.  In C
 * (src/notify.c), which the worker calls for every alert it fires.
 */
CREATE FUNCTION activity_monitor.alert_payload(a activity_monitor.alerts, full_payload boolean)
RETURNS text
AS 'MODULE_PATHNAME', 'activity_monitor_alert_payload'
LANGUAGE C STABLE;

/*
 * The NOTIFY payload of an alert (what the worker sends): the public payload,
 * or the full one if its rule opted in (by the rule's current setting).
 * (The worker builds the same in C, src/notify.c, and reads the rule's
 * setting itself.)
 */
CREATE FUNCTION activity_monitor.alert_payload(a activity_monitor.alerts)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	RETURN activity_monitor.alert_payload(a, activity_monitor._full_payload(a.rule_id));
END
$fn$;

/*
 * Tamper evidence (README, "Tamper evidence"; src/seal.c).
 */
CREATE FUNCTION activity_monitor.verify(since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL)
RETURNS TABLE (seal_id bigint, problem text, event_ids bigint[], detail text)
AS 'MODULE_PATHNAME', 'activity_monitor_verify'
LANGUAGE C
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION activity_monitor.verify(timestamptz, timestamptz) IS
	'recomputes the seals of the events between since and until: one row per problem, none when intact';

CREATE FUNCTION activity_monitor.verify_head(seal_id bigint, hash text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'activity_monitor_verify_head'
LANGUAGE C STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION activity_monitor.verify_head(bigint, text) IS
	'true when the seal chain, recomputed from its start, reaches seal_id with this hash (a head saved from the server log)';

CREATE FUNCTION activity_monitor.seal_head(OUT seal_id bigint, OUT sealed_at timestamptz, OUT hash text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT s.id, s.sealed_at, pg_catalog.encode(s.hash, 'hex')
	FROM activity_monitor.seal s ORDER BY s.id DESC LIMIT 1
$fn$;
COMMENT ON FUNCTION activity_monitor.seal_head() IS
	'the latest seal: its id, time and hash (keep a copy outside the database)';
