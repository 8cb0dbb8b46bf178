/*
 * The DDL guard (issue 10, "capture cannot be switched off or bypassed
 * silently"): an event trigger on ddl_command_start, in C (src/guard.c), so
 * that it runs whether or not the library is preloaded.  DDL that disables,
 * drops, renames or changes the mode of a capture trigger, attaches or
 * detaches a partition of a tracked table, renames or drops a column its
 * settings name, renames or moves a tracked table, or drops a tracked table
 * or one of its partitions is refused for everyone but a superuser or a
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
