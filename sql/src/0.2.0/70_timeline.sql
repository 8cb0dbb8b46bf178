-- ---------------------------------------------------------------------------
-- account_timeline() (issue 16, "years of history")
--
-- The timeline view asked for one account's latest events plans, and
-- locks, every partition and its indexes (five locks a partition, to the
-- end of the transaction).  account_timeline() returns the same rows, read
-- in C partition by partition newest first, releasing each partition's
-- locks once read (src/timeline.c).
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity_monitor.account_timeline(subject text, lim int DEFAULT 50,
												  before timestamptz DEFAULT NULL,
												  since timestamptz DEFAULT NULL)
RETURNS SETOF activity_monitor.timeline
AS 'MODULE_PATHNAME', 'activity_monitor_account_timeline'
LANGUAGE C STABLE CALLED ON NULL INPUT;
COMMENT ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz) IS
	'an account''s events newest first, as the timeline view gives them, without a lock per partition';

REVOKE ALL ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz)
	TO activity_monitor_reader;
