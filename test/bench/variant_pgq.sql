-- Variant "pgq": PgQ's logutriga C trigger (Debian postgresql-15-pgq3) on
-- the three tables, all into one queue.  No ticker or consumer runs, so the
-- events stay in the queue's event tables for the size measurement.
-- records: new row url-encoded, op, table, txid (queue event)
-- requires: pgq
CREATE EXTENSION pgq;
SELECT pgq.create_queue('bench');

CREATE TRIGGER bench_pgq AFTER INSERT OR UPDATE OR DELETE ON accounts
	FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('bench');
CREATE TRIGGER bench_pgq AFTER INSERT OR UPDATE OR DELETE ON payments
	FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('bench');
CREATE TRIGGER bench_pgq AFTER INSERT OR UPDATE OR DELETE ON user_sessions
	FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('bench');

-- Bytes: the queue's event tables (parent and its rotating children, with
-- their ev_txid indexes).
CREATE FUNCTION bench_capture_stats(OUT bytes bigint, OUT changes bigint)
LANGUAGE plpgsql AS $$
DECLARE
	parent regclass;
BEGIN
	SELECT queue_data_pfx::regclass INTO parent FROM pgq.queue WHERE queue_name = 'bench';
	SELECT pg_total_relation_size(parent) + coalesce(sum(pg_total_relation_size(inhrelid)), 0)
	INTO bytes FROM pg_inherits WHERE inhparent = parent;
	EXECUTE format('SELECT count(*) FROM %s', parent) INTO changes;
END
$$;
