#!/usr/bin/env bash
# Nobody below the database's owner can stop its worker (issue 10), and a
# worker that exits for any reason but its database or extension going away
# comes back:
#   - a role with no privileges runs DROP DATABASE: "must be owner", and the
#     worker is still the same process;
#   - the owner's DROP DATABASE fails (another session is connected): the
#     worker is the same process and alerts (shell/security_dropdb_checks:
#     the other ways a drop fails); inside a transaction block it leaves the
#     worker alone too;
#   - pg_terminate_backend() of the worker (SIGTERM): it comes back;
#   - the owner's DROP DATABASE that succeeds: no worker, and the server log
#     shows no restart attempt for the dropped database.
set -euo pipefail
db=am_sec_dropdb
. "$AM_ROOT/test/lib/shell.sh"
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -n "${holder:-}" ] && kill "$holder" 2>/dev/null
	psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
		-c "DROP ROLE IF EXISTS am_nobody" -c "DROP ROLE IF EXISTS am_dbowner" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE am_nobody LOGIN" -c "CREATE ROLE am_dbowner LOGIN" \
	-c "CREATE DATABASE $db OWNER am_dbowner" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
CREATE TABLE pay (id int PRIMARY KEY, amount numeric);
SELECT activity_monitor.track('pay', 'payment');
SELECT activity_monitor.create_rule('any', '$.action == "insert"');
SQL
wpid="SELECT pid FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = '$db'"
am_wait_for 20 "$db" "SELECT EXISTS ($wpid)" || fail "no worker"
pid1=$(q "$wpid")

n=0
alerted() {	# a new write is alerted
	n=$((n + 1))
	q "INSERT INTO pay VALUES ($n, 1)" >/dev/null
	am_wait_for 30 "$db" "SELECT EXISTS (SELECT 1 FROM activity_monitor.alerts a JOIN activity_monitor.activity e
		ON e.id = a.event_id WHERE e.row_key = '{\"id\": $n}' OR e.new_values ->> 'id' = '$n')" ||
		fail "write $n was not alerted"
}
alerted

echo "# DROP DATABASE by a role without privileges"
out=$(psql -X -q -d postgres -U am_nobody -c "DROP DATABASE $db" 2>&1 || true)
grep -q "must be owner of database $db" <<<"$out" || fail "unexpected: $out"
sleep 1
[ "$(q "$wpid")" = "$pid1" ] || fail "the worker was stopped (or replaced) by a drop that failed its permission check"
alerted
echo "  refused, worker $pid1 untouched"

echo "# the owner's DROP DATABASE fails: another session is connected"
coproc holder_proc { psql -X -q -d "$db" -c "SELECT pg_sleep(60)" >/dev/null 2>&1; }
holder=$holder_proc_PID
am_wait_for 10 postgres "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = '$db' AND query LIKE '%pg_sleep(60)%')" ||
	fail "no holding session"
out=$(psql -X -q -d postgres -U am_dbowner -c "DROP DATABASE $db" 2>&1 || true)
grep -q "is being accessed by other users" <<<"$out" || fail "unexpected: $out"
psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db' AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$holder" 2>/dev/null || true; holder=""
[ "$(q "$wpid")" = "$pid1" ] || fail "the worker was stopped (or replaced) by a drop that failed for another session"
alerted
out=$(psql -X -q -d postgres -U am_dbowner -c "\\set VERBOSITY verbose" -c "BEGIN" -c "DROP DATABASE $db" 2>&1 || true)
grep -q "25001: DROP DATABASE cannot run inside a transaction block" <<<"$out" || fail "unexpected: $out"
[ "$(q "$wpid")" = "$pid1" ] || fail "the worker was stopped (or replaced) by a drop inside a transaction block"
alerted
echo "  the drops failed; worker untouched by both, alerting"

echo "# pg_terminate_backend() of the worker, while a role without privileges holds advisory locks"
# 0.1.0's keys: the one-worker lock (a worker that cannot take it exits for
# good) and the maintenance and rollup locks (the worker would wait forever)
coproc locker_proc { psql -X -q -d "$db" -U am_nobody -c "SELECT pg_advisory_lock(1633907817, 1986883438),
	pg_advisory_lock(1634038889, 1836016238), pg_advisory_lock(1634038889, 1919905900), pg_sleep(120)" >/dev/null 2>&1; }
holder=$locker_proc_PID
am_wait_for 10 postgres "SELECT count(*) = 3 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'advisory' AND a.usename = 'am_nobody' AND l.granted" || fail "the locks are not held"
since=$(q "SELECT now()")
q "SELECT pg_terminate_backend($pid1)" >/dev/null
am_wait_for 30 "$db" "SELECT EXISTS ($wpid) AND ($wpid) <> $pid1" || fail "the worker did not come back after SIGTERM"
alerted
am_wait_for 30 "$db" "SELECT last_run_at > '$since' FROM activity_monitor.worker_state" ||
	fail "partition maintenance did not run while the locks were held"
psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'am_nobody'" >/dev/null
wait "$holder" 2>/dev/null || true; holder=""
echo "  back (pid $(q "$wpid")), alerting and maintaining"

echo "# the owner's DROP DATABASE that succeeds"
oid=$(q "SELECT oid FROM pg_database WHERE datname = '$db'")
mark=$(wc -l <"$PGHOST/server.log")
out=$(psql -X -q -v ON_ERROR_STOP=1 -d postgres -U am_dbowner -c "DROP DATABASE $db" 2>&1) || fail "the owner could not drop the database: $out"
sleep 8	# longer than the worker's restart time (5 s)
[ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datid = $oid")" = 0 ] ||
	fail "a worker for the dropped database"
if tail -n +"$mark" "$PGHOST/server.log" | grep -q "database $oid does not exist"; then
	fail "the worker of the dropped database was restarted"
fi
echo "ok"
