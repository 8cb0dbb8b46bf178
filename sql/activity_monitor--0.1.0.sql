/*
 * activity_monitor 0.1.0: capture core.
 *
 * Objects: roles, the tracked-table configuration, the partitioned activity
 * log, the C capture trigger, track()/untrack()/set_actor()/maintain() and
 * the back-office views.
 */
\echo Use "CREATE EXTENSION activity_monitor" to load this file. \quit

-- Roles are cluster-wide: create them once, reuse them in every database.
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'activity_monitor_reader') THEN
		CREATE ROLE activity_monitor_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'activity_monitor_admin') THEN
		CREATE ROLE activity_monitor_admin NOLOGIN;
	END IF;
	GRANT activity_monitor_reader TO activity_monitor_admin;
END
$roles$;

REVOKE ALL ON SCHEMA activity_monitor FROM PUBLIC;
GRANT USAGE ON SCHEMA activity_monitor TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Configuration
-- ---------------------------------------------------------------------------

CREATE TABLE activity_monitor.tracked (
	tbl					regclass PRIMARY KEY,
	kind				text NOT NULL
		CHECK (kind IN ('login', 'profile', 'payment', 'game', 'provider', 'admin', 'system')),
	subject_column		name,
	status_column		name,
	critical_columns	name[] NOT NULL DEFAULT '{}',
	ignore_columns		name[] NOT NULL DEFAULT '{}',
	redact_columns		name[] NOT NULL DEFAULT '{}',
	tracked_since		timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.tracked', '');

-- One-row table of partitioning settings.
CREATE TABLE activity_monitor.config (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	partition_interval	interval NOT NULL DEFAULT '1 day',
	premake				int NOT NULL DEFAULT 7,
	retention			interval,
	retention_mode		text NOT NULL DEFAULT 'drop' CHECK (retention_mode IN ('drop', 'detach'))
);
-- The dump of a database carries its own row (and pg_dump scripts run with
-- row_security off): insert the defaults only outside a restore.
DO $defaults$
BEGIN
	IF pg_catalog.current_setting('row_security')::boolean THEN
		INSERT INTO activity_monitor.config DEFAULT VALUES;
	END IF;
END
$defaults$;
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.config', '');

-- ---------------------------------------------------------------------------
-- The activity log
-- ---------------------------------------------------------------------------

CREATE SEQUENCE activity_monitor.activity_id_seq;

CREATE TABLE activity_monitor.activity (
	id					bigint NOT NULL DEFAULT pg_catalog.nextval('activity_monitor.activity_id_seq'),
	occurred_at			timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
	kind				text NOT NULL,
	action				text NOT NULL,
	table_name			text NOT NULL,
	row_key				text,
	subject_id			text,
	actor_type			text NOT NULL,
	actor_id			text,
	actor_reason		text,
	actor_context		jsonb,
	status_from			text,
	status_to			text,
	critical			boolean NOT NULL DEFAULT false,
	old_values			jsonb,
	new_values			jsonb,
	db_user				name NOT NULL DEFAULT CURRENT_USER,
	application_name	text,
	client_addr			inet,
	backend_pid			int NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
	txid				bigint NOT NULL DEFAULT pg_catalog.txid_current(),
	matched				jsonb,
	rule_errors			bigint[]
) PARTITION BY RANGE (occurred_at);
COMMENT ON COLUMN activity_monitor.activity.matched IS
	'alert rules whose predicate matched: {"rule id": {"k": group key, "v": measure}}';
COMMENT ON COLUMN activity_monitor.activity.rule_errors IS
	'alert rules whose predicate could not be evaluated on this event';
ALTER SEQUENCE activity_monitor.activity_id_seq OWNED BY activity_monitor.activity.id;
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.activity_id_seq', '');

/*
 * Indexes live on each partition, made by _index_partition(), not on the
 * parent: a parent index would make pg_restore's ATTACH PARTITION create
 * partition indexes that collide with the dump's own CREATE INDEX.
 */
CREATE FUNCTION activity_monitor._index_partition(part regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (occurred_at)', part);
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (subject_id, occurred_at)', part);
	-- employees' actions (admin_actions); users are found by subject
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (actor_id, occurred_at) '
		'WHERE actor_type = ''employee''', part);
	-- only events some rule matched: the worker's batches
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (txid) '
		'WHERE matched IS NOT NULL OR rule_errors IS NOT NULL', part);
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._index_partition(regclass) FROM PUBLIC;

-- Catches rows no dated partition covers, so a write never fails for a
-- missing partition; maintain() moves them out when it creates the range.
CREATE TABLE activity_monitor.activity_default
	PARTITION OF activity_monitor.activity DEFAULT;
SELECT activity_monitor._index_partition('activity_monitor.activity_default');
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.activity_default', '');

REVOKE ALL ON activity_monitor.activity, activity_monitor.activity_default,
	activity_monitor.activity_id_seq FROM PUBLIC;
GRANT SELECT ON activity_monitor.activity, activity_monitor.activity_default
	TO activity_monitor_reader;
