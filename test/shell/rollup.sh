#!/usr/bin/env bash
# The worker's rollup (the dashboard's per-minute counts) counts the events
# committed since its previous round, not the last 10 minutes every round:
# 1. a minute rolled up 3 minutes ago is not rewritten by later rounds (its
#    rows keep their xmin; 0.1.0's rollup rewrote the last 10 minutes every
#    naptime, at 10,000 changes a second 6 million events every 10 s);
# 2. a transaction that writes at second 50 of a minute and commits in the
#    next minute, after rounds have run, is counted in the minute of its
#    events: each round goes back to the start of the oldest transaction
#    that holds a transaction id;
# 3. the counts equal a count of the activity table, minute by minute, with
#    rollups by hand (_rollup()) between the worker's rounds;
# 4. a round reads only the events committed since the previous one: 2,000
#    events of the current minute counted, the next round reads (nearly)
#    none of them (the rollup of 0.2.0's first cut read again from the start
#    of the minute of its previous round, each event about 4 times at
#    naptime 10);
# 5. with track_activities off (no transaction's start known), a
#    transaction that writes and commits seconds later, after rounds, is
#    counted (a round reads ten minutes back then).
set -euo pipefail
db=am_rollup
. "$AM_ROOT/test/lib/shell.sh"
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET activity_monitor.naptime" -c "ALTER SYSTEM RESET track_activities" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	am_db_drop
}
trap cleanup EXIT
am_db_new
psql -X -q -d postgres -c "ALTER SYSTEM SET activity_monitor.naptime = 1" -c "SELECT pg_reload_conf()" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
SQL
am_wait_for 15 "$db" "SELECT last_run_at IS NOT NULL FROM activity_monitor.worker_status" || fail "the worker did not run"

# two worker rounds (maintenance then rollup) completed after the call
rounds() {
	local t
	t=$(q "SELECT clock_timestamp()")
	am_wait_for 20 "$db" "SELECT last_run_at > '$t'::timestamptz + interval '1.05 s' FROM activity_monitor.worker_status" ||
		fail "the worker ran no two rounds"
	am_wait_for 20 "$db" "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker'
		AND datname = current_database() AND query = 'rollup' AND state = 'active')" || fail "the rollup did not end"
}

# 1. events of three minutes ago (written by hand as the owner may), rolled
# up by hand; the worker's rounds leave that minute alone
# (the minute named once: the rounds below may cross a minute boundary)
m=$(q "SELECT date_trunc('minute', now()) - interval '3 minutes'")
q "INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, actor_type)
	SELECT '$m'::timestamptz + interval '10 s', 'payment', 'insert', 'public.payments', 'user'
	FROM generate_series(1, 100)" >/dev/null
