-- ---------------------------------------------------------------------------
-- Years of history (issue 16): old partitions merge into months and years
--
-- The worker merges the partitions of a month once it ended merge_after
-- ago into one partition, and those of a year into one (merge_interval
-- 1 year), one short step at a time between its alert rounds
-- (_merge_step()); configure() sets both, settings and worker_status show
-- them.  New installations make 2 partitions ahead (premake), not 7: each
-- premade partition is planned by every query with a lower time bound.
-- An installation keeps the premake it has.
-- ---------------------------------------------------------------------------

ALTER TABLE activity_monitor.config
	ALTER COLUMN premake SET DEFAULT 2,
	ADD COLUMN merge_after interval NOT NULL DEFAULT '7 days',
	ADD COLUMN merge_interval interval NOT NULL DEFAULT '1 year';
COMMENT ON COLUMN activity_monitor.config.merge_after IS
	'a month (or year) is merged into one partition once it ended this long ago';
COMMENT ON COLUMN activity_monitor.config.merge_interval IS
	'the largest merged partition: 1 year (months, then years), 1 month, or 0 (no merging)';

ALTER TABLE activity_monitor.worker_state
	ADD COLUMN partitions_merged bigint NOT NULL DEFAULT 0,
	ADD COLUMN last_merge text,
	ADD COLUMN last_merge_at timestamptz;

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


/*
 * True while a superuser's pg_restore is connected to the database (any
 * role can name its session pg_restore): the worker leaves partitions alone
 * then, the dump brings its own.
 */
CREATE FUNCTION activity_monitor._restoring()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
				   WHERE a.datname = pg_catalog.current_database() AND a.application_name = 'pg_restore'
					 AND r.rolsuper)
$fn$;

/*
 * One step of merging old partitions (README, "Partitions and history"):
 * partitions shorter than a day (partition_interval 1 hour: capture writes
 * into an hour's small indexes) merge into one partition activity_dYYYYMMDD
 * once the day ended a partition_interval ago, the partitions of a month
 * into activity_mYYYYMM once the month ended merge_after ago, and, with
 * merge_interval 1 year, those of a year into activity_yYYYY once the year
 * did.  A merge
 * never blocks capture for longer than its swap, and each step is one short
 * transaction, so that the worker runs alert rounds between steps:
 *
 *   start  a free-standing table activity_build_<d|m|y>... with a CHECK
 *          constraint matching the range and the partitions' indexes (a
 *          row of activity_monitor.merge);
 *   copy   at most 50,000 rows of a partition of the range per step, in
 *          (occurred_at, id) order, that partition locked in SHARE mode (no
 *          writer in flight; capture writes at the current time, never into
 *          a month that ended), partition after partition;
 *   finish grants and statistics, once every piece is copied;
 *   swap   once no snapshot older than the build is left (the copies carry
 *          the build's transaction ids: an older snapshot would see the
 *          merged partition empty), in one transaction under a 100 ms
 *          lock_timeout: detach the pieces (renamed activity_merged_...),
 *          attach the build under its final name (no validation scan: the
 *          CHECK constraint);
 *   drop   the detached pieces, one per step.
 *
 * A merge whose partitions changed meanwhile (retention dropped one) or
 * whose range has rows in the default partition is abandoned.  Returns what
 * the step did (NULL: nothing to do), the partitions merged away by it, and
 * whether another step should follow at once.  Times are UTC: months and
 * years are those of UTC, as partition ranges are.
 */
