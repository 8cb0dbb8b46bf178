-- Partitions of tracked tables (issue 12): attach, detach, create, track
-- and untrack in every order, parent tracked or not, child tracked or not.
-- Each scenario runs one cycle of changes (insert through the parent,
-- update of the partition, delete through the parent, insert into the
-- partition, TRUNCATE of the partition) and asserts the events it made:
-- each change exactly once, under the table whose settings govern it (the
-- outermost tracked table above or at the partition), or none.  The
-- table's owner (no activity_monitor role but reader) creates and attaches
-- partitions; what would let it make rows of a tracked table go uncaptured
-- is refused or has no effect.
BEGIN;
SELECT plan(75);
SET LOCAL client_min_messages = warning;

CREATE ROLE am_pt_owner NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO am_pt_owner;
GRANT activity_monitor_reader TO am_pt_owner;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO am_pt_owner', current_database()); END $$;

-- One cycle of changes on a partition; its events as "table kind action, ...".
CREATE FUNCTION pg_temp.cycle(parent text, part text, k int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	mark	bigint := (SELECT coalesce(max(id), 0) FROM activity_monitor.activity);
BEGIN
	BEGIN
		EXECUTE format('INSERT INTO %s (id, v, secret) VALUES (%s, ''a'', ''s3cret'')', parent, k);
		EXECUTE format('UPDATE %s SET v = ''b'' WHERE id = %s', part, k);
		EXECUTE format('DELETE FROM %s WHERE id = %s', parent, k);
		EXECUTE format('INSERT INTO %s (id, v, secret) VALUES (%s, ''c'', ''s3cret'')', part, k);
		EXECUTE format('TRUNCATE %s', part);
	EXCEPTION WHEN OTHERS THEN
		RETURN 'error: ' || SQLERRM;
	END;
	RETURN (SELECT coalesce(string_agg(format('%s %s %s', a.table_name, a.kind, a.action), ', ' ORDER BY a.id), 'none')
			FROM activity_monitor.activity a WHERE a.id > mark AND a.action <> 'ddl');
END
$$;
-- What a cycle records when tbl (kind) governs the partition.
CREATE FUNCTION pg_temp.as_of(tbl text, kind text) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(format('public.%s %s %s', tbl, kind, a), ', ' ORDER BY n)
	FROM unnest('{insert,update,delete,insert,truncate}'::text[]) WITH ORDINALITY u (a, n)
$$;
-- The secret column of the last insert event.
CREATE FUNCTION pg_temp.last_secret() RETURNS text LANGUAGE sql AS $$
	SELECT new_values ->> 'secret' FROM activity_monitor.activity WHERE action = 'insert' ORDER BY id DESC LIMIT 1
$$;
-- The triggers running capture() on a relation, as "name:own|clone,...".
CREATE FUNCTION pg_temp.capture_triggers(rel text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN to_regclass(rel) IS NULL THEN 'no table ' || rel ELSE
		(SELECT coalesce(string_agg(t.tgname || CASE WHEN t.tgparentid = 0 THEN ':own' ELSE ':clone' END, ',' ORDER BY t.tgname), '')
		 FROM pg_trigger t WHERE t.tgrelid = to_regclass(rel) AND t.tgfoid = 'activity_monitor.capture()'::regprocedure) END
$$;
CREATE FUNCTION pg_temp.ddl_events() RETURNS bigint LANGUAGE sql AS
	$$ SELECT count(*) FROM activity_monitor.activity WHERE action = 'ddl' $$;
CREATE FUNCTION g_pt_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;

-- Tables: id, v, secret; every one owned by am_pt_owner.  Tracked parents
-- are kind game, secret redacted; tracked children kind payment, in clear.
CREATE FUNCTION pg_temp.mk(name text, partitioned boolean DEFAULT false) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, v text, secret text)%s', name,
				   CASE WHEN partitioned THEN ' PARTITION BY RANGE (id)' ELSE '' END);
	EXECUTE format('ALTER TABLE %I OWNER TO am_pt_owner', name);
