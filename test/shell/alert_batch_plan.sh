#!/usr/bin/env bash
# The worker's alert batches read only the batch's events, also in a new
# database whose partitions were empty when the worker planned its batch
# query.  The plan is generic, made for the partitions from the batch's
# floor on, and kept while that floor stays; with the batch's two txid
# conditions ORed (0.1.0 up to this test), a plan made while today's
# partition was empty read that partition through its txid index without
# any condition (or through the time index on "id > $3"): every matched
# event of the day at every batch, quadratic in the day's events.  Both
# forms of the query (new transactions; those the last batch saw running)
# run here, from two clients.  Counted as index tuples read
# (pg_stat_user_indexes) on the activity partitions, over events written in
# many small transactions: the batches' lookups, plus the rollup's reads of
# the same events, stay a small multiple of the events; the old plan read
# hundreds of times more.
set -euo pipefail
db=am_alert_batch_plan
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT
am_db_new
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id serial PRIMARY KEY, account_id int, amount numeric);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id');
-- every insert matches; the threshold is never reached (no alert rows)
SELECT activity_monitor.create_rule('every_payment', '$.action == "insert"',
	tables => '{payments}', within => '1 hour', threshold => 1e12,
	measure => 'sum', measure_path => '$.new.amount');
SQL
am_wait_for 15 "$db" "SELECT last_run_at IS NOT NULL FROM activity_monitor.worker_status" || fail "the worker did not run"
restart_worker() {
	local wpid
	wpid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = current_database()")
	[ -n "$wpid" ] || fail "no worker"
	q "SELECT pg_terminate_backend($wpid)" >/dev/null
	am_wait_for 30 "$db" "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker'
		AND datname = current_database() AND pid <> $wpid" || fail "the worker did not start again"
}
# the worker plans its batch query now, while every partition is empty
caught_up
# and its second form, for the transactions a batch saw in progress that
# have committed since, while the partitions hold two events: one
# transaction stays open while another commits (a batch runs and sees the
# first one running), then commits (the next batch reads it by its txid)
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN" \
	-c "INSERT INTO payments (account_id, amount) VALUES (1, 10)" \
	-c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null &
open_pid=$!
sleep 0.5
q "INSERT INTO payments (account_id, amount) VALUES (2, 10)" >/dev/null
wait "$open_pid"
caught_up

# 2,400 events in 1,200 small transactions from two clients over about 6 s:
# hundreds of batches, many of them of both forms
cat >"$AM_TMP/alert_batch_plan.sql" <<'SQL'
INSERT INTO payments (account_id, amount) SELECT (random() * 1000)::int, 10 FROM generate_series(1, 2);
SQL
"$AM_PGBIN/pgbench" -n -c 2 -t 600 -R 200 -f "$AM_TMP/alert_batch_plan.sql" "$db" >"$AM_TMP/alert_batch_plan.pgbench" 2>&1 ||
	fail "pgbench failed: $(tail -n 3 "$AM_TMP/alert_batch_plan.pgbench")"
events=$(q "SELECT count(*) FROM activity_monitor.activity WHERE matched IS NOT NULL")
[ "$events" -eq 2402 ] || fail "expected 2402 matched events, found $events"
caught_up 60
[ "$(q "SELECT events_matched FROM activity_monitor.rule_stats")" = 2402 ] ||
	fail "the rule's counters do not say 2402 events"

# the worker reports its statistics when it exits (and the postmaster starts
# it again)
restart_worker
sleep 1
read_tuples=$(q "SELECT coalesce(sum(s.idx_tup_read), 0) FROM pg_stat_user_indexes s
	JOIN pg_inherits i ON i.inhrelid = s.relid
	WHERE i.inhparent = 'activity_monitor.activity'::regclass")
echo "index tuples read on the activity partitions: $read_tuples for $events events"
[ "$read_tuples" -le $((events * 5)) ] ||
	fail "the batches read $read_tuples index tuples for $events events (at most 5 per event expected)"
echo "ok: the alert batches look up their events by txid from the first batch on"
