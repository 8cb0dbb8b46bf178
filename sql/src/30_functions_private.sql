/*
 * The extension's private functions (names start with "_"): what the public
 * functions, the triggers, the views and the worker call.  Nobody but the
 * extension's owner may execute them unless 60_grants.sql says otherwise.
 */

-- ---------------------------------------------------------------------------
-- Partitions
-- ---------------------------------------------------------------------------

/*
 * The dated partitions of the activity table and their bounds, by lower
 * bound, the default partition left out (src/partitions.c: read from the
 * partition descriptor, not by parsing every bound).  Locks the activity
 * table ACCESS SHARE until the end of the transaction.
 */
CREATE FUNCTION activity_monitor._partitions(OUT part regclass, OUT lower timestamptz,
											 OUT upper timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'activity_monitor_partitions'
LANGUAGE C STABLE;

/*
 * Create the partition for [lower, upper) unless a partition overlaps it,
 * the way that does not block writers: a free-standing table with a CHECK
 * constraint matching the bounds, then ATTACH (SHARE UPDATE EXCLUSIVE on the
 * parent, no validation scan).  Rows the default partition holds for that
 * range move in first.
 */
CREATE FUNCTION activity_monitor._create_partition(lower timestamptz, upper timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	part	text;
	moved	bigint;
BEGIN
	IF EXISTS (SELECT 1 FROM activity_monitor._partitions() p
			   WHERE coalesce(p.lower, '-infinity') < _create_partition.upper
				 AND coalesce(p.upper, 'infinity') > _create_partition.lower) THEN
		RETURN false;
	END IF;

	part := 'activity_p' || pg_catalog.to_char(lower AT TIME ZONE 'UTC',
		CASE WHEN upper - lower >= interval '1 day' THEN 'YYYYMMDD' ELSE 'YYYYMMDD_HH24MI' END);

	EXECUTE pg_catalog.format(
		'CREATE TABLE activity_monitor.%I (LIKE activity_monitor.activity INCLUDING DEFAULTS, '
		'CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L))',
		part, part || '_bounds', lower, upper);
	PERFORM activity_monitor._index_partition(pg_catalog.format('activity_monitor.%I', part)::regclass);
	EXECUTE pg_catalog.format('REVOKE ALL ON activity_monitor.%I FROM PUBLIC', part);
	EXECUTE pg_catalog.format('GRANT SELECT ON activity_monitor.%I TO activity_monitor_reader', part);

	-- Rows that landed in the default partition for this range move first,
	-- with the default locked so that none arrives between move and ATTACH.
	IF EXISTS (SELECT 1 FROM activity_monitor.activity_default d
			   WHERE d.occurred_at >= lower AND d.occurred_at < upper) THEN
		LOCK TABLE activity_monitor.activity_default IN ACCESS EXCLUSIVE MODE;
		EXECUTE pg_catalog.format(
			'WITH m AS (DELETE FROM activity_monitor.activity_default '
			'WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) '
			'INSERT INTO activity_monitor.%I SELECT * FROM m', lower, upper, part);
		GET DIAGNOSTICS moved = ROW_COUNT;
		RAISE NOTICE 'moved % rows from activity_default into %', moved, part;
	END IF;

	EXECUTE pg_catalog.format(
		'ALTER TABLE activity_monitor.activity ATTACH PARTITION activity_monitor.%I '
		'FOR VALUES FROM (%L) TO (%L)', part, lower, upper);
	EXECUTE pg_catalog.format('ALTER TABLE activity_monitor.%I DROP CONSTRAINT %I',
							  part, part || '_bounds');
	-- Partitions hold data, not extension code: made during CREATE EXTENSION
	-- they would be members, and pg_dump would skip them and their rows.
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend
			   WHERE classid = 'pg_catalog.pg_class'::regclass
				 AND objid = pg_catalog.format('activity_monitor.%I', part)::regclass
				 AND deptype = 'e') THEN
		EXECUTE pg_catalog.format('ALTER EXTENSION activity_monitor DROP TABLE activity_monitor.%I', part);
	END IF;
	RETURN true;
END
$fn$;

/*
 * The partition maintenance the worker runs and maintain() exposes: create
 * every partition missing from the one holding "now" to premake intervals
 * ahead and, one a run, that of recent past rows in activity_default
 * (merge_after back), and retire (drop or detach) those wholly older than the retention,
 * never than activity_monitor.min_retention (a retention configured below
 * it, as 0.1.0 allowed, counts as the floor).  Each DDL is its own
 * subtransaction under a short lock_timeout (2 s to create, 100 ms to retire,
 * which blocks writers while it waits): one that cannot get its lock is
 * skipped with a warning and retried next time.
 */
CREATE FUNCTION activity_monitor._maintain("now" timestamptz DEFAULT pg_catalog.now(),
										   OUT created int, OUT retired int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
DECLARE
	cfg		activity_monitor.config;
	keep	interval;
	step	double precision;
	first	timestamptz;
	lower	timestamptz;
	p		record;
BEGIN
	IF "now" IS NULL THEN
		RAISE EXCEPTION 'argument "now" must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	created := 0;
	retired := 0;
	-- One maintenance at a time (the worker's and an admin's maintain()).  A
	-- table lock, not an advisory lock, which any role could take and hold.
	LOCK TABLE activity_monitor.config IN SHARE UPDATE EXCLUSIVE MODE;
	SELECT * INTO cfg FROM activity_monitor.config;
	IF NOT FOUND THEN
		-- no configuration row: a dump being restored (it brings its own row
		-- and its own partitions; CREATE EXTENSION inserts none then)
		RETURN;
	END IF;
	step := extract(epoch FROM cfg.partition_interval);
	-- Ranges are aligned on whole intervals since the epoch (midnight UTC for days).
	first := pg_catalog.to_timestamp(floor(extract(epoch FROM "now") / step) * step);
	-- The partitions are listed once (not once per candidate): only the
	-- missing ones go to _create_partition().
	FOR lower IN SELECT c.lower
				 FROM pg_catalog.generate_series(0, cfg.premake) i
				 CROSS JOIN LATERAL (SELECT first + i * cfg.partition_interval AS lower) c
				 WHERE NOT EXISTS (SELECT 1 FROM activity_monitor._partitions() q
								   WHERE coalesce(q.lower, '-infinity') < c.lower + cfg.partition_interval
									 AND coalesce(q.upper, 'infinity') > c.lower)
				 ORDER BY c.lower
	LOOP
		BEGIN
			IF activity_monitor._create_partition(lower, lower + cfg.partition_interval) THEN
				created := created + 1;
			END IF;
		EXCEPTION WHEN lock_not_available THEN
			RAISE WARNING 'activity_monitor: could not create the partition from % within lock_timeout', lower
				USING HINT = 'It is retried on the next maintenance run.';
		END;
	END LOOP;
	-- Rows of the recent past in activity_default (the worker was away, or a
	-- lock held up their partition past its time: hourly partitions make
	-- that likelier) get their partition too, one range a run: its rows
	-- move into it (under ACCESS EXCLUSIVE on the default partition until
	-- this transaction ends, so not while a partition made above is not
	-- yet committed: writers still send rows to the default until then),
	-- and its day or month can merge.  Not older than merge_after (history
	-- imported by hand stays) nor than the retention; not a range that
	-- overlaps a partition (the interval changed: its rows stay).
	IF created = 0 THEN
		SELECT r.l INTO lower
		FROM (SELECT pg_catalog.to_timestamp(floor(extract(epoch FROM d.occurred_at) / step) * step) AS l
			  FROM activity_monitor.activity_default d
			  WHERE d.occurred_at < first
				AND d.occurred_at >= CASE WHEN cfg.retention IS NULL THEN "now" - cfg.merge_after
										  ELSE GREATEST("now" - cfg.merge_after,
														"now" - GREATEST(cfg.retention, activity_monitor._min_retention())) END
			  GROUP BY 1) r
		WHERE NOT EXISTS (SELECT 1 FROM activity_monitor._partitions() q
						  WHERE coalesce(q.lower, '-infinity') < r.l + cfg.partition_interval
							AND coalesce(q.upper, 'infinity') > r.l)
		ORDER BY r.l LIMIT 1;
		IF lower IS NOT NULL THEN
			BEGIN
				IF activity_monitor._create_partition(lower, lower + cfg.partition_interval) THEN
					created := created + 1;
				END IF;
			EXCEPTION WHEN OTHERS THEN
				RAISE WARNING 'activity_monitor: could not create the partition from % for rows of activity_default: %',
					lower, SQLERRM
					USING HINT = 'It is retried on the next maintenance run.';
			END;
		END IF;
	END IF;

	IF cfg.retention IS NOT NULL THEN
		keep := GREATEST(cfg.retention, activity_monitor._min_retention());
		-- Retiring takes ACCESS EXCLUSIVE on the activity table: waiting for
		-- it behind a reader's long query would queue every captured write
		-- behind the wait.  Wait briefly; a partition not retired now is
		-- retired on a later run.
		PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
		FOR p IN SELECT q.part FROM activity_monitor._partitions() q
				 WHERE q.upper <= _maintain."now" - keep ORDER BY q.lower
		LOOP
			BEGIN
				-- the seal chain, as a sealing round locks it before the
				-- partitions it reads; then the partition, without waiting:
				-- waiting for it while holding the parent would hold up
				-- every captured write
				LOCK TABLE activity_monitor.seal IN SHARE ROW EXCLUSIVE MODE;
				EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', p.part);
				-- what leaves is sealed first (README, "Tamper evidence")
				PERFORM activity_monitor._seal_retired(p.part, cfg.retention_mode);
				IF cfg.retention_mode = 'detach' THEN
					EXECUTE pg_catalog.format('ALTER TABLE activity_monitor.activity DETACH PARTITION %s', p.part);
				ELSE
					EXECUTE pg_catalog.format('DROP TABLE %s', p.part);
				END IF;
				retired := retired + 1;
			EXCEPTION WHEN lock_not_available THEN
				RAISE WARNING 'activity_monitor: could not % partition % within lock_timeout',
					cfg.retention_mode, p.part
					USING HINT = 'It is retried on the next maintenance run.';
			END;
		END LOOP;
	END IF;
END
$fn$;

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

/* Whole hours or days, positive: what partition and retention intervals take. */
CREATE FUNCTION activity_monitor._check_interval(name text, value interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF value <= interval '0' THEN
		RAISE EXCEPTION '% must be positive', name
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', value);
	END IF;
	IF extract(month FROM value) <> 0 OR extract(year FROM value) <> 0
	   OR extract(epoch FROM value)::numeric % 3600 <> 0 THEN
		RAISE EXCEPTION '% must be a whole number of hours or days', name
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The value given was %s.', value),
			HINT = 'Use for example ''1 hour'', ''6 hours'', ''1 day'' or ''7 days''; months vary in length.';
	END IF;
END
$fn$;

/* activity_monitor.min_retention (set by superusers only), as an interval. */
CREATE FUNCTION activity_monitor._min_retention()
RETURNS interval
AS 'MODULE_PATHNAME', 'activity_monitor_min_retention'
LANGUAGE C STABLE STRICT;

-- ---------------------------------------------------------------------------
-- The worker's SQL (it runs no other: see src/worker.c)
-- ---------------------------------------------------------------------------

/*
 * The worker's bookkeeping, as functions that pin their search_path: the
 * worker (a superuser) runs no other SQL than calls of the extension's own
 * functions.
 */
CREATE FUNCTION activity_monitor._worker_started(pid int)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
	UPDATE activity_monitor.worker_state
	SET pid = _worker_started.pid, started_at = pg_catalog.now(),
		starts = starts OPERATOR(pg_catalog.+) 1
$fn$;

CREATE FUNCTION activity_monitor._worker_error(error text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
	UPDATE activity_monitor.worker_state
	SET last_error = _worker_error.error, last_error_at = pg_catalog.now()
$fn$;

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

/*
 * The worker's alert duty (src/alerts.c): take the events that committed
 * since the last batch (visible in the current snapshot, not in the last
 * one, as PgQ does), in id order, at most max_events, and for each rule they
 * matched apply window, threshold and cooldown; insert alerts and NOTIFY in
 * the same transaction that moves alert_state forward, so every committed
 * event is handled once, none from a rolled-back transaction, and a crash
 * replays the batch.  Window state is kept in the worker's memory and
 * rebuilt from the activity after a restart.
 */
CREATE FUNCTION activity_monitor._process_alerts(max_events int DEFAULT 10000,
												 OUT events int, OUT fired int, OUT more boolean)
AS 'MODULE_PATHNAME', 'activity_monitor_process_alerts'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

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
CREATE FUNCTION activity_monitor._rollup(since timestamptz DEFAULT pg_catalog.now() - interval '10 minutes')
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

-- ---------------------------------------------------------------------------
-- Tracking: triggers of tracked tables, who may track, the DDL guard
-- ---------------------------------------------------------------------------

/*
 * Put the capture triggers of tbl's partition tree in order (see
 * src/partitions.c); reset replaces those of tbl's subtree (track()).
 */
CREATE FUNCTION activity_monitor._sync_capture(tbl regclass, reset boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_sync_capture'
LANGUAGE C;

/*
 * After CREATE TABLE ... PARTITION OF (also inside CREATE SCHEMA), ATTACH
 * PARTITION and DETACH PARTITION, the trees touched get the capture triggers
 * their tracked tables call for: a new partition its TRUNCATE trigger, a
 * detached one its own triggers (tracked) or none.
 */
CREATE FUNCTION activity_monitor._partitions_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'activity_monitor_partitions_ddl'
LANGUAGE C;
COMMENT ON FUNCTION activity_monitor._partitions_ddl() IS
	'gives partitions created, attached or detached the capture triggers their tracked tables call for';

-- A dropped table stops being tracked.
CREATE FUNCTION activity_monitor._on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	DELETE FROM activity_monitor.tracked
	WHERE tbl::oid IN (SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects()
					   WHERE classid = 'pg_catalog.pg_class'::regclass AND objsubid = 0);
END
$fn$;

/*
 * Is the role running this session (session_user: the functions that ask
 * are SECURITY DEFINER) a superuser?
 */
CREATE FUNCTION activity_monitor._session_is_superuser()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = SESSION_USER), false)
$fn$;

/*
 * Only a table's owner (or a superuser) may start, change or stop its
 * capture: tracking records every value of every row, so an admin who could
 * track any table could read tables it has no SELECT on.  Checked on every
 * change of activity_monitor.tracked, whoever makes it (track(), untrack(),
 * a rename that updates settings); rows of tables that were just dropped go
 * without a check (the drop itself needed ownership).
 */
CREATE FUNCTION activity_monitor._tracked_check_owner()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t		regclass := CASE WHEN TG_OP = 'DELETE' THEN OLD.tbl ELSE NEW.tbl END;
	owner	oid;
BEGIN
	SELECT c.relowner INTO owner FROM pg_catalog.pg_class c WHERE c.oid = t;
	IF FOUND AND NOT activity_monitor._session_is_superuser()
	   AND NOT pg_catalog.pg_has_role(SESSION_USER, owner, 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of table % to % its capture', t,
			CASE WHEN TG_OP = 'DELETE' THEN 'stop' ELSE 'start or change' END
			USING ERRCODE = 'insufficient_privilege',
			DETAIL = 'Capture records every value of a table''s rows: only the table''s owner or a superuser may track or untrack it.',
			HINT = pg_catalog.format('Ask the owner of %s (role %s) or a superuser.', t, pg_catalog.pg_get_userbyid(owner));
	END IF;
	RETURN NULL;
END
$fn$;

/*
 * The DDL guard (issue 10, "capture cannot be switched off or bypassed
 * silently"): an event trigger on ddl_command_start, in C (src/guard.c), so
 * that it runs whether or not the library is preloaded.  DDL that disables,
 * drops, replaces, renames or changes the mode of a capture trigger,
 * attaches or detaches a partition of a tracked table, renames a column its
 * settings name, drops or changes the type of any of its columns (ALTER
 * TABLE, or ALTER TYPE ... CASCADE of a typed table), renames or moves a
 * tracked table, or drops a tracked table or one of its partitions is
 * refused for everyone but a superuser or a
 * member of activity_monitor_admin, and recorded as a critical admin event
 * (kind 'admin', action 'ddl', src/audit.c) when allowed.
 *
 * An event trigger function runs for every role without an EXECUTE check:
 * nobody needs to call it, so nobody may.
 */
CREATE FUNCTION activity_monitor._guard_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'activity_monitor_guard_ddl'
LANGUAGE C;
COMMENT ON FUNCTION activity_monitor._guard_ddl() IS
	'refuses DDL that would switch capture off or bypass it, unless run by a superuser or an activity_monitor_admin member, and records it when allowed';

/*
 * The guard's backstop on sql_drop (src/guard.c): what a command drops
 * beyond what it names (DROP TYPE / DOMAIN / FUNCTION / EXTENSION ...
 * CASCADE dropping a typed table or a column of a tracked table) is refused
 * or recorded like the DDL it is.  Its name sorts before
 * activity_monitor_sql_drop, so it still sees the settings of a dropped
 * table.
 */
CREATE FUNCTION activity_monitor._guard_sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'activity_monitor_guard_sql_drop'
LANGUAGE C;
COMMENT ON FUNCTION activity_monitor._guard_sql_drop() IS
	'refuses, or records, the drop of a tracked table or of one of its columns by a command that names neither (DROP TYPE ... CASCADE and the like)';

-- ---------------------------------------------------------------------------
-- Alert rules and alerts
-- ---------------------------------------------------------------------------

/*
 * Any change of the rules table invalidates every backend's rule cache at
 * commit (rule changes reach running sessions without a reconnect).
 */
CREATE FUNCTION activity_monitor._rules_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_rules_changed'
LANGUAGE C;

/*
 * The longest window a rule may have (activity_monitor.max_window) and the
 * most events one window keeps (a count or distinct threshold above it is
 * never reached).  In C: calling it loads the library, which defines the
 * settings, so the value is the server's, never a placeholder.
 */
CREATE FUNCTION activity_monitor._window_limits(OUT max_window interval,
												OUT max_events_per_window int)
AS 'MODULE_PATHNAME', 'activity_monitor_window_limits'
LANGUAGE C STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

/*
 * A window's bounds (_check_rule_bounds, test_rule()): at most
 * activity_monitor.max_window long, and a count or distinct threshold a
 * window can reach.
 */
CREATE FUNCTION activity_monitor._check_window_bounds(within interval, measure text, threshold numeric)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	lim		record;
BEGIN
	IF within IS NULL THEN
		RETURN;
	END IF;
	lim := activity_monitor._window_limits();
	IF within OPERATOR(pg_catalog.>) lim.max_window THEN
		RAISE EXCEPTION 'within must be at most %', lim.max_window
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = pg_catalog.format('The rule asks for %s; the worker keeps windows of at most activity_monitor.max_window in memory and reads them back after a restart.',
									   within),
			HINT = 'Use a shorter window, or have a superuser raise activity_monitor.max_window (ALTER SYSTEM, then pg_reload_conf()).';
	END IF;
	IF measure OPERATOR(pg_catalog.=) ANY ('{count,distinct}'::text[])
	   AND threshold OPERATOR(pg_catalog.>) lim.max_events_per_window THEN
		RAISE EXCEPTION 'threshold of a % rule must be at most %', measure, lim.max_events_per_window
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A window keeps at most activity_monitor.max_events_per_window events (and no more than activity_monitor.max_events_per_rule): a higher count could never be reached.',
			HINT = 'Use a lower threshold, or have a superuser raise activity_monitor.max_events_per_window (ALTER SYSTEM, then pg_reload_conf()).';
	END IF;
END
$fn$;

/*
 * What create_rule() and test_rule() check of a rule's shape: its type
 * (per event, window, sequence, absence, first seen: what it has), measure,
 * window, threshold, cooldown, steps, lookback, kinds and tables (22023 or
 * 22004 with a hint where one helps).  The paths themselves are checked by
 * _check_rule() (C, rules.c).
 */
CREATE FUNCTION activity_monitor._check_rule_shape(kinds text[], tables regclass[], within interval,
												   threshold numeric, measure text,
												   measure_path jsonpath, cooldown interval,
												   steps jsonpath[], missing jsonpath,
												   lookback interval)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	all_kinds	CONSTANT text[] := activity_monitor._kinds();
BEGIN
	IF measure NOT IN ('count', 'sum', 'distinct') THEN
		RAISE EXCEPTION 'unknown measure "%"', measure
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use count, sum or distinct.';
	END IF;
	IF steps IS NOT NULL OR missing IS NOT NULL THEN
		IF steps IS NULL OR pg_catalog.cardinality(steps) = 0 THEN
			RAISE EXCEPTION 'a sequence or absence rule needs steps'
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A sequence fires when events match its steps in order; an absence waits, after its steps, for an event matching missing.',
				HINT = 'For example steps => ARRAY[''$.status_to == "pending"'']::jsonpath[].';
		END IF;
		IF EXISTS (SELECT FROM pg_catalog.unnest(steps) s(p) WHERE s.p IS NULL) THEN
			RAISE EXCEPTION 'steps must not contain null'
				USING ERRCODE = 'null_value_not_allowed';
		END IF;
		IF pg_catalog.cardinality(steps) > 8 THEN
			RAISE EXCEPTION 'a rule has at most 8 steps'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF missing IS NULL AND pg_catalog.cardinality(steps) < 2 THEN
			RAISE EXCEPTION 'a sequence needs at least two steps'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'A rule without steps fires for each matching event; with missing => ..., one step waits for an event that should follow.';
		END IF;
		IF within IS NULL THEN
			RAISE EXCEPTION 'a sequence or absence rule needs within'
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'Its steps must occur within it of the first one; an absence fires when it passes without the missing event.',
				HINT = 'For example within => ''1 hour''.';
		END IF;
		IF threshold IS NOT NULL OR lookback IS NOT NULL OR measure <> 'count'
		   OR measure_path IS NOT NULL THEN
			RAISE EXCEPTION 'threshold, measure, measure_path and lookback do not apply to a sequence or absence rule'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'It fires once per complete sequence; leave them out.';
		END IF;
	ELSIF lookback IS NOT NULL THEN
		IF lookback <= interval '0' OR lookback > interval '366 days' THEN
			RAISE EXCEPTION 'lookback must be positive and at most 366 days'
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = pg_catalog.format('The rule asks for %s.', lookback),
				HINT = 'For example lookback => ''30 days''.';
		END IF;
		IF measure_path IS NULL THEN
			RAISE EXCEPTION 'a first-seen rule needs a measure_path'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'The value whose first appearance for the group key fires, for example measure_path => ''$.new.device_id''.';
		END IF;
		IF within IS NOT NULL OR threshold IS NOT NULL OR measure <> 'count' THEN
			RAISE EXCEPTION 'within, threshold and measure do not apply to a first-seen rule'
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'It fires for each value not seen for its group key within the lookback; leave them out.';
		END IF;
	ELSE
		IF measure IN ('sum', 'distinct') AND measure_path IS NULL THEN
			RAISE EXCEPTION 'measure % needs a measure_path', measure
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'For example measure_path => ''$.new.amount''.';
		END IF;
		IF (within IS NULL) <> (threshold IS NULL) THEN
			RAISE EXCEPTION 'within and threshold go together'
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A rule with a window fires when the measure inside it reaches the threshold; a rule without one fires for each matching event.';
		END IF;
	END IF;
	IF within <= interval '0' THEN
		RAISE EXCEPTION 'within must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF threshold <= 0 THEN
		RAISE EXCEPTION 'threshold must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cooldown <= interval '0' THEN
		RAISE EXCEPTION 'cooldown must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF pg_catalog.array_position(tables, NULL) IS NOT NULL
	   OR pg_catalog.array_position(kinds, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'kinds and tables must not contain null'
			USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Leave kinds or tables NULL to apply the rule to every kind or table.';
	END IF;
	IF kinds IS NOT NULL AND NOT kinds <@ all_kinds THEN
		RAISE EXCEPTION 'unknown activity kind in %', kinds
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use some of: ' || pg_catalog.array_to_string(all_kinds, ', ') || '.';
	END IF;
END
$fn$;

/*
 * The names of tables as the activity's table_name holds them, for the
 * backtests (an empty list, or tables since dropped: none; NULL: any).
 */
CREATE FUNCTION activity_monitor._table_names(tables regclass[])
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT CASE WHEN tables IS NOT NULL THEN
		coalesce((SELECT pg_catalog.array_agg(pg_catalog.format('%I.%I', n.nspname, c.relname))
				  FROM pg_catalog.unnest(tables) t(oid)
				  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.oid
				  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace), '{}')
	END
$fn$;

/*
 * Refuse a rule whose window is longer than max_window, or whose count or
 * distinct threshold is above what a window keeps (it could never fire):
 * 22023 with a hint, which create_rule()'s exception block (unique_violation
 * only) lets through.  A restore (pg_dump scripts run with row_security off)
 * keeps what was dumped: the worker cuts a longer window to max_window.
 */
CREATE FUNCTION activity_monitor._check_rule_bounds()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF NEW.within IS NULL OR NOT pg_catalog.current_setting('row_security')::boolean THEN
		RETURN NEW;
	END IF;
	PERFORM activity_monitor._check_window_bounds(NEW.within, NEW.measure, NEW.threshold);
	RETURN NEW;
END
$fn$;

/* test_rule()'s backtest, in C (src/backtest.c); the definition checked before. */
CREATE FUNCTION activity_monitor._test_rule(predicate jsonpath, since timestamptz, until timestamptz,
											kinds text[], tables text[], within interval,
											threshold numeric, measure text, measure_path jsonpath,
											group_by jsonpath, cooldown interval, steps jsonpath[],
											missing jsonpath, lookback interval)
RETURNS TABLE (event_id bigint, occurred_at timestamptz, group_key text, value numeric,
			   event_ids bigint[], kind text, action text, table_name text,
			   subject_id text, actor_type text, actor_id text)
AS 'MODULE_PATHNAME', 'activity_monitor_test_rule'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

/*
 * Every stored event of [since, until) a rule of this definition matches:
 * its time, group key and value (cut as activity_monitor.seen holds them),
 * for create_rule()'s backfill of a first-seen rule (src/backtest.c).
 */
CREATE FUNCTION activity_monitor._rule_matches(predicate jsonpath, since timestamptz, until timestamptz,
											   kinds text[], tables text[], within interval,
											   threshold numeric, measure text, measure_path jsonpath,
											   group_by jsonpath, cooldown interval, steps jsonpath[],
											   missing jsonpath, lookback interval)
RETURNS TABLE (occurred_at timestamptz, group_key text, value text)
AS 'MODULE_PATHNAME', 'activity_monitor_rule_matches'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

/*
 * Rules can never break a platform write (issue 10).
 *
 * The capture trigger evaluates rules with the _tz semantics and guards the
 * rules that could raise with a subtransaction (src/rules.c); here, the
 * refusal of rules that would raise at every evaluation: a BEFORE trigger on
 * alert_rule, so that create_rule(), set_rule_enabled() and any direct write
 * pass it.  It raises invalid_parameter_value (22023) with a hint, which
 * create_rule()'s exception block (unique_violation only) lets through.
 */
CREATE FUNCTION activity_monitor._check_rule()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_check_rule'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

/*
 * Move an alert to "acknowledged" or "resolved", recording the session user,
 * the declared actor, when, and the note, and the change as an admin event;
 * an unknown alert and a resolved one are errors.
 */
CREATE FUNCTION activity_monitor._set_alert_status(alert_id bigint, new_status text, note text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	st		text;
	actor	text := nullif(pg_catalog.current_setting('activity_monitor.actor_id', true), '');
BEGIN
	SELECT a.status INTO st FROM activity_monitor.alerts a WHERE a.id = alert_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'alert % does not exist', alert_id USING ERRCODE = 'undefined_object';
	END IF;
	IF st = 'resolved' THEN
		RAISE EXCEPTION 'alert % is already resolved', alert_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	UPDATE activity_monitor.alerts a
	SET status = new_status,
		acknowledged_by = CASE WHEN new_status = 'acknowledged' THEN SESSION_USER::text ELSE a.acknowledged_by END,
		acknowledged_actor = CASE WHEN new_status = 'acknowledged' THEN actor ELSE a.acknowledged_actor END,
		acknowledged_at = CASE WHEN new_status = 'acknowledged' THEN pg_catalog.now() ELSE a.acknowledged_at END,
		resolved_by = CASE WHEN new_status = 'resolved' THEN SESSION_USER::text ELSE a.resolved_by END,
		resolved_actor = CASE WHEN new_status = 'resolved' THEN actor ELSE a.resolved_actor END,
		resolved_at = CASE WHEN new_status = 'resolved' THEN pg_catalog.now() ELSE a.resolved_at END,
		note = coalesce(_set_alert_status.note, a.note)
	WHERE a.id = alert_id;
	PERFORM activity_monitor._record_admin('activity_monitor.alerts',
		CASE new_status WHEN 'acknowledged' THEN 'acknowledge' ELSE 'resolve' END,
		alert_id::text, pg_catalog.jsonb_build_object('status', st),
		pg_catalog.jsonb_build_object('alert_id', alert_id, 'status', new_status, 'note', note));
END
$fn$;

/*
 * Whether a rule sends the full payload; false for a rule that no longer
 * exists.  SECURITY DEFINER so that readers, who see the rules view but not
 * the rules table, get the payload their notification carried.
 */
CREATE FUNCTION activity_monitor._full_payload(rule_id bigint)
RETURNS boolean
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT coalesce((SELECT r.full_payload FROM activity_monitor.alert_rule r
					 WHERE r.id OPERATOR(pg_catalog.=) rule_id), false)
$fn$;

/*
 * The dashboard's counts at t from the minute rows of the day before it:
 * per kind and actor type, events of the last 5 minutes, hour and day;
 * sessions started minus ended; the day's five busiest employees.  The
 * minute rows are read once, grouped both by kind and actor type and by
 * employee.
 */
CREATE FUNCTION activity_monitor._dashboard_counts(t timestamptz, OUT events jsonb,
												   OUT active_sessions numeric, OUT busiest_employees jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	WITH g AS MATERIALIZED (
		SELECT m.kind, m.actor_type, m.employee_id, GROUPING(m.employee_id) = 1 AS by_kind,
			   coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= t - interval '5 minutes'), 0) AS last_5m,
			   coalesce(pg_catalog.sum(m.events) FILTER (WHERE m.minute >= t - interval '1 hour'), 0) AS last_hour,
			   pg_catalog.sum(m.events) AS last_day,
			   pg_catalog.sum(m.sessions_started - m.sessions_ended) AS sessions
		FROM activity_monitor.activity_minute m
		WHERE m.minute >= t - interval '1 day'
		GROUP BY GROUPING SETS ((m.kind, m.actor_type), (m.employee_id))
	)
	SELECT (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
					'kind', g.kind, 'actor_type', g.actor_type, 'last_5m', g.last_5m,
					'last_hour', g.last_hour, 'last_day', g.last_day)
					ORDER BY g.last_day DESC, g.kind, g.actor_type), '[]')
			FROM g WHERE g.by_kind),
		   (SELECT coalesce(pg_catalog.sum(g.sessions), 0) FROM g WHERE g.by_kind),
		   (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('employee_id', b.employee_id,
																			   'actions', b.last_day)
												 ORDER BY b.last_day DESC, b.employee_id), '[]')
			FROM (SELECT g.employee_id, g.last_day FROM g
				  WHERE NOT g.by_kind AND g.employee_id <> ''
				  ORDER BY g.last_day DESC, g.employee_id LIMIT 5) b)
