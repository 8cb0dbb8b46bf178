/*
 * Who may do what (README, "Roles"): every privilege of the extension's
 * objects, in one place.  Functions are executable by PUBLIC unless revoked
 * here; tables and views are readable by their owner only unless granted.
 * test/pgtap/security.sql checks the result role by role.
 */

-- ---------------------------------------------------------------------------
-- Private: the extension's owner (and superusers) only
-- ---------------------------------------------------------------------------

REVOKE ALL ON activity_monitor.activity, activity_monitor.activity_default,
	activity_monitor.activity_id_seq FROM PUBLIC;

REVOKE ALL ON FUNCTION activity_monitor._index_partition(regclass, boolean),
	activity_monitor._partitions(), activity_monitor._create_partition(timestamptz, timestamptz),
	activity_monitor._maintain(timestamptz), activity_monitor._check_interval(text, interval),
	activity_monitor._restoring(), activity_monitor._merge_step(timestamptz), activity_monitor._worker_merge(),
	activity_monitor._min_retention(),
	activity_monitor._worker_started(int), activity_monitor._worker_error(text),
	activity_monitor._worker_partitions(), activity_monitor._process_alerts(int),
	activity_monitor._rollup(timestamptz), activity_monitor._rollup_count(timestamptz),
	activity_monitor._worker_rollup(),
	activity_monitor._sync_capture(regclass, boolean), activity_monitor._partitions_ddl(),
	activity_monitor._on_sql_drop(),
	activity_monitor._session_is_superuser(), activity_monitor._tracked_check_owner(),
	activity_monitor._guard_ddl(), activity_monitor._guard_sql_drop(),
	activity_monitor._rules_changed(), activity_monitor._check_rule(),
	activity_monitor._window_limits(), activity_monitor._check_rule_bounds(),
	activity_monitor._check_window_bounds(interval, text, numeric),
	activity_monitor._check_rule_shape(text[], regclass[], interval, numeric, text, jsonpath, interval,
		jsonpath[], jsonpath, interval),
	activity_monitor._test_rule(jsonpath, timestamptz, timestamptz, text[], text[], interval,
		numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval),
	activity_monitor._rule_matches(jsonpath, timestamptz, timestamptz, text[], text[], interval,
		numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval),
	activity_monitor._table_names(regclass[]),
	activity_monitor._set_alert_status(bigint, text, text),
	activity_monitor.capture(), activity_monitor._kinds(), activity_monitor._receive() FROM PUBLIC;

/*
 * capture() to every role: PostgreSQL checks EXECUTE on a trigger function
 * when it clones a partitioned table's trigger onto a partition its owner
 * adds.  capture() records only through the capture triggers of tables a
 * tracked table governs (src/capture.c): any other trigger records nothing.
 */
GRANT EXECUTE ON FUNCTION activity_monitor.capture() TO PUBLIC;

-- ---------------------------------------------------------------------------
-- activity_monitor_reader: reads the activity, its views, the alerts and
-- the settings
-- ---------------------------------------------------------------------------

GRANT SELECT ON activity_monitor.activity, activity_monitor.activity_default,
	activity_monitor.tracked, activity_monitor.config, activity_monitor.worker_state,
	activity_monitor.alerts, activity_monitor.activity_minute, activity_monitor.dashboard_counts,
	activity_monitor.settings, activity_monitor.worker_status, activity_monitor.tracked_tables,
	activity_monitor.timeline, activity_monitor.admin_actions, activity_monitor.critical_changes,
	activity_monitor.user_sessions, activity_monitor.operational_activity, activity_monitor.rules,
	activity_monitor.open_alerts, activity_monitor.dashboard, activity_monitor.sources
	TO activity_monitor_reader;

REVOKE ALL ON FUNCTION activity_monitor.alert_payload(activity_monitor.alerts),
	activity_monitor.alert_payload(activity_monitor.alerts, boolean),
	activity_monitor._full_payload(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.alert_payload(activity_monitor.alerts),
	activity_monitor.alert_payload(activity_monitor.alerts, boolean),
	activity_monitor._full_payload(bigint)
	TO activity_monitor_reader;

-- The timeline, admin_actions and critical_changes views' rows, read in C
-- (src/timeline.c checks SELECT on the view): to those who may read the view.
REVOKE ALL ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz)
	TO activity_monitor_reader;
