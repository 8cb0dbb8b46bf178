#!/usr/bin/env bash
# The background worker: starts with the server and with CREATE EXTENSION,
# keeps partitions ahead, retires old ones, records errors and carries on,
# survives kill -9, stops with DROP EXTENSION, and partition churn under a
# write workload loses no event.  Every wait has a deadline.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
db=am_worker
psql -X -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" -c "DROP DATABASE IF EXISTS am_worker_none" -c "CREATE DATABASE am_worker_none"
q "ALTER SYSTEM SET activity_monitor.naptime = 1" >/dev/null
# hourly retention below the 30-day floor: lowered for this test (superuser)
q "ALTER SYSTEM SET activity_monitor.min_retention = '1h'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
q "CREATE EXTENSION activity_monitor" >/dev/null

worker_pid="SELECT pid FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = '$db'"

echo "# CREATE EXTENSION starts the worker"
am_wait_for 15 "$db" "SELECT EXISTS ($worker_pid)" || fail "no worker after CREATE EXTENSION"
am_wait_for 15 "$db" "SELECT last_run_at IS NOT NULL AND running FROM activity_monitor.worker_status" ||
	fail "worker_status shows no run"
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = 'am_worker_none'")" = 0 ] ||
	fail "a database without the extension has a worker"

echo "# server restart: the worker is back within seconds"
am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -w -m fast restart -l "$PGHOST/server.log" >/dev/null
t0=$(date +%s.%N)
am_wait_for 20 "$db" "SELECT EXISTS ($worker_pid)" || fail "no worker after restart"
echo "  worker up $(echo "$(date +%s.%N) - $t0" | bc) s after restart"
am_wait_for 20 "$db" "SELECT starts = 2 FROM activity_monitor.worker_status" || fail "starts not counted"
sleep 0.5
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = 'am_worker_none'")" = 0 ] ||
	fail "a database without the extension kept a worker"

echo "# premake: partitions exist from now to premake ahead"
ahead=$(q "SELECT count(*) FROM activity_monitor._partitions() WHERE upper > now()")
q "SELECT activity_monitor.configure(premake => 10)" >/dev/null
am_wait_for 15 "$db" "SELECT count(*) = 11 FROM activity_monitor._partitions() WHERE upper > now()" ||
	fail "premake 10 not honoured: $(q "SELECT count(*) FROM activity_monitor._partitions() WHERE upper > now()")"
# the worker read the numbers _worker_partitions() returned, and logs them
msg="activity_monitor: created $((11 - ahead)) and retired 0 partitions of activity_monitor.activity in database \"$db\""
deadline=$(($(date +%s) + 5))
until grep -qF "$msg" "$PGHOST/server.log"; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "the server log lacks: $msg"
	sleep 0.1
done

echo "# hourly partitions appear without manual calls; old ones are retired"
q "SELECT activity_monitor.configure(partition_interval => '1 hour', premake => 3, retention => '2 hours', retention_mode => 'drop')" >/dev/null
# make room: retire the daily partitions by hand (they hold nothing yet)
for p in $(q "SELECT part FROM activity_monitor._partitions()"); do q "DROP TABLE $p" >/dev/null; done
# an old hour made with a "now" in the past: the worker must retire it
q "SELECT activity_monitor.configure(retention_mode => 'none')" >/dev/null
q "SELECT activity_monitor.maintain(now() - interval '3 days')" >/dev/null
old=$(q "SELECT count(*) FROM activity_monitor._partitions() WHERE upper < now() - interval '2 days'")
[ "$old" -ge 1 ] || fail "could not make old partitions"
q "SELECT activity_monitor.configure(retention => '2 hours', retention_mode => 'drop')" >/dev/null
am_wait_for 15 "$db" "SELECT count(*) = 4 FROM activity_monitor._partitions() WHERE upper > now()" ||
	fail "hourly partitions not created by the worker"
am_wait_for 15 "$db" "SELECT count(*) = 0 FROM activity_monitor._partitions() WHERE upper <= now() - interval '2 hours'" ||
	fail "old partitions not retired by the worker"
am_wait_for 5 "$db" "SELECT partitions_retired >= $old AND partitions_created >= 4 FROM activity_monitor.worker_status" ||
	fail "worker_status counts wrong: $(q "SELECT partitions_created, partitions_retired FROM activity_monitor.worker_status")"
echo "  retired $old old hourly partitions, made 4 ahead"

echo "# detach mode keeps the table"
q "SELECT activity_monitor.maintain(now() - interval '5 hours')" >/dev/null || true
q "SELECT activity_monitor.configure(retention_mode => 'detach')" >/dev/null
q "SELECT activity_monitor.configure(retention_mode => 'none')" >/dev/null
q "SELECT activity_monitor.maintain(now() - interval '2 days')" >/dev/null
q "SELECT activity_monitor.configure(retention => '2 hours', retention_mode => 'detach')" >/dev/null
am_wait_for 15 "$db" "SELECT count(*) = 0 FROM activity_monitor._partitions() WHERE upper <= now() - interval '2 hours'" ||
	fail "old partitions not detached"
[ "$(q "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'activity_monitor' AND c.relname LIKE 'activity_p%' AND NOT c.relispartition")" -ge 1 ] ||
	fail "detached partitions were not kept"

echo "# a failing duty is recorded and retried; the worker carries on"
q "UPDATE activity_monitor.config SET partition_interval = '0'" >/dev/null
am_wait_for 15 "$db" "SELECT last_error LIKE 'partition maintenance: %' AND running FROM activity_monitor.worker_status" ||
	fail "error not recorded"
