/*
 * Rules can never break a platform write (issue 10).
 *
 * The capture trigger evaluates rules with the _tz semantics and guards the
 * rules that could raise with a subtransaction (src/rules.c); here, the
 * refusal of rules that would raise at every evaluation: a BEFORE trigger on
 * alert_rule, so that create_rule(), set_rule_enabled() and any direct write
 * pass it.  It raises invalid_parameter_value (22023) with a hint, which
 * create_rule()'s exception block (unique_violation only) lets through.
 */
CREATE FUNCTION activity_monitor._check_rule()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_check_rule'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION activity_monitor._check_rule() FROM PUBLIC;
CREATE TRIGGER alert_rule_check
	BEFORE INSERT OR UPDATE ON activity_monitor.alert_rule
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._check_rule();

/*
 * Enabled rules of 0.1.0 that are refused now (a $variable, a datetime
 * template that does not parse) raised at every evaluation that reached the
 * offending item, breaking those writes.  The update keeps them, disabled,
 * and names them in a WARNING: a disabled rule is never evaluated and is not
 * checked, and set_rule_enabled() refuses to enable it as it is.  (Kept
 * enabled, such a rule would only count errors, and a dump of the database
 * would not restore: the COPY of alert_rule passes the check.)  Each rule
 * is checked by the trigger, through an UPDATE that changes nothing.
 */
DO LANGUAGE plpgsql $do$
DECLARE
	r	record;
BEGIN
	FOR r IN SELECT a.id, a.name FROM activity_monitor.alert_rule a WHERE a.enabled ORDER BY a.id LOOP
		BEGIN
			UPDATE activity_monitor.alert_rule a SET enabled = true WHERE a.id OPERATOR(pg_catalog.=) r.id;
		EXCEPTION WHEN invalid_parameter_value THEN
			UPDATE activity_monitor.alert_rule a SET enabled = false WHERE a.id OPERATOR(pg_catalog.=) r.id;
			RAISE WARNING 'alert rule "%" disabled by the update to activity_monitor 0.2.0', r.name
				USING DETAIL = SQLERRM,
				HINT = 'Drop it and create it again with activity_monitor.create_rule().';
		END;
	END LOOP;
END
$do$;
