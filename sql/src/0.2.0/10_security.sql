-- ---------------------------------------------------------------------------
-- Security model: the worker's SQL, who may track, retention's floor,
-- alert handling by responders.
-- ---------------------------------------------------------------------------

/*
 * The worker's bookkeeping, as functions that pin their search_path: the
 * worker (a superuser) runs no other SQL than calls of the extension's own
 * functions.
 */
CREATE FUNCTION activity_monitor._worker_started(pid int)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
	UPDATE activity_monitor.worker_state
	SET pid = _worker_started.pid, started_at = pg_catalog.now(),
		starts = starts OPERATOR(pg_catalog.+) 1
$fn$;

CREATE FUNCTION activity_monitor._worker_error(error text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
	UPDATE activity_monitor.worker_state
	SET last_error = _worker_error.error, last_error_at = pg_catalog.now()
$fn$;

/*
 * The worker's partition duty: maintenance, and its outcome in worker_state
 * in the same transaction.  Skipped while a superuser's pg_restore is
 * connected to the database (the dump brings its own partitions).
 */
CREATE FUNCTION activity_monitor._worker_partitions()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	m	record;
BEGIN
	-- (a superuser's pg_restore: any role can name its session pg_restore)
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
			   WHERE a.datname = pg_catalog.current_database() AND a.application_name = 'pg_restore'
				 AND r.rolsuper) THEN
		RETURN;
	END IF;
	SELECT * INTO m FROM activity_monitor._maintain() x;
	UPDATE activity_monitor.worker_state
	SET last_run_at = pg_catalog.now(),
		last_result = pg_catalog.format('created %s, retired %s', m.created, m.retired),
		partitions_created = partitions_created + m.created,
		partitions_retired = partitions_retired + m.retired;
END
$fn$;

REVOKE ALL ON FUNCTION activity_monitor._worker_started(int), activity_monitor._worker_error(text),
	activity_monitor._worker_partitions() FROM PUBLIC;

/*
 * Is the role running this session (session_user: the functions that ask
 * are SECURITY DEFINER) a superuser?
 */
CREATE FUNCTION activity_monitor._session_is_superuser()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER), false)
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._session_is_superuser() FROM PUBLIC;

/*
 * Only a table's owner (or a superuser) may start, change or stop its
 * capture: tracking records every value of every row, so an admin who could
 * track any table could read tables it has no SELECT on.  Checked on every
 * change of activity_monitor.tracked, whoever makes it (track(), untrack(),
 * a rename that updates settings); rows of tables that were just dropped go
 * without a check (the drop itself needed ownership).
 */
CREATE FUNCTION activity_monitor._tracked_check_owner()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t		regclass := CASE WHEN TG_OP = 'DELETE' THEN OLD.tbl ELSE NEW.tbl END;
	owner	oid;