q "UPDATE activity_monitor.config SET partition_interval = '1 hour'" >/dev/null
am_wait_for 15 "$db" "SELECT last_result LIKE 'created%' AND last_run_at > last_error_at FROM activity_monitor.worker_status" ||
	fail "worker did not recover"
grep -q "partition maintenance\|division by zero" "$PGHOST/server.log" || fail "error not in the server log"

echo "# kill -9: the postmaster restarts the worker, worker_status shows it"
pid=$(q "$worker_pid")
starts=$(q "SELECT starts FROM activity_monitor.worker_status")
kill -9 "$pid"
deadline=$(($(date +%s) + 60))
until [ "$(psql -X -At -d "$db" -c "SELECT pid <> $pid AND running AND starts > $starts FROM activity_monitor.worker_status" 2>/dev/null)" = t ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "worker not restarted after kill -9"
	sleep 0.2
done
echo "  restarted: $(q "SELECT pid, starts FROM activity_monitor.worker_status")"

echo "# writes during partition churn: no error, no lost event"
q "CREATE TABLE pay (id serial PRIMARY KEY, amount int, status text)" >/dev/null
q "SELECT activity_monitor.track('pay', 'payment', status_column => 'status')" >/dev/null
q "SELECT activity_monitor.configure(partition_interval => '1 day', premake => 7, retention_mode => 'none')" >/dev/null
q "SELECT activity_monitor.maintain()" >/dev/null
cat >"$AM_TMP/w.sql" <<'SQL'
BEGIN;
INSERT INTO pay (amount, status) VALUES (1, 'new');
UPDATE pay SET status = 'done' WHERE id = currval('pay_id_seq');
COMMIT;
SQL
pgbench -n -c 4 -j 2 -T 6 -f "$AM_TMP/w.sql" "$db" >"$AM_TMP/pgbench.out" 2>&1 &
bench=$!
# churn while the load runs: hourly partitions made far ahead and in the
# past, the past ones retired again (by a maintain() with the real "now")
i=0
while kill -0 $bench 2>/dev/null; do
	i=$((i + 1))
	q "SELECT activity_monitor.configure(partition_interval => '1 hour', premake => 6, retention_mode => 'none')" >/dev/null
	q "SELECT activity_monitor.maintain(now() + interval '30 days' + $i * interval '7 hours')" >/dev/null
	q "SELECT activity_monitor.maintain(now() - interval '10 days' - $i * interval '7 hours')" >/dev/null
	q "SELECT activity_monitor.configure(retention => '2 days', retention_mode => 'drop')" >/dev/null
	q "SELECT activity_monitor.maintain()" >/dev/null
done
wait $bench || { cat "$AM_TMP/pgbench.out"; fail "pgbench failed"; }
if grep -q "failed transactions: [1-9]" "$AM_TMP/pgbench.out"; then
	cat "$AM_TMP/pgbench.out"; fail "pgbench reported failures"
fi
# a drop that met lock_timeout while the load ran is retried by the worker
# (its WARNING says so): once the load is over it must get through
am_wait_for 30 "$db" "SELECT count(*) = 0 FROM activity_monitor._partitions() WHERE upper <= now() - interval '2 days'" ||
	fail "past partitions made during the load were not retired: $(q "SELECT count(*) FROM activity_monitor._partitions() WHERE upper <= now() - interval '2 days'")"
rows=$(q "SELECT count(*) FROM pay")
events=$(q "SELECT count(*) FROM activity_monitor.activity WHERE table_name = 'public.pay'")
[ "$events" = $((rows * 2)) ] || fail "events $events, expected $((rows * 2))"
echo "  $rows transactions, $events events, $i maintenance runs during the load"
q "SELECT activity_monitor.configure(partition_interval => '1 day', retention_mode => 'none')" >/dev/null

echo "# DROP EXTENSION stops the worker; CREATE EXTENSION brings it back"
q "DROP EXTENSION activity_monitor CASCADE" >/dev/null 2>&1
am_wait_for 15 "$db" "SELECT NOT EXISTS ($worker_pid)" || fail "worker still running after DROP EXTENSION"
# the schema stays, holding the partitions retention detached: CREATE
# EXTENSION does not move into a schema that holds anything
out=$(psql -X -q -d "$db" -c "CREATE EXTENSION activity_monitor" 2>&1 || true)
grep -q 'schema "activity_monitor" already exists and is not empty' <<<"$out" ||
	fail "CREATE EXTENSION into the schema holding detached partitions: $out"
q "DROP SCHEMA activity_monitor CASCADE" >/dev/null 2>&1
q "CREATE EXTENSION activity_monitor" >/dev/null
am_wait_for 15 "$db" "SELECT EXISTS ($worker_pid)" || fail "no worker after CREATE EXTENSION again"
am_wait_for 15 "$db" "SELECT last_run_at IS NOT NULL FROM activity_monitor.worker_status" || fail "no run after re-create"

psql -X -q -c "ALTER SYSTEM RESET activity_monitor.naptime" -c "ALTER SYSTEM RESET activity_monitor.min_retention" -c "SELECT pg_reload_conf()" >/dev/null
psql -X -q -d postgres -c "DROP DATABASE $db WITH (FORCE)" -c "DROP DATABASE am_worker_none" >/dev/null
echo "ok"