GRANT SELECT ON activity_monitor.tracked, activity_monitor.config TO activity_monitor_reader;

-- ---------------------------------------------------------------------------
-- C functions
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity_monitor.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_capture'
LANGUAGE C;
REVOKE ALL ON FUNCTION activity_monitor.capture() FROM PUBLIC;

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
-- Partitions
-- ---------------------------------------------------------------------------

/* The dated partitions of the activity table and their bounds. */
CREATE FUNCTION activity_monitor._partitions(OUT part regclass, OUT lower timestamptz,
											 OUT upper timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT c.oid::regclass,
		   (regexp_match(b, 'FROM \(''([^'']*)''\)'))[1]::timestamptz,
		   (regexp_match(b, 'TO \(''([^'']*)''\)'))[1]::timestamptz
	FROM pg_catalog.pg_inherits i
	JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
	CROSS JOIN LATERAL pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS b
	WHERE i.inhparent = 'activity_monitor.activity'::regclass AND b <> 'DEFAULT'
	ORDER BY 2
$fn$;

/*
 * Create the partition for [lower, upper) unless a partition overlaps it,
 * the way that does not block writers: a free-standing table with a CHECK
 * constraint matching the bounds, then ATTACH (SHARE UPDATE EXCLUSIVE on the
 * parent, no validation scan).  Rows the default partition holds for that
 * range move in first.
 */
CREATE FUNCTION activity_monitor._create_partition(lower timestamptz, upper timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	part	text;
	moved	bigint;
BEGIN
	IF EXISTS (SELECT 1 FROM activity_monitor._partitions() p
			   WHERE coalesce(p.lower, '-infinity') < _create_partition.upper
				 AND coalesce(p.upper, 'infinity') > _create_partition.lower) THEN
		RETURN false;
	END IF;

	part := 'activity_p' || pg_catalog.to_char(lower AT TIME ZONE 'UTC',
		CASE WHEN upper - lower >= interval '1 day' THEN 'YYYYMMDD' ELSE 'YYYYMMDD_HH24MI' END);

	EXECUTE pg_catalog.format(
		'CREATE TABLE activity_monitor.%I (LIKE activity_monitor.activity INCLUDING DEFAULTS, '
		'CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L))',
		part, part || '_bounds', lower, upper);
	PERFORM activity_monitor._index_partition(pg_catalog.format('activity_monitor.%I', part)::regclass);
	EXECUTE pg_catalog.format('REVOKE ALL ON activity_monitor.%I FROM PUBLIC', part);
	EXECUTE pg_catalog.format('GRANT SELECT ON activity_monitor.%I TO activity_monitor_reader', part);

	-- Rows that landed in the default partition for this range move first,
	-- with the default locked so that none arrives between move and ATTACH.
	IF EXISTS (SELECT 1 FROM activity_monitor.activity_default d
			   WHERE d.occurred_at >= lower AND d.occurred_at < upper) THEN
		LOCK TABLE activity_monitor.activity_default IN ACCESS EXCLUSIVE MODE;
		EXECUTE pg_catalog.format(
			'WITH m AS (DELETE FROM activity_monitor.activity_default '
			'WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) '
			'INSERT INTO activity_monitor.%I SELECT * FROM m', lower, upper, part);
		GET DIAGNOSTICS moved = ROW_COUNT;
		RAISE NOTICE 'moved % rows from activity_default into %', moved, part;
	END IF;

	EXECUTE pg_catalog.format(
		'ALTER TABLE activity_monitor.activity ATTACH PARTITION activity_monitor.%I '
		'FOR VALUES FROM (%L) TO (%L)', part, lower, upper);
	EXECUTE pg_catalog.format('ALTER TABLE activity_monitor.%I DROP CONSTRAINT %I',
							  part, part || '_bounds');
	-- Partitions hold data, not extension code: made during CREATE EXTENSION
	-- they would be members, and pg_dump would skip them and their rows.
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
			   WHERE classid = 'pg_catalog.pg_class'::regclass
				 AND objid = pg_catalog.format('activity_monitor.%I', part)::regclass
				 AND deptype = 'e') THEN
		EXECUTE pg_catalog.format('ALTER EXTENSION activity_monitor DROP TABLE activity_monitor.%I', part);
	END IF;
	RETURN true;
END
$fn$;

/*
 * The partition maintenance the worker runs and maintain() exposes: create
 * every partition missing from the one holding "now" to premake intervals
 * ahead, and retire (drop or detach) those wholly older than the retention.
 * Each DDL is its own subtransaction under a short lock_timeout: one that
 * cannot get its lock is skipped with a warning and retried next time.
 */
CREATE FUNCTION activity_monitor._maintain("now" timestamptz DEFAULT pg_catalog.now(),
										   OUT created int, OUT retired int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
DECLARE
	cfg		activity_monitor.config;
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
	-- one maintenance at a time (the worker's and an admin's maintain())
	PERFORM pg_catalog.pg_advisory_xact_lock(1634038889, 1836016238);
	SELECT * INTO cfg FROM activity_monitor.config;
	IF NOT FOUND THEN
		INSERT INTO activity_monitor.config DEFAULT VALUES RETURNING * INTO cfg;
	END IF;
	step := extract(epoch FROM cfg.partition_interval);
	-- Ranges are aligned on whole intervals since the epoch (midnight UTC for days).
	first := pg_catalog.to_timestamp(floor(extract(epoch FROM "now") / step) * step);
	FOR i IN 0 .. cfg.premake LOOP
		lower := first + i * cfg.partition_interval;
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
		FOR p IN SELECT q.part FROM activity_monitor._partitions() q
				 WHERE q.upper <= _maintain."now" - cfg.retention ORDER BY q.lower
		LOOP
			BEGIN
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
 * maintain(): run partition maintenance now, as the worker does.  Returns
 * the number of partitions created and retired.
 */
CREATE FUNCTION activity_monitor.maintain("now" timestamptz DEFAULT pg_catalog.now())
RETURNS int
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT m.created + m.retired FROM activity_monitor._maintain("now") m
$fn$;

REVOKE ALL ON FUNCTION activity_monitor._partitions(),
	activity_monitor._create_partition(timestamptz, timestamptz),
	activity_monitor._maintain(timestamptz),
	activity_monitor.maintain(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.maintain(timestamptz) TO activity_monitor_admin;

/* Whole hours or days, positive: what partition and retention intervals take. */
CREATE FUNCTION activity_monitor._check_interval(name text, value interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF value <= interval '0' THEN
		RAISE EXCEPTION '% must be positive', name
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', value);
	END IF;
	IF extract(month FROM value) <> 0 OR extract(year FROM value) <> 0
	   OR extract(epoch FROM value)::numeric % 3600 <> 0 THEN
		RAISE EXCEPTION '% must be a whole number of hours or days', name
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', value),
			HINT = 'Use for example ''1 hour'', ''6 hours'', ''1 day'' or ''7 days''; months vary in length.';
	END IF;
END
$fn$;

/*
 * configure(): change partitioning and retention; NULL keeps a value.
 * retention_mode 'none' switches retention off.  Everything is validated
 * before anything changes.
 */
CREATE FUNCTION activity_monitor.configure(partition_interval interval DEFAULT NULL,
										   premake int DEFAULT NULL,
										   retention interval DEFAULT NULL,
										   retention_mode text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF partition_interval IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('partition_interval', partition_interval);
	END IF;
	IF retention IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('retention', retention);
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

	INSERT INTO activity_monitor.config DEFAULT VALUES ON CONFLICT DO NOTHING;
	UPDATE activity_monitor.config c SET
		partition_interval = coalesce(configure.partition_interval, c.partition_interval),
		premake = coalesce(configure.premake, c.premake),
		retention = CASE WHEN configure.retention_mode = 'none' THEN NULL
						 ELSE coalesce(configure.retention, c.retention) END,
		retention_mode = CASE WHEN configure.retention_mode IN ('drop', 'detach')
							  THEN configure.retention_mode ELSE c.retention_mode END;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._check_interval(text, interval),
	activity_monitor.configure(interval, int, interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.configure(interval, int, interval, text)
	TO activity_monitor_admin;

CREATE VIEW activity_monitor.settings AS
	SELECT c.partition_interval, c.premake, c.retention,
		   CASE WHEN c.retention IS NULL THEN 'none' ELSE c.retention_mode END AS retention_mode,
		   pg_catalog.current_setting('activity_monitor.naptime', true) AS naptime
	FROM activity_monitor.config c;

-- ---------------------------------------------------------------------------
-- Background worker
-- ---------------------------------------------------------------------------

-- What the worker of this database did last; written by the worker only.
CREATE TABLE activity_monitor.worker_state (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	pid					int,
	started_at			timestamptz,
	starts				int NOT NULL DEFAULT 0,
	last_run_at			timestamptz,
	last_result			text,
	partitions_created	bigint NOT NULL DEFAULT 0,
	partitions_retired	bigint NOT NULL DEFAULT 0,
	last_error			text,
	last_error_at		timestamptz
);
INSERT INTO activity_monitor.worker_state DEFAULT VALUES;

CREATE VIEW activity_monitor.worker_status AS
	SELECT pg_catalog.current_database() AS database,
		   w.pid,
		   EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
				   WHERE a.pid = w.pid AND a.backend_type = 'activity_monitor worker') AS running,
		   w.started_at, w.starts, w.last_run_at, w.last_result,
		   w.partitions_created, w.partitions_retired, w.last_error, w.last_error_at
	FROM activity_monitor.worker_state w;

/*
 * Start this database's worker once the current transaction commits (a
 * worker already serving the database makes the new one exit at once).
 */
CREATE FUNCTION activity_monitor.start_worker()
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_start_worker'
LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION activity_monitor.start_worker() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.start_worker() TO activity_monitor_admin;

GRANT SELECT ON activity_monitor.settings, activity_monitor.worker_status,
	activity_monitor.worker_state TO activity_monitor_reader;

-- ---------------------------------------------------------------------------
-- Tracking
-- ---------------------------------------------------------------------------

/*
 * Start (or re-configure) capture on a table.  Validates everything first,
 * then records the settings and (re)creates the two triggers; trigger DDL
 * invalidates every backend's cached metadata for the table.
 */
CREATE FUNCTION activity_monitor.track(tbl regclass, kind text,
									   subject_column name DEFAULT NULL,
									   status_column name DEFAULT NULL,
									   critical_columns name[] DEFAULT '{}',
									   ignore_columns name[] DEFAULT '{}',
									   redact_columns name[] DEFAULT '{}')
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
	part		regclass;
	kinds		CONSTANT text[] := '{login,profile,payment,game,provider,admin,system}';
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
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = tbl AND relispartition) THEN
		RAISE EXCEPTION 'cannot track "%"', tbl
			USING ERRCODE = 'wrong_object_type',
			DETAIL = pg_catalog.format('"%s" is a partition of "%s".', tbl, pg_catalog.pg_partition_root(tbl)),
			HINT = 'Track the partitioned table: its partitions are captured with it.';
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
		(tbl, kind, subject_column, status_column, critical_columns, ignore_columns, redact_columns)
	VALUES (tbl, kind, subject_column, status_column, critical_columns, ignore_columns, redact_columns)
	ON CONFLICT ON CONSTRAINT tracked_pkey DO UPDATE
		SET kind = excluded.kind, subject_column = excluded.subject_column,
			status_column = excluded.status_column, critical_columns = excluded.critical_columns,
			ignore_columns = excluded.ignore_columns, redact_columns = excluded.redact_columns;

	PERFORM activity_monitor._drop_triggers(tbl);
	EXECUTE pg_catalog.format(
		'CREATE TRIGGER activity_monitor_capture AFTER INSERT OR UPDATE OR DELETE ON %s '
		'FOR EACH ROW EXECUTE FUNCTION activity_monitor.capture()', tbl);
	-- statement triggers are not cloned to partitions: TRUNCATE of one
	-- partition needs its own (partitions attached later: track again)
	FOR part IN SELECT tbl UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t LOOP
		EXECUTE pg_catalog.format(
			'CREATE TRIGGER activity_monitor_truncate AFTER TRUNCATE ON %s '
			'FOR EACH STATEMENT EXECUTE FUNCTION activity_monitor.capture()', part);
	END LOOP;
END
$fn$;

/* Drop the capture triggers of a table and of its partitions. */
CREATE FUNCTION activity_monitor._drop_triggers(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	part	regclass;
BEGIN
	EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS activity_monitor_capture ON %s', tbl);
	FOR part IN SELECT tbl UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t LOOP
		EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS activity_monitor_truncate ON %s', part);
	END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._drop_triggers(regclass) FROM PUBLIC;

CREATE FUNCTION activity_monitor.untrack(tbl regclass)
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
	PERFORM activity_monitor._drop_triggers(tbl);
END
$fn$;

REVOKE ALL ON FUNCTION activity_monitor.track(regclass, text, name, name, name[], name[], name[]),
	activity_monitor.untrack(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.track(regclass, text, name, name, name[], name[], name[]),
	activity_monitor.untrack(regclass) TO activity_monitor_admin;

-- A dropped table stops being tracked.
CREATE FUNCTION activity_monitor._on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	DELETE FROM activity_monitor.tracked
	WHERE tbl::oid IN (SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects()
					   WHERE classid = 'pg_catalog.pg_class'::regclass AND objsubid = 0);
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER activity_monitor_sql_drop ON sql_drop
	WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION activity_monitor._on_sql_drop();

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

CREATE VIEW activity_monitor.tracked_tables AS
	SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS table_name,
		   t.kind, t.subject_column, t.status_column,
		   t.critical_columns, t.ignore_columns, t.redact_columns, t.tracked_since
	FROM activity_monitor.tracked t
	JOIN pg_catalog.pg_class c ON c.oid = t.tbl
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	ORDER BY 1;

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

CREATE VIEW activity_monitor.critical_changes AS
	SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
		   a.actor_type, a.actor_id, a.actor_reason, a.status_from, a.status_to,
		   a.old_values, a.new_values, a.client_addr
	FROM activity_monitor.activity a
	WHERE a.critical
	ORDER BY a.occurred_at DESC, a.id DESC;

/*
 * One row per session row of a login-kind table: first and last event of
 * the row; ended when the row was deleted or its status left an active one.
 */
CREATE VIEW activity_monitor.user_sessions AS
	SELECT s.table_name, s.row_key AS session_key, s.subject_id,
		   s.started_at,
		   CASE WHEN s.ended THEN s.last_at END AS ended_at,
		   NOT s.ended AS active,
		   s.ip, s.client_addr, s.application_name, s.last_status AS status
	FROM (
		SELECT a.table_name, a.row_key,
			   (pg_catalog.array_agg(a.subject_id ORDER BY a.id))[1] AS subject_id,
			   pg_catalog.min(a.occurred_at) AS started_at,
			   pg_catalog.max(a.occurred_at) AS last_at,
			   (pg_catalog.array_agg(coalesce(a.status_to, a.status_from) ORDER BY a.id DESC)
					FILTER (WHERE coalesce(a.status_to, a.status_from) IS NOT NULL))[1] AS last_status,
			   pg_catalog.bool_or(a.action = 'delete'
					OR a.status_to IN ('closed', 'ended', 'logged_out', 'expired', 'revoked', 'failed')
					OR a.new_values ->> 'ended_at' IS NOT NULL
					OR a.new_values ->> 'logged_out_at' IS NOT NULL) AS ended,
			   -- where from: the row's own ip column, else what the application said
			   (pg_catalog.array_agg(coalesce(a.new_values ->> 'ip', a.actor_context ->> 'ip') ORDER BY a.id)
					FILTER (WHERE coalesce(a.new_values ->> 'ip', a.actor_context ->> 'ip') IS NOT NULL))[1] AS ip,
			   (pg_catalog.array_agg(a.client_addr ORDER BY a.id) FILTER (WHERE a.client_addr IS NOT NULL))[1] AS client_addr,
			   (pg_catalog.array_agg(a.application_name ORDER BY a.id))[1] AS application_name
		FROM activity_monitor.activity a
		WHERE a.kind = 'login' AND a.action <> 'truncate'
		GROUP BY a.table_name, a.row_key
	) s;

CREATE VIEW activity_monitor.operational_activity AS
	SELECT pg_catalog.date_trunc('minute', a.occurred_at) AS minute, a.kind, a.actor_type,
		   pg_catalog.count(*) AS events,
		   pg_catalog.count(*) FILTER (WHERE a.critical) AS critical_events
	FROM activity_monitor.activity a
	WHERE a.occurred_at >= pg_catalog.now() - interval '24 hours'
	GROUP BY 1, 2, 3
	ORDER BY 1 DESC, 2, 3;

GRANT SELECT ON activity_monitor.tracked_tables, activity_monitor.timeline,
	activity_monitor.admin_actions, activity_monitor.critical_changes,
	activity_monitor.user_sessions, activity_monitor.operational_activity
	TO activity_monitor_reader;

-- ---------------------------------------------------------------------------
-- Alert rules and alerts
-- ---------------------------------------------------------------------------

CREATE TABLE activity_monitor.alert_rule (
	id				bigserial PRIMARY KEY,
	name			text NOT NULL UNIQUE,
	predicate		jsonpath NOT NULL,
	severity		text NOT NULL DEFAULT 'warning'
		CHECK (severity IN ('info', 'warning', 'critical')),
	kinds			text[],
	tables			regclass[],
	within			interval CHECK (within > interval '0'),
	threshold		numeric,
	measure			text NOT NULL DEFAULT 'count' CHECK (measure IN ('count', 'sum', 'distinct')),
	measure_path	jsonpath,
	group_by		jsonpath NOT NULL DEFAULT '$.subject_id',
	cooldown		interval CHECK (cooldown > interval '0'),
	channel			text NOT NULL DEFAULT 'activity_monitor_alerts',
	description		text,
	enabled			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CHECK ((within IS NULL) = (threshold IS NULL))
);
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alert_rule', '');
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alert_rule_id_seq', '');

-- Counters kept by the worker as it processes events.
CREATE TABLE activity_monitor.rule_stats (
	rule_id				bigint PRIMARY KEY REFERENCES activity_monitor.alert_rule ON DELETE CASCADE,
	events_matched		bigint NOT NULL DEFAULT 0,
	alerts_fired		bigint NOT NULL DEFAULT 0,
	evaluation_errors	bigint NOT NULL DEFAULT 0,
	last_fired_at		timestamptz
);

CREATE TABLE activity_monitor.alerts (
	id				bigserial PRIMARY KEY,
	rule_id			bigint,
	rule_name		text NOT NULL,
	severity		text NOT NULL,
	channel			text NOT NULL,
	fired_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	group_key		text,
	value			numeric,
	event_id		bigint NOT NULL,
	event_ids		bigint[] NOT NULL,
	-- the firing event, kept here so an alert outlives its partition
	occurred_at		timestamptz NOT NULL,
	kind			text NOT NULL,
	action			text NOT NULL,
	table_name		text NOT NULL,
	subject_id		text,
	actor_type		text,
	actor_id		text,
	status			text NOT NULL DEFAULT 'open'
		CHECK (status IN ('open', 'acknowledged', 'resolved')),
	acknowledged_by	text,
	acknowledged_at	timestamptz,
	resolved_by		text,
	resolved_at		timestamptz,
	note			text
);
CREATE INDEX alerts_open_idx ON activity_monitor.alerts (fired_at) WHERE status <> 'resolved';
CREATE INDEX alerts_rule_key_idx ON activity_monitor.alerts (rule_id, group_key, fired_at);
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alerts_id_seq', '');

-- Where the worker's last batch ended: events visible in this snapshot are done.
CREATE TABLE activity_monitor.alert_state (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	last_snapshot		txid_snapshot NOT NULL,
	-- the batch in progress (events visible in it and not in last_snapshot),
	-- processed in id order a bounded number at a time
	batch_snapshot		txid_snapshot,
	batch_last_id		bigint,
	-- events from before (restored from a dump) are not alerted on again
	since				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_run_at			timestamptz,
	events_processed	bigint NOT NULL DEFAULT 0
);
INSERT INTO activity_monitor.alert_state (last_snapshot) VALUES (pg_catalog.txid_current_snapshot());

/*
 * Any change of the rules table invalidates every backend's rule cache at
 * commit (rule changes reach running sessions without a reconnect).
 */
CREATE FUNCTION activity_monitor._rules_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_rules_changed'
LANGUAGE C;
REVOKE ALL ON FUNCTION activity_monitor._rules_changed() FROM PUBLIC;
CREATE TRIGGER alert_rule_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON activity_monitor.alert_rule
	FOR EACH STATEMENT EXECUTE FUNCTION activity_monitor._rules_changed();

/*
 * create_rule(): validate everything, then insert.  Errors name the
 * parameter at fault; nothing changes on error.
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
											 description text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	all_kinds	CONSTANT text[] := '{login,profile,payment,game,provider,admin,system}';
	new_id		bigint;
BEGIN
	IF name IS NULL OR predicate IS NULL OR severity IS NULL OR measure IS NULL
	   OR group_by IS NULL OR channel IS NULL THEN
		RAISE EXCEPTION 'name, predicate, severity, measure, group_by and channel must not be null'
			USING ERRCODE = 'null_value_not_allowed';
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
			 measure_path, group_by, cooldown, channel, description)
		VALUES (name, predicate, severity, kinds, tables, within, threshold, measure,
				measure_path, group_by, cooldown, channel, description)
		RETURNING r.id INTO new_id;
	EXCEPTION WHEN unique_violation THEN
		-- a concurrent create_rule() of the same name won
		RAISE EXCEPTION 'rule "%" already exists', name
			USING ERRCODE = 'duplicate_object',
			HINT = 'Drop it first with activity_monitor.drop_rule(), or choose another name.';
	END;
	INSERT INTO activity_monitor.rule_stats (rule_id) VALUES (new_id);
	RETURN new_id;
END
$fn$;

CREATE FUNCTION activity_monitor.drop_rule(name text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	DELETE FROM activity_monitor.alert_rule r WHERE r.name = drop_rule.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$fn$;

CREATE FUNCTION activity_monitor.set_rule_enabled(name text, enabled boolean)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF enabled IS NULL THEN
		RAISE EXCEPTION 'enabled must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	UPDATE activity_monitor.alert_rule r SET enabled = set_rule_enabled.enabled
	WHERE r.name = set_rule_enabled.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$fn$;

/* Who acts on an alert: the application's actor if set, else the session user. */
CREATE FUNCTION activity_monitor._who()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT coalesce(nullif(pg_catalog.current_setting('activity_monitor.actor_id', true), ''),
					pg_catalog.session_user()::text)
$fn$;

/*
 * Move an alert to "acknowledged" or "resolved", recording who, when and the
 * note; an unknown alert and a resolved one are errors.
 */
CREATE FUNCTION activity_monitor._set_alert_status(alert_id bigint, new_status text, note text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	st	text;
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
		acknowledged_by = CASE WHEN new_status = 'acknowledged' THEN activity_monitor._who() ELSE a.acknowledged_by END,
		acknowledged_at = CASE WHEN new_status = 'acknowledged' THEN pg_catalog.now() ELSE a.acknowledged_at END,
		resolved_by = CASE WHEN new_status = 'resolved' THEN activity_monitor._who() ELSE a.resolved_by END,
		resolved_at = CASE WHEN new_status = 'resolved' THEN pg_catalog.now() ELSE a.resolved_at END,
		note = coalesce(_set_alert_status.note, a.note)
	WHERE a.id = alert_id;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._set_alert_status(bigint, text, text) FROM PUBLIC;

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
 * The NOTIFY payload of an alert, also what the consumer prints when it
 * catches up from the table: one function, so both are the same bytes.
 * Free-text values are cut (marked with "…") so the payload stays under
 * NOTIFY's 8000-byte limit and valid JSON.  Times are in UTC whatever the
 * session's TimeZone.
 */
CREATE FUNCTION activity_monitor.alert_payload(a activity_monitor.alerts)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $fn$
DECLARE
	lim		int := 500;
	p		text;
BEGIN
	LOOP
		p := pg_catalog.json_build_object(
			'alert_id', a.id, 'rule', a.rule_name, 'severity', a.severity, 'channel', a.channel,
			'group_key', activity_monitor._cut(a.group_key, lim),
			'value', CASE WHEN pg_catalog.length(a.value::text) <= 40 THEN pg_catalog.to_jsonb(a.value)
						  ELSE pg_catalog.to_jsonb(activity_monitor._cut(a.value::text, 40)) END,
			'event_id', a.event_id, 'kind', a.kind, 'action', a.action,
			'table', activity_monitor._cut(a.table_name, lim),
			'subject_id', activity_monitor._cut(a.subject_id, lim),
			'actor_type', a.actor_type, 'actor_id', activity_monitor._cut(a.actor_id, lim),
			'occurred_at', a.occurred_at, 'fired_at', a.fired_at)::text;
		EXIT WHEN pg_catalog.octet_length(p) < 8000 OR lim < 10;
		lim := lim / 4;
	END LOOP;
	RETURN p;
END
$fn$;

CREATE FUNCTION activity_monitor._cut(s text, lim int)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT CASE WHEN pg_catalog.length(s) > lim THEN pg_catalog.left(s, lim) || '…' ELSE s END
$fn$;

/* A jsonb number (or numeric string) as numeric; anything else, or a
 * number too long to be a plausible measure, NULL. */
CREATE FUNCTION activity_monitor._num(j jsonb)
RETURNS numeric
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT CASE pg_catalog.jsonb_typeof(j)
		WHEN 'number' THEN CASE WHEN pg_catalog.length(j::text) <= 1000
								THEN (j OPERATOR(pg_catalog.#>>) '{}')::numeric END
		WHEN 'string' THEN CASE WHEN pg_catalog.length(j::text) <= 1000
									 AND (j OPERATOR(pg_catalog.#>>) '{}') ~ '^-?[0-9]+(\.[0-9]+)?$'
								THEN (j OPERATOR(pg_catalog.#>>) '{}')::numeric END
	END
$fn$;

/*
 * The worker's alert duty (src/alerts.c): take the events that committed
 * since the last batch (visible in the current snapshot, not in the last
 * one, as PgQ does), in id order, at most max_events, and for each rule they
 * matched apply window, threshold and cooldown; insert alerts and NOTIFY in
 * the same transaction that moves alert_state forward, so every committed
 * event is handled once, none from a rolled-back transaction, and a crash
 * replays the batch.  Window state is kept in the worker's memory and
 * rebuilt from the activity after a restart.
 */
CREATE FUNCTION activity_monitor._process_alerts(max_events int DEFAULT 10000,
												 OUT events int, OUT fired int, OUT more boolean)
AS 'MODULE_PATHNAME', 'activity_monitor_process_alerts'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text),
	activity_monitor.drop_rule(text), activity_monitor.set_rule_enabled(text, boolean),
	activity_monitor.acknowledge(bigint, text), activity_monitor.resolve(bigint, text),
	activity_monitor._process_alerts(int), activity_monitor._who(),
	activity_monitor._num(jsonb), activity_monitor._cut(text, int),
	activity_monitor.alert_payload(activity_monitor.alerts) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text),
	activity_monitor.drop_rule(text), activity_monitor.set_rule_enabled(text, boolean)
	TO activity_monitor_admin;
GRANT EXECUTE ON FUNCTION activity_monitor.acknowledge(bigint, text), activity_monitor.resolve(bigint, text),
	activity_monitor.alert_payload(activity_monitor.alerts), activity_monitor._cut(text, int)
	TO activity_monitor_reader;
GRANT SELECT ON activity_monitor.alerts TO activity_monitor_reader;

CREATE VIEW activity_monitor.rules AS
	SELECT r.id, r.name, r.enabled, r.severity, r.predicate, r.kinds, r.tables,
		   r.within, r.threshold, r.measure, r.measure_path, r.group_by, r.cooldown,
		   r.channel, r.description, r.created_at,
		   coalesce(s.events_matched, 0) AS events_matched,
		   coalesce(s.alerts_fired, 0) AS alerts_fired,
		   coalesce(s.evaluation_errors, 0) AS evaluation_errors,
		   s.last_fired_at
	FROM activity_monitor.alert_rule r
	LEFT JOIN activity_monitor.rule_stats s ON s.rule_id = r.id
	ORDER BY r.id;

CREATE VIEW activity_monitor.open_alerts AS
	SELECT a.id, a.fired_at, a.severity, a.rule_name, a.group_key, a.value, a.status,
		   a.kind, a.action, a.table_name, a.subject_id, a.actor_type, a.actor_id,
		   a.event_id, a.event_ids, a.acknowledged_by, a.acknowledged_at, a.note
	FROM activity_monitor.alerts a
	WHERE a.status <> 'resolved'
	ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, a.fired_at DESC;

GRANT SELECT ON activity_monitor.rules, activity_monitor.open_alerts TO activity_monitor_reader;


-- ---------------------------------------------------------------------------
-- Dashboard
-- ---------------------------------------------------------------------------

-- Per-minute counts the worker keeps (last 2 days), so the dashboard never
-- scans a day of events.
CREATE TABLE activity_monitor.activity_minute (
	minute				timestamptz NOT NULL,
	kind				text NOT NULL,
	actor_type			text NOT NULL,
	employee_id			text NOT NULL,	-- actor_id of employees, '' for others
	events				bigint NOT NULL,
	critical_events		bigint NOT NULL,
	sessions_started	bigint NOT NULL,
	sessions_ended		bigint NOT NULL,
	PRIMARY KEY (minute, kind, actor_type, employee_id)
);

/*
 * The worker's rollup duty: recount the minutes from "since" (default: the
 * last 10 minutes, which covers events committed late) into activity_minute
 * and forget minutes older than two days.
 */
CREATE FUNCTION activity_monitor._rollup(since timestamptz DEFAULT pg_catalog.now() - interval '10 minutes')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	n	bigint;
BEGIN
	since := pg_catalog.date_trunc('minute', since);
	-- one rollup at a time (the worker's and a manual call)
	PERFORM pg_catalog.pg_advisory_xact_lock(1634038889, 1919905900);
	DELETE FROM activity_monitor.activity_minute m WHERE m.minute >= since;
	INSERT INTO activity_monitor.activity_minute
	SELECT pg_catalog.date_trunc('minute', a.occurred_at), a.kind, a.actor_type,
		   CASE WHEN a.actor_type = 'employee' THEN coalesce(a.actor_id, '') ELSE '' END,
		   pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE a.critical),
		   pg_catalog.count(*) FILTER (WHERE a.kind = 'login' AND a.action = 'insert'
				AND a.status_to IS DISTINCT FROM 'failed'),
		   pg_catalog.count(*) FILTER (WHERE a.kind = 'login' AND (a.action = 'delete'
				OR (a.action = 'update' AND (a.status_to IN ('closed', 'ended', 'logged_out', 'expired', 'revoked')
					OR a.new_values ->> 'ended_at' IS NOT NULL
					OR a.new_values ->> 'logged_out_at' IS NOT NULL))))
	FROM activity_monitor.activity a
	WHERE a.occurred_at >= since
	GROUP BY 1, 2, 3, 4;
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM activity_monitor.activity_minute m WHERE m.minute < pg_catalog.now() - interval '2 days';
	RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._rollup(timestamptz) FROM PUBLIC;

/*
 * The one query an activity dashboard needs, one row: events in the last 5
 * minutes, hour and day by kind and actor type, active sessions (started
 * minus ended in the last day), open alerts by severity, the busiest
 * employees of the day and the latest critical changes.  Counts come from
 * activity_minute (up to one naptime behind); the critical changes are read
 * live, newest first through the partitions' occurred_at index.
 */
CREATE VIEW activity_monitor.dashboard AS
	SELECT pg_catalog.now() AS generated_at,
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(e) ORDER BY e.last_day DESC, e.kind, e.actor_type), '[]')
			FROM (SELECT m.kind, m.actor_type,
						 coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= pg_catalog.now() - interval '5 minutes'), 0) AS last_5m,
						 coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= pg_catalog.now() - interval '1 hour'), 0) AS last_hour,
						 pg_catalog.sum(m.events) AS last_day
				  FROM activity_monitor.activity_minute m
				  WHERE m.minute >= pg_catalog.now() - interval '1 day'
				  GROUP BY m.kind, m.actor_type) e) AS events,
		   (SELECT coalesce(pg_catalog.sum(m.sessions_started - m.sessions_ended), 0)
			FROM activity_monitor.activity_minute m
			WHERE m.minute >= pg_catalog.now() - interval '1 day') AS active_sessions,
		   (SELECT pg_catalog.jsonb_build_object(
					'critical', pg_catalog.count(*) FILTER (WHERE a.severity = 'critical'),
					'warning', pg_catalog.count(*) FILTER (WHERE a.severity = 'warning'),
					'info', pg_catalog.count(*) FILTER (WHERE a.severity = 'info'))
			FROM activity_monitor.alerts a WHERE a.status <> 'resolved') AS open_alerts,
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(b) ORDER BY b.actions DESC, b.employee_id), '[]')
			FROM (SELECT m.employee_id, pg_catalog.sum(m.events) AS actions
				  FROM activity_monitor.activity_minute m
				  WHERE m.employee_id <> '' AND m.minute >= pg_catalog.now() - interval '1 day'
				  GROUP BY m.employee_id
				  ORDER BY 2 DESC, 1 LIMIT 5) b) AS busiest_employees,
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c) ORDER BY c.occurred_at DESC, c.id DESC), '[]')
			FROM (SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id,
						 a.actor_type, a.actor_id, a.status_from, a.status_to
				  FROM activity_monitor.activity a
				  WHERE a.critical AND a.occurred_at >= pg_catalog.now() - interval '1 day'
				  ORDER BY a.occurred_at DESC, a.id DESC LIMIT 10) c) AS latest_critical;

GRANT SELECT ON activity_monitor.dashboard, activity_monitor.activity_minute TO activity_monitor_reader;

-- Partitions for today and the days ahead.  Skipped while a dump is being
-- restored (pg_dump scripts run with row_security off): the dump brings its
-- own partitions, and maintain() adds what is missing afterwards.
DO $premake$
BEGIN
	IF pg_catalog.current_setting('row_security')::boolean THEN
		PERFORM activity_monitor.maintain();
	END IF;
END
$premake$;

SELECT activity_monitor.start_worker();
