-- ---------------------------------------------------------------------------
-- Capture at production scale (issue 13): the partitions capture writes to
-- (a day's, the default) index subject_id alone, deduplicated, instead of
-- (subject_id, occurred_at), whose random insertions made capture cost
-- grow with the day's partition; merged partitions (months, years, which
-- receive no writes) keep (subject_id, occurred_at).  Dated partitions of
-- 0.1.0 keep their index until merged; the default partition (an extension
-- member, normally empty or nearly) gets its index as a fresh installation
-- has it.
-- ---------------------------------------------------------------------------

DROP FUNCTION activity_monitor._index_partition(regclass);

/*
 * Indexes live on each partition, made by _index_partition(), not on the
 * parent: a parent index would make pg_restore's ATTACH PARTITION create
 * partition indexes that collide with the dump's own CREATE INDEX.
 *
 * An account's events are found through an index led by subject_id.  A
 * partition that capture writes to (a day's, the default) has it on
 * subject_id alone: every change inserts into it at a random place, and
 * with the key alone the entries of one account share one deduplicated
 * posting list, so the index is about a sixth of (subject_id, occurred_at)'s
 * size and stays in shared buffers as the day's partition fills (on a
 * partition of 5 million events: 34 MB against 225 MB).  A reader of one
 * account's events of such a partition reads all of them and sorts them.
 * A merged partition (merged true: a month or a year, which receives no
 * more writes) has it on (subject_id, occurred_at), read newest first and
 * stopped early.
 */
CREATE FUNCTION activity_monitor._index_partition(part regclass, merged boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	-- time order, ties by id: the views' ORDER BY occurred_at DESC, id DESC
	-- read straight off it (a LIMIT stops early, no sort)
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (occurred_at, id)', part);
	-- critical events only, in that order (critical_changes, the dashboard):
	-- the latest of them without reading every event of the period
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (occurred_at, id) WHERE critical', part);
	IF merged THEN
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (subject_id, occurred_at)', part);
	ELSE
		EXECUTE pg_catalog.format('CREATE INDEX ON %s (subject_id)', part);
	END IF;
	-- employees' actions (admin_actions); users are found by subject
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (actor_id, occurred_at) '
		'WHERE actor_type = ''employee''', part);
	-- only events some rule matched: the worker's batches
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (txid) '
		'WHERE matched IS NOT NULL OR rule_errors IS NOT NULL', part);
END
$fn$;

REVOKE ALL ON FUNCTION activity_monitor._index_partition(regclass, boolean) FROM PUBLIC;

DROP INDEX activity_monitor.activity_default_subject_id_occurred_at_idx;
CREATE INDEX ON activity_monitor.activity_default (subject_id);
