#!/usr/bin/env bash
# Regression test (issue 12, concurrency): DROP DATABASE while the
# database's worker waits to be restarted.  pg_terminate_backend() ends the
# worker with exit code 1, and the postmaster starts it again after 5 s; a
# database dropped in between made 0.1.0's worker fail to connect ("database
# ... does not exist") every 5 s, forever.  It must stop for good: one
# attempt at most, and nothing more in the log for two more restart delays.
set -euo pipefail
db=am_conc_dropdb
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT
log=$PGHOST/server.log
[ -f "$log" ] || fail "no server log at $log"

am_db_new
q "CREATE EXTENSION activity_monitor" >/dev/null
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
oid=$(q "SELECT oid FROM pg_database WHERE datname = current_database()")
pid=$(q "SELECT pid FROM activity_monitor.worker_status")
from=$(($(wc -c <"$log") + 1))
psql -X -q -d postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
am_wait_for 10 postgres "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid)" ||
	fail "the worker did not stop"
# within the restart delay (5 s)
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE $db" >/dev/null || fail "DROP DATABASE failed"
t0=$(date +%s)
new() { tail -c +"$from" "$log"; }
attempts() { new | grep -c -e "database $oid does not exist" -e "worker for database $oid stops: the database was dropped" || true; }
# the postmaster starts the worker again once, after its restart delay
deadline=$((t0 + 20))
while [ "$(attempts)" = 0 ] && [ "$(date +%s)" -le "$deadline" ]; do sleep 0.2; done
[ "$(attempts)" -ge 1 ] || fail "the postmaster did not start the worker again within 20 s"
# then two more restart delays: no further attempt
while [ "$(date +%s)" -le $((t0 + 16)) ]; do sleep 0.5; done
n=$(new | grep -c "database $oid does not exist" || true)
[ "$n" = 0 ] || fail "the worker of the dropped database tried to connect $n times: $(new | grep "database $oid")"
[ "$(attempts)" = 1 ] || fail "the worker of the dropped database came back: $(new | grep "database $oid")"
echo "ok: $(new | grep "database $oid")"
