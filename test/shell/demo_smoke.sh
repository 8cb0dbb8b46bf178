#!/usr/bin/env bash
# The demo (make demo, test/demo/run.sh) against the test cluster, twice (a
# second run starts over): it exits 0, every rule of its pack fired on its
# planted scenario and none on the ordinary traffic (checked here against the
# alerts table, not only by the demo's own check), and the consumer printed
# every alert.  No apt, make or install: DEMO_SKIP_BUILD=1 and the consumer
# built in $AM_ROOT.
set -euo pipefail
fail() { echo "FAIL: $*"; exit 1; }
db=activity_monitor_demo
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
out=$AM_TMP/demo.out

[ -x "$AM_ROOT/activity_monitor_consume" ] || fail "no consumer at $AM_ROOT/activity_monitor_consume"

cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET activity_monitor.naptime" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -X -q -d postgres -c "ALTER SYSTEM SET activity_monitor.naptime = 1" -c "SELECT pg_reload_conf()" >/dev/null

for run in 1 2; do
	echo "# demo run $run"
	t0=$(date +%s)
	st=0
	DEMO_USE_EXISTING=1 DEMO_SKIP_BUILD=1 DEMO_PACE=0 NO_COLOR=1 \
		bash "$AM_ROOT/test/demo/run.sh" >"$out" 2>&1 || st=$?
	echo "  exit $st after $(($(date +%s) - t0)) s; $(grep '^elapsed:' "$out" || echo 'no elapsed line')"
	[ "$st" = 0 ] || { tail -n 60 "$out"; fail "the demo exited with $st"; }

	nrules=$(q "SELECT count(*) FROM activity_monitor.alert_rule")
	nalerts=$(q "SELECT count(*) FROM activity_monitor.alerts")
	[ "$nrules" -ge 10 ] || fail "the rule pack has $nrules rules"

	silent=$(q "SELECT string_agg(name, ', ') FROM activity_monitor.alert_rule r
				WHERE NOT EXISTS (SELECT 1 FROM activity_monitor.alerts a WHERE a.rule_id = r.id)")
	[ -z "$silent" ] || fail "rules that did not fire: $silent"
	missed=$(q "SELECT string_agg(rule_name || ' ' || group_key, ', ') FROM demo.planted p
				WHERE NOT EXISTS (SELECT 1 FROM activity_monitor.alerts a
								  WHERE a.rule_name = p.rule_name AND a.group_key = p.group_key)")
	[ -z "$missed" ] || fail "planted scenarios without their alert: $missed"
	[ "$(q "SELECT count(DISTINCT rule_name) FROM demo.planted")" = "$nrules" ] ||
		fail "not every rule has a planted scenario"
	stray=$(q "SELECT string_agg(rule_name || ' ' || group_key, ', ') FROM activity_monitor.alerts a
			   WHERE NOT EXISTS (SELECT 1 FROM demo.planted p
								 WHERE p.rule_name = a.rule_name AND p.group_key = a.group_key)")
	[ -z "$stray" ] || fail "alerts on the ordinary traffic: $stray"
	echo "  $nrules rules fired, $nalerts alerts, all on planted scenarios"

	# the demo's backtest of failed_login_burst at the live threshold gives
	# the live alerts (the demo writes in one session: commit order is time order)
	grep -q 'fraud analysts: backtest' "$out" || fail "the demo showed no backtest"
	diff=$(q "WITH bt AS (SELECT b.event_id, b.group_key, b.value, b.event_ids
		         FROM activity_monitor.alert_rule r, activity_monitor.test_rule(r.predicate,
		              (SELECT min(occurred_at) FROM activity_monitor.activity), kinds => r.kinds,
		              within => r.within, threshold => r.threshold, group_by => r.group_by,
		              cooldown => r.cooldown) b WHERE r.name = 'failed_login_burst'),
		    live AS (SELECT event_id, group_key, value, event_ids FROM activity_monitor.alerts
		             WHERE rule_name = 'failed_login_burst')
		    SELECT count(*) FROM ((SELECT * FROM bt EXCEPT ALL SELECT * FROM live)
		                          UNION ALL (SELECT * FROM live EXCEPT ALL SELECT * FROM bt)) d")
	[ "$diff" = 0 ] || fail "test_rule() of failed_login_burst differs from its live alerts in $diff rows"

	lines=$(grep -c '^ALERT #' "$out" || true)
	[ "$lines" -ge "$nalerts" ] || fail "the consumer printed $lines alert lines for $nalerts alerts"
	for id in $(q "SELECT id FROM activity_monitor.alerts ORDER BY id"); do
		rule=$(q "SELECT rule_name FROM activity_monitor.alerts WHERE id = $id")
		grep -Eq "^ALERT #$id +[a-z]+ +$rule " "$out" || fail "alert $id ($rule) was not printed"
	done
	echo "  the consumer printed $lines alert lines"

	# critical_changes holds the chosen transitions only: a critical update
	# changed a critical column or went into one of its table's critical_statuses
	routine=$(q "SELECT string_agg(DISTINCT format('%s %s -> %s', c.table_name, c.status_from, c.status_to), ', ')
				 FROM activity_monitor.critical_changes c
				 JOIN activity_monitor.tracked_tables t ON t.table_name = c.table_name
				 WHERE c.action = 'update' AND NOT c.new_values ?| t.critical_columns::text[]
				   AND NOT coalesce(c.status_to = ANY (t.critical_statuses), false)")
	[ -z "$routine" ] || fail "routine transitions in critical_changes: $routine"
	chosen=$(q "SELECT string_agg(DISTINCT format('%s -> %s', c.table_name, c.status_to), ', ' ORDER BY format('%s -> %s', c.table_name, c.status_to))
				FROM activity_monitor.critical_changes c
				JOIN activity_monitor.tracked_tables t ON t.table_name = c.table_name
				WHERE c.action = 'update' AND c.status_to = ANY (t.critical_statuses)")
	# (which of them a run makes is random: a risk employee suspends an
	# account with some probability, payments fail at random)
	[ -n "$chosen" ] || fail "no transition into a chosen critical status in critical_changes"
	[ "$(q "SELECT count(*) FROM activity_monitor.activity WHERE action = 'update'
			AND status_to IN ('completed', 'closed', 'settled') AND status_from IS DISTINCT FROM status_to")" -gt 0 ] &&
		[ "$(q "SELECT count(*) FROM activity_monitor.critical_changes WHERE action = 'update'
			AND status_to IN ('completed', 'closed', 'settled') AND table_name <> 'public.accounts'
			AND NOT new_values ? 'amount'")" = 0 ] ||
		fail "routine completions, logouts or settlements are critical, or the demo made none"
	echo "  critical transitions: $chosen"

	grep -q "every rule of the pack fired" "$out" || fail "the demo's own check line is missing"
	grep -q "no alert on the ordinary traffic" "$out" || fail "the demo's ordinary-traffic line is missing"
	grep -q "^SELECT \* FROM activity_monitor.dashboard;" "$out" || fail "no dashboard"
	grep -q "^active_sessions " "$out" || fail "no dashboard row"
	grep -q "psql -h .* -p $PGPORT" "$out" || fail "no connection hint"
	# the dashboard's rollup saw every event
	[ "$(q "SELECT (SELECT sum(events) FROM activity_monitor.activity_minute) = (SELECT count(*) FROM activity_monitor.activity)")" = t ] ||
		fail "the per-minute rollup does not count every event"
done
echo "ok"
