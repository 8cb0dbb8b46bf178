/*
 * activity_monitor 0.2.0: each vocabulary defined once (issue 12).
 *
 * The activity kinds were spelled out in tracked's CHECK constraint, in
 * track() and in create_rule(); the statuses that end a session in
 * user_sessions and, without 'failed', in the rollup behind
 * dashboard.active_sessions, which also counted a session twice when a
 * closed row expired or was deleted.  Now: _kinds() and
 * _session_end_statuses() (sql/src/15_vocabulary.sql), and one definition
 * of a session's start and end, the private view _activity_sessions, read
 * by user_sessions and _rollup().  (Minutes already rolled up keep their
 * counts; the worker recounts the last ten minutes each time, and the
 * dashboard's day is the updated count within a day.)
 */

/* The kinds of activity a tracked table records (README, "Tracking tables"). */
CREATE FUNCTION activity_monitor._kinds()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT '{login,profile,payment,game,provider,admin,system}'::text[]
$fn$;

/*
 * The statuses of a row of a login-kind table that end its session (see
 * the view _activity_sessions for everything that ends one).
 */
CREATE FUNCTION activity_monitor._session_end_statuses()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT '{closed,ended,logged_out,expired,revoked,failed}'::text[]
$fn$;

REVOKE ALL ON FUNCTION activity_monitor._kinds(), activity_monitor._session_end_statuses() FROM PUBLIC;
-- Views call it (user_sessions): the planner folds it into a constant as the
-- role that queries them.
GRANT EXECUTE ON FUNCTION activity_monitor._session_end_statuses() TO activity_monitor_reader;

ALTER TABLE activity_monitor.tracked DROP CONSTRAINT tracked_kind_check,
	ADD CONSTRAINT tracked_kind_check CHECK (kind OPERATOR(pg_catalog.=) ANY (activity_monitor._kinds()));


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
	RETURN new_id;
END
$fn$;

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
			   AND e.ended AND NOT e.was_ended AS ends_session
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
CREATE OR REPLACE VIEW activity_monitor.user_sessions AS
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
			   pg_catalog.bool_or(a.session_ended) AS ended,
			   -- where from: the row's own ip column, else what the application said
			   (pg_catalog.array_agg(coalesce(a.new_values ->> 'ip', a.actor_context ->> 'ip') ORDER BY a.id)
					FILTER (WHERE coalesce(a.new_values ->> 'ip', a.actor_context ->> 'ip') IS NOT NULL))[1] AS ip,
			   (pg_catalog.array_agg(a.client_addr ORDER BY a.id) FILTER (WHERE a.client_addr IS NOT NULL))[1] AS client_addr,
			   (pg_catalog.array_agg(a.application_name ORDER BY a.id))[1] AS application_name
		FROM activity_monitor._activity_sessions a
		WHERE a.kind = 'login' AND a.action <> 'truncate'
		GROUP BY a.table_name, a.row_key
	) s;

/*
 * The worker's rollup duty: recount the minutes from "since" (default: the
 * last 10 minutes, which covers events committed late) into activity_minute
 * and forget minutes older than two days.  Sessions start and end as
 * _activity_sessions says, the definition user_sessions uses.
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
		   pg_catalog.count(*) FILTER (WHERE a.starts_session),
		   pg_catalog.count(*) FILTER (WHERE a.ends_session)
	FROM activity_monitor._activity_sessions a
	WHERE a.occurred_at >= since
	GROUP BY 1, 2, 3, 4;
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM activity_monitor.activity_minute m WHERE m.minute < pg_catalog.now() - interval '2 days';
	-- the dashboard's counts, once per rollup rather than once per query
	INSERT INTO activity_monitor.dashboard_counts (computed_at, events, active_sessions, busiest_employees)
	SELECT pg_catalog.now(), d.events, d.active_sessions, d.busiest_employees
	FROM activity_monitor._dashboard_counts(pg_catalog.now()) d
	ON CONFLICT (single) DO UPDATE
		SET computed_at = excluded.computed_at, events = excluded.events,
			active_sessions = excluded.active_sessions, busiest_employees = excluded.busiest_employees;
	RETURN n;
END
$fn$;
