#!/usr/bin/env bash
# A redacted column never reaches an alert or a NOTIFY payload (issue 10):
# with the worker and committed data, rules group and measure by a redacted
# column (directly and through row_key, a composite key holding it) and the
# subject is redacted; then a superuser renames the column (allowed by the
# DDL guard, recorded, the settings follow) and the same holds under the new
# name.  A psql session LISTENs; the test asserts that alerts fired and were
# notified (so it is not vacuous) and that no activity row, alert row or
# payload holds a secret.
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster with activity_monitor
# preloaded), AM_ROOT, AM_TMP.  Exit 0 = pass.  Every wait has a deadline.
set -euo pipefail
db=am_guard_redact
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/guard_redact
rm -rf "$work"
mkdir -p "$work"
listener=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -n "$listener" ] && kill "$listener" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL' || fail "setup failed"
CREATE EXTENSION activity_monitor;
CREATE TABLE creds (acct int, pwh text, amount int, PRIMARY KEY (acct, pwh));
SELECT activity_monitor.track('creds', 'login', subject_column => 'pwh', redact_columns => '{pwh}');
SELECT activity_monitor.create_rule('by_key', '$.new.amount > 0', group_by => '$.row_key');
SELECT activity_monitor.create_rule('by_secret', '$.new.amount > 0', group_by => '$.new.pwh',
	within => '1 hour', threshold => 1, measure => 'sum', measure_path => '$.new.amount');
SELECT activity_monitor.create_rule('by_subject', '$.new.amount > 0');
SQL

# a listener on the alerts channel: psql reading statements from a fifo
mkfifo "$work/fifo"
psql -X -At -d "$db" <"$work/fifo" >"$work/listen.out" 2>&1 &
listener=$!
exec 3>"$work/fifo"
echo "LISTEN activity_monitor_alerts; SELECT 'listening';" >&3
am_wait_for 20 "$db" "SELECT true" || fail "server not answering"
deadline=$(($(date +%s) + 20))
until grep -q '^listening$' "$work/listen.out"; do
	[ "$(date +%s)" -le "$deadline" ] || fail "the listener did not start: $(cat "$work/listen.out")"
	sleep 0.1
done

q "INSERT INTO creds VALUES (1, 's3cret-one', 10), (2, 's3cret-two', 20)" >/dev/null
# allowed for a superuser: recorded, and the settings follow the column
q "ALTER TABLE creds RENAME COLUMN pwh TO pw_hash" >/dev/null
[ "$(q "SELECT redact_columns::text || subject_column FROM activity_monitor.tracked")" = "{pw_hash}pw_hash" ] ||
	fail "settings did not follow the rename: $(q "SELECT * FROM activity_monitor.tracked")"
[ "$(q "SELECT count(*) FROM activity_monitor.activity WHERE action = 'ddl' AND critical")" = 1 ] ||
	fail "the rename was not recorded as a critical event"
q "SELECT activity_monitor.create_rule('by_new_name', '\$.new.amount > 0', group_by => '\$.new.pw_hash')" >/dev/null
q "INSERT INTO creds VALUES (3, 's3cret-three', 30)" >/dev/null
q "UPDATE creds SET pw_hash = 's3cret-four', amount = amount + 1 WHERE acct = 1" >/dev/null
caught_up 60

alerts=$(q "SELECT count(*) FROM activity_monitor.alerts")
[ "$alerts" -ge 10 ] || fail "expected alerts of every rule, got $alerts: $(q "SELECT rule_name, group_key FROM activity_monitor.alerts")"
deadline=$(($(date +%s) + 30))
while :; do
	echo "SELECT 1;" >&3
	n=$(grep -c '^Asynchronous notification "activity_monitor_alerts"' "$work/listen.out" || true)
	[ "$n" -ge "$alerts" ] && break
	[ "$(date +%s)" -le "$deadline" ] || fail "$n notifications for $alerts alerts"
	sleep 0.2
done

leaks=$(q "SELECT (SELECT count(*) FROM activity_monitor.activity a WHERE a::text LIKE '%s3cret%')
		|| ' ' || (SELECT count(*) FROM activity_monitor.alerts a WHERE a::text LIKE '%s3cret%')")
[ "$leaks" = "0 0" ] || fail "secrets in activity / alerts rows: $leaks
$(q "SELECT rule_name, group_key, subject_id FROM activity_monitor.alerts WHERE alerts::text LIKE '%s3cret%'")"
if grep -q 's3cret' "$work/listen.out"; then
	fail "a NOTIFY payload holds a secret: $(grep s3cret "$work/listen.out" | head -3)"
fi
masked=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE group_key LIKE '%[redacted]%'")
[ "$masked" -ge 4 ] || fail "expected masked group keys, got $masked"
echo "ok: $alerts alerts, $n notifications, $masked masked group keys, no secret anywhere"
