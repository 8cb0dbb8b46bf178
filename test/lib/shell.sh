# Helpers of the shell tests (test/shell/*.sh) that work on one database,
# named by $db, on the cluster test/run.sh started:
#
#   db=am_something; . "$AM_ROOT/test/lib/shell.sh"
#   am_db_new            drop and create $db
#   am_db_drop           drop $db (for the test's cleanup trap)
#   q SQL                one statement, unaligned output, stop on error
#   fail MESSAGE         say why, with the worker's state, and exit 1
#   caught_up [SECONDS]  wait until the worker processed every transaction
#                        committed before the call
. "$AM_ROOT/test/lib/cluster.sh"
unset PGTZ PGDATABASE PGOPTIONS
# A command that fails without a word (a psql killed by SIGPIPE, say) still
# says where the script stopped under set -e.
trap 'echo "error: status $? at line $LINENO of $(basename "$0")"' ERR

am_db_drop() {
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}

am_db_new() {
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
}

q() { psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

fail() {
	echo "FAIL: $*"
	echo "worker: $(psql -X -At -d "$db" -c "SELECT pid, running, last_error FROM activity_monitor.worker_status" 2>&1)"
	exit 1
}

# Its last batch snapshot sees a transaction started after the call.
caught_up() {
	local mark
	mark=$(q "SELECT txid_current()")
	am_wait_for "${1:-30}" "$db" \
		"SELECT txid_visible_in_snapshot($mark, last_snapshot) FROM activity_monitor.alert_state" ||
		fail "the worker did not process the events committed before txid $mark"
}
