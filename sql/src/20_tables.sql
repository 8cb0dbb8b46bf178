/*
 * Tables, sequences, indexes (those of activity's partitions are made by
 * _index_partition()), the rows of one-row tables, comments on
 * columns, and which tables a dump of the database carries
 * (pg_extension_config_dump: the configuration, the rules and the alerts;
 * the dated partitions of activity are not extension members and are dumped
 * with their rows).
 */

-- ---------------------------------------------------------------------------
-- Configuration
-- ---------------------------------------------------------------------------

CREATE TABLE activity_monitor.tracked (
	tbl					regclass PRIMARY KEY,
	kind				text NOT NULL CHECK (kind OPERATOR(pg_catalog.=) ANY (activity_monitor._kinds())),
	subject_column		name,
	status_column		name,
	critical_columns	name[] NOT NULL DEFAULT '{}',
	ignore_columns		name[] NOT NULL DEFAULT '{}',
	redact_columns		name[] NOT NULL DEFAULT '{}',
	tracked_since		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- (added by 0.2.0, hence last)
	critical_statuses	text[] DEFAULT '{}'
		CONSTRAINT tracked_critical_statuses_check
		CHECK (pg_catalog.array_position(critical_statuses, NULL) IS NULL
			   AND '' OPERATOR(pg_catalog.<>) ALL (critical_statuses))
);
COMMENT ON COLUMN activity_monitor.tracked.critical_statuses IS
	'a status transition into one of these statuses is critical; NULL: into any status (0.1.0''s behaviour)';
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.tracked', '');

-- One-row table of partitioning settings.
CREATE TABLE activity_monitor.config (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	partition_interval	interval NOT NULL DEFAULT '1 day',
	premake				int NOT NULL DEFAULT 2,
	retention			interval,
	retention_mode		text NOT NULL DEFAULT 'drop' CHECK (retention_mode IN ('drop', 'detach')),
	merge_after			interval NOT NULL DEFAULT '7 days',
	merge_interval		interval NOT NULL DEFAULT '1 year'
);
COMMENT ON COLUMN activity_monitor.config.merge_after IS
	'a month (or year) is merged into one partition once it ended this long ago';
COMMENT ON COLUMN activity_monitor.config.merge_interval IS
	'the largest merged partition: 1 year (months, then years), 1 month, or 0 (no merging)';
-- The dump of a database carries its own row (and pg_dump scripts run with
-- row_security off): insert the defaults only outside a restore.
DO $defaults$
BEGIN
	IF pg_catalog.current_setting('row_security')::boolean THEN
		INSERT INTO activity_monitor.config DEFAULT VALUES;
	END IF;
END
$defaults$;
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.config', '');

-- ---------------------------------------------------------------------------
-- The activity log
-- ---------------------------------------------------------------------------

CREATE SEQUENCE activity_monitor.activity_id_seq;

CREATE TABLE activity_monitor.activity (
	id					bigint NOT NULL DEFAULT pg_catalog.nextval('activity_monitor.activity_id_seq'),
	occurred_at			timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
	kind				text NOT NULL,
	action				text NOT NULL,
	table_name			text NOT NULL,
	row_key				text,
	subject_id			text,
	actor_type			text NOT NULL,
	actor_id			text,
	actor_reason		text,
	actor_context		jsonb,
	status_from			text,
	status_to			text,
	critical			boolean NOT NULL DEFAULT false,
	old_values			jsonb,
	new_values			jsonb,
	db_user				text NOT NULL DEFAULT CURRENT_USER,
	application_name	text,
	client_addr			inet,
	backend_pid			int NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
	txid				bigint NOT NULL DEFAULT pg_catalog.txid_current(),
	matched				jsonb,
	rule_errors			bigint[],
	source				text,
	source_id			bigint
) PARTITION BY RANGE (occurred_at);
COMMENT ON COLUMN activity_monitor.activity.matched IS
	'alert rules whose predicate matched: {"k": group key, "rule id": measure, ...}, a rule whose group key differs or whose measure is an array as "rule id": [group key, measure] (0.1.0: {"rule id": {"k": group key, "v": measure}})';
COMMENT ON COLUMN activity_monitor.activity.rule_errors IS
	'alert rules whose predicate could not be evaluated on this event';
