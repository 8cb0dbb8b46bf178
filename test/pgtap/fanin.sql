-- Fan-in (issue 15) units: the receive trigger leaves inserts outside
-- logical replication alone; received events (source set, dated at their
-- source) are shown by the views with their source, counted by the
-- dashboard's rollup down to their time through their note in
-- activity_monitor.received; the notes and the subscriptions' view are
-- readable by whom they should be.  test/shell/fanin.sh runs the real thing.
BEGIN;
SELECT plan(12);
SET LOCAL client_min_messages = warning;

SELECT is((SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'activity_monitor.activity'::regclass AND tgname = 'receive'),
	'A', 'the receive trigger fires ALWAYS (in logical replication''s workers too)');
SELECT is((SELECT count(*) FROM pg_trigger t JOIN pg_partition_tree('activity_monitor.activity') p ON p.relid = t.tgrelid
		WHERE t.tgname = 'receive' AND t.tgenabled = 'A' AND p.isleaf),
	(SELECT count(*) FROM pg_partition_tree('activity_monitor.activity') p WHERE p.isleaf),
	'every partition has it, enabled ALWAYS');
SELECT is((SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'activity_monitor.activity'::regclass
		AND tgname = 'receive_truncate'), 'A', 'a TRUNCATE from a subscription is refused, ALWAYS');

-- an insert outside logical replication (a restore, a merge putting rows back): untouched
INSERT INTO activity_monitor.activity (id, occurred_at, kind, action, table_name, actor_type, txid, backend_pid)
VALUES (-5, now() - interval '1 minute', 'payment', 'insert', 'public.p', 'service', 7, 1);
SELECT is((SELECT format('%s %s %s %s', id, txid, backend_pid, coalesce(source, '-')) FROM activity_monitor.activity
		WHERE id = -5), '-5 7 1 -', 'outside logical replication an insert keeps its id, txid and pid, and gets no source');

-- a received event dated 5 minutes back, with its transaction's note
INSERT INTO activity_monitor.activity (id, occurred_at, kind, action, table_name, subject_id, actor_type, txid,
	backend_pid, source, source_id)
VALUES (-6, date_trunc('minute', now()) - interval '5 minutes', 'fanin_kind', 'insert', 'public.p', 'acc-1', 'user',
	txid_current(), pg_backend_pid(), 'shard9', 42),
	   (-7, date_trunc('minute', now()) - interval '7 minutes', 'fanin_kind', 'insert', 'public.p', 'acc-1', 'user',
	txid_current(), pg_backend_pid(), 'shard9', 43);
SELECT is((SELECT format('%s %s', source, source_id) FROM activity_monitor.timeline WHERE id = -6), 'shard9 42',
	'timeline shows the source and the id there');
SELECT is((SELECT format('%s %s', source, source_id) FROM activity_monitor.admin_actions WHERE false), NULL,
	'admin_actions has the columns');
SELECT has_column('activity_monitor', 'user_sessions', 'source', 'user_sessions has the source');

-- the rollup: after a round that did not see this transaction (its
-- snapshot "x:x:", horizon now), the event of 5 minutes back is counted only
-- through the note
INSERT INTO activity_monitor.rollup_state (snapshot, horizon, txid)
VALUES (format('%s:%s:', txid_current(), txid_current())::txid_snapshot, now(), 0)
ON CONFLICT (single) DO UPDATE SET snapshot = excluded.snapshot, horizon = excluded.horizon, txid = excluded.txid;
SELECT activity_monitor._worker_rollup();
SELECT is((SELECT coalesce(sum(events), 0) FROM activity_monitor.activity_minute WHERE kind = 'fanin_kind'), 0::numeric,
	'without a note the rollup does not go back to an event dated before its last round''s horizon');
UPDATE activity_monitor.rollup_state SET snapshot = format('%s:%s:', txid_current(), txid_current())::txid_snapshot,
	horizon = now(), txid = 0;
INSERT INTO activity_monitor.received (txid, oldest) VALUES (txid_current(), date_trunc('minute', now()) - interval '5 minutes');
SELECT activity_monitor._worker_rollup();
SELECT is((SELECT coalesce(sum(events), 0) FROM activity_monitor.activity_minute WHERE kind = 'fanin_kind'), 1::numeric,
	'with the receiving transaction''s note it reads back to it (the event of 7 minutes back is older)');
SELECT is((SELECT rolled FROM activity_monitor.received WHERE txid = txid_current()), true, 'and marks the note rolled');

-- privileges
SELECT ok(has_table_privilege('activity_monitor_reader', 'activity_monitor.sources', 'SELECT')
	AND (SELECT count(*) FROM activity_monitor.sources) = 0, 'sources: readable by the reader; no subscription, no row');
SELECT ok(NOT has_table_privilege('activity_monitor_reader', 'activity_monitor.received', 'SELECT')
	AND NOT has_table_privilege('activity_monitor_admin', 'activity_monitor.received', 'INSERT'),
	'received: neither readable nor writable but by the owner');

SELECT * FROM finish();
ROLLBACK;