END
$$;

-- ---------------------------------------------------------------------------
-- Parent tracked, partitions added by the table's owner
-- ---------------------------------------------------------------------------
SELECT pg_temp.mk('pa', true);
SELECT activity_monitor.track('pa', 'game', redact_columns => '{secret}');
SET ROLE am_pt_owner;
SELECT lives_ok('CREATE TABLE pa_1 PARTITION OF pa FOR VALUES FROM (0) TO (100)',
	'owner: CREATE TABLE ... PARTITION OF a tracked table');
SELECT is(pg_temp.cycle('pa', 'pa_1', 1), pg_temp.as_of('pa', 'game'),
	'a partition the owner created: every change once, TRUNCATE of the partition included');
SELECT is(pg_temp.last_secret(), '[redacted]', 'with the tracked parent''s redaction');
CREATE TABLE pa_2 (id int PRIMARY KEY, v text, secret text);
SELECT lives_ok('ALTER TABLE pa ATTACH PARTITION pa_2 FOR VALUES FROM (100) TO (200)',
	'owner: ATTACH PARTITION of an empty table');
SELECT is(pg_temp.cycle('pa', 'pa_2', 101), pg_temp.as_of('pa', 'game'),
	'an empty table the owner attached: every change once');
CREATE TABLE pa_3 (id int PRIMARY KEY, v text, secret text);
INSERT INTO pa_3 VALUES (201, 'planted', 'x');
SELECT throws_ok('ALTER TABLE pa ATTACH PARTITION pa_3 FOR VALUES FROM (200) TO (300)', '42501',
	'permission denied to attach a partition to table "public.pa"',
	'owner: ATTACH of a table holding rows is refused (they would appear uncaptured)');
-- sub-partitions, created by the owner
SELECT lives_ok('CREATE TABLE pa_m PARTITION OF pa FOR VALUES FROM (1000) TO (2000) PARTITION BY RANGE (id)',
	'owner: a partitioned partition');
SELECT lives_ok('CREATE TABLE pa_m1 PARTITION OF pa_m FOR VALUES FROM (1000) TO (1500)',
	'owner: a partition of it');
SELECT is(pg_temp.cycle('pa', 'pa_m1', 1001), pg_temp.as_of('pa', 'game'),
	'a partition two levels down: every change once');
SELECT is(pg_temp.cycle('pa_m', 'pa_m', 1002), pg_temp.as_of('pa', 'game'),
	'TRUNCATE of the partitioned partition: one event, not one per relation below it');
RESET ROLE;
SELECT lives_ok('ALTER TABLE pa ATTACH PARTITION pa_3 FOR VALUES FROM (200) TO (300)',
	'superuser: ATTACH of a table holding rows');
SELECT is((SELECT new_values ->> 'operation' FROM activity_monitor.activity WHERE action = 'ddl' ORDER BY id DESC LIMIT 1),
	'attach a partition to table "public.pa"', 'and it is recorded');
SELECT is(pg_temp.cycle('pa', 'pa_3', 202), pg_temp.as_of('pa', 'game'),
	'then its changes are captured once');
SELECT is(pg_temp.cycle('pa', 'pa', 3), pg_temp.as_of('pa', 'game'),
	'TRUNCATE of the tracked table itself: one event');
SELECT is(pg_temp.capture_triggers('pa_m1'), 'activity_monitor_capture:clone,activity_monitor_truncate:own',
	'every partition: the cloned row trigger and a TRUNCATE trigger of its own');

-- ---------------------------------------------------------------------------
-- The reproduction: parent and child tracked, the child tracked while it
-- stood alone, then attached
-- ---------------------------------------------------------------------------
SELECT pg_temp.mk('pb', true);
SELECT activity_monitor.track('pb', 'game', redact_columns => '{secret}');
SELECT pg_temp.mk('pb_1');
SELECT activity_monitor.track('pb_1', 'payment');
SET ROLE am_pt_owner;
SELECT throws_ok('ALTER TABLE pb ATTACH PARTITION pb_1 FOR VALUES FROM (0) TO (100)', '42501', NULL,
	'owner: attaching a tracked table below a tracked table is refused (its settings would change)');