COMMENT ON COLUMN activity_monitor.activity.source IS
	'on a reporting cluster, the subscription an event was received from (NULL: captured here)';
COMMENT ON COLUMN activity_monitor.activity.source_id IS
	'on a reporting cluster, the event''s id in its source (source, source_id: unique)';
ALTER SEQUENCE activity_monitor.activity_id_seq OWNED BY activity_monitor.activity.id;

/*
 * Fan-in: the oldest event time each transaction that received events from
 * another cluster wrote (src/receive.c).  The dashboard's rollup reads
 * the events back to it (and marks the note rolled), the sealing rounds
 * and the alert batches read their pairs of snapshots down to it, and the
 * sealing rounds delete the notes all three are done with.
 */
CREATE TABLE activity_monitor.received (
	txid	bigint PRIMARY KEY,
	oldest	timestamptz NOT NULL,
	rolled	boolean NOT NULL DEFAULT false
);
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.activity_id_seq', '');

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
	-- employees' actions and admin events (admin_actions, whose WHERE is
	-- this predicate); users are found by subject
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (actor_id, occurred_at) '
		'WHERE actor_type = ''employee'' OR kind = ''admin''', part);
	-- only events some rule matched: the worker's batches
	EXECUTE pg_catalog.format('CREATE INDEX ON %s (txid) '
		'WHERE matched IS NOT NULL OR rule_errors IS NOT NULL', part);
END
$fn$;

-- Catches rows no dated partition covers, so a write never fails for a
-- missing partition; maintain() moves them out when it creates the range.
CREATE TABLE activity_monitor.activity_default
	PARTITION OF activity_monitor.activity DEFAULT;
SELECT activity_monitor._index_partition('activity_monitor.activity_default');
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.activity_default', '');

-- ---------------------------------------------------------------------------
-- Background worker
-- ---------------------------------------------------------------------------

-- What the worker of this database did last; written by the worker only.
CREATE TABLE activity_monitor.worker_state (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	pid					int,
	started_at			timestamptz,
	starts				int NOT NULL DEFAULT 0,
	last_run_at			timestamptz,
	last_result			text,
	partitions_created	bigint NOT NULL DEFAULT 0,
	partitions_retired	bigint NOT NULL DEFAULT 0,
	last_error			text,
	last_error_at		timestamptz,
	partitions_merged	bigint NOT NULL DEFAULT 0,
	last_merge			text,
	last_merge_at		timestamptz
);
INSERT INTO activity_monitor.worker_state DEFAULT VALUES;

/*
 * The merge in progress (at most one; _merge_step()): the partitions of
 * [lower, upper) are copied one by one, in chunks, into the free-standing
 * indexed table target (pieces: those started, in order; copied_to: the
 * upper bound of the last one finished; last_at, last_id: the last row
 * copied of the one in progress), which is then finished (built_xid: the
 * transaction that did it) and swapped in for them once no snapshot older
 * than built_xid is left.  Its row is not dumped: a dump taken during a
 * merge carries the build table, which the restored database's worker
 * drops, and the merge starts again.
 */
