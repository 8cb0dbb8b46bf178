#!/usr/bin/env bash
# The update to 0.2.0 and the window bounds (issue 12, "Bounds"): rules of
# 0.1.0 whose window is longer than activity_monitor.max_window (1 day) are
# cut to it, each with a WARNING that names the rule, its old window and how
# to keep it; a count or distinct rule whose threshold is above the events a
# window keeps is left as it is with a WARNING (it cannot fire); other rules
# are untouched.  Afterwards create_rule() refuses a longer window.
set -euo pipefail
db=am_bounds_upgrade
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor VERSION '0.1.0';
SELECT activity_monitor.create_rule('week', '$.a == 1', within => '7 days', threshold => 3);
SELECT activity_monitor.create_rule('month', '$.a == 1', within => '1 mon', threshold => 100,
	measure => 'sum', measure_path => '$.x');
SELECT activity_monitor.create_rule('hour', '$.a == 1', within => '1 hour', threshold => 3);
SELECT activity_monitor.create_rule('huge', '$.a == 1', within => '1 hour', threshold => 5000);
SELECT activity_monitor.create_rule('each', '$.a == 1');
SQL
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "ALTER EXTENSION activity_monitor UPDATE" >/dev/null 2>"$AM_TMP/bounds_upgrade.err" ||
	{ cat "$AM_TMP/bounds_upgrade.err"; fail "the update failed"; }
cat "$AM_TMP/bounds_upgrade.err"
got=$(q "SELECT string_agg(format('%s:%s', name, coalesce(within::text, '-')), ' ' ORDER BY id) FROM activity_monitor.alert_rule")
[ "$got" = "week:1 day month:1 day hour:01:00:00 huge:01:00:00 each:-" ] ||
	fail "windows after the update: $got"
for rule in week month; do
	grep -q "WARNING:  alert rule \"$rule\": within cut from .* to 1 day by the update to activity_monitor 0.2.0" \
		"$AM_TMP/bounds_upgrade.err" || fail "no WARNING for rule $rule"
done
grep -q 'within cut from 7 days to 1 day' "$AM_TMP/bounds_upgrade.err" || fail "the WARNING does not say the old window"
grep -q 'HINT:  To keep the longer window, raise activity_monitor.max_window, then drop the rule and create it again.' \
	"$AM_TMP/bounds_upgrade.err" || fail "no HINT with the WARNING"
grep -q 'WARNING:  alert rule "huge" can never fire: its count threshold 5000 is above the 1000 events a window keeps' \
	"$AM_TMP/bounds_upgrade.err" || fail "no WARNING for rule huge"
n=$(grep -c "WARNING:  alert rule" "$AM_TMP/bounds_upgrade.err")
[ "$n" = 3 ] || fail "$n rule WARNINGs, expected 3 (week, month, huge)"
out=$(psql -X -q -d "$db" -c "SELECT activity_monitor.create_rule('again', '\$.a == 1', within => '7 days', threshold => 3)" 2>&1 || true)
grep -q "ERROR:  within must be at most 1 day" <<<"$out" || fail "create_rule() after the update: $out"
echo "ok"
