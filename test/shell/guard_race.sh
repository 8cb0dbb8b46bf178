#!/usr/bin/env bash
# The DDL guard and a name race (issue 10): the table's owner (no
# activity_monitor role) has a decoy table of the tracked table's name first
# on its search_path.  Session B drops the decoy in an open transaction;
# session A runs a guarded command on the unqualified name and waits for the
# decoy's lock; B commits and A's command resolves the name again, now to
# the tracked table.  The guard must judge the table the command acts on:
# A is refused (SQLSTATE 42501) and the capture trigger is still there,
# enabled.  Run for ALTER TABLE ... DISABLE TRIGGER and DROP TRIGGER.
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster), AM_ROOT, AM_TMP.  Exit 0 =
# pass.  Every wait has a deadline.
set -euo pipefail
db=am_guard_race
role=am_race_owner
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/guard_race
rm -rf "$work"
mkdir -p "$work"
holder=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -n "$holder" ] && kill "$holder" 2>/dev/null || true
	am_db_drop
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
}
trap cleanup EXIT

am_db_new
psql -X -q -d postgres -c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role LOGIN" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL || fail "setup failed"
CREATE EXTENSION activity_monitor;
CREATE SCHEMA tw AUTHORIZATION $role;
CREATE SCHEMA decoy AUTHORIZATION $role;
CREATE TABLE tw.accounts (id int PRIMARY KEY, balance int);
ALTER TABLE tw.accounts OWNER TO $role;
SELECT activity_monitor.track('tw.accounts', 'payment');
SQL

# wait (deadline) until SQL $1 answers $2
wait_until() {
	local deadline=$(($(date +%s) + 30))
	until [ "$(q "$1")" = "$2" ]; do
		[ "$(date +%s)" -le "$deadline" ] || fail "timed out waiting for: $1"
		sleep 0.1
	done
}

race() {
	local cmd=$1 name=$2 a
	psql -X -q -U "$role" -d "$db" -c "CREATE TABLE decoy.accounts (id int PRIMARY KEY)" >/dev/null
	# B: drop the decoy, keep the transaction open
	rm -f "$work/fifo"
	mkfifo "$work/fifo"
	psql -X -At -U "$role" -d "$db" <"$work/fifo" >"$work/b.out" 2>&1 &
	holder=$!
	exec 3>"$work/fifo"
	echo "BEGIN; DROP TABLE decoy.accounts; SELECT 'dropped';" >&3
	local deadline=$(($(date +%s) + 30))
	until grep -q '^dropped$' "$work/b.out"; do
		[ "$(date +%s)" -le "$deadline" ] || fail "B did not drop the decoy: $(cat "$work/b.out")"
		sleep 0.1
	done
	# A: the guarded command on the unqualified name, waiting for the lock
	PGOPTIONS="-c search_path=decoy,tw" psql -X -q -U "$role" -d "$db" -v VERBOSITY=sqlstate \
		-c "$cmd" >"$work/a.out" 2>&1 &
	a=$!
	wait_until "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s USING (pid)
				WHERE NOT l.granted AND s.usename = '$role'" 1
	echo "COMMIT;" >&3
	exec 3>&-
	wait "$holder" || true
	holder=""
	wait "$a" || true
	[ "$(q "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tw.accounts'::regclass
			AND tgname = 'activity_monitor_capture' AND tgenabled = 'O'")" = 1 ] ||
		fail "$name: the capture trigger of tw.accounts was changed by its owner (A said: $(cat "$work/a.out"))"
	grep -q 'ERROR:  42501' "$work/a.out" || fail "$name: A was not refused: $(cat "$work/a.out")"
	echo "ok: $name refused after the name moved to the tracked table"
}

race "ALTER TABLE accounts DISABLE TRIGGER activity_monitor_capture" "DISABLE TRIGGER"
race "DROP TRIGGER activity_monitor_capture ON accounts" "DROP TRIGGER"