$fn$;

-- ---------------------------------------------------------------------------
-- Views over a time range (dashboard, operational_activity)
-- ---------------------------------------------------------------------------

/*
 * A view whose time filter is now() - interval cannot prune partitions at
 * plan time (now() is only stable): the planner plans, and locks, every
 * partition of the activity table and each of its indexes (issue 16: 9,174
 * relation locks for the dashboard at 1,832 daily partitions).  These
 * functions compute now() once.  _operational_activity() runs the view's
 * query as dynamic SQL, planned for this call alone with the bounds as
 * constants (EXECUTE ... USING: the parameters are folded into the plan),
 * so that only the partitions of the range are planned; _dashboard() reads
 * its critical changes through recent_critical_changes(), which plans
 * none.  Their views select from them with the same columns and values.
 * SECURITY DEFINER, as a view reads with its owner's rights; executable by
 * the roles that may read the view.
 */

/*
 * The dashboard view's row: the counts the last rollup computed (up to a
 * naptime old, as the minute rows they come from; computed here when no
 * rollup has run), the open alerts, and the latest critical changes of the
 * last day read live by recent_critical_changes() (newest partition first,
 * stopping at ten: with today in hourly partitions, the current hour or
 * two are read, not the day's thirty).
 */
CREATE FUNCTION activity_monitor._dashboard(OUT generated_at timestamptz, OUT events jsonb,
											OUT active_sessions numeric, OUT open_alerts jsonb,
											OUT busiest_employees jsonb, OUT latest_critical jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t	timestamptz := pg_catalog.now();
BEGIN
	generated_at := t;
	SELECT c.events, c.active_sessions, c.busiest_employees INTO events, active_sessions, busiest_employees
	FROM activity_monitor.dashboard_counts c;
	IF NOT FOUND THEN
		SELECT d.events, d.active_sessions, d.busiest_employees INTO events, active_sessions, busiest_employees
		FROM activity_monitor._dashboard_counts(t) d;
	END IF;
	SELECT pg_catalog.jsonb_build_object(
			   'critical', pg_catalog.count(*) FILTER (WHERE a.severity = 'critical'),
			   'warning', pg_catalog.count(*) FILTER (WHERE a.severity = 'warning'),
			   'info', pg_catalog.count(*) FILTER (WHERE a.severity = 'info'))
	INTO open_alerts
	FROM activity_monitor.alerts a WHERE a.status <> 'resolved';
	SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c) ORDER BY c.occurred_at DESC, c.id DESC), '[]')
	INTO latest_critical
	FROM (SELECT r.id, r.occurred_at, r.kind, r.action, r.table_name, r.row_key, r.subject_id,
				 r.actor_type, r.actor_id, r.status_from, r.status_to
		  FROM activity_monitor.recent_critical_changes(10, NULL, t - interval '1 day') r) c;
