/*
 * Backtesting (issue 14): test_rule() and its C part _test_rule(); the
 * checks create_rule() made inline move to _check_rule_shape(), and the
 * window bounds of _check_rule_bounds() to _check_window_bounds(), which
 * test_rule() calls too.
 */

/*
 * A window's bounds (_check_rule_bounds, test_rule()): at most
 * activity_monitor.max_window long, and a count or distinct threshold a
 * window can reach.
 */
CREATE FUNCTION activity_monitor._check_window_bounds(within interval, measure text, threshold numeric)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	lim		record;
BEGIN
	IF within IS NULL THEN
		RETURN;
	END IF;
	lim := activity_monitor._window_limits();
	IF within OPERATOR(pg_catalog.>) lim.max_window THEN
		RAISE EXCEPTION 'within must be at most %', lim.max_window
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The rule asks for %s; the worker keeps windows of at most activity_monitor.max_window in memory and reads them back after a restart.',
									   within),
			HINT = 'Use a shorter window, or have a superuser raise activity_monitor.max_window (ALTER SYSTEM, then pg_reload_conf()).';
	END IF;
	IF measure OPERATOR(pg_catalog.=) ANY ('{count,distinct}'::text[])
	   AND threshold OPERATOR(pg_catalog.>) lim.max_events_per_window THEN
		RAISE EXCEPTION 'threshold of a % rule must be at most %', measure, lim.max_events_per_window
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A window keeps at most activity_monitor.max_events_per_window events (and no more than activity_monitor.max_events_per_rule): a higher count could never be reached.',
			HINT = 'Use a lower threshold, or have a superuser raise activity_monitor.max_events_per_window (ALTER SYSTEM, then pg_reload_conf()).';
	END IF;
END
$fn$;

/*
 * What create_rule() and test_rule() check of a rule's shape: its measure,
 * window, threshold, cooldown, kinds and tables (22023 or 22004 with a
 * hint where one helps).
 */
CREATE FUNCTION activity_monitor._check_rule_shape(kinds text[], tables regclass[], within interval,
												   threshold numeric, measure text,
												   measure_path jsonpath, cooldown interval)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	all_kinds	CONSTANT text[] := activity_monitor._kinds();
BEGIN
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
END
$fn$;

/*
 * Refuse a rule whose window is longer than max_window, or whose count or
 * distinct threshold is above what a window keeps (it could never fire):
 * 22023 with a hint, which create_rule()'s exception block (unique_violation
 * only) lets through.  A restore (pg_dump scripts run with row_security off)
 * keeps what was dumped: the worker cuts a longer window to max_window.
 */
CREATE OR REPLACE FUNCTION activity_monitor._check_rule_bounds()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF NEW.within IS NULL OR NOT pg_catalog.current_setting('row_security')::boolean THEN
		RETURN NEW;
	END IF;
	PERFORM activity_monitor._check_window_bounds(NEW.within, NEW.measure, NEW.threshold);
	RETURN NEW;
END
$fn$;

/* test_rule()'s backtest, in C (src/backtest.c); the definition checked before. */
CREATE FUNCTION activity_monitor._test_rule(predicate jsonpath, since timestamptz, until timestamptz,
											kinds text[], tables text[], within interval,
											threshold numeric, measure text, measure_path jsonpath,
											group_by jsonpath, cooldown interval)
RETURNS TABLE (event_id bigint, occurred_at timestamptz, group_key text, value numeric,
			   event_ids bigint[], kind text, action text, table_name text,
			   subject_id text, actor_type text, actor_id text)
AS 'MODULE_PATHNAME', 'activity_monitor_test_rule'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

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
	PERFORM activity_monitor._check_rule_shape(kinds, tables, within, threshold, measure,
											   measure_path, cooldown);
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
										   cooldown interval DEFAULT NULL)
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
											   measure_path, cooldown);
	PERFORM activity_monitor._check_window_bounds(within, measure, threshold);
	RETURN QUERY
	SELECT * FROM activity_monitor._test_rule(predicate, since, until, kinds,
		-- the tables' names (an empty list, or tables since dropped: none)
		CASE WHEN tables IS NOT NULL THEN
			coalesce((SELECT pg_catalog.array_agg(pg_catalog.format('%I.%I', n.nspname, c.relname))
					  FROM pg_catalog.unnest(tables) t(oid)
					  JOIN pg_catalog.pg_class c ON c.oid = t.oid
					  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace), '{}')
		END,
		within, threshold, measure, measure_path, group_by, cooldown);
END
$fn$;
COMMENT ON FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval) IS
	'the alerts a rule of this definition would have fired over the stored events of [since, until), without writing or notifying';

REVOKE ALL ON FUNCTION activity_monitor._check_window_bounds(interval, text, numeric),
	activity_monitor._check_rule_shape(text[], regclass[], interval, numeric, text, jsonpath, interval),
	activity_monitor._test_rule(jsonpath, timestamptz, timestamptz, text[], text[], interval,
		numeric, text, jsonpath, jsonpath, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval) TO activity_monitor_reader;
