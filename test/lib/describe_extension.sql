-- Every object of the extension with its full definition, one line each, in
-- a stable order: what test/shell/upgrade.sh compares between a fresh
-- install and an updated one.  Partitions made by maintenance are data, not
-- members, and are left out.  Since the install script is built from
-- sources by kind (sql/src/*.sql) and the update from pieces
-- (sql/src/<version>/), this is what proves the two agree: function bodies
-- and settings, owners, ACLs in grant order and the initial privileges
-- pg_dump reads, columns, defaults, constraints, indexes, triggers and
-- their enabled state, event triggers, comments (also on columns, indexes,
-- constraints and triggers), sequences, partitioning, row security,
-- configuration dumps with their conditions, and the roles.
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'activity_monitor'),
members AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT obj || ': ' || line FROM (
	SELECT pg_describe_object(m.classid, m.objid, 0) AS obj, 0 AS n, 'member' AS line FROM members m
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 1, pg_get_functiondef(m.objid) || ' acl=' || coalesce(p.proacl::text, '') ||
		   ' owner=' || pg_get_userbyid(p.proowner)
	FROM members m JOIN pg_proc p ON p.oid = m.objid WHERE m.classid = 'pg_proc'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 1,
		   c.relkind::text || ' acl=' || coalesce(c.relacl::text, '') || coalesce(' view=' || pg_get_viewdef(c.oid), '') ||
		   ' owner=' || pg_get_userbyid(c.relowner) || ' persistence=' || c.relpersistence::text ||
		   ' options=' || coalesce(c.reloptions::text, '') || ' rls=' || c.relrowsecurity::text || '/' ||
		   c.relforcerowsecurity::text || ' replident=' || c.relreplident::text ||
		   coalesce(' partition by ' || pg_get_partkeydef(c.oid), '') ||
		   coalesce(' partition ' || pg_get_expr(c.relpartbound, c.oid), '')
	FROM members m JOIN pg_class c ON c.oid = m.objid WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 1,
		   'sequence ' || format_type(s.seqtypid, NULL) || ' ' || s.seqstart || ' ' || s.seqincrement || ' ' ||
		   s.seqmin || ' ' || s.seqmax || ' ' || s.seqcache || ' ' || s.seqcycle::text ||
		   coalesce(' owned by ' || (SELECT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
									 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
									   AND d.deptype IN ('a', 'i') AND d.refobjsubid <> 0), '')
	FROM members m JOIN pg_sequence s ON s.seqrelid = m.objid WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 2,
		   a.attnum || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
		   CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
		   coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') || coalesce(' acl=' || a.attacl::text, '') ||
		   CASE WHEN a.attcollation <> 0 THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END ||
		   ' ' || a.attidentity::text || a.attgenerated::text || a.attstorage::text
	FROM members m JOIN pg_attribute a ON a.attrelid = m.objid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 3, co.conname || ' ' || pg_get_constraintdef(co.oid)
	FROM members m JOIN pg_constraint co ON co.conrelid = m.objid WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 4, pg_get_indexdef(i.indexrelid)
	FROM members m JOIN pg_index i ON i.indrelid = m.objid WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 5, pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
	FROM members m JOIN pg_trigger t ON t.tgrelid = m.objid AND NOT t.tgisinternal WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 6, e.evtevent || ' ' || e.evtenabled::text || ' ' ||
		   coalesce(e.evttags::text, '') || ' ' || e.evtfoid::regproc::text || ' owner=' || pg_get_userbyid(e.evtowner)
	FROM members m JOIN pg_event_trigger e ON e.oid = m.objid WHERE m.classid = 'pg_event_trigger'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 6, 'policy ' || po.polname || ' ' || po.polcmd::text || ' ' ||
		   po.polpermissive::text || ' ' || po.polroles::regrole[]::text || ' using ' ||
		   coalesce(pg_get_expr(po.polqual, po.polrelid), '') || ' check ' || coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '')
	FROM members m JOIN pg_policy po ON po.polrelid = m.objid WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 6, 'rule ' || pg_get_ruledef(r.oid)
	FROM members m JOIN pg_rewrite r ON r.ev_class = m.objid AND r.rulename <> '_RETURN' WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), 7, 'comment ' || d.description
	FROM pg_description d JOIN members m ON m.classid = d.classoid AND m.objid = d.objoid
	UNION ALL
	-- comments on what belongs to a member table without being a member itself
	SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), 7, 'comment ' || d.description
	FROM pg_description d
	WHERE d.classoid IN ('pg_class'::regclass, 'pg_constraint'::regclass, 'pg_trigger'::regclass)
	  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = d.classoid AND m.objid = d.objoid)
	  AND EXISTS (SELECT 1 FROM pg_depend dep JOIN members m ON m.classid = dep.refclassid AND m.objid = dep.refobjid
				  WHERE dep.classid = d.classoid AND dep.objid = d.objoid AND dep.deptype IN ('a', 'i'))
	UNION ALL
	-- the privileges pg_dump takes as the extension's own (it dumps only changes to them)
	SELECT pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), 7, 'initprivs ' || ip.privtype::text || ' ' ||
		   ip.initprivs::text
	FROM pg_init_privs ip JOIN members m ON m.classid = ip.classoid AND m.objid = ip.objoid
	UNION ALL
	SELECT 'extension', 8, 'config ' || c.oid::regclass::text || ' ' || coalesce(x.cond, '')
	FROM pg_extension e, ext, unnest(e.extconfig, e.extcondition) AS x(cfg, cond)
	JOIN pg_class c ON c.oid = x.cfg WHERE e.oid = ext.oid
	UNION ALL
	SELECT 'schema', 9, 'acl=' || coalesce(n.nspacl::text, '') || ' owner=' || pg_get_userbyid(n.nspowner)
	FROM pg_namespace n WHERE n.nspname = 'activity_monitor'
	UNION ALL
	SELECT 'schema', 9, 'default privileges ' || da.defaclobjtype::text || ' ' || da.defaclacl::text
	FROM pg_default_acl da JOIN pg_namespace n ON n.oid = da.defaclnamespace WHERE n.nspname = 'activity_monitor'
	UNION ALL
	SELECT 'role ' || r.rolname, 10, 'member of ' || coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
		FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid WHERE am.member = r.oid), '') ||
		' login=' || r.rolcanlogin::text || ' inherit=' || r.rolinherit::text || ' super=' || r.rolsuper::text ||
		' createrole=' || r.rolcreaterole::text || ' createdb=' || r.rolcreatedb::text ||
		' bypassrls=' || r.rolbypassrls::text || ' replication=' || r.rolreplication::text
	FROM pg_roles r WHERE r.rolname LIKE 'activity\_monitor\_%'
) x
ORDER BY obj, n, line;
