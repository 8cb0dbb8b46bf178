#!/usr/bin/env bash
# Regression test (a bug found while building the first release, fixed): a windowed
# rule loses its alert when an earlier event of the window commits after the
# worker has processed a later one.
#
# Rule: count of failed logins per subject, threshold 2 within 1 hour.
# Session X inserts failed login a (statement time t1) and keeps its
# transaction open; session Y inserts failed login b (t2 > t1) and commits;
# the worker processes b (its window holds only b: 1 < 2, no alert); then X
# commits a.  a's window (t1 - 1 hour, t1] holds only a (b is later), so no
# alert either.  Two failed logins within the hour, threshold 2: no alert at
# all.  Had both committed before the worker's batch, b would have fired
# (b's window holds a and b: before 1 < 2 <= 2 after) - the outcome depends
# on when the worker ran.  Expected: exactly one alert, at b, value 2,
# event_ids {a, b}.  (Fixed: a key's window ends at its newest event, so the
# late a counts with b; the alert fires when a is processed.)
set -euo pipefail
db=am_alerts_late
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/alerts_late
rm -rf "$work"; mkdir -p "$work"
xpid=""
cleanup() {
	exec 5>&- 2>/dev/null || true
	[ -n "$xpid" ] && kill "$xpid" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE logins (id int PRIMARY KEY, account_id int, success boolean);
SELECT activity_monitor.track('logins', 'login', subject_column => 'account_id');
SELECT activity_monitor.create_rule('two_failures', '$.new.success == false',
	within => '1 hour', threshold => 2, channel => 'am_late');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"

mkfifo "$work/x.fifo"
psql -X -At -d "$db" <"$work/x.fifo" >"$work/x.out" 2>&1 &
xpid=$!
exec 5>"$work/x.fifo"
echo "BEGIN; INSERT INTO logins VALUES (1, 7, false); SELECT 'a inserted';" >&5
deadline=$(($(date +%s) + 20))
until grep -q '^a inserted$' "$work/x.out"; do
	[ "$(date +%s)" -le "$deadline" ] || fail "session X: $(cat "$work/x.out")"
	sleep 0.1
done
q "INSERT INTO logins VALUES (2, 7, false)" >/dev/null
caught_up				# the worker has processed b alone
echo "COMMIT;" >&5
am_wait_for 20 "$db" "SELECT count(*) = 2 FROM logins" || fail "a did not commit"
caught_up

got=$(q "SELECT coalesce(string_agg(format('%s value %s ids %s', x.group_key, x.value,
			(SELECT array_agg(a.row_key ORDER BY a.id) FROM activity_monitor.activity a WHERE a.id = ANY (x.event_ids))), '; '), 'none')
		 FROM activity_monitor.alerts x WHERE x.rule_name = 'two_failures'")
[ "$got" = "7 value 2 ids {1,2}" ] ||
	fail "two failed logins of account 7 within the hour, threshold 2, the earlier one committed last: expected one alert (7 value 2 ids {1,2}), got: $got"
echo "ok"
