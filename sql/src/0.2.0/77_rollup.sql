-- ---------------------------------------------------------------------------
-- Capture at production scale (issue 13): the worker's rollup counts the
-- events committed since its previous round (a pair of snapshots, as the
-- alert and seal rounds read), not the last 10 minutes every naptime (0.1.0:
-- at 10,000 changes a second, 6 million events read every 10 seconds).
-- ---------------------------------------------------------------------------

-- Where the dashboard's rollup stands (one row, written by _rollup_count()):
-- every event visible in snapshot or of transaction txid (whose events
-- written before it are counted, and those after never are) is counted in
-- activity_minute, and every
-- event not visible in it is dated horizon or later (but for those the
-- rollup's documented limits leave out, and received events, whose notes in
-- activity_monitor.received say how far back).  Each round counts only the
-- events visible now and not in snapshot.  Derived data, not dumped: after a
-- restore the first round counts the last ten minutes again.
CREATE TABLE activity_monitor.rollup_state (
	single		boolean PRIMARY KEY DEFAULT true CHECK (single),
	snapshot	txid_snapshot NOT NULL,
	horizon		timestamptz NOT NULL,
	txid		bigint NOT NULL		-- the transaction that stored it, counted too
);

/*
 * The rollup's count, for _rollup() and _worker_rollup() (whose caller
 * holds the lock on activity_minute): the minutes from recount on are
 * counted again from the events; the events committed since the last count
 * (visible now, not in rollup_state's snapshot) are added to the minutes
 * they were made in, however old (but never more than two days back, what
 * activity_minute keeps).  The events a round reads are those since the
 * last round's horizon, or further back to the oldest of the notes of
 * transactions that received events from another cluster since (marked
 * rolled in the same statement, so a note is marked by the round that
 * counts its events).  One statement counts, marks and stores the new
 * snapshot, so all three see the same transactions.
 *
 * The new horizon is read before that statement: every change not visible
 * in it will be dated (its statement's start) no earlier than the start of
 * the transaction or statement of a backend of this database that holds a
 * transaction id or runs a statement now, or now (minus a second, for a
 * backend between its statement's start and reporting it); ten minutes back
 * while a prepared transaction of this database waits, or a backend's
 * activity is not tracked (their start is not known).  The calling
 * transaction's own events are counted (it sees them) and its id stored
 * with the snapshot, in which it may not be visible: what it writes after
 * the count is never counted (the worker's rounds write no events).
 * Returns the minute rows written.
 */
CREATE FUNCTION activity_monitor._rollup_count(recount timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $fn$
DECLARE
	floor	timestamptz := pg_catalog.now() - interval '10 minutes';
	new_horizon timestamptz;
	prev	activity_monitor.rollup_state;
	noted	timestamptz;
	lo		timestamptz;
	n		bigint;
BEGIN
	SELECT LEAST(pg_catalog.now(), pg_catalog.min(LEAST(a.xact_start, a.query_start))) - interval '1 second'
	INTO new_horizon
	FROM pg_catalog.pg_stat_activity a
	WHERE a.datid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
	  AND (a.backend_xid IS NOT NULL OR a.state = 'active');
	-- a prepared transaction (its start is not known), or a backend whose
	-- activity is not tracked (track_activities off: no start either)
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts p WHERE p.database = pg_catalog.current_database())
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
				  WHERE a.datid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
					AND a.xact_start IS NULL
					AND (a.backend_xid IS NOT NULL OR a.state IS NULL OR a.state = 'disabled')) THEN
		new_horizon := LEAST(new_horizon, floor);
	END IF;
	new_horizon := GREATEST(new_horizon, floor);
	DELETE FROM activity_monitor.activity_minute m WHERE m.minute >= recount;
	SELECT s.* INTO prev FROM activity_monitor.rollup_state s
	WHERE pg_catalog.txid_snapshot_xmax(s.snapshot)
		  <= pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot());
	WITH notes AS (
		UPDATE activity_monitor.received r SET rolled = true WHERE NOT r.rolled RETURNING r.oldest
	)
	SELECT pg_catalog.min(o.oldest) INTO noted FROM notes o;
	-- the oldest time to read, a value: the query below is planned with it
	-- (its partitions only; a bound computed in the query made every
	-- round plan, lock and JIT-compile every partition: minutes at 1,848)
	lo := GREATEST(LEAST(recount, prev.horizon, noted), pg_catalog.now() - interval '2 days');
	WITH counted AS (
		SELECT pg_catalog.date_trunc('minute', a.occurred_at) AS minute, a.kind, a.actor_type,
			   CASE WHEN a.actor_type = 'employee' THEN coalesce(a.actor_id, '') ELSE '' END AS employee_id,
			   pg_catalog.count(*) AS events, pg_catalog.count(*) FILTER (WHERE a.critical) AS critical_events,
			   pg_catalog.count(*) FILTER (WHERE a.starts_session) AS sessions_started,
			   pg_catalog.count(*) FILTER (WHERE a.ends_session) AS sessions_ended
		FROM activity_monitor._activity_sessions a
		WHERE a.occurred_at >= lo
		  AND (a.occurred_at >= recount
			   OR (NOT pg_catalog.txid_visible_in_snapshot(a.txid, prev.snapshot)
				   AND a.txid IS DISTINCT FROM prev.txid))
		GROUP BY 1, 2, 3, 4
	), written AS (
		INSERT INTO activity_monitor.activity_minute AS m
		SELECT c.minute, c.kind, c.actor_type, c.employee_id, c.events, c.critical_events,
			   c.sessions_started, c.sessions_ended
		FROM counted c
		ON CONFLICT (minute, kind, actor_type, employee_id) DO UPDATE
			SET events = m.events + excluded.events,
				critical_events = m.critical_events + excluded.critical_events,
				sessions_started = m.sessions_started + excluded.sessions_started,
				sessions_ended = m.sessions_ended + excluded.sessions_ended
		RETURNING 1
	), stored AS (
		INSERT INTO activity_monitor.rollup_state AS s (snapshot, horizon, txid)
		VALUES (pg_catalog.txid_current_snapshot(), new_horizon, pg_catalog.txid_current())
		ON CONFLICT (single) DO UPDATE
			SET snapshot = excluded.snapshot, horizon = excluded.horizon, txid = excluded.txid
	)
	SELECT pg_catalog.count(*) INTO n FROM written;
	DELETE FROM activity_monitor.activity_minute m WHERE m.minute < pg_catalog.now() - interval '2 days';
	-- the dashboard's counts, once per rollup rather than once per query
	INSERT INTO activity_monitor.dashboard_counts (computed_at, events, active_sessions, busiest_employees)
	SELECT pg_catalog.now(), d.events, d.active_sessions, d.busiest_employees
	FROM activity_monitor._dashboard_counts(pg_catalog.now()) d
	ON CONFLICT (single) DO UPDATE
		SET computed_at = excluded.computed_at, events = excluded.events,
			active_sessions = excluded.active_sessions, busiest_employees = excluded.busiest_employees;
	RETURN n;
