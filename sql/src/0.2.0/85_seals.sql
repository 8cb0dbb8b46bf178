-- ---------------------------------------------------------------------------
-- Tamper evidence (issue 11): the seal chain over the committed events, the
-- sealing round the worker runs, verify(), verify_head() and seal_head(),
-- and retention that seals what it drops or detaches.  The first sealing
-- round after the update seals every event 0.1.0 recorded (one seal per
-- 10,000 events, in id order).
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
 * The partition maintenance the worker runs and maintain() exposes: create
 * every partition missing from the one holding "now" to premake intervals
 * ahead, and retire (drop or detach) those wholly older than the retention,
 * never than activity_monitor.min_retention (a retention configured below
 * it, as 0.1.0 allowed, counts as the floor).  Each DDL is its own
 * subtransaction under a short lock_timeout (2 s to create, 100 ms to retire,
 * which blocks writers while it waits): one that cannot get its lock is
 * skipped with a warning and retried next time.
 */
CREATE OR REPLACE FUNCTION activity_monitor._maintain("now" timestamptz DEFAULT pg_catalog.now(),
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
 * Tamper evidence (README, "Tamper evidence"; src/seal.c).
 */
CREATE FUNCTION activity_monitor.verify(since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL)
RETURNS TABLE (seal_id bigint, problem text, event_ids bigint[], detail text)
AS 'MODULE_PATHNAME', 'activity_monitor_verify'
LANGUAGE C
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION activity_monitor.verify(timestamptz, timestamptz) IS
	'recomputes the seals of the events between since and until: one row per problem, none when intact';

CREATE FUNCTION activity_monitor.verify_head(seal_id bigint, hash text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'activity_monitor_verify_head'
LANGUAGE C STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION activity_monitor.verify_head(bigint, text) IS
	'true when the seal chain, recomputed from its start, reaches seal_id with this hash (a head saved from the server log)';

CREATE FUNCTION activity_monitor.seal_head(OUT seal_id bigint, OUT sealed_at timestamptz, OUT hash text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT s.id, s.sealed_at, pg_catalog.encode(s.hash, 'hex')
	FROM activity_monitor.seal s ORDER BY s.id DESC LIMIT 1
$fn$;
COMMENT ON FUNCTION activity_monitor.seal_head() IS
	'the latest seal: its id, time and hash (keep a copy outside the database)';

-- Seals: the owner writes them (the worker, retention); readers read them
-- and verify.
REVOKE ALL ON activity_monitor.seal FROM PUBLIC;
GRANT SELECT ON activity_monitor.seal TO activity_monitor_reader;
REVOKE ALL ON FUNCTION activity_monitor._seal(int), activity_monitor._seal_retired(regclass, text),
	activity_monitor.verify(timestamptz, timestamptz), activity_monitor.verify_head(bigint, text),
	activity_monitor.seal_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity_monitor.verify(timestamptz, timestamptz),
	activity_monitor.verify_head(bigint, text), activity_monitor.seal_head() TO activity_monitor_reader;
