/*
 * Public functions whose result is a view's row type: they come after the
 * views (50_views.sql) that define their types.  Who may execute each is in
 * 60_grants.sql.
 */

-- ---------------------------------------------------------------------------
-- The activity
-- ---------------------------------------------------------------------------

/*
 * An account's events newest first, exactly the rows of
 *   SELECT * FROM activity_monitor.timeline WHERE subject_id = subject
 *     AND occurred_at < before AND occurred_at >= since
 *   ORDER BY occurred_at DESC, id DESC LIMIT lim
 * (a NULL bound or lim: none; a NULL subject: no rows), read in C
 * (src/timeline.c) partition by partition, newest first, releasing each
 * partition's locks once read: the call leaves the activity table locked,
 * not its partitions.  Requires SELECT on the timeline view; refused while
 * row-level security would filter the view.  Not STRICT: a NULL lim means
 * no limit.  No SET search_path: the C code resolves no name through it.
 */
CREATE FUNCTION activity_monitor.account_timeline(subject text, lim int DEFAULT 50,
												  before timestamptz DEFAULT NULL,
												  since timestamptz DEFAULT NULL)
RETURNS SETOF activity_monitor.timeline
AS 'MODULE_PATHNAME', 'activity_monitor_account_timeline'
LANGUAGE C STABLE CALLED ON NULL INPUT;
COMMENT ON FUNCTION activity_monitor.account_timeline(text, int, timestamptz, timestamptz) IS
	'an account''s events newest first, as the timeline view gives them, without a lock per partition';

/*
 * An employee's actions newest first, exactly the rows of
 *   SELECT * FROM activity_monitor.admin_actions WHERE employee_id = employee
 *     AND occurred_at < before AND occurred_at >= since
 *   ORDER BY occurred_at DESC, id DESC LIMIT lim
 * read as account_timeline() reads (src/timeline.c), through each
 * partition's (actor_id, occurred_at) index of employees' and admin
 * events: an employee's day over today's hourly partitions plans nothing
 * and leaves no partition locked.  Same privileges and refusals, for the
 * admin_actions view.
 */
CREATE FUNCTION activity_monitor.employee_actions(employee text, lim int DEFAULT 50,
												  before timestamptz DEFAULT NULL,
												  since timestamptz DEFAULT NULL)
RETURNS SETOF activity_monitor.admin_actions
AS 'MODULE_PATHNAME', 'activity_monitor_employee_actions'
LANGUAGE C STABLE CALLED ON NULL INPUT;
COMMENT ON FUNCTION activity_monitor.employee_actions(text, int, timestamptz, timestamptz) IS
	'an employee''s actions newest first, as the admin_actions view gives them, without a lock per partition';

/*
 * The latest critical changes, exactly the rows of
 *   SELECT * FROM activity_monitor.critical_changes
 *     WHERE occurred_at < before AND occurred_at >= since
 *   ORDER BY occurred_at DESC, id DESC LIMIT lim
 * read as account_timeline() reads, through each partition's index of
 * critical events, newest partition first, stopping once lim rows are
 * found (the dashboard's latest ten read the current partition or two).
 * Same privileges and refusals, for the critical_changes view.
 */
CREATE FUNCTION activity_monitor.recent_critical_changes(lim int DEFAULT 50,
														 before timestamptz DEFAULT NULL,
														 since timestamptz DEFAULT NULL)
RETURNS SETOF activity_monitor.critical_changes
AS 'MODULE_PATHNAME', 'activity_monitor_recent_critical_changes'
LANGUAGE C STABLE CALLED ON NULL INPUT;
COMMENT ON FUNCTION activity_monitor.recent_critical_changes(int, timestamptz, timestamptz) IS
	'the latest critical changes, as the critical_changes view gives them, without a lock per partition';
