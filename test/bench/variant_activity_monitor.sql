-- Variant "activity_monitor": the extension's C capture trigger on the three
-- tables, configured as the platform would (balance and kyc_level critical,
-- an account suspended or closed and a payment failed or refunded critical,
-- a payment completing or a session closing not, updated_at ignored,
-- password_hash redacted).
-- records: diff (changed columns old/new), row key, subject, status transition, critical flag, actor, db user, application, client address, txid
-- requires: activity_monitor
-- preload: activity
CREATE EXTENSION activity_monitor;

SELECT activity_monitor.track('accounts', 'profile',
	subject_column => 'id', status_column => 'status',
	critical_columns => '{balance,kyc_level}', ignore_columns => '{updated_at}',
	redact_columns => '{password_hash}', critical_statuses => '{suspended,closed}');
SELECT activity_monitor.track('payments', 'payment',
	subject_column => 'account_id', status_column => 'status',
	critical_statuses => '{failed,refunded}');
SELECT activity_monitor.track('user_sessions', 'login',
	subject_column => 'account_id', status_column => 'status');

-- Bytes: every partition of activity_monitor.activity, indexes and TOAST included.
CREATE FUNCTION bench_capture_stats(OUT bytes bigint, OUT changes bigint)
LANGUAGE sql AS $$
	SELECT (SELECT sum(pg_total_relation_size(relid))::bigint
			FROM pg_partition_tree('activity_monitor.activity') WHERE isleaf),
		   (SELECT count(*) FROM activity_monitor.activity WHERE action <> 'truncate' AND kind <> 'admin')
$$;
