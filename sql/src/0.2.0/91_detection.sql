/*
 * Detection v2 (issue 14): sequence, absence and first-seen rules.
 * alert_rule gains steps, missing and lookback, and one CHECK on what a
 * rule is replaces 0.1.0's on within and threshold; the first-seen rules'
 * memory (seen); create_rule(), test_rule(), _test_rule() and
 * _check_rule_shape() take the new parameters (dropped and created
 * again: their signatures change); _rule_matches() backfills a first-seen
 * rule; the rules view shows each rule's type.
 */
ALTER TABLE activity_monitor.alert_rule
	ADD COLUMN steps jsonpath[],
	ADD COLUMN missing jsonpath,
	ADD COLUMN lookback interval,
	DROP CONSTRAINT alert_rule_check,
	ADD CONSTRAINT alert_rule_type_check CHECK (CASE
		WHEN steps IS NOT NULL THEN
			within IS NOT NULL AND threshold IS NULL AND lookback IS NULL AND measure_path IS NULL
			AND pg_catalog.cardinality(steps) BETWEEN (CASE WHEN missing IS NULL THEN 2 ELSE 1 END) AND 8
		WHEN lookback IS NOT NULL THEN
			lookback > interval '0' AND measure_path IS NOT NULL AND within IS NULL
			AND threshold IS NULL AND missing IS NULL
		ELSE missing IS NULL AND (within IS NULL) = (threshold IS NULL) END);
COMMENT ON COLUMN activity_monitor.alert_rule.steps IS
	'a sequence rule''s steps, in order (with missing: an absence rule''s)';
COMMENT ON COLUMN activity_monitor.alert_rule.missing IS
	'an absence rule''s missing step: fires when no event matches it within "within" of the first step';
COMMENT ON COLUMN activity_monitor.alert_rule.lookback IS
	'a first-seen rule''s lookback: fires when the value at measure_path was not seen for the group key within it';

-- a sequence or absence rule's recent alerts, read back by the worker's rebuild
CREATE INDEX alerts_rule_fired_idx ON activity_monitor.alerts (rule_id, fired_at);

/*
 * First-seen rules' memory (src/seen.c): the values each group key showed,
 * and when last, within the rule's lookback.  Written by the alert batch,
 * backfilled by create_rule(), pruned by the worker.
 */
CREATE TABLE activity_monitor.seen (
	rule_id		bigint NOT NULL REFERENCES activity_monitor.alert_rule ON DELETE CASCADE,
	group_key	text,
	value		text NOT NULL,
	last_seen	timestamptz NOT NULL,
	CONSTRAINT seen_key UNIQUE NULLS NOT DISTINCT (rule_id, group_key, value)
);
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.seen', '');

DROP FUNCTION activity_monitor._check_rule_shape(text[], regclass[], interval, numeric, text,
	jsonpath, interval);
DROP FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval);
DROP FUNCTION activity_monitor._test_rule(jsonpath, timestamptz, timestamptz, text[], text[], interval,
	numeric, text, jsonpath, jsonpath, interval);
DROP FUNCTION activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
	numeric, text, jsonpath, jsonpath, interval, text, text, boolean);

/*
 * What create_rule() and test_rule() check of a rule's shape: its type
 * (per event, window, sequence, absence, first seen: what it has), measure,
 * window, threshold, cooldown, steps, lookback, kinds and tables (22023 or
 * 22004 with a hint where one helps).  The paths themselves are checked by
 * _check_rule() (C, rules.c).
 */
CREATE FUNCTION activity_monitor._check_rule_shape(kinds text[], tables regclass[], within interval,
												   threshold numeric, measure text,
												   measure_path jsonpath, cooldown interval,
												   steps jsonpath[], missing jsonpath,
												   lookback interval)
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
	IF steps IS NOT NULL OR missing IS NOT NULL THEN
		IF steps IS NULL OR pg_catalog.cardinality(steps) = 0 THEN
			RAISE EXCEPTION 'a sequence or absence rule needs steps'
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A sequence fires when events match its steps in order; an absence waits, after its steps, for an event matching missing.',
				HINT = 'For example steps => ARRAY[''$.status_to == "pending"'']::jsonpath[].';
		END IF;
		IF EXISTS (SELECT FROM pg_catalog.unnest(steps) s(p) WHERE s.p IS NULL) THEN
			RAISE EXCEPTION 'steps must not contain null'
				USING ERRCODE = 'null_value_not_allowed';
		END IF;
		IF pg_catalog.cardinality(steps) > 8 THEN
			RAISE EXCEPTION 'a rule has at most 8 steps'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF missing IS NULL AND pg_catalog.cardinality(steps) < 2 THEN
			RAISE EXCEPTION 'a sequence needs at least two steps'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'A rule without steps fires for each matching event; with missing => ..., one step waits for an event that should follow.';
		END IF;
		IF within IS NULL THEN
			RAISE EXCEPTION 'a sequence or absence rule needs within'
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'Its steps must occur within it of the first one; an absence fires when it passes without the missing event.',
				HINT = 'For example within => ''1 hour''.';
		END IF;
		IF threshold IS NOT NULL OR lookback IS NOT NULL OR measure <> 'count'
		   OR measure_path IS NOT NULL THEN
			RAISE EXCEPTION 'threshold, measure, measure_path and lookback do not apply to a sequence or absence rule'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'It fires once per complete sequence; leave them out.';
		END IF;
	ELSIF lookback IS NOT NULL THEN
		IF lookback <= interval '0' OR lookback > interval '366 days' THEN
			RAISE EXCEPTION 'lookback must be positive and at most 366 days'
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = pg_catalog.format('The rule asks for %s.', lookback),
				HINT = 'For example lookback => ''30 days''.';
		END IF;
		IF measure_path IS NULL THEN
			RAISE EXCEPTION 'a first-seen rule needs a measure_path'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'The value whose first appearance for the group key fires, for example measure_path => ''$.new.device_id''.';
		END IF;
		IF within IS NOT NULL OR threshold IS NOT NULL OR measure <> 'count' THEN
			RAISE EXCEPTION 'within, threshold and measure do not apply to a first-seen rule'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'It fires for each value not seen for its group key within the lookback; leave them out.';
		END IF;
	ELSE
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
 * The names of tables as the activity's table_name holds them, for the
 * backtests (an empty list, or tables since dropped: none; NULL: any).
 */
