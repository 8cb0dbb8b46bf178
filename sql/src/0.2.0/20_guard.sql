/*
 * The DDL guard (issue 10, "capture cannot be switched off or bypassed
 * silently"): an event trigger on ddl_command_start, in C (src/guard.c), so
 * that it runs whether or not the library is preloaded.  DDL that disables,
 * drops, replaces, renames or changes the mode of a capture trigger,
 * attaches or detaches a partition of a tracked table, renames a column its
 * settings name, drops or changes the type of any of its columns (ALTER
 * TABLE, or ALTER TYPE ... CASCADE of a typed table), renames or moves a
 * tracked table, or drops a tracked table or one of its partitions is
 * refused for everyone but a superuser or a
 * member of activity_monitor_admin, and recorded as a critical event
 * (kind 'system', action 'ddl') when allowed.
 *
 * An event trigger function runs for every role without an EXECUTE check:
 * nobody needs to call it, so nobody may.
 */
CREATE FUNCTION activity_monitor._guard_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'activity_monitor_guard_ddl'
LANGUAGE C;
REVOKE ALL ON FUNCTION activity_monitor._guard_ddl() FROM PUBLIC;
COMMENT ON FUNCTION activity_monitor._guard_ddl() IS
	'refuses DDL that would switch capture off or bypass it, unless run by a superuser or an activity_monitor_admin member, and records it when allowed';

CREATE EVENT TRIGGER activity_monitor_guard ON ddl_command_start
	EXECUTE FUNCTION activity_monitor._guard_ddl();

/*
 * The guard's backstop on sql_drop (src/guard.c): what a command drops
 * beyond what it names (DROP TYPE / DOMAIN / FUNCTION / EXTENSION ...
 * CASCADE dropping a typed table or a column of a tracked table) is refused
 * or recorded like the DDL it is.  Its name sorts before
 * activity_monitor_sql_drop, so it still sees the settings of a dropped
 * table.
 */
CREATE FUNCTION activity_monitor._guard_sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'activity_monitor_guard_sql_drop'
LANGUAGE C;
REVOKE ALL ON FUNCTION activity_monitor._guard_sql_drop() FROM PUBLIC;
COMMENT ON FUNCTION activity_monitor._guard_sql_drop() IS
	'refuses, or records, the drop of a tracked table or of one of its columns by a command that names neither (DROP TYPE ... CASCADE and the like)';

CREATE EVENT TRIGGER activity_monitor_guard_drop ON sql_drop
	EXECUTE FUNCTION activity_monitor._guard_sql_drop();

/*
 * Settings of a table dropped by any command are forgotten: 0.1.0 listened
 * only to DROP TABLE, DROP SCHEMA and DROP OWNED, and a typed table dropped
 * by DROP TYPE ... CASCADE left a stale row.
 */
DROP EVENT TRIGGER activity_monitor_sql_drop;
CREATE EVENT TRIGGER activity_monitor_sql_drop ON sql_drop
	EXECUTE FUNCTION activity_monitor._on_sql_drop();
