/*
 * Triggers on the extension's tables, and its event triggers.  Both fire in
 * name order: activity_monitor_guard_drop sorts before
 * activity_monitor_sql_drop on purpose (see _guard_sql_drop()).
 */

-- ---------------------------------------------------------------------------
-- Table triggers
-- ---------------------------------------------------------------------------

CREATE TRIGGER tracked_check_owner
	AFTER INSERT OR UPDATE OR DELETE ON activity_monitor.tracked
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._tracked_check_owner();

CREATE TRIGGER alert_rule_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON activity_monitor.alert_rule
	FOR EACH STATEMENT EXECUTE FUNCTION activity_monitor._rules_changed();

CREATE TRIGGER alert_rule_bounds
	BEFORE INSERT OR UPDATE OF within, threshold, measure ON activity_monitor.alert_rule
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._check_rule_bounds();

CREATE TRIGGER alert_rule_check
	BEFORE INSERT OR UPDATE ON activity_monitor.alert_rule
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._check_rule();

-- Fan-in (src/receive.c): fires in logical replication's workers too
-- (ALWAYS), where it makes a received event this cluster's; it leaves every
-- other insert as it is (capture writes the partitions directly, without it).
CREATE TRIGGER receive
	BEFORE INSERT ON activity_monitor.activity
	FOR EACH ROW EXECUTE FUNCTION activity_monitor._receive();
ALTER TABLE activity_monitor.activity ENABLE ALWAYS TRIGGER receive;
-- and refuses a subscription's TRUNCATE of the activity (a publication that
-- sends truncates would empty every source's activity here)
CREATE TRIGGER receive_truncate
	BEFORE TRUNCATE ON activity_monitor.activity
	FOR EACH STATEMENT EXECUTE FUNCTION activity_monitor._receive();
ALTER TABLE activity_monitor.activity ENABLE ALWAYS TRIGGER receive_truncate;

-- ---------------------------------------------------------------------------
-- Event triggers
-- ---------------------------------------------------------------------------

-- The DDL guard (src/guard.c): refuses or records DDL that would switch
-- capture off or bypass it.
CREATE EVENT TRIGGER activity_monitor_guard ON ddl_command_start
	EXECUTE FUNCTION activity_monitor._guard_ddl();

-- Its backstop: what a command drops beyond what it names.
CREATE EVENT TRIGGER activity_monitor_guard_drop ON sql_drop
	EXECUTE FUNCTION activity_monitor._guard_sql_drop();

-- A table dropped by any command stops being tracked (0.1.0 listened only to
-- DROP TABLE, DROP SCHEMA and DROP OWNED).
CREATE EVENT TRIGGER activity_monitor_sql_drop ON sql_drop
	EXECUTE FUNCTION activity_monitor._on_sql_drop();

-- Partitions created, attached or detached get the capture triggers their
-- tracked tables call for (src/partitions.c).
CREATE EVENT TRIGGER activity_monitor_partitions ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'CREATE SCHEMA', 'ALTER TABLE')
	EXECUTE FUNCTION activity_monitor._partitions_ddl();