RESET ROLE;
SELECT lives_ok('ALTER TABLE pb ATTACH PARTITION pb_1 FOR VALUES FROM (0) TO (100)',
	'superuser: ATTACH of a tracked table to a tracked table');
SELECT is(pg_temp.cycle('pb', 'pb_1', 1), pg_temp.as_of('pb', 'game'),
	'attached: every change once, as the parent''s (its kind)');
SELECT is(pg_temp.last_secret(), '[redacted]', 'with the parent''s redaction');
SELECT is((SELECT kind FROM activity_monitor.tracked_tables WHERE table_name = 'public.pb_1'), 'payment',
	'the child keeps its own settings, unused while attached');
SELECT lives_ok('ALTER TABLE pb DETACH PARTITION pb_1', 'superuser: DETACH');
SELECT is(pg_temp.cycle('pb_1', 'pb_1', 2), pg_temp.as_of('pb_1', 'payment'),
	'detached: its own settings again, every change once');
SELECT is(pg_temp.last_secret(), 's3cret', 'its own settings redact nothing');
SET ROLE am_pt_owner;
SELECT throws_ok('DROP TRIGGER activity_monitor_capture ON pb_1', '42501', NULL,
	'owner: the detached table is still tracked, its trigger still guarded');
RESET ROLE;
SELECT lives_ok('ALTER TABLE pb ATTACH PARTITION pb_1 FOR VALUES FROM (0) TO (100)',
	'superuser: attached again');
SELECT is(pg_temp.cycle('pb', 'pb_1', 3), pg_temp.as_of('pb', 'game'), 'the parent''s again');
SELECT lives_ok($$SELECT activity_monitor.untrack('pb_1')$$, 'untrack() of the attached child');
SELECT is(pg_temp.cycle('pb', 'pb_1', 4), pg_temp.as_of('pb', 'game'),
	'still captured once, as the parent''s');
SELECT lives_ok('ALTER TABLE pb DETACH PARTITION pb_1', 'superuser: DETACH of the untracked child');
SELECT is(pg_temp.cycle('pb_1', 'pb_1', 5), 'none', 'detached and untracked: not captured');
SELECT is(pg_temp.capture_triggers('pb_1'), '', 'and it has no capture trigger left');

-- ---------------------------------------------------------------------------
-- Parent untracked, child tracked; the parent tracked and untracked later
-- ---------------------------------------------------------------------------
SELECT pg_temp.mk('pc', true);
SELECT pg_temp.mk('pc_1');
SELECT activity_monitor.track('pc_1', 'payment');
SET ROLE am_pt_owner;
INSERT INTO pc_1 VALUES (99, 'x', 'y');
SELECT lives_ok('ALTER TABLE pc ATTACH PARTITION pc_1 FOR VALUES FROM (0) TO (100)',
	'owner: attaching a tracked table below an untracked one (nothing changes for capture)');
SELECT is(pg_temp.cycle('pc', 'pc_1', 1), pg_temp.as_of('pc_1', 'payment'),
	'every change once, with the child''s own settings (not kind system under the untracked root)');
RESET ROLE;
SELECT lives_ok($$SELECT activity_monitor.track('pc', 'game', redact_columns => '{secret}')$$,
	'track() of the parent after the attach');
SELECT is(pg_temp.cycle('pc', 'pc_1', 2), pg_temp.as_of('pc', 'game'), 'the parent''s settings govern now');
SELECT is(pg_temp.capture_triggers('pc_1'), 'activity_monitor_capture:clone,activity_monitor_truncate:own',
	'the child''s own row trigger gave way to the parent''s clone');
SELECT lives_ok($$SELECT activity_monitor.untrack('pc')$$, 'untrack() of the parent');
SELECT is(pg_temp.cycle('pc', 'pc_1', 3), pg_temp.as_of('pc_1', 'payment'),
	'the child''s own settings again, every change once');