END
$fn$;

/*
 * The rollup by hand: count the minutes from "since" (default: the last 10
 * minutes) again, into activity_minute, and forget minutes older than two
 * days.  Sessions start and end as _activity_sessions says, the definition
 * user_sessions uses.  Shares its state with the worker's rounds (one at a
 * time: a table lock, not an advisory lock, which any role could take and
 * hold), so that neither counts an event the other counted.
 */
CREATE OR REPLACE FUNCTION activity_monitor._rollup(since timestamptz DEFAULT pg_catalog.now() - interval '10 minutes')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	-- received before activity_minute: the order of the worker's other duties
	LOCK TABLE activity_monitor.received IN ROW EXCLUSIVE MODE;
	LOCK TABLE activity_monitor.activity_minute IN SHARE UPDATE EXCLUSIVE MODE;
	RETURN activity_monitor._rollup_count(pg_catalog.date_trunc('minute', since));
END
$fn$;

/*
 * The worker's rollup: the events committed since the last round (see
 * _rollup_count()).  Without a stored state, or with one of other
 * transaction ids than this cluster's (its snapshot ahead of the current
 * one), the last 10 minutes are counted again, as 0.1.0 did every round.
 * While pg_restore runs, nothing (and no state: a restore loads events
 * with their source's transaction ids; _rollup(now() - interval '2 days')
 * by hand afterwards counts what activity_minute keeps).
 */
CREATE FUNCTION activity_monitor._worker_rollup()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	-- received before activity_minute: the order of the worker's other duties
	LOCK TABLE activity_monitor.received IN ROW EXCLUSIVE MODE;
	LOCK TABLE activity_monitor.activity_minute IN SHARE UPDATE EXCLUSIVE MODE;
	-- while pg_restore loads events with their source's transaction ids, which
	-- a state stored meanwhile could take for counted: none, till it is done
	IF activity_monitor._restoring() THEN
		DELETE FROM activity_monitor.rollup_state;
		RETURN 0;
	END IF;
	IF EXISTS (SELECT 1 FROM activity_monitor.rollup_state s
			   WHERE pg_catalog.txid_snapshot_xmax(s.snapshot)
					 <= pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot())) THEN
		RETURN activity_monitor._rollup_count('infinity');
	END IF;
	RETURN activity_monitor._rollup_count(pg_catalog.date_trunc('minute', pg_catalog.now() - interval '10 minutes'));
END
$fn$;
REVOKE ALL ON FUNCTION activity_monitor._rollup_count(timestamptz),
	activity_monitor._worker_rollup() FROM PUBLIC;
