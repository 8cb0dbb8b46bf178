#!/usr/bin/env bash
# Regression test (a bug found while building the first release, fixed):
# create_rule() of a name another transaction is creating at the same time
# fails with the unique index's error (23505, 'duplicate key value violates
# unique constraint "alert_rule_name_key"') instead of the documented
# 42710 'rule "dup" already exists': the EXISTS check cannot see the other
# transaction's row, the INSERT then waits for it and fails.
set -euo pipefail
db=am_alerts_race
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/alerts_race
rm -rf "$work"; mkdir -p "$work"
xpid=""
cleanup() {
	exec 5>&- 2>/dev/null || true
	[ -n "$xpid" ] && kill "$xpid" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
psql -X -q -d "$db" -c "CREATE EXTENSION activity_monitor" >/dev/null
mkfifo "$work/x.fifo"
psql -X -At -d "$db" <"$work/x.fifo" >"$work/x.out" 2>&1 &
xpid=$!
exec 5>"$work/x.fifo"
echo "BEGIN; SELECT activity_monitor.create_rule('dup', '\$.a'); SELECT 'created';" >&5
deadline=$(($(date +%s) + 20))
until grep -q '^created$' "$work/x.out"; do
	[ "$(date +%s)" -le "$deadline" ] || fail "session X: $(cat "$work/x.out")"
	sleep 0.1
done
psql -X -At -d "$db" -c "\set VERBOSITY sqlstate" -c "SELECT activity_monitor.create_rule('dup', '\$.a')" >"$work/y.out" 2>&1 &
y=$!
# Y waits on X's row; commit X
am_wait_for 20 "$db" "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%create_rule(''dup''%')" ||
	fail "the second create_rule() did not wait"
echo "COMMIT;" >&5
wait "$y" || true
got=$(cat "$work/y.out")
[ "$got" = "ERROR:  42710" ] || fail "concurrent duplicate name: expected SQLSTATE 42710 (rule \"dup\" already exists), got: $got"
echo "ok"