CREATE FUNCTION activity_monitor._merge_step("now" timestamptz DEFAULT pg_catalog.now(),
											 OUT done text, OUT merged int, OUT more boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET lock_timeout = '2s'
AS $fn$
DECLARE
	cfg		activity_monitor.config;
	m		activity_monitor.merge;
	p		record;
	build	regclass;
	final	text;
	cols	text;
	parts	oid[];
	why		text;
	lo		timestamptz;
	hi		timestamptz;
	n		bigint;
BEGIN
	merged := 0;
	more := true;
	-- config first, as the worker's other duties (DROP EXTENSION locks
	-- them in that order, so that it cannot deadlock with the worker)
	SELECT * INTO cfg FROM activity_monitor.config;
	IF NOT FOUND THEN
		-- a dump being restored (see _maintain())
		more := false;
		RETURN;
	END IF;
	-- One merge step at a time (the worker's, an admin's test).  A table
	-- lock, not an advisory lock, which any role could take and hold.
	LOCK TABLE activity_monitor.merge IN SHARE UPDATE EXCLUSIVE MODE;
	SELECT * INTO m FROM activity_monitor.merge;

	-- Left over: pieces detached by a swap, builds no merge row names (a
	-- restored dump taken during a merge).
	SELECT c.oid::regclass INTO build FROM pg_catalog.pg_class c
	WHERE c.relnamespace = 'activity_monitor'::regnamespace
	  AND c.relkind = 'r' AND NOT c.relispartition
	  AND (c.relname LIKE 'activity\_merged\_%'
		   OR (c.relname LIKE 'activity\_build\_%' AND c.relname IS DISTINCT FROM m.target))
	ORDER BY c.relname LIMIT 1;
	IF FOUND THEN
		final := build::text;
		PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
		BEGIN
			-- A detached piece had every row copied, unless something wrote
			-- into it after its copy (a superuser, a dump restored by psql
			-- while the worker ran): such rows go back to the activity before
			-- the piece goes.
			IF final LIKE 'activity\_monitor.activity\_merged\_%' THEN
				EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', final);
				SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
				FROM pg_catalog.pg_attribute a
				WHERE a.attrelid = 'activity_monitor.activity'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
				-- (the piece's time range as constants: the look-ups go to the
				-- partitions of that range only)
				EXECUTE pg_catalog.format('SELECT min(occurred_at), max(occurred_at) FROM %s', final) INTO lo, hi;
				EXECUTE pg_catalog.format(
					'INSERT INTO activity_monitor.activity (%s) SELECT %s FROM %s p WHERE NOT EXISTS '
					'(SELECT 1 FROM activity_monitor.activity a WHERE a.occurred_at = p.occurred_at AND a.id = p.id '
					'AND a.occurred_at >= %L AND a.occurred_at <= %L)',
					cols, cols, final, lo, hi);
				GET DIAGNOSTICS n = ROW_COUNT;
				IF n > 0 THEN
					RAISE WARNING 'activity_monitor: % rows were written into % after it was merged: they were put back',
						n, final;
				END IF;
			END IF;
			EXECUTE pg_catalog.format('DROP TABLE %s', final);
			done := pg_catalog.format('dropped %s', final);
		EXCEPTION WHEN lock_not_available THEN
			done := pg_catalog.format('could not drop %s within lock_timeout', build);
			more := false;
		END;
		RETURN;
	END IF;

	IF m.target IS NOT NULL THEN
		build := pg_catalog.to_regclass(pg_catalog.format('activity_monitor.%I', m.target));
		final := pg_catalog.replace(m.target, 'activity_build_', 'activity_');
		SELECT coalesce(pg_catalog.array_agg(q.part::oid ORDER BY q.lower), '{}') INTO parts
		FROM activity_monitor._partitions() q
		WHERE q.lower >= m.lower AND q.upper <= m.upper;
		why := CASE
			WHEN build IS NULL THEN 'its table is gone'
			WHEN cfg.merge_interval = interval '0' THEN 'merging was switched off'
			WHEN pg_catalog.cardinality(m.pieces) > 0
				 AND parts[1:pg_catalog.cardinality(m.pieces)] IS DISTINCT FROM m.pieces
				 OR m.copied_to >= m.upper AND parts IS DISTINCT FROM m.pieces THEN 'its partitions changed'
			WHEN EXISTS (SELECT 1 FROM activity_monitor.activity_default d
						 WHERE d.occurred_at >= m.lower AND d.occurred_at < m.upper)
				 THEN 'the default partition holds rows of its range' END;
		IF why IS NOT NULL THEN
			IF build IS NOT NULL THEN
				EXECUTE pg_catalog.format('DROP TABLE %s', build);
			END IF;
			DELETE FROM activity_monitor.merge;
			done := pg_catalog.format('abandoned the merge into %s: %s', final, why);
			RETURN;
		END IF;

		-- copy the next chunk of the partition in progress, or of the next one
		IF m.copied_to < m.upper THEN
			IF m.last_at IS NULL THEN
				SELECT q.part, q.upper INTO p FROM activity_monitor._partitions() q
				WHERE q.lower >= m.copied_to AND q.upper <= m.upper ORDER BY q.lower LIMIT 1;
				IF NOT FOUND THEN
					UPDATE activity_monitor.merge SET copied_to = upper;
					done := pg_catalog.format('copied every partition into %s', m.target);
					RETURN;
				END IF;
				m.pieces := m.pieces || p.part::oid;
				m.last_at := '-infinity';
				m.last_id := -9223372036854775808;
			ELSE
				SELECT q.part, q.upper INTO p FROM activity_monitor._partitions() q
				WHERE q.part = m.pieces[pg_catalog.cardinality(m.pieces)]::regclass;
			END IF;
			SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
			FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = 'activity_monitor.activity'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
			EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE MODE', p.part);
			EXECUTE pg_catalog.format(
				'WITH c AS (INSERT INTO %s (%s) SELECT %s FROM %s WHERE (occurred_at, id) > ($1, $2) '
				'ORDER BY occurred_at, id LIMIT 50000 RETURNING occurred_at, id) '
				'SELECT (SELECT count(*) FROM c), l.occurred_at, l.id '
				'FROM (SELECT 1) o LEFT JOIN (SELECT occurred_at, id FROM c ORDER BY occurred_at DESC, id DESC LIMIT 1) l ON true',
				build, cols, cols, p.part)
				INTO n, m.last_at, m.last_id USING m.last_at, m.last_id;
			IF n < 50000 THEN
				UPDATE activity_monitor.merge
				SET copied_to = p.upper, pieces = m.pieces, last_at = NULL, last_id = NULL,
					rows_copied = rows_copied + n;
				done := pg_catalog.format('copied %s rows of %s into %s, the last of it', n, p.part, m.target);
			ELSE
				UPDATE activity_monitor.merge
				SET pieces = m.pieces, last_at = m.last_at, last_id = m.last_id, rows_copied = rows_copied + n;
				done := pg_catalog.format('copied %s rows of %s into %s', n, p.part, m.target);
			END IF;
			RETURN;
		END IF;

		-- finish the build
		IF m.built_xid IS NULL THEN
			EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC', build);
			EXECUTE pg_catalog.format('GRANT SELECT ON %s TO activity_monitor_reader', build);
			EXECUTE pg_catalog.format('ANALYZE %s', build);
			UPDATE activity_monitor.merge SET built_xid = pg_catalog.pg_current_xact_id();
			done := pg_catalog.format('built %s (%s rows)', m.target, m.rows_copied);
			RETURN;
		END IF;

		-- swap, once every snapshot (here, or a standby's through its
		-- walsender) sees the build's rows
		SELECT pg_catalog.string_agg(w.who, ', ') INTO why FROM (
			SELECT 'pid ' || a.pid AS who FROM pg_catalog.pg_stat_activity a
			WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
			  AND (a.datname = pg_catalog.current_database() OR a.backend_type = 'walsender')
			  AND pg_catalog.age(a.backend_xmin) >= pg_catalog.age(pg_catalog.xid(m.built_xid))
			UNION ALL
			-- a hot standby's snapshots, reported through its slot
			SELECT 'slot ' || s.slot_name FROM pg_catalog.pg_replication_slots s
			WHERE s.xmin IS NOT NULL
			  AND pg_catalog.age(s.xmin) >= pg_catalog.age(pg_catalog.xid(m.built_xid))) w;
		IF why IS NOT NULL THEN
			done := pg_catalog.format('%s waits for snapshots older than its build (%s)', m.target, why);
			more := false;
			RETURN;
		END IF;
		PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
		BEGIN
			-- the pieces first, without waiting (no writer waits for them),
			-- then the parent alone (every captured write waits for this;
			-- without ONLY it would lock every partition, and a reader of
			-- any of them would hold the swap up)
			FOR p IN SELECT c.oid::regclass AS part FROM pg_catalog.pg_class c WHERE c.oid = ANY (m.pieces) LOOP
				EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', p.part);
			END LOOP;
			LOCK TABLE ONLY activity_monitor.activity IN ACCESS EXCLUSIVE MODE;
			FOR p IN SELECT c.oid::regclass AS part, c.relname FROM pg_catalog.pg_class c
					 WHERE c.oid = ANY (m.pieces)
			LOOP
				EXECUTE pg_catalog.format('ALTER TABLE activity_monitor.activity DETACH PARTITION %s', p.part);
				EXECUTE pg_catalog.format('ALTER TABLE %s RENAME TO %I', p.part,
										  pg_catalog.left('activity_merged_' || pg_catalog.replace(p.relname, 'activity_', ''), 63));
			END LOOP;
			EXECUTE pg_catalog.format('ALTER TABLE %s RENAME TO %I', build, final);
			FOR p IN SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
					 WHERE i.indrelid = build
			LOOP
				EXECUTE pg_catalog.format('ALTER INDEX activity_monitor.%I RENAME TO %I', p.relname,
										  pg_catalog.replace(p.relname, 'activity_build_', 'activity_'));
			END LOOP;
			EXECUTE pg_catalog.format(
				'ALTER TABLE activity_monitor.activity ATTACH PARTITION activity_monitor.%I FOR VALUES FROM (%L) TO (%L)',
				final, m.lower, m.upper);
			EXECUTE pg_catalog.format('ALTER TABLE activity_monitor.%I DROP CONSTRAINT %I', final, final || '_bounds');
			DELETE FROM activity_monitor.merge;
			merged := pg_catalog.array_length(m.pieces, 1);
			done := pg_catalog.format('merged %s partitions (%s rows) into %s', merged, m.rows_copied, final);
		EXCEPTION
			WHEN lock_not_available THEN
				done := pg_catalog.format('could not swap %s in within lock_timeout', final);
				more := false;
			WHEN OTHERS THEN
				-- not to be retried as it is: start again from the layout
				EXECUTE pg_catalog.format('DROP TABLE %s', build);
				DELETE FROM activity_monitor.merge;
				done := pg_catalog.format('abandoned the merge into %s: %s', final, SQLERRM);
		END;
		RETURN;
	END IF;

	IF cfg.merge_interval = interval '0' THEN
		more := false;
		RETURN;
	END IF;

	-- start the oldest merge due: the partitions of a range that ended
	-- merge_after ago, at least two, none across its bounds
	FOR p IN
		WITH q AS (
			SELECT q.part, q.lower, q.upper,
				   CASE WHEN cfg.merge_interval = interval '1 year'
							 AND pg_catalog.date_trunc('year', q.lower) + interval '1 year' + cfg.merge_after <= "now"
						THEN interval '1 year'
						WHEN pg_catalog.date_trunc('month', q.lower) + interval '1 month' + cfg.merge_after <= "now"
						THEN interval '1 month' ELSE interval '1 day' END AS span
			FROM activity_monitor._partitions() q
		), r AS (
			SELECT q.*, pg_catalog.date_trunc(CASE q.span WHEN interval '1 year' THEN 'year'
												 WHEN interval '1 month' THEN 'month' ELSE 'day' END,
											  q.lower) AS lo
			FROM q
		)
		SELECT r.lo, r.lo + r.span AS hi, r.span, pg_catalog.count(*) AS n
		FROM r
		-- a day (of partitions shorter than a day) once it ended a
		-- partition_interval ago, a month or year once it ended merge_after ago
		WHERE r.lo + r.span + CASE WHEN r.span = interval '1 day' THEN cfg.partition_interval
								   ELSE cfg.merge_after END <= "now"
		GROUP BY r.lo, r.span
		HAVING pg_catalog.count(*) >= 2 AND pg_catalog.bool_and(r.upper <= r.lo + r.span)
		ORDER BY r.lo
	LOOP
		final := 'activity_' || CASE p.span WHEN interval '1 year' THEN 'y' || pg_catalog.to_char(p.lo, 'YYYY')
									 WHEN interval '1 month' THEN 'm' || pg_catalog.to_char(p.lo, 'YYYYMM')
									 ELSE 'd' || pg_catalog.to_char(p.lo, 'YYYYMMDD') END;
		CONTINUE WHEN EXISTS (SELECT 1 FROM activity_monitor._partitions() q
							  WHERE coalesce(q.lower, '-infinity') < p.lo AND q.upper > p.lo)
			-- every piece has its indexes (a dump restores them after the rows)
			OR EXISTS (SELECT 1 FROM activity_monitor._partitions() q
					   WHERE q.lower >= p.lo AND q.upper <= p.hi
						 AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_index i
							  WHERE i.indrelid = q.part AND i.indisvalid) < 4)
			OR pg_catalog.to_regclass(pg_catalog.format('activity_monitor.%I', final)) IS NOT NULL
			OR EXISTS (SELECT 1 FROM activity_monitor.activity_default d
					   WHERE d.occurred_at >= p.lo AND d.occurred_at < p.hi);
		EXECUTE pg_catalog.format(
			'CREATE TABLE activity_monitor.%I (LIKE activity_monitor.activity INCLUDING DEFAULTS, '
			'CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L))',
			'activity_build_' || pg_catalog.substr(final, 10), final || '_bounds', p.lo, p.hi);
		PERFORM activity_monitor._index_partition(
			pg_catalog.format('activity_monitor.%I', 'activity_build_' || pg_catalog.substr(final, 10))::regclass, true);
		INSERT INTO activity_monitor.merge (target, lower, upper, copied_to)
		VALUES ('activity_build_' || pg_catalog.substr(final, 10), p.lo, p.hi, p.lo);
		done := pg_catalog.format('started merging %s partitions of [%s, %s) into %s', p.n, p.lo, p.hi, final);
		RETURN;
	END LOOP;
	more := false;
