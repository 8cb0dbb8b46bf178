-- Properties of the extension's functions (issue 12): no dead code, every
-- immutable function parallel safe, and the worker's partition duty
-- returning numbers (created, retired) rather than only a text in
-- worker_state.
BEGIN;
SELECT plan(6);
SET LOCAL client_min_messages = warning;

SELECT hasnt_function('activity_monitor', '_num', ARRAY['jsonb'],
	'_num() is gone: the alert engine reads measures in C');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace AND p.provolatile = 'i' AND p.proparallel <> 's'$$,
	'every immutable function of the extension is PARALLEL SAFE');

-- _worker_partitions(): what the worker runs and reads (src/worker.c)
SELECT activity_monitor.configure(premake => 10);
CREATE TEMP TABLE before AS
	SELECT (SELECT count(*)::int FROM activity_monitor._partitions()) AS parts, w.partitions_created
	FROM activity_monitor.worker_state w;
CREATE TEMP TABLE duty AS SELECT * FROM activity_monitor._worker_partitions();
SELECT is((SELECT created FROM duty),
		  (SELECT count(*)::int FROM activity_monitor._partitions()) - (SELECT parts FROM before),
	'_worker_partitions() returns the number of partitions it created');
SELECT cmp_ok((SELECT created FROM duty), '>', 0, 'premake 10 made partitions');
SELECT is((SELECT retired FROM duty), 0, '_worker_partitions() returns the number retired (none: no retention)');
SELECT is((SELECT (w.partitions_created - b.partitions_created)::int || ' ' || w.last_result
		   FROM activity_monitor.worker_state w, before b),
		  (SELECT created || ' created ' || created || ', retired 0' FROM duty),
	'worker_state records the same numbers');

SELECT * FROM finish();
ROLLBACK;