END
$fn$;

/* The operational_activity view's rows: the last 24 hours by minute, kind and actor type. */
CREATE FUNCTION activity_monitor._operational_activity()
RETURNS TABLE (minute timestamptz, kind text, actor_type text, events bigint, critical_events bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	RETURN QUERY EXECUTE $q$
	SELECT pg_catalog.date_trunc('minute', a.occurred_at), a.kind, a.actor_type,
		   pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE a.critical)
	FROM activity_monitor.activity a
	WHERE a.occurred_at >= $1
	GROUP BY 1, 2, 3
	ORDER BY 1 DESC, 2, 3
	$q$
	USING pg_catalog.now() - interval '24 hours';
END
$fn$;

/*
 * One sealing round (src/seal.c): the events committed since the last one,
 * appended to the seal chain in seals of at most max_events.  The worker's
 * duty (every activity_monitor.seal_interval); superuser only.  Waits at
 * most 1 s for the chain's lock (a retention holding it): the round is
 * retried at the next interval, and the worker's other duties go on.
 */
CREATE FUNCTION activity_monitor._seal(max_events int DEFAULT 10000,
									   OUT seals int, OUT events bigint, OUT head text)
AS 'MODULE_PATHNAME', 'activity_monitor_seal'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '1s';

/*
 * The seal of kind 'retention' for a partition retention is about to drop
 * or detach (how): what leaves, so that verify() expects it gone.
 */