END
$fn$;

/*
 * The worker's merge duty: one _merge_step(), and what it did in
 * worker_state.  Nothing while a superuser's pg_restore is connected.
 */
CREATE FUNCTION activity_monitor._worker_merge(OUT done text, OUT more boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	merged	int;
BEGIN
	more := false;
	IF activity_monitor._restoring() THEN
		RETURN;
	END IF;
	SELECT s.done, s.merged, s.more INTO done, merged, more FROM activity_monitor._merge_step() s;
	IF done IS NOT NULL THEN
		UPDATE activity_monitor.worker_state
		SET last_merge = done, last_merge_at = pg_catalog.now(),
			partitions_merged = partitions_merged + merged;
		IF merged > 0 THEN
			RAISE LOG 'activity_monitor: %', done;
		END IF;
	END IF;
END
$fn$;

-- _worker_partitions() asks _restoring() (same test as before)
/*
 * The worker's partition duty: maintenance, and its outcome in worker_state
 * in the same transaction.  Returns the numbers of partitions created and
 * retired, which the worker reads (src/worker.c, duty_partitions()); NULL
 * when skipped, while a superuser's pg_restore is connected to the
 * database (the dump brings its own partitions).
 */
CREATE OR REPLACE FUNCTION activity_monitor._worker_partitions(OUT created int, OUT retired int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF activity_monitor._restoring() THEN
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

DROP FUNCTION activity_monitor.configure(interval, int, interval, text);

/*
 * configure(): change partitioning, retention and merging; NULL keeps a
 * value.  retention_mode 'none' switches retention off, merge_interval '0'
 * merging.  A retention below activity_monitor.min_retention is refused.
 * Everything is validated before anything changes.
 */
CREATE FUNCTION activity_monitor.configure(partition_interval interval DEFAULT NULL,
										   premake int DEFAULT NULL,
										   retention interval DEFAULT NULL,
										   retention_mode text DEFAULT NULL,
										   merge_after interval DEFAULT NULL,
										   merge_interval interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	floor	interval := activity_monitor._min_retention();
BEGIN
	IF partition_interval IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('partition_interval', partition_interval);
	END IF;
	IF retention IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('retention', retention);
		IF retention < floor THEN
			RAISE EXCEPTION 'retention must be at least activity_monitor.min_retention (%)', floor
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = pg_catalog.format('The value given was %s.', retention),
				HINT = 'Only a superuser can lower activity_monitor.min_retention.';
		END IF;
	END IF;
	IF premake IS NOT NULL AND premake NOT BETWEEN 1 AND 365 THEN
		RAISE EXCEPTION 'premake must be between 1 and 365'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', premake);
	END IF;
	IF retention_mode IS NOT NULL AND retention_mode NOT IN ('drop', 'detach', 'none') THEN
		RAISE EXCEPTION 'unknown retention mode "%"', retention_mode
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use drop, detach, or none to keep every partition.';
	END IF;
	IF retention_mode = 'none' AND retention IS NOT NULL THEN
		RAISE EXCEPTION 'retention_mode none cannot take a retention'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF merge_after IS NOT NULL THEN
		PERFORM activity_monitor._check_interval('merge_after', merge_after);
	END IF;
	-- (field by field: interval '30 days' = interval '1 month')
	IF merge_interval IS NOT NULL
	   AND (extract(year FROM merge_interval), extract(month FROM merge_interval),
			extract(day FROM merge_interval), extract(epoch FROM merge_interval))
		   NOT IN ((0, 0, 0, 0), (0, 1, 0, 2592000), (1, 0, 0, 31557600)) THEN
		RAISE EXCEPTION 'merge_interval must be 1 year, 1 month or 0'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', merge_interval),
			HINT = 'With 1 year old partitions merge into months, then years; with 0 they are never merged.';
	END IF;

	INSERT INTO activity_monitor.config DEFAULT VALUES ON CONFLICT DO NOTHING;
	UPDATE activity_monitor.config c SET
		partition_interval = coalesce(configure.partition_interval, c.partition_interval),
		premake = coalesce(configure.premake, c.premake),
		retention = CASE WHEN configure.retention_mode = 'none' THEN NULL
						 ELSE coalesce(configure.retention, c.retention) END,
		retention_mode = CASE WHEN configure.retention_mode IN ('drop', 'detach')
							  THEN configure.retention_mode ELSE c.retention_mode END,
		merge_after = coalesce(configure.merge_after, c.merge_after),
		merge_interval = coalesce(configure.merge_interval, c.merge_interval);
END
$fn$;

CREATE OR REPLACE VIEW activity_monitor.settings AS
	SELECT c.partition_interval, c.premake, c.retention,
		   CASE WHEN c.retention IS NULL THEN 'none' ELSE c.retention_mode END AS retention_mode,
		   pg_catalog.current_setting('activity_monitor.naptime', true) AS naptime,
		   c.merge_after, c.merge_interval
	FROM activity_monitor.config c;

CREATE OR REPLACE VIEW activity_monitor.worker_status AS
	SELECT pg_catalog.current_database() AS database,
		   w.pid,
		   EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
				   WHERE a.pid = w.pid AND a.backend_type = 'activity_monitor worker') AS running,
		   w.started_at, w.starts, w.last_run_at, w.last_result,
		   w.partitions_created, w.partitions_retired, w.last_error, w.last_error_at,
		   w.partitions_merged, w.last_merge, w.last_merge_at,
		   (SELECT pg_catalog.format('%s: %s rows copied, %s', m.target, m.rows_copied,
									 CASE WHEN m.built_xid IS NULL THEN 'copying' ELSE 'built' END)
			FROM activity_monitor.merge m) AS merge_in_progress
	FROM activity_monitor.worker_state w;

REVOKE ALL ON FUNCTION activity_monitor._restoring(), activity_monitor._merge_step(timestamptz),
	activity_monitor._worker_merge(),
	activity_monitor.configure(interval, int, interval, text, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.configure(interval, int, interval, text, interval, interval)
	TO activity_monitor_admin;
