#!/usr/bin/env bash
# Regression test (issue 12): an error while a session reloads its rule
# cache must not leave a partial cache.
#
# Session A writes (its cache holds rule r1), then r2 is created: A's cache
# is invalid.  Session B locks alert_rule; A's next write must reload the
# rules, waits for the lock and fails on lock_timeout.  B lets go.  A's next
# writes must see both rules: on the table it wrote before (0.1.0 kept the
# per-table rule list pointing into the freed cache, with the same
# generation number, and missed r2) and on a table it writes for the first
# time (0.1.0 had marked the emptied cache valid: no rule at all).
set -euo pipefail
db=am_rules_load_error
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/rules_load_error
rm -rf "$work"; mkdir -p "$work"
apid=""
bpid=""
cleanup() {
	exec 5>&- 6>&- 2>/dev/null || true
	[ -n "$apid" ] && kill "$apid" 2>/dev/null || true
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id int PRIMARY KEY, amount int);
CREATE TABLE refunds (id int PRIMARY KEY, amount int);
SELECT activity_monitor.track('payments', 'payment');
SELECT activity_monitor.track('refunds', 'payment');
SELECT activity_monitor.create_rule('r1', '$.new.amount > 10');
SQL
r1=$(q "SELECT id FROM activity_monitor.alert_rule WHERE name = 'r1'")

# wait until file $1 has a line $2
wait_line() {
	local deadline=$(($(date +%s) + 20))
	until grep -q "^$2\$" "$1"; do
		[ "$(date +%s)" -le "$deadline" ] || fail "waiting for \"$2\" in $1: $(cat "$1")"
		sleep 0.05
	done
}

mkfifo "$work/a.fifo" "$work/b.fifo"
psql -X -At -d "$db" <"$work/a.fifo" >"$work/a.out" 2>&1 &
apid=$!
exec 5>"$work/a.fifo"
psql -X -At -d "$db" <"$work/b.fifo" >"$work/b.out" 2>&1 &
bpid=$!
exec 6>"$work/b.fifo"

echo "INSERT INTO payments VALUES (1, 100); SELECT 'one';" >&5
wait_line "$work/a.out" one
q "SELECT activity_monitor.create_rule('r2', '\$.new.amount > 50')" >/dev/null
r2=$(q "SELECT id FROM activity_monitor.alert_rule WHERE name = 'r2'")

echo "BEGIN; LOCK TABLE activity_monitor.alert_rule IN ACCESS EXCLUSIVE MODE; SELECT 'locked';" >&6
wait_line "$work/b.out" locked
echo "SET lock_timeout = '300ms'; INSERT INTO payments VALUES (2, 100); SELECT 'two';" >&5
wait_line "$work/a.out" two
grep -q "lock timeout" "$work/a.out" || fail "the write did not fail on its lock wait: $(cat "$work/a.out")"
echo "COMMIT; SELECT 'unlocked';" >&6
wait_line "$work/b.out" unlocked

echo "RESET lock_timeout; INSERT INTO payments VALUES (3, 100); INSERT INTO refunds VALUES (4, 100); SELECT 'three';" >&5
wait_line "$work/a.out" three
grep -q "server closed\|terminated" "$work/a.out" && fail "session A crashed: $(cat "$work/a.out")"

expected="$(printf '%s\n' "$r1" "$r2" | sort | paste -sd,)"
for row in 3 4; do
	got=$(q "SELECT coalesce(string_agg(k, ',' ORDER BY k), 'none')
			 FROM activity_monitor.activity a, jsonb_object_keys(a.matched) k WHERE a.row_key = '$row' AND k <> 'k'")
	[ "$got" = "$expected" ] ||
		fail "row $row, written after a failed rule reload: expected rules $expected to match, got $got"
done
[ "$(q "SELECT count(*) FROM activity_monitor.activity WHERE row_key = '2'")" = 0 ] ||
	fail "the failed write was captured"
echo "ok"
