-- ---------------------------------------------------------------------------
-- Notifications without personal data (issue 10, "Notifications leak and can
-- be forged")
--
-- NOTIFY has no privileges: every role that can connect to the database can
-- LISTEN on an alert channel and read every payload, and can NOTIFY on it.
-- So the payload is public: by default it says only that an alert fired
-- (alert_id, rule, severity, fired_at); a rule opts into the full payload
-- (the 0.1.0 content: group key, value, subject, actor, table...) with
-- full_payload => true, knowing every connected role can read it.  Rules of
-- 0.1.0 get the default (false); set_rule_full_payload() changes it.
-- Consumers read the alert itself from activity_monitor.alerts
-- (activity_monitor_reader), and treat a notification as a wake-up only,
-- since anyone can send one.
-- ---------------------------------------------------------------------------

ALTER TABLE activity_monitor.alert_rule
	ADD COLUMN full_payload boolean NOT NULL DEFAULT false;

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
 * Whether a rule sends the full payload; false for a rule that no longer
 * exists.  SECURITY DEFINER so that readers, who see the rules view but not
 * the rules table, get the payload their notification carried.
 */
CREATE FUNCTION activity_monitor._full_payload(rule_id bigint)
RETURNS boolean
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT coalesce((SELECT r.full_payload FROM activity_monitor.alert_rule r
					 WHERE r.id OPERATOR(pg_catalog.=) rule_id), false)
$fn$;

/*
 * The NOTIFY payload of an alert (what the worker sends): the public payload,
 * or the full one if its rule opted in (by the rule's current setting).
 * (The worker builds the same in C, src/notify.c, and reads the rule's
 * setting itself.)
 */
CREATE OR REPLACE FUNCTION activity_monitor.alert_payload(a activity_monitor.alerts)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	RETURN activity_monitor.alert_payload(a, activity_monitor._full_payload(a.rule_id));
END
$fn$;

REVOKE ALL ON FUNCTION activity_monitor.alert_payload(activity_monitor.alerts, boolean),
	activity_monitor._full_payload(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.alert_payload(activity_monitor.alerts, boolean),
	activity_monitor._full_payload(bigint) TO activity_monitor_reader;

/*
 * create_rule() gains full_payload (last, so positional calls of 0.1.0 still
 * work): the signature changes, so the function is dropped and created again.
 */
DROP FUNCTION activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text);

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
											 full_payload boolean DEFAULT false)
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

REVOKE ALL ON FUNCTION activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text, boolean) TO activity_monitor_admin;

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
BEGIN
	IF full_payload IS NULL THEN
		RAISE EXCEPTION 'full_payload must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	UPDATE activity_monitor.alert_rule r SET full_payload = set_rule_full_payload.full_payload
	WHERE r.name = set_rule_full_payload.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rule "%" does not exist', name USING ERRCODE = 'undefined_object';
	END IF;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor.set_rule_full_payload(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.set_rule_full_payload(text, boolean) TO activity_monitor_admin;

-- The rules view shows the option (a new column goes last: CREATE OR
-- REPLACE VIEW keeps the grants).
CREATE OR REPLACE VIEW activity_monitor.rules AS
	SELECT r.id, r.name, r.enabled, r.severity, r.predicate, r.kinds, r.tables,
		   r.within, r.threshold, r.measure, r.measure_path, r.group_by, r.cooldown,
		   r.channel, r.description, r.created_at,
		   coalesce(s.events_matched, 0) AS events_matched,
		   coalesce(s.alerts_fired, 0) AS alerts_fired,
		   coalesce(s.evaluation_errors, 0) AS evaluation_errors,
		   s.last_fired_at,
		   r.full_payload
	FROM activity_monitor.alert_rule r
	LEFT JOIN activity_monitor.rule_stats s ON s.rule_id OPERATOR(pg_catalog.=) r.id
	ORDER BY r.id;
