-- Variant "tablelog": table_log's C trigger (Debian postgresql-15-tablelog),
-- level 5 (log table with trigger_id and trigger_user), one log table per
-- tracked table.  It writes the old and the new row for an UPDATE.
-- records: full row copy, UPDATE as old + new rows, user, time
-- requires: table_log
CREATE EXTENSION table_log;
SELECT table_log_init(5, 'accounts');
SELECT table_log_init(5, 'payments');
SELECT table_log_init(5, 'user_sessions');

-- Changes count row changes, not log rows: an UPDATE's "old" row is not one.
CREATE FUNCTION bench_capture_stats(OUT bytes bigint, OUT changes bigint)
LANGUAGE sql AS $$
	SELECT pg_total_relation_size('accounts_log') + pg_total_relation_size('payments_log')
			+ pg_total_relation_size('user_sessions_log'),
		   (SELECT count(*) FROM (
				SELECT trigger_tuple, trigger_mode FROM accounts_log
				UNION ALL SELECT trigger_tuple, trigger_mode FROM payments_log
				UNION ALL SELECT trigger_tuple, trigger_mode FROM user_sessions_log) l
			WHERE l.trigger_tuple = 'new' OR l.trigger_mode = 'DELETE')
$$;
