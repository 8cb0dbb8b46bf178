-- Bounded windows (issue 12, "Bounds"), what one transaction can see: the
-- settings and their defaults, the cap on a rule's window (within) and on
-- count and distinct thresholds, with SQLSTATE, message, detail and hint,
-- for create_rule() and a direct write; nothing changed after a refusal; a
-- restore (row_security off) keeps what was dumped; the eviction counters
-- in the rules view.  (What the worker does with the bounds:
-- test/shell/bounds_*.sh.)
BEGIN;
SELECT plan(24);
SET LOCAL client_min_messages = warning;

CREATE FUNCTION pg_temp.err_part(sql text, part text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	d text;
	h text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RETURN CASE part WHEN 'detail' THEN d ELSE h END;
END
$$;

-- ---------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------
SELECT results_eq(
	$$SELECT name, setting, unit, context FROM pg_settings
	  WHERE name IN ('activity_monitor.max_window', 'activity_monitor.max_keys_per_rule',
					 'activity_monitor.max_events_per_window', 'activity_monitor.max_events_per_rule')
	  ORDER BY name$$,
	$$VALUES ('activity_monitor.max_events_per_rule'::text, '100000'::text, NULL::text, 'sighup'::text),
			 ('activity_monitor.max_events_per_window', '1000', NULL, 'sighup'),
			 ('activity_monitor.max_keys_per_rule', '10000', NULL, 'sighup'),
			 ('activity_monitor.max_window', '86400', 's', 'sighup')$$,
	'the bounds: settings, defaults, reloaded on SIGHUP');
SELECT throws_ok($$SET activity_monitor.max_window = '2d'$$, '55P02', NULL,
	'max_window cannot be set in a session (the worker would not see it)');
SELECT results_eq($$SELECT max_window, max_events_per_window FROM activity_monitor._window_limits()$$,
	$$VALUES ('1 day'::interval, 1000)$$, '_window_limits(): the settings, as a rule sees them');
SELECT ok(NOT has_function_privilege('public', 'activity_monitor._window_limits()', 'EXECUTE'),
	'_window_limits() is not public');

-- ---------------------------------------------------------------------------
-- within at most max_window
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT activity_monitor.create_rule('day', '$.a == 1', within => '1 day', threshold => 3)$$,
	'create_rule(): within of exactly max_window');
SELECT lives_ok($$SELECT activity_monitor.create_rule('hours', '$.a == 1', within => '23 hours 59 minutes', threshold => 3)$$,
	'create_rule(): within shorter than max_window');
SELECT throws_ok($$SELECT activity_monitor.create_rule('long', '$.a == 1', within => '1 day 1 second', threshold => 3)$$,
	'22023', 'within must be at most 1 day', 'create_rule(): within longer than max_window');
SELECT is(pg_temp.err_part($$SELECT activity_monitor.create_rule('long', '$.a == 1', within => '25 hours', threshold => 3)$$, 'detail'),
	'The rule asks for 25:00:00; the worker keeps windows of at most activity_monitor.max_window in memory and reads them back after a restart.',
	'create_rule(): within too long, the detail');
SELECT is(pg_temp.err_part($$SELECT activity_monitor.create_rule('long', '$.a == 1', within => '25 hours', threshold => 3)$$, 'hint'),
	'Use a shorter window, or have a superuser raise activity_monitor.max_window (ALTER SYSTEM, then pg_reload_conf()).',
	'create_rule(): within too long, the hint');
SELECT throws_ok($$SELECT activity_monitor.create_rule('long', '$.a == 1', within => '1 mon', threshold => 3, measure => 'sum', measure_path => '$.x')$$,
	'22023', 'within must be at most 1 day', 'create_rule(): a month is too long, whatever the measure');
SELECT throws_ok($$UPDATE activity_monitor.alert_rule SET within = '2 days' WHERE name = 'day'$$,
	'22023', 'within must be at most 1 day', 'a direct UPDATE of within is refused too');
SELECT is((SELECT within FROM activity_monitor.alert_rule WHERE name = 'day'), '1 day'::interval,
	'after the refused UPDATE the rule keeps its window');
SELECT is((SELECT count(*)::int FROM activity_monitor.alert_rule WHERE name = 'long'), 0,
	'no rule was created by the refused calls');
SELECT lives_ok($$SELECT activity_monitor.create_rule('each', '$.a == 1')$$,
	'create_rule(): a rule without a window is not bounded');

-- ---------------------------------------------------------------------------
-- count and distinct thresholds at most what a window keeps
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT activity_monitor.create_rule('count_max', '$.a == 1', within => '1 hour', threshold => 1000)$$,
	'create_rule(): a count threshold of max_events_per_window');
SELECT throws_ok($$SELECT activity_monitor.create_rule('count_high', '$.a == 1', within => '1 hour', threshold => 1000.5)$$,
	'22023', 'threshold of a count rule must be at most 1000', 'create_rule(): a count threshold above max_events_per_window');
SELECT is(pg_temp.err_part($$SELECT activity_monitor.create_rule('count_high', '$.a == 1', within => '1 hour', threshold => 5000)$$, 'hint'),
	'Use a lower threshold, or have a superuser raise activity_monitor.max_events_per_window (ALTER SYSTEM, then pg_reload_conf()).',
	'create_rule(): threshold too high, the hint');
SELECT throws_ok($$SELECT activity_monitor.create_rule('distinct_high', '$.a == 1', within => '1 hour', threshold => 1001,
		measure => 'distinct', measure_path => '$.x')$$,
	'22023', 'threshold of a distinct rule must be at most 1000', 'create_rule(): a distinct threshold above max_events_per_window');
SELECT lives_ok($$SELECT activity_monitor.create_rule('sum_high', '$.a == 1', within => '1 hour', threshold => 1000000,
		measure => 'sum', measure_path => '$.x')$$,
	'create_rule(): a sum threshold is not bounded');

-- ---------------------------------------------------------------------------
-- A restore keeps what was dumped (the worker cuts the window)
-- ---------------------------------------------------------------------------
SET LOCAL row_security = off;
SELECT lives_ok($$INSERT INTO activity_monitor.alert_rule (name, predicate, within, threshold)
				  VALUES ('restored', '$.a == 1', '7 days', 3)$$,
	'with row_security off (a pg_dump script) a longer window is kept');
RESET row_security;
SELECT is((SELECT within FROM activity_monitor.alert_rule WHERE name = 'restored'), '7 days'::interval,
	'the restored rule has its dumped window');

-- ---------------------------------------------------------------------------
-- The eviction counters
-- ---------------------------------------------------------------------------
SELECT is((SELECT array_agg(column_name::text ORDER BY ordinal_position)
		   FROM information_schema.columns
		   WHERE table_schema = 'activity_monitor' AND table_name = 'rules' AND ordinal_position > 21),
	'{keys_evicted,events_evicted,evaluation,rule_type,steps,missing,lookback}'::text[],
	'rules: keys_evicted and events_evicted, evaluation, then detection v2''s type, steps, missing, lookback');
SELECT results_eq($$SELECT keys_evicted, events_evicted FROM activity_monitor.rules WHERE name = 'day'$$,
	$$VALUES (0::bigint, 0::bigint)$$, 'rules: a new rule evicted nothing');
SELECT results_eq($$SELECT keys_evicted, events_evicted FROM activity_monitor.rule_stats s
					JOIN activity_monitor.alert_rule r ON r.id = s.rule_id WHERE r.name = 'day'$$,
	$$VALUES (0::bigint, 0::bigint)$$, 'rule_stats: the counters start at 0');

SELECT * FROM finish();
ROLLBACK;
