/*
 * Functions the tables need while they are created (so before 20_tables):
 * _index_partition() makes the default partition's indexes.
 */

/*
 * Indexes live on each partition, made by _index_partition(), not on the
 * parent: a parent index would make pg_restore's ATTACH PARTITION create
 * partition indexes that collide with the dump's own CREATE INDEX.
 */
CREATE FUNCTION activity_monitor._index_partition(part regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (occurred_at)', part);
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (subject_id, occurred_at)', part);
	-- employees' actions (admin_actions); users are found by subject
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (actor_id, occurred_at) '
		'WHERE actor_type = ''employee''', part);
	-- only events some rule matched: the worker's batches
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (txid) '
		'WHERE matched IS NOT NULL OR rule_errors IS NOT NULL', part);
END
$fn$;
