-- Every object of the extension with its full definition, one line each, in
-- a stable order: what test/shell/upgrade.sh compares between a fresh
-- install and an updated one.  Partitions made by maintenance are data, not
-- members, and are left out.
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'activity_monitor'),
members AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT line FROM (
	SELECT pg_describe_object(m.classid, m.objid, 0) AS obj, 0 AS n, 'member' AS line FROM members m
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 1, pg_get_functiondef(m.objid) || ' acl=' || coalesce(p.proacl::text, '')
	FROM members m JOIN pg_proc p ON p.oid = m.objid WHERE m.classid = 'pg_proc'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 1,
		   c.relkind::text || ' acl=' || coalesce(c.relacl::text, '') || coalesce(' view=' || pg_get_viewdef(c.oid), '')
	FROM members m JOIN pg_class c ON c.oid = m.objid WHERE m.classid = 'pg_class'::regclass
	UNION ALL
	SELECT pg_describe_object(m.classid, m.objid, 0), 2,
		   a.attnum || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
		   CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
		   coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') || coalesce(' acl=' || a.attacl::text, '')
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
		   coalesce(e.evttags::text, '') || ' ' || e.evtfoid::regproc::text
	FROM members m JOIN pg_event_trigger e ON e.oid = m.objid WHERE m.classid = 'pg_event_trigger'::regclass
	UNION ALL
	SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), 7, 'comment ' || d.description
	FROM pg_description d JOIN members m ON m.classid = d.classoid AND m.objid = d.objoid
	UNION ALL
	SELECT 'extension', 8, 'config ' || c.oid::regclass::text || ' ' || coalesce(x.cond, '')
	FROM pg_extension e, ext, unnest(e.extconfig, e.extcondition) AS x(cfg, cond)
	JOIN pg_class c ON c.oid = x.cfg WHERE e.oid = ext.oid
	UNION ALL
	SELECT 'schema', 9, 'acl=' || coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE n.nspname = 'activity_monitor'
	UNION ALL
	SELECT 'role ' || r.rolname, 10, 'member of ' || coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
		FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid WHERE am.member = r.oid), '')
	FROM pg_roles r WHERE r.rolname LIKE 'activity\_monitor\_%'
) x
ORDER BY obj, n, line;
