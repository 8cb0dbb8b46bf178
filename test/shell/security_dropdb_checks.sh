#!/usr/bin/env bash
# A database owner cannot keep the worker away with drops that fail: the
# utility hook takes the drop's own lock first, and stops the worker only
# once the drop can succeed.  Each case below stopped the worker of 0.2.0's
# first cut (and, in a loop, kept it away):
#   1. DROP DATABASE ... WITH (FORCE) while another session holds a lock on
#      the database: the drop waits (here until lock_timeout), the worker
#      runs meanwhile and after;
#   2. a prepared transaction in the database (FORCE): refused, the worker
#      is the same process;
#   3. FORCE against a superuser's session, which the owner may not
#      terminate: refused, the same worker;
#   4. no FORCE, another session connected: refused (after dropdb's wait),
#      the same worker, which alerted meanwhile;
#   5. the owner's drop stopped the worker, then its session is terminated
#      (FATAL, no ERROR) before the drop commits (here while it waits for a
#      lock on pg_database a superuser holds): the worker comes back (the
#      drop's transaction aborted; 0.2.0's first cut restarted it only on
#      an ERROR);
#   6. the usual way: the owner ends the other sessions and drops at once:
#      the drop succeeds and the worker is gone for good.
# A cluster of our own (max_prepared_transactions > 0).
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
(
	unset AM_PORT
	am_cluster_start "$AM_TMP/dropdb_checks" "max_prepared_transactions = 5" \
		"activity_monitor.naptime = 1" >/dev/null
	holders=()
	cleanup() {
		for h in "${holders[@]+"${holders[@]}"}"; do kill "$h" 2>/dev/null || true; done
		am_cluster_stop
	}
	trap cleanup EXIT
	db=am_dropdb_checks
	q() { psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE am_owner LOGIN" \
		-c "CREATE DATABASE $db OWNER am_owner" >/dev/null
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
CREATE TABLE pay (id int PRIMARY KEY, amount numeric);
GRANT ALL ON pay TO am_owner;
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
			ON e.id = a.event_id WHERE e.new_values ->> 'id' = '$n')" || fail "write $n was not alerted"
	}
	same_worker() {
		[ "$(q "$wpid")" = "$pid1" ] || fail "$1: the worker was stopped (pid $pid1, now $(q "$wpid"))"
	}
	owner_drop() {	# the owner's drop, its error on stdout
		psql -X -q -d postgres -U am_owner -c "SET lock_timeout = '3s'" -c "DROP DATABASE $db $1" 2>&1 || true
	}
	alerted

	echo "# 1. FORCE, while another session holds a lock on the database"
	coproc lock_proc { psql -X -q -d postgres -c "BEGIN" -c "COMMENT ON DATABASE $db IS 'held'" \
		-c "SELECT pg_sleep(60)" >/dev/null 2>&1; }
	holders+=("$lock_proc_PID")
	am_wait_for 10 postgres "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.objid
		WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass AND d.datname = '$db' AND l.granted)" ||
		fail "the lock is not held"
	owner_drop "WITH (FORCE)" >"$AM_TMP/dropdb_checks_1.out" &
	dropper=$!
	sleep 1.5
	same_worker "while the drop waited for the lock"
	wait "$dropper" || true
	grep -q "lock timeout" "$AM_TMP/dropdb_checks_1.out" || fail "unexpected: $(cat "$AM_TMP/dropdb_checks_1.out")"
	psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%'
		AND pid <> pg_backend_pid()" >/dev/null
	same_worker "after the drop timed out"
	alerted
	echo "  the drop waited with the worker running, and timed out; worker $pid1 untouched"

	echo "# 2. FORCE, with a prepared transaction in the database"
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -U am_owner -c "BEGIN" -c "INSERT INTO pay VALUES (1000, 1)" \
		-c "PREPARE TRANSACTION 'am_hold'" >/dev/null
	out=$(owner_drop "WITH (FORCE)")
	grep -q "is being used by prepared transaction" <<<"$out" || fail "unexpected: $out"
	same_worker "by a drop refused for a prepared transaction"
	q "ROLLBACK PREPARED 'am_hold'" >/dev/null
	alerted
	echo "  refused; worker untouched"

	echo "# 3. FORCE, against a superuser's session"
	coproc su_proc { psql -X -q -d "$db" -c "SELECT pg_sleep(60)" >/dev/null 2>&1; }
	holders+=("$su_proc_PID")
	am_wait_for 10 postgres "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = '$db' AND query LIKE '%pg_sleep(60)%')" ||
		fail "no superuser session"
	out=$(owner_drop "WITH (FORCE)")
	grep -qE "must be a superuser to terminate superuser process|permission denied to terminate process" <<<"$out" || fail "unexpected: $out"
	same_worker "by a drop refused for a session the owner may not end"
	echo "  refused; worker untouched"

	echo "# 4. no FORCE, with another session connected"
	t0=$(date +%s)
	out=$(owner_drop "")
	grep -q "is being accessed by other users" <<<"$out" || fail "unexpected: $out"
	same_worker "by a drop refused for another session"
	alerted
	echo "  refused after $(($(date +%s) - t0)) s; worker untouched and alerting"

	echo "# 5. the dropping session terminated after the worker stopped"
	psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db'
		AND backend_type = 'client backend'" >/dev/null
	coproc pglock_proc { psql -X -q -d postgres -c "BEGIN" -c "LOCK TABLE pg_database IN SHARE MODE" \
		-c "SELECT pg_sleep(60)" >/dev/null 2>&1; }
	holders+=("$pglock_proc_PID")
	am_wait_for 10 postgres "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'pg_database'::regclass
		AND mode = 'ShareLock' AND granted)" || fail "pg_database is not locked"
	psql -X -q -d postgres -U am_owner -c "DROP DATABASE $db" >/dev/null 2>&1 &
	dropper=$!
	am_wait_for 20 postgres "SELECT NOT EXISTS ($wpid) AND EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE query = 'DROP DATABASE $db' AND wait_event_type = 'Lock')" ||
		fail "the drop did not stop the worker and wait for pg_database"
	psql -X -q -d postgres -U am_owner -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE query = 'DROP DATABASE $db'" >/dev/null
	wait "$dropper" 2>/dev/null || true
	psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%'
		AND pid <> pg_backend_pid()" >/dev/null
	[ "$(q "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 1 ] || fail "the database was dropped"
	am_wait_for 30 "$db" "SELECT EXISTS ($wpid)" || fail "the worker did not come back after the dropping session ended"
	alerted
	echo "  the worker came back ($(q "$wpid")), alerting"

	echo "# 6. the owner ends the other sessions and drops at once"
	oid=$(q "SELECT oid FROM pg_database WHERE datname = '$db'")
	psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db'
		AND backend_type = 'client backend'" >/dev/null
	out=$(psql -X -q -v ON_ERROR_STOP=1 -d postgres -U am_owner -c "DROP DATABASE $db" 2>&1) ||
		fail "the drop after ending the sessions failed: $out"
	sleep 6	# longer than the worker's restart time (5 s)
	[ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker'
		AND datid = $oid")" = 0 ] || fail "a worker for the dropped database"
	echo "ok"
)