REVOKE ALL ON FUNCTION activity_monitor.employee_actions(text, int, timestamptz, timestamptz),
	activity_monitor.recent_critical_changes(int, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.employee_actions(text, int, timestamptz, timestamptz),
	activity_monitor.recent_critical_changes(int, timestamptz, timestamptz) TO activity_monitor_reader;

-- The dashboard and operational_activity views read through these
-- (SECURITY DEFINER: with the owner's rights, as a view); a function a view
-- calls is executed as the role that queries the view, so whoever may read
-- the views may execute them.
REVOKE ALL ON FUNCTION activity_monitor._dashboard(), activity_monitor._operational_activity() FROM PUBLIC;
REVOKE ALL ON FUNCTION activity_monitor._dashboard_counts(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor._dashboard(), activity_monitor._operational_activity()
	TO activity_monitor_reader;

-- Views call it (user_sessions): the planner folds it into a constant as the
-- role that queries them.
REVOKE ALL ON FUNCTION activity_monitor._session_end_statuses() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor._session_end_statuses() TO activity_monitor_reader;

-- ---------------------------------------------------------------------------
-- activity_monitor_responder: handles alerts
-- ---------------------------------------------------------------------------

REVOKE ALL ON FUNCTION activity_monitor.acknowledge(bigint, text), activity_monitor.resolve(bigint, text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.acknowledge(bigint, text), activity_monitor.resolve(bigint, text)
	TO activity_monitor_responder;

-- ---------------------------------------------------------------------------
-- activity_monitor_admin: tracks tables, configures, manages rules
-- ---------------------------------------------------------------------------

REVOKE ALL ON FUNCTION activity_monitor.track(regclass, text, name, name, name[], name[], name[], text[]),
	activity_monitor.untrack(regclass),
	activity_monitor.configure(interval, int, interval, text, interval, interval), activity_monitor.maintain(timestamptz),
	activity_monitor.start_worker(),
	activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text, boolean, jsonpath[], jsonpath,
		interval),
	activity_monitor.drop_rule(text), activity_monitor.set_rule_enabled(text, boolean),
	activity_monitor.set_rule_full_payload(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.track(regclass, text, name, name, name[], name[], name[], text[]),
	activity_monitor.untrack(regclass),
	activity_monitor.configure(interval, int, interval, text, interval, interval), activity_monitor.maintain(timestamptz),
	activity_monitor.start_worker(),
	activity_monitor.create_rule(text, jsonpath, text, text[], regclass[], interval,
		numeric, text, jsonpath, jsonpath, interval, text, text, boolean, jsonpath[], jsonpath,
		interval),
	activity_monitor.drop_rule(text), activity_monitor.set_rule_enabled(text, boolean),
	activity_monitor.set_rule_full_payload(text, boolean)
	TO activity_monitor_admin;

-- Seals: the owner writes them (the worker, retention); readers read them
-- and verify.
REVOKE ALL ON activity_monitor.seal FROM PUBLIC;
GRANT SELECT ON activity_monitor.seal TO activity_monitor_reader;
REVOKE ALL ON FUNCTION activity_monitor._seal(int), activity_monitor._seal_retired(regclass, text),
	activity_monitor._record_admin(text, text, text, jsonb, jsonb),
	activity_monitor._predicate_plan(jsonpath), activity_monitor._predicate_match(jsonpath, jsonb),
	activity_monitor.verify(timestamptz, timestamptz), activity_monitor.verify_head(bigint, text),
	activity_monitor.seal_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.verify(timestamptz, timestamptz),
	activity_monitor.verify_head(bigint, text), activity_monitor.seal_head() TO activity_monitor_reader;
-- backtesting reads what readers may read
REVOKE ALL ON FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.test_rule(jsonpath, timestamptz, timestamptz, text[], regclass[],
	interval, numeric, text, jsonpath, jsonpath, interval, jsonpath[], jsonpath, interval)
	TO activity_monitor_reader;
-- first-seen rules' memory: the owner (the worker, create_rule()) writes it
REVOKE ALL ON activity_monitor.seen FROM PUBLIC;
-- the rules view shows how each predicate is evaluated
GRANT EXECUTE ON FUNCTION activity_monitor._predicate_plan(jsonpath) TO activity_monitor_reader;
