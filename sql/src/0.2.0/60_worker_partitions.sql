/*
 * activity_monitor 0.2.0: the worker reads the numbers of its partition
 * duty (issue 12).  _worker_partitions() returns the partitions created and
 * retired as columns the worker reads with SPI_getbinval (it returned
 * nothing, and the numbers existed only as the text of
 * worker_state.last_result); the return type changes, so the function is
 * dropped and created again.  maintain() is unchanged.
 */
DROP FUNCTION activity_monitor._worker_partitions();

/*
 * The worker's partition duty: maintenance, and its outcome in worker_state
 * in the same transaction.  Returns the numbers of partitions created and
 * retired, which the worker reads (src/worker.c, duty_partitions()); NULL
 * when skipped, while a superuser's pg_restore is connected to the
 * database (the dump brings its own partitions).
 */
CREATE FUNCTION activity_monitor._worker_partitions(OUT created int, OUT retired int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	-- (a superuser's pg_restore: any role can name its session pg_restore)
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
			   WHERE a.datname = pg_catalog.current_database() AND a.application_name = 'pg_restore'
				 AND r.rolsuper) THEN
		RETURN;
	END IF;
	SELECT m.created, m.retired INTO created, retired FROM activity_monitor._maintain() m;
	UPDATE activity_monitor.worker_state
	SET last_run_at = pg_catalog.now(),
		last_result = pg_catalog.format('created %s, retired %s', created, retired),
		partitions_created = partitions_created + created,
		partitions_retired = partitions_retired + retired;
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._worker_partitions() FROM PUBLIC;
