/*
 * Roles and the schema's privileges.
 *
 * Roles are cluster-wide: created once, reused by every database that
 * installs the extension.  They nest: admin > responder > reader.
 */
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'activity_monitor_reader') THEN
		CREATE ROLE activity_monitor_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'activity_monitor_responder') THEN
		CREATE ROLE activity_monitor_responder NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'activity_monitor_admin') THEN
		CREATE ROLE activity_monitor_admin NOLOGIN;
	END IF;
	GRANT activity_monitor_reader TO activity_monitor_responder;
	GRANT activity_monitor_responder TO activity_monitor_admin;
	GRANT activity_monitor_reader TO activity_monitor_admin;
END
$roles$;

REVOKE ALL ON SCHEMA activity_monitor FROM PUBLIC;
GRANT USAGE ON SCHEMA activity_monitor TO PUBLIC;
