#!/usr/bin/env bash
# Regression test (issue 12, concurrency): COMMIT PREPARED of a transaction
# with matched events wakes the worker.  The capturing backend wakes the
# worker when its transaction commits; a prepared transaction is committed
# later, often by another backend, and 0.1.0's alerts then waited for the
# naptime.  A cluster of our own (max_prepared_transactions > 0) with a
# naptime of 600 s: the alert must arrive within 30 s.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
(
	unset AM_PORT
	am_cluster_start "$AM_TMP/commit_prepared" "max_prepared_transactions = 5" \
		"activity_monitor.naptime = 600" >/dev/null
	trap am_cluster_stop EXIT
	q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id int PRIMARY KEY);
SELECT activity_monitor.track('t', 'system');
SELECT activity_monitor.create_rule('each', '$.action == "insert"', tables => '{t}', channel => 'am_prepared');
SQL
	am_wait_for 15 postgres "SELECT running AND last_run_at IS NOT NULL FROM activity_monitor.worker_status" ||
		fail "no worker"
	# a plain commit wakes the worker (and shows it is past its first round)
	q "INSERT INTO t VALUES (1)" >/dev/null
	am_wait_for 30 postgres "SELECT count(*) = 1 FROM activity_monitor.alerts" || fail "no alert after a plain commit"
	psql -X -q -v ON_ERROR_STOP=1 -c "BEGIN" -c "INSERT INTO t VALUES (2)" -c "PREPARE TRANSACTION 'am_p'" >/dev/null
	# the worker sleeps for its naptime; commit from another session
	t0=$(date +%s.%N)
	q "COMMIT PREPARED 'am_p'" >/dev/null
	am_wait_for 30 postgres "SELECT count(*) = 2 FROM activity_monitor.alerts" ||
		fail "no alert within 30 s of COMMIT PREPARED (naptime 600 s)"
	echo "ok: alert $(echo "$(date +%s.%N) - $t0" | bc) s after COMMIT PREPARED"
)