CREATE TABLE activity_monitor.merge (
	target				name PRIMARY KEY,
	lower				timestamptz NOT NULL,
	upper				timestamptz NOT NULL,
	pieces				oid[] NOT NULL DEFAULT '{}',
	copied_to			timestamptz NOT NULL,
	last_at				timestamptz,
	last_id				bigint,
	rows_copied			bigint NOT NULL DEFAULT 0,
	built_xid			xid8,
	started_at			timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- ---------------------------------------------------------------------------
-- Alert rules and alerts
-- ---------------------------------------------------------------------------

CREATE TABLE activity_monitor.alert_rule (
	id				bigserial PRIMARY KEY,
	name			text NOT NULL UNIQUE,
	predicate		jsonpath NOT NULL,
	severity		text NOT NULL DEFAULT 'warning'
		CHECK (severity IN ('info', 'warning', 'critical')),
	kinds			text[],
	tables			regclass[],
	within			interval CHECK (within > interval '0'),
	threshold		numeric,
	measure			text NOT NULL DEFAULT 'count' CHECK (measure IN ('count', 'sum', 'distinct')),
	measure_path	jsonpath,
	group_by		jsonpath NOT NULL DEFAULT '$.subject_id',
	cooldown		interval CHECK (cooldown > interval '0'),
	channel			text NOT NULL DEFAULT 'activity_monitor_alerts',
	description		text,
	enabled			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	full_payload	boolean NOT NULL DEFAULT false,
	steps			jsonpath[],
	missing			jsonpath,
	lookback		interval,
	-- what a rule is follows from what it has (create_rule(), README)
	CONSTRAINT alert_rule_type_check CHECK (CASE
		WHEN steps IS NOT NULL THEN
			within IS NOT NULL AND threshold IS NULL AND lookback IS NULL AND measure_path IS NULL
			AND pg_catalog.cardinality(steps) BETWEEN (CASE WHEN missing IS NULL THEN 2 ELSE 1 END) AND 8
		WHEN lookback IS NOT NULL THEN
			lookback > interval '0' AND measure_path IS NOT NULL AND within IS NULL
			AND threshold IS NULL AND missing IS NULL
		ELSE missing IS NULL AND (within IS NULL) = (threshold IS NULL) END)
);
COMMENT ON COLUMN activity_monitor.alert_rule.steps IS
	'a sequence rule''s steps, in order (with missing: an absence rule''s)';
COMMENT ON COLUMN activity_monitor.alert_rule.missing IS
	'an absence rule''s missing step: fires when no event matches it within "within" of the first step';
COMMENT ON COLUMN activity_monitor.alert_rule.lookback IS
	'a first-seen rule''s lookback: fires when the value at measure_path was not seen for the group key within it';
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alert_rule', '');
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alert_rule_id_seq', '');

/*
 * First-seen rules' memory (src/seen.c): the values each group key showed,
 * and when last, within the rule's lookback.  Written by the alert batch,
 * backfilled by create_rule(), pruned by the worker.
 */
CREATE TABLE activity_monitor.seen (
	rule_id		bigint NOT NULL REFERENCES activity_monitor.alert_rule ON DELETE CASCADE,
	group_key	text,
	value		text NOT NULL,
	last_seen	timestamptz NOT NULL,
	CONSTRAINT seen_key UNIQUE NULLS NOT DISTINCT (rule_id, group_key, value)
);
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.seen', '');

-- Counters kept by the worker as it processes events.
CREATE TABLE activity_monitor.rule_stats (
	rule_id				bigint PRIMARY KEY REFERENCES activity_monitor.alert_rule ON DELETE CASCADE,
	events_matched		bigint NOT NULL DEFAULT 0,
	alerts_fired		bigint NOT NULL DEFAULT 0,
	evaluation_errors	bigint NOT NULL DEFAULT 0,
	last_fired_at		timestamptz,
	keys_evicted		bigint NOT NULL DEFAULT 0,	/* by the window bounds */
	events_evicted		bigint NOT NULL DEFAULT 0
);

CREATE TABLE activity_monitor.alerts (
	id				bigserial PRIMARY KEY,
	rule_id			bigint,
	rule_name		text NOT NULL,
	severity		text NOT NULL,
	channel			text NOT NULL,
	fired_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	group_key		text,
	value			numeric,
	event_id		bigint NOT NULL,
	event_ids		bigint[] NOT NULL,
	-- the firing event, kept here so an alert outlives its partition
	occurred_at		timestamptz NOT NULL,
	kind			text NOT NULL,
	action			text NOT NULL,
	table_name		text NOT NULL,
	subject_id		text,
	actor_type		text,
	actor_id		text,
	status			text NOT NULL DEFAULT 'open'
		CHECK (status IN ('open', 'acknowledged', 'resolved')),
	acknowledged_by	text,
	acknowledged_at	timestamptz,
	resolved_by		text,
	resolved_at		timestamptz,
	note			text,
	-- who handled an alert: the role (session user) always; the actor the
	-- application declared (set_actor), when there was one, in addition
	acknowledged_actor	text,
	resolved_actor		text
);
COMMENT ON COLUMN activity_monitor.alerts.acknowledged_by IS
	'the role (session user) that acknowledged the alert';
COMMENT ON COLUMN activity_monitor.alerts.acknowledged_actor IS
	'the actor the application declared (activity_monitor.actor_id) when the alert was acknowledged: a claim, not an identity';
COMMENT ON COLUMN activity_monitor.alerts.resolved_by IS
	'the role (session user) that resolved the alert';
COMMENT ON COLUMN activity_monitor.alerts.resolved_actor IS
	'the actor the application declared (activity_monitor.actor_id) when the alert was resolved: a claim, not an identity';
CREATE INDEX alerts_open_idx ON activity_monitor.alerts (fired_at) WHERE status <> 'resolved';
CREATE INDEX alerts_rule_key_idx ON activity_monitor.alerts (rule_id, group_key, fired_at);
-- a sequence or absence rule's recent alerts, read back by the worker's rebuild
CREATE INDEX alerts_rule_fired_idx ON activity_monitor.alerts (rule_id, fired_at);
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.alerts_id_seq', '');

-- Where the worker's last batch ended: events visible in this snapshot are done.
CREATE TABLE activity_monitor.alert_state (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	last_snapshot		txid_snapshot NOT NULL,
	-- the batch in progress (events visible in it and not in last_snapshot),
	-- processed in id order a bounded number at a time
	batch_snapshot		txid_snapshot,
	batch_last_id		bigint,
	-- events from before (restored from a dump) are not alerted on again
	since				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_run_at			timestamptz,
	events_processed	bigint NOT NULL DEFAULT 0,
	-- no event last_snapshot (batch_snapshot) does not see is dated before
	-- it: the batch reads only the partitions from there (NULL: unknown)
	last_bound			timestamptz,
	batch_bound			timestamptz
);
INSERT INTO activity_monitor.alert_state (last_snapshot) VALUES (pg_catalog.txid_current_snapshot());

-- ---------------------------------------------------------------------------
-- Dashboard
-- ---------------------------------------------------------------------------

-- Per-minute counts the worker keeps (last 2 days), so the dashboard never
-- scans a day of events.
CREATE TABLE activity_monitor.activity_minute (
	minute				timestamptz NOT NULL,
	kind				text NOT NULL,
	actor_type			text NOT NULL,
	employee_id			text NOT NULL,	-- actor_id of employees, '' for others
	events				bigint NOT NULL,
	critical_events		bigint NOT NULL,
	sessions_started	bigint NOT NULL,
	sessions_ended		bigint NOT NULL,
	PRIMARY KEY (minute, kind, actor_type, employee_id)
);

-- The dashboard's counts as the last rollup left them (one row): computed
-- once per rollup from the day's minute rows, read by every dashboard
-- query (no row: the dashboard computes them itself).  Derived data, not
-- dumped: the first rollup after a restore writes it.
CREATE TABLE activity_monitor.dashboard_counts (
	single				boolean PRIMARY KEY DEFAULT true CHECK (single),
	computed_at			timestamptz NOT NULL,
	events				jsonb NOT NULL,
	active_sessions		numeric NOT NULL,
	busiest_employees	jsonb NOT NULL
);

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

-- ---------------------------------------------------------------------------
-- Seals (tamper evidence, src/seal.c)
-- ---------------------------------------------------------------------------

-- The hash chain over the committed events: appended by the worker (kind
-- 'events') and by retention (kind 'retention'), never updated; its owner
-- alone can write it.  Dumped: a restored database verifies its history.
CREATE TABLE activity_monitor.seal (
	id				bigint PRIMARY KEY,
	sealed_at		timestamptz NOT NULL,
	kind			text NOT NULL CHECK (kind IN ('events', 'retention')),
	snap_from		txid_snapshot,
	snap_to			txid_snapshot,
	horizon			timestamptz,
	next_horizon	timestamptz,
	event_count		bigint NOT NULL,
	ids				int8multirange NOT NULL,
	min_at			timestamptz,
	max_at			timestamptz,
	fingerprints	bytea,
	detail			jsonb,
	prev_hash		bytea NOT NULL,
	hash			bytea NOT NULL
);
CREATE INDEX seal_max_at ON activity_monitor.seal (max_at);
COMMENT ON TABLE activity_monitor.seal IS
	'hash chain over the committed events (README, "Tamper evidence"); append-only';
COMMENT ON COLUMN activity_monitor.seal.ids IS
	'the ids of the events this seal covers (kind retention: the ids retired)';
COMMENT ON COLUMN activity_monitor.seal.fingerprints IS
	'the first 16 bytes of each event''s SHA-256 digest, in id order';
COMMENT ON COLUMN activity_monitor.seal.horizon IS
	'no event of this seal can be dated before this';
SELECT pg_catalog.pg_extension_config_dump('activity_monitor.seal', '');