SELECT is(pg_temp.capture_triggers('pc'), '', 'the untracked parent has no capture trigger');
SET ROLE am_pt_owner;
SELECT lives_ok('ALTER TABLE pc DETACH PARTITION pc_1', 'owner: DETACH from an untracked parent');
SELECT is(pg_temp.cycle('pc_1', 'pc_1', 4), pg_temp.as_of('pc_1', 'payment'), 'detached: as before');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- track() of a partition
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT activity_monitor.track('pa_1', 'payment')$$, '42809', 'cannot track "public.pa_1"',
	'track() of a partition of a tracked table is refused');
SELECT pg_temp.mk('pd', true);
SET ROLE am_pt_owner;
SELECT lives_ok('CREATE TABLE pd_1 PARTITION OF pd FOR VALUES FROM (0) TO (100)',
	'owner: a partition of an untracked table');
RESET ROLE;
SELECT lives_ok($$SELECT activity_monitor.track('pd_1', 'payment')$$,
	'track() of a partition of an untracked table');
SELECT is(pg_temp.cycle('pd', 'pd_1', 1), pg_temp.as_of('pd_1', 'payment'), 'captured once, as itself');
SELECT lives_ok($$SELECT activity_monitor.track('pd', 'game')$$, 'then track() of its parent');
SELECT is(pg_temp.cycle('pd', 'pd_1', 2), pg_temp.as_of('pd', 'game'), 'captured once, as the parent');
SELECT lives_ok($$SELECT activity_monitor.untrack('pd')$$, 'untrack() of the parent');
SELECT lives_ok($$SELECT activity_monitor.untrack('pd_1')$$, 'untrack() of the partition');
SELECT is(pg_temp.cycle('pd', 'pd_1', 3), 'none', 'neither tracked: nothing captured');
SELECT is(pg_temp.capture_triggers('pd') || pg_temp.capture_triggers('pd_1'), '', 'and no capture trigger left');

-- ---------------------------------------------------------------------------
-- The owner's tricks
-- ---------------------------------------------------------------------------
SET ROLE am_pt_owner;
-- a TRUNCATE trigger of the capture name prepared on the table to attach
CREATE TABLE pa_4 (id int PRIMARY KEY, v text, secret text);
CREATE TRIGGER activity_monitor_truncate AFTER TRUNCATE ON pa_4 FOR EACH STATEMENT EXECUTE FUNCTION g_pt_noop();
SELECT lives_ok('ALTER TABLE pa ATTACH PARTITION pa_4 FOR VALUES FROM (300) TO (400)',
	'owner: attach a table with its own trigger named activity_monitor_truncate');
SELECT is(pg_temp.cycle('pa', 'pa_4', 301), pg_temp.as_of('pa', 'game'),
	'its TRUNCATE is captured all the same (the trigger was replaced)');
