/*
 * First statement of a fresh install (not of an update): refuse to move into
 * an activity_monitor schema someone prepared.  The control file names the
 * schema, and CREATE EXTENSION uses an existing one whoever owns it; a role
 * that pre-created it (a database owner can) would own the extension's
 * objects' home and could plant functions the superuser worker runs.
 */
DO $check$
DECLARE
	nsp		oid;
	owner	oid;
BEGIN
	SELECT n.oid, n.nspowner INTO nsp, owner
	FROM pg_catalog.pg_namespace n WHERE n.nspname = 'activity_monitor';
	IF owner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
									  WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
		RAISE EXCEPTION 'schema "activity_monitor" already exists and is owned by role "%"',
			pg_catalog.pg_get_userbyid(owner)
			USING ERRCODE = 'insufficient_privilege',
			DETAIL = 'The extension would install its objects into a schema another role controls.',
			HINT = 'Drop or rename that schema (after checking what it holds), then run CREATE EXTENSION again.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
			   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
				 AND d.refobjid OPERATOR(pg_catalog.=) nsp
				 AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) nsp)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) nsp) THEN
		RAISE EXCEPTION 'schema "activity_monitor" already exists and is not empty'
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = 'The extension only installs into a schema it creates, or an empty one owned by the installing role.',
			HINT = 'Drop or rename that schema (after checking what it holds), then run CREATE EXTENSION again.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
			   WHERE n.oid OPERATOR(pg_catalog.=) nsp AND a.grantee OPERATOR(pg_catalog.<>) owner
				 AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE') THEN
		RAISE EXCEPTION 'schema "activity_monitor" already exists and grants CREATE to other roles'
			USING ERRCODE = 'insufficient_privilege',
			HINT = 'Drop that schema, then run CREATE EXTENSION again.';
	END IF;
END
$check$;
