#!/usr/bin/env bash
# The alert batch's lower bound on occurred_at (its first partition's start,
# written into the batch query as a constant) means the same instant
# whatever the worker's TimeZone.  Written without its offset, it was read
# in the worker's time zone: 12 hours west of UTC, with hourly partitions, the bound of every batch lay in the future and the worker
# alerted on nothing, marking the events processed.  Here the server's
# TimeZone (which the worker follows; a database's own setting it does not)
# is Etc/GMT+12 (UTC-12) and each of three matching changes, in three
# transactions, is alerted on.
set -euo pipefail
db=am_alert_batch_timezone
. "$AM_ROOT/test/lib/shell.sh"
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET timezone" -c "SELECT pg_reload_conf()" >/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
psql -X -q -d postgres -c "ALTER SYSTEM SET timezone = 'Etc/GMT+12'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
SELECT activity_monitor.configure(merge_interval => '0', partition_interval => '1 hour');
-- hourly partitions from now on, instead of the daily ones CREATE EXTENSION made
DO $$
DECLARE
	p	regclass;
BEGIN
	FOR p IN SELECT q.part FROM activity_monitor._partitions() q WHERE q.lower IS NOT NULL LOOP
		EXECUTE format('DROP TABLE %s', p);
	END LOOP;
END
$$;
SELECT activity_monitor.maintain();
CREATE TABLE payments (id serial PRIMARY KEY, account_id int, amount numeric);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id');
SELECT activity_monitor.create_rule('big', '$.new.amount > 100', tables => '{payments}');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
[ "$(q "SELECT current_setting('TimeZone')")" = "Etc/GMT+12" ] || fail "the server's TimeZone is not set"
[ "$(q "SELECT count(*) FROM activity_monitor._partitions() q WHERE q.lower <= now() AND now() < q.upper
	AND q.upper - q.lower = interval '1 hour'")" = 1 ] || fail "no hourly partition holds now"
# a worker started with the setting in force
wpid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = current_database()")
q "SELECT pg_terminate_backend($wpid)" >/dev/null
am_wait_for 30 "$db" "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker'
	AND datname = current_database() AND pid <> $wpid" || fail "the worker did not start again"
for i in 1 2 3; do
	q "INSERT INTO payments (account_id, amount) VALUES ($i, 500)" >/dev/null
	caught_up
done
got=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'big'")
[ "$got" = 3 ] || fail "expected 3 alerts with the server 12 hours west of UTC, got $got"
[ "$(q "SELECT last_error IS NULL FROM activity_monitor.worker_status")" = t ] || fail "the worker recorded an error"
echo "ok: the batch's bound on occurred_at does not depend on the TimeZone"
