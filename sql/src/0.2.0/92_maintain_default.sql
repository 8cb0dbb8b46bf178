-- ---------------------------------------------------------------------------
-- Maintenance gives past rows of activity_default their partitions
--
-- Rows whose partition was missing at their time (the worker away, or a
-- lock holding up the partition's creation past its time: with hourly
-- partitions, after premake hours) stayed in activity_default, and their
-- day or month never merged.  _maintain() now makes their partitions too.
-- ---------------------------------------------------------------------------

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