q "SELECT activity_monitor._rollup(now() - interval '10 minutes')" >/dev/null
old=$(q "SELECT string_agg(xmin::text || ':' || events, ',') FROM activity_monitor.activity_minute
	WHERE minute = '$m'::timestamptz")
[ -n "$old" ] || fail "the rollup by hand counted nothing"
rounds
rounds
now=$(q "SELECT string_agg(xmin::text || ':' || events, ',') FROM activity_monitor.activity_minute
	WHERE minute = '$m'::timestamptz")
[ "$now" = "$old" ] || fail "the worker's rollup rewrote a minute 3 minutes old ($old, now $now)"
echo "ok: a minute 3 minutes old is not rolled up again"

# 2. a transaction writing at second 50 and committing in the next minute
until [ "$(q "SELECT extract(second FROM now())::int BETWEEN 48 AND 52")" = t ]; do sleep 0.5; done
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN" \
	-c "INSERT INTO payments SELECT g, g, 10, 'pending' FROM generate_series(1, 40) g" \
	-c "SELECT pg_sleep(14)" -c "COMMIT" >/dev/null &
late=$!
# meanwhile other writes commit, and rounds run
for i in 1 2 3 4 5; do
	q "INSERT INTO payments VALUES (100 + $i, $i, 1, 'pending')" >/dev/null
	# a rollup by hand between the worker's rounds: neither counts twice
	[ "$i" != 3 ] || q "SELECT activity_monitor._rollup(now() - interval '1 minute')" >/dev/null
	sleep 2
done
wait "$late"
rounds
rounds
[ "$(q "SELECT count(*) FROM payments")" = 45 ] || fail "the late transaction did not commit"

# 3. the counts are those of the events, minute by minute
diff <(q "SELECT minute, kind, actor_type, events FROM activity_monitor.activity_minute
		WHERE minute >= date_trunc('minute', now()) - interval '3 minutes' ORDER BY 1, 2, 3") \
	<(q "SELECT date_trunc('minute', occurred_at), kind, actor_type, count(*) FROM activity_monitor.activity
		WHERE occurred_at >= date_trunc('minute', now()) - interval '3 minutes' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3") ||
	fail "the minute counts differ from the events (above: < activity_minute, > activity)"
[ -z "$(q "SELECT last_error FROM activity_monitor.worker_status WHERE last_error LIKE 'rollup%'")" ] ||
	fail "the worker's rollup failed"
echo "ok: a transaction committed in the next minute is counted in the minute of its events"

# 4. what a round reads: the events committed since the previous round
q "INSERT INTO payments SELECT 1000 + g, g, 1, 'pending' FROM generate_series(1, 2000) g" >/dev/null
sleep 1.5
# (a statement running since before the insert holds a round's horizon
# back, by design: on a loaded machine, a duty of the worker's that began
# before it; the rounds below are measured once nothing runs)
am_wait_for 60 "$db" "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
	AND pid <> pg_backend_pid() AND (state = 'active' OR backend_xid IS NOT NULL))" ||
	fail "a session of this database stayed active for a minute"
read_by_round() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN" -c "SELECT activity_monitor._worker_rollup()" \
		-c "SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)
			FROM pg_stat_xact_user_tables WHERE schemaname = 'activity_monitor' AND relname LIKE 'activity_p%'" \
		-c "COMMIT" | tail -1
}
# A backend of this database whose start is not known when a round takes
# its horizon (no state and no transaction start: for instance an
# autovacuum worker, after the 2,000 rows, between two of its transactions
# before it reports a state; seen once on a loaded machine) makes that
# round store a horizon ten
# minutes back, by design, and the next round reads those minutes again:
# up to five pairs of rounds, one must read (nearly) nothing.  A rollup that
# reads again every time fails all five.
n=""
for _ in 1 2 3 4 5; do
	read_by_round >/dev/null
	n=$(read_by_round)
	[ "$n" -lt 100 ] && break
	sleep 1
done
[ "$n" -lt 100 ] || fail "a round read $n events, with none committed since the previous one (five times)"
diff <(q "SELECT minute, kind, actor_type, events FROM activity_monitor.activity_minute
		WHERE minute >= date_trunc('minute', now()) - interval '3 minutes' ORDER BY 1, 2, 3") \
	<(q "SELECT date_trunc('minute', occurred_at), kind, actor_type, count(*) FROM activity_monitor.activity
		WHERE occurred_at >= date_trunc('minute', now()) - interval '3 minutes' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3") ||
	fail "the minute counts differ from the events after the 2,000"
echo "ok: a round reads the events committed since the previous round ($n read by a round after 2,000 were counted)"

# 5. track_activities off
psql -X -q -d postgres -c "ALTER SYSTEM SET track_activities = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN" -c "INSERT INTO payments VALUES (5000, 1, 1, 'pending')" \
	-c "SELECT pg_sleep(5)" -c "COMMIT" >/dev/null
rounds
rounds
psql -X -q -d postgres -c "ALTER SYSTEM RESET track_activities" -c "SELECT pg_reload_conf()" >/dev/null
diff <(q "SELECT minute, kind, actor_type, events FROM activity_monitor.activity_minute
		WHERE minute >= date_trunc('minute', now()) - interval '3 minutes' ORDER BY 1, 2, 3") \
	<(q "SELECT date_trunc('minute', occurred_at), kind, actor_type, count(*) FROM activity_monitor.activity
		WHERE occurred_at >= date_trunc('minute', now()) - interval '3 minutes' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3") ||
	fail "with track_activities off, a transaction that committed after rounds was not counted"
echo "ok: with track_activities off, a transaction committed seconds after its write is counted"