-- the capture trigger itself, prepared disabled
CREATE TABLE pa_5 (id int PRIMARY KEY, v text, secret text);
SELECT lives_ok('CREATE TRIGGER activity_monitor_truncate AFTER TRUNCATE ON pa_5 FOR EACH STATEMENT
	EXECUTE FUNCTION activity_monitor.capture()', 'owner: capture() may be used in a trigger');
SELECT lives_ok('ALTER TABLE pa_5 DISABLE TRIGGER activity_monitor_truncate', 'owner: and disables it');
SELECT lives_ok('ALTER TABLE pa ATTACH PARTITION pa_5 FOR VALUES FROM (400) TO (500)',
	'owner: attach a table whose TRUNCATE capture trigger it disabled');
SELECT is(pg_temp.cycle('pa', 'pa_5', 401), pg_temp.as_of('pa', 'game'), 'its TRUNCATE is captured');
-- CREATE SCHEMA runs its CREATE TABLE and CREATE TRIGGER without event triggers of their own
SELECT lives_ok($$CREATE SCHEMA pt_s
	CREATE TABLE pt_s.pa_6 PARTITION OF public.pa FOR VALUES FROM (500) TO (600)
	CREATE TRIGGER activity_monitor_truncate AFTER TRUNCATE ON pt_s.pa_6 FOR EACH STATEMENT EXECUTE FUNCTION public.g_pt_noop()$$,
	'owner: CREATE SCHEMA creating a partition and a trigger named activity_monitor_truncate');
SELECT is(pg_temp.cycle('pa', 'pt_s.pa_6', 501), pg_temp.as_of('pa', 'game'), 'its TRUNCATE is captured');
-- a second trigger running capture() under another name
SELECT lives_ok('CREATE TRIGGER zz_again AFTER INSERT OR UPDATE OR DELETE ON pa_1 FOR EACH ROW
	EXECUTE FUNCTION activity_monitor.capture()', 'owner: another trigger running capture() can be created');
SELECT is(pg_temp.cycle('pa', 'pa_1', 2), pg_temp.as_of('pa', 'game'), 'but every change is still recorded once');
SELECT lives_ok('DROP TRIGGER zz_again ON pa_1', 'owner: and dropped (it is not a capture trigger)');
-- capture() on a table nobody tracks
CREATE TABLE pt_free (id int PRIMARY KEY, v text, secret text);
SELECT lives_ok('CREATE TRIGGER activity_monitor_capture AFTER INSERT OR UPDATE OR DELETE ON pt_free FOR EACH ROW
	EXECUTE FUNCTION activity_monitor.capture()', 'owner: a capture trigger on an untracked table');
SELECT is(pg_temp.cycle('pt_free', 'pt_free', 1), 'none', 'capture() on an untracked table records nothing');
-- a capture trigger that fires never, on an untracked parent, then a tracked table attached to it
CREATE TABLE pt_q (id int PRIMARY KEY, v text, secret text) PARTITION BY RANGE (id);
SELECT lives_ok('CREATE TRIGGER activity_monitor_capture AFTER INSERT OR UPDATE OR DELETE ON pt_q FOR EACH ROW
	WHEN (false) EXECUTE FUNCTION activity_monitor.capture()', 'owner: a capture trigger that never fires, on an untracked parent');
SELECT throws_ok('ALTER TABLE pt_q ATTACH PARTITION pc_1 FOR VALUES FROM (0) TO (100)', '42710', NULL,
	'owner: attaching a tracked table below a parent with its own activity_monitor_capture trigger fails');
SELECT is(pg_temp.cycle('pc_1', 'pc_1', 5), pg_temp.as_of('pc_1', 'payment'), 'and the table is captured as before');
-- detaching
SELECT throws_ok('ALTER TABLE pa DETACH PARTITION pa_2', '42501',
	'permission denied to detach partition "pa_2" from table "public.pa"',
	'owner: DETACH from a tracked table is refused (its rows would leave capture)');
SELECT throws_ok('DROP TRIGGER activity_monitor_truncate ON pa_2', '42501', NULL,
	'owner: DROP TRIGGER of a partition''s TRUNCATE trigger is refused');
RESET ROLE;
SELECT is(pg_temp.cycle('pa', 'pa_2', 102), pg_temp.as_of('pa', 'game'), 'the partition is captured as before');
SELECT lives_ok('ALTER TABLE pa DETACH PARTITION pa_2', 'superuser: DETACH');
SELECT is(pg_temp.capture_triggers('pa_2'), '', 'the detached untracked table keeps no capture trigger');
SELECT is(pg_temp.cycle('pa_2', 'pa_2', 103), 'none', 'and is not captured');

-- untrack() of the parent takes every trigger of its tree
SELECT lives_ok($$SELECT activity_monitor.untrack('pa')$$, 'untrack() of a parent with sub-partitions');
SELECT is((SELECT count(*) FROM pg_trigger t JOIN pg_partition_tree('pa') p ON p.relid = t.tgrelid
		   WHERE t.tgfoid = 'activity_monitor.capture()'::regprocedure), 0::bigint,
	'no capture trigger is left in its tree');

SELECT * FROM finish();
ROLLBACK;