BEGIN
	SELECT c.relowner INTO owner FROM pg_catalog.pg_class c WHERE c.oid = t;
	IF FOUND AND NOT activity_monitor._session_is_superuser()
	   AND NOT pg_catalog.pg_has_role(SESSION_USER, owner, 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of table % to % its capture', t,
			CASE WHEN TG_OP = 'DELETE' THEN 'stop' ELSE 'start or change' END
			USING ERRCODE = 'insufficient_privilege',
			DETAIL = 'Capture records every value of a table''s rows: only the table''s owner or a superuser may track or untrack it.',
			HINT = pg_catalog.format('Ask the owner of %s (role %s) or a superuser.', t, pg_catalog.pg_get_userbyid(owner));
	END IF;
	RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._tracked_check_owner() FROM PUBLIC;
CREATE TRIGGER tracked_check_owner
	AFTER INSERT OR UPDATE OR DELETE ON activity_monitor.tracked
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._tracked_check_owner();

-- ---------------------------------------------------------------------------
-- Retention cannot erase history
-- ---------------------------------------------------------------------------

/* activity_monitor.min_retention (set by superusers only), as an interval. */
CREATE FUNCTION activity_monitor._min_retention()
RETURNS interval
AS 'MODULE_PATHNAME', 'activity_monitor_min_retention'
LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION activity_monitor._min_retention() FROM PUBLIC;

/*
 * configure(): change partitioning and retention; NULL keeps a value.
 * retention_mode 'none' switches retention off.  A retention below
 * activity_monitor.min_retention is refused.  Everything is validated before
 * anything changes.
 */
CREATE OR REPLACE FUNCTION activity_monitor.configure(partition_interval interval DEFAULT NULL,
													  premake int DEFAULT NULL,
													  retention interval DEFAULT NULL,
													  retention_mode text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	floor	interval := activity_monitor._min_retention();
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

/*
 * The partition maintenance the worker runs and maintain() exposes: create
 * every partition missing from the one holding "now" to premake intervals
 * ahead, and retire (drop or detach) those wholly older than the retention,
 * never than activity_monitor.min_retention (a retention configured below
 * it, as 0.1.0 allowed, counts as the floor).  Each DDL is its own
 * subtransaction under a short lock_timeout (2 s to create, 100 ms to retire,
 * which blocks writers while it waits): one that cannot get its lock is
 * skipped with a warning and retried next time.
 */
CREATE OR REPLACE FUNCTION activity_monitor._maintain("now" timestamptz DEFAULT pg_catalog.now(),
													  OUT created int, OUT retired int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
DECLARE
	cfg		activity_monitor.config;
	keep	interval;
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
	-- One maintenance at a time (the worker's and an admin's maintain()).  A
	-- table lock, not an advisory lock, which any role could take and hold.
	LOCK TABLE activity_monitor.config IN SHARE UPDATE EXCLUSIVE MODE;
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
		keep := GREATEST(cfg.retention, activity_monitor._min_retention());
		-- Retiring takes ACCESS EXCLUSIVE on the activity table: waiting for
		-- it behind a reader's long query would queue every captured write
		-- behind the wait.  Wait briefly; a partition not retired now is
		-- retired on a later run.
		PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
		FOR p IN SELECT q.part FROM activity_monitor._partitions() q
				 WHERE q.upper <= _maintain."now" - keep ORDER BY q.lower
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
	RETURN m.created + m.retired;
END
$fn$;

-- ---------------------------------------------------------------------------
-- Alert handling: activity_monitor_responder, recorded by session user
-- ---------------------------------------------------------------------------

DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'activity_monitor_responder') THEN
		CREATE ROLE activity_monitor_responder NOLOGIN;
	END IF;
	GRANT activity_monitor_reader TO activity_monitor_responder;
	GRANT activity_monitor_responder TO activity_monitor_admin;
END
$roles$;

-- who handled an alert: the role (session user) always; the actor the
-- application declared (set_actor), when there was one, in addition
ALTER TABLE activity_monitor.alerts
	ADD COLUMN acknowledged_actor text,
	ADD COLUMN resolved_actor text;
COMMENT ON COLUMN activity_monitor.alerts.acknowledged_by IS
	'the role (session user) that acknowledged the alert';
COMMENT ON COLUMN activity_monitor.alerts.acknowledged_actor IS
	'the actor the application declared (activity_monitor.actor_id) when the alert was acknowledged: a claim, not an identity';
COMMENT ON COLUMN activity_monitor.alerts.resolved_by IS
	'the role (session user) that resolved the alert';
COMMENT ON COLUMN activity_monitor.alerts.resolved_actor IS
	'the actor the application declared (activity_monitor.actor_id) when the alert was resolved: a claim, not an identity';

/*
 * Move an alert to "acknowledged" or "resolved", recording the session user,
 * the declared actor, when, and the note; an unknown alert and a resolved
 * one are errors.
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
END
$fn$;

DROP FUNCTION activity_monitor._who();

REVOKE EXECUTE ON FUNCTION activity_monitor.acknowledge(bigint, text), activity_monitor.resolve(bigint, text)
	FROM activity_monitor_reader;
GRANT EXECUTE ON FUNCTION activity_monitor.acknowledge(bigint, text), activity_monitor.resolve(bigint, text)
	TO activity_monitor_responder;

CREATE OR REPLACE VIEW activity_monitor.open_alerts AS
	SELECT a.id, a.fired_at, a.severity, a.rule_name, a.group_key, a.value, a.status,
		   a.kind, a.action, a.table_name, a.subject_id, a.actor_type, a.actor_id,
		   a.event_id, a.event_ids, a.acknowledged_by, a.acknowledged_at, a.note,
		   a.acknowledged_actor
	FROM activity_monitor.alerts a
	WHERE a.status <> 'resolved'
	ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, a.fired_at DESC;

/*
 * The worker's rollup duty: recount the minutes from "since" (default: the
 * last 10 minutes, which covers events committed late) into activity_minute
 * and forget minutes older than two days.
 */
CREATE OR REPLACE FUNCTION activity_monitor._rollup(since timestamptz DEFAULT pg_catalog.now() - interval '10 minutes')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	n	bigint;
BEGIN
	since := pg_catalog.date_trunc('minute', since);
	-- One rollup at a time (the worker's and a manual call).  A table lock,
	-- not an advisory lock, which any role could take and hold.
	LOCK TABLE activity_monitor.activity_minute IN SHARE UPDATE EXCLUSIVE MODE;
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
