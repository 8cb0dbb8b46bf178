/*
 * What CREATE EXTENSION does once every object exists: the partitions for
 * today and the days ahead, and this database's worker.
 */

-- Partitions for today and the days ahead.  Skipped while a dump is being
-- restored (pg_dump scripts run with row_security off): the dump brings its
-- own partitions, and maintain() adds what is missing afterwards.
DO $premake$
BEGIN
	IF pg_catalog.current_setting('row_security')::boolean THEN
		PERFORM activity_monitor.maintain();
	END IF;
END
$premake$;

SELECT activity_monitor.start_worker();