CREATE FUNCTION activity_monitor._seal_retired(part regclass, how text)
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_seal_retired'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

/*
 * An admin event (src/audit.c): a change to the monitoring, recorded in the
 * transaction that makes it.  Called by the extension's functions only.
 */
CREATE FUNCTION activity_monitor._record_admin(object text, action text, row_key text,
											   old_values jsonb, new_values jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'activity_monitor_record_admin'
LANGUAGE C CALLED ON NULL INPUT VOLATILE
SET search_path = pg_catalog, pg_temp;

/*
 * How capture evaluates a predicate (src/predicate.c): "compiled" (a
 * comparison of plain paths with constants, joined by &&, || and !,
 * evaluated once per event however many rules share it) or "generic"
 * (jsonb_path_match).  The rules view shows it.
 */
CREATE FUNCTION activity_monitor._predicate_plan(predicate jsonpath)
RETURNS text
AS 'MODULE_PATHNAME', 'activity_monitor_predicate_plan'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

/*
 * The compiled evaluation of a compiled predicate on a document (NULL:
 * unknown): what test/pgtap/predicates.sql compares with jsonb_path_match.
 */
CREATE FUNCTION activity_monitor._predicate_match(predicate jsonpath, doc jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'activity_monitor_predicate_match'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

/*
 * Fan-in: the trigger that makes an event received by logical replication
 * (a subscription to another cluster's activity) this cluster's own: its
 * source and source id, a local id and txid, this cluster's rules
 * (src/receive.c).
 */
CREATE FUNCTION activity_monitor._receive()
RETURNS trigger
AS 'MODULE_PATHNAME', 'activity_monitor_receive'
LANGUAGE C;
