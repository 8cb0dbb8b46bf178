-- ---------------------------------------------------------------------------
-- Hundreds of rules (issue 17): predicates of the common shape (comparisons
-- of plain paths with constants, joined by &&, || and !) are compiled when
-- the rules are loaded (src/predicate.c); the rules view shows how each is
-- evaluated.  Nothing to convert: compilation happens in each backend.
-- ---------------------------------------------------------------------------

/*
 * How capture evaluates a predicate (src/predicate.c): "compiled" (a
 * comparison of plain paths with constants, joined by &&, || and !,
 * evaluated once per event however many rules share it) or "generic"
 * (jsonb_path_match).  The rules view shows it.
 */
CREATE FUNCTION activity_monitor._predicate_plan(predicate jsonpath)
RETURNS text
AS 'MODULE_PATHNAME', 'activity_monitor_predicate_plan'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

/*
 * The compiled evaluation of a compiled predicate on a document (NULL:
 * unknown): what test/pgtap/predicates.sql compares with jsonb_path_match.
 */
CREATE FUNCTION activity_monitor._predicate_match(predicate jsonpath, doc jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'activity_monitor_predicate_match'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

REVOKE ALL ON FUNCTION activity_monitor._predicate_plan(jsonpath),
	activity_monitor._predicate_match(jsonpath, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor._predicate_plan(jsonpath) TO activity_monitor_reader;

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
		   activity_monitor._predicate_plan(r.predicate) AS evaluation
	FROM activity_monitor.alert_rule r
	LEFT JOIN activity_monitor.rule_stats s ON s.rule_id OPERATOR(pg_catalog.=) r.id
	ORDER BY r.id;