CREATE FUNCTION activity_monitor._table_names(tables regclass[])
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT CASE WHEN tables IS NOT NULL THEN
		coalesce((SELECT pg_catalog.array_agg(pg_catalog.format('%I.%I', n.nspname, c.relname))
				  FROM pg_catalog.unnest(tables) t(oid)
				  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.oid
				  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace), '{}')
	END
$fn$;

/* test_rule()'s backtest, in C (src/backtest.c); the definition checked before. */
CREATE FUNCTION activity_monitor._test_rule(predicate jsonpath, since timestamptz, until timestamptz,
											kinds text[], tables text[], within interval,
											threshold numeric, measure text, measure_path jsonpath,
											group_by jsonpath, cooldown interval, steps jsonpath[],
											missing jsonpath, lookback interval)
RETURNS TABLE (event_id bigint, occurred_at timestamptz, group_key text, value numeric,
			   event_ids bigint[], kind text, action text, table_name text,
			   subject_id text, actor_type text, actor_id text)
AS 'MODULE_PATHNAME', 'activity_monitor_test_rule'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

/*
 * Every stored event of [since, until) a rule of this definition matches:
 * its time, group key and value (cut as activity_monitor.seen holds them),
 * for create_rule()'s backfill of a first-seen rule (src/backtest.c).
 */
CREATE FUNCTION activity_monitor._rule_matches(predicate jsonpath, since timestamptz, until timestamptz,
											   kinds text[], tables text[], within interval,
											   threshold numeric, measure text, measure_path jsonpath,
											   group_by jsonpath, cooldown interval, steps jsonpath[],
											   missing jsonpath, lookback interval)
RETURNS TABLE (occurred_at timestamptz, group_key text, value text)
AS 'MODULE_PATHNAME', 'activity_monitor_rule_matches'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

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

CREATE OR REPLACE VIEW activity_monitor.rules AS
	SELECT r.id, r.name, r.enabled, r.severity, r.predicate, r.kinds, r.tables,
		   r.within, r.threshold, r.measure, r.measure_path, r.group_by, r.cooldown,
		   r.channel, r.description, r.created_at,
		   coalesce(s.events_matched, 0) AS events_matched,
		   coalesce(s.alerts_fired, 0) AS alerts_fired,
		   coalesce(s.evaluation_errors, 0) AS evaluation_errors,
		   s.last_fired_at,
		   r.full_payload,
		   coalesce(s.keys_evicted, 0) AS keys_evicted,
		   coalesce(s.events_evicted, 0) AS events_evicted,
		   activity_monitor._predicate_plan(r.predicate) AS evaluation,
		   CASE WHEN r.steps IS NOT NULL AND r.missing IS NOT NULL THEN 'absence'
				WHEN r.steps IS NOT NULL THEN 'sequence'
				WHEN r.lookback IS NOT NULL THEN 'first_seen'
				WHEN r.within IS NOT NULL THEN 'window'
				ELSE 'event' END AS rule_type,
		   r.steps, r.missing, r.lookback
	FROM activity_monitor.alert_rule r
	LEFT JOIN activity_monitor.rule_stats s ON s.rule_id OPERATOR(pg_catalog.=) r.id
	ORDER BY r.id;

REVOKE ALL ON FUNCTION activity_monitor._check_rule_shape(text[], regclass[], interval, numeric, text,
		jsonpath, interval, jsonpath[], jsonpath, interval),
	activity_monitor._test_rule(jsonpath, timestamptz, timestamptz, text[], text[], interval,
		numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval),
	activity_monitor._rule_matches(jsonpath, timestamptz, timestamptz, text[], text[], interval,
		numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval),
	activity_monitor._table_names(regclass[]),
	activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text, boolean, jsonpath[], jsonpath,
		interval),
	activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
		interval, numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text, boolean, jsonpath[], jsonpath,
		interval)
	TO activity_monitor_admin;
GRANT EXECUTE ON FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval)
	TO activity_monitor_reader;
REVOKE ALL ON activity_monitor.seen FROM PUBLIC;
