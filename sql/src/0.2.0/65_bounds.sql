-- ---------------------------------------------------------------------------
-- Bounded windows (issue 12, "Bounds")
--
-- The worker keeps the alert windows in memory (src/alerts.c); settings
-- bound them: activity_monitor.max_keys_per_rule, max_events_per_rule,
-- max_events_per_window and max_window (PGC_SIGHUP, see the README).  What
-- the bounds evict is counted per rule; a rule's window (within) is at most
-- max_window, checked when a rule is written.
-- ---------------------------------------------------------------------------

-- Keys and events the bounds made the worker forget before their time.
ALTER TABLE activity_monitor.rule_stats
	ADD COLUMN keys_evicted bigint NOT NULL DEFAULT 0,
	ADD COLUMN events_evicted bigint NOT NULL DEFAULT 0;

/*
 * The longest window a rule may have (activity_monitor.max_window) and the
 * most events one window keeps (a count or distinct threshold above it is
 * never reached).  In C: calling it loads the library, which defines the
 * settings, so the value is the server's, never a placeholder.
 */
CREATE FUNCTION activity_monitor._window_limits(OUT max_window interval,
												OUT max_events_per_window int)
AS 'MODULE_PATHNAME', 'activity_monitor_window_limits'
LANGUAGE C STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION activity_monitor._window_limits() FROM PUBLIC;

/*
 * Refuse a rule whose window is longer than max_window, or whose count or
 * distinct threshold is above what a window keeps (it could never fire):
 * 22023 with a hint, which create_rule()'s exception block (unique_violation
 * only) lets through.  A restore (pg_dump scripts run with row_security off)
 * keeps what was dumped: the worker cuts a longer window to max_window.
 */
CREATE FUNCTION activity_monitor._check_rule_bounds()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	lim		record;
BEGIN
	IF NEW.within IS NULL OR NOT pg_catalog.current_setting('row_security')::boolean THEN
		RETURN NEW;
	END IF;
	lim := activity_monitor._window_limits();
	IF NEW.within OPERATOR(pg_catalog.>) lim.max_window THEN
		RAISE EXCEPTION 'within must be at most %', lim.max_window
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The rule asks for %s; the worker keeps windows of at most activity_monitor.max_window in memory and reads them back after a restart.',
									   NEW.within),
			HINT = 'Use a shorter window, or have a superuser raise activity_monitor.max_window (ALTER SYSTEM, then pg_reload_conf()).';
	END IF;
	IF NEW.measure OPERATOR(pg_catalog.=) ANY ('{count,distinct}'::text[])
	   AND NEW.threshold OPERATOR(pg_catalog.>) lim.max_events_per_window THEN
		RAISE EXCEPTION 'threshold of a % rule must be at most %', NEW.measure, lim.max_events_per_window
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A window keeps at most activity_monitor.max_events_per_window events (and no more than activity_monitor.max_events_per_rule): a higher count could never be reached.',
			HINT = 'Use a lower threshold, or have a superuser raise activity_monitor.max_events_per_window (ALTER SYSTEM, then pg_reload_conf()).';
	END IF;
	RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._check_rule_bounds() FROM PUBLIC;

/*
 * Rules of 0.1.0 with a longer window are cut to max_window (with a WARNING
 * naming each one): the closest rule that can run bounded; it fires on fewer
 * bursts than before, never on more.  A count or distinct threshold above
 * the events a window keeps is left as it is, with a WARNING: such a rule
 * never fires until the setting is raised.  (Before the trigger exists, so
 * that the updates pass.)
 */
DO LANGUAGE plpgsql $do$
DECLARE
	lim		record;
	r		record;
BEGIN
	lim := activity_monitor._window_limits();
	FOR r IN SELECT a.id, a.name, a.within FROM activity_monitor.alert_rule a
			 WHERE a.within OPERATOR(pg_catalog.>) lim.max_window ORDER BY a.id LOOP
		UPDATE activity_monitor.alert_rule a SET within = lim.max_window
		WHERE a.id OPERATOR(pg_catalog.=) r.id;
		RAISE WARNING 'alert rule "%": within cut from % to % by the update to activity_monitor 0.2.0',
			r.name, r.within, lim.max_window
			USING DETAIL = 'Windows are at most activity_monitor.max_window long.',
			HINT = 'To keep the longer window, raise activity_monitor.max_window, then drop the rule and create it again.';
	END LOOP;
	FOR r IN SELECT a.name, a.measure, a.threshold FROM activity_monitor.alert_rule a
			 WHERE a.measure OPERATOR(pg_catalog.=) ANY ('{count,distinct}'::text[])
			   AND a.threshold OPERATOR(pg_catalog.>) lim.max_events_per_window ORDER BY a.id LOOP
		RAISE WARNING 'alert rule "%" can never fire: its % threshold % is above the % events a window keeps',
			r.name, r.measure, r.threshold, lim.max_events_per_window
			USING HINT = 'Raise activity_monitor.max_events_per_window, or drop the rule and create it with a lower threshold.';
	END LOOP;
END
$do$;

CREATE TRIGGER alert_rule_bounds
	BEFORE INSERT OR UPDATE OF within, threshold, measure ON activity_monitor.alert_rule
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._check_rule_bounds();

-- The rules view shows the evictions (new columns go last: CREATE OR
-- REPLACE VIEW keeps the grants).
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
		   coalesce(s.events_evicted, 0) AS events_evicted
	FROM activity_monitor.alert_rule r
	LEFT JOIN activity_monitor.rule_stats s ON s.rule_id OPERATOR(pg_catalog.=) r.id
	ORDER BY r.id;
