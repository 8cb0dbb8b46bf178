#!/usr/bin/env bash
# make demo: activity_monitor at work on a small online gaming platform.
#
#   test/demo/run.sh          install what is missing (apt, as root), build and
#                             install the extension and the consumer, start a
#                             throwaway cluster in /tmp/activity_monitor_demo
#                             (replacing the previous demo's), then run the demo
#   test/demo/run.sh stop     stop and remove the demo cluster (with
#                             DEMO_USE_EXISTING=1: drop the demo database)
#
# The demo creates the platform's tables and tracks them (schema.sql), installs
# a rule pack (rules.sql), starts the bundled consumer, activity_monitor_consume,
# on the rule pack's channels, simulates a day of traffic with one suspicious
# scenario per rule woven in (simulate.sql) while printing each alert as the
# consumer receives it, and ends with what a back office sees.  Every alert shown
# was fired by the extension's worker from captured events and printed by the
# consumer; the script only formats the consumer's JSON lines.
#
# Environment:
#   DEMO_USE_EXISTING=1  use the server that PGHOST/PGPORT/PGUSER point to (a
#                        superuser; activity_monitor installed there, best
#                        preloaded) instead of a throwaway cluster; the database
#                        activity_monitor_demo is dropped and created again
#   DEMO_SKIP_BUILD=1    no apt, make or make install
#   DEMO_DIR             the throwaway cluster's directory (/tmp/activity_monitor_demo)
#   DEMO_PACE            pause after each simulated hour, in seconds (0.25)
#   NO_COLOR             no colours even on a terminal
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
demo_dir=${DEMO_DIR:-/tmp/activity_monitor_demo}
db=activity_monitor_demo
pace=${DEMO_PACE:-0.25}
channels=(fraud security compliance operations)
t0=$(date +%s%N)

export PATH=/usr/lib/postgresql/15/bin:$PATH
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	tty=1
	b=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' yel=$'\e[33m' cya=$'\e[36m' grn=$'\e[32m' off=$'\e[0m' clr=$'\r\e[K'
else
	tty=
	b='' dim='' red='' yel='' cya='' grn='' off='' clr=''
fi

die() { printf '%sdemo: %s%s\n' "$clr" "$*" "$off" >&2; exit 1; }
step() { printf '\n%s== %s ==%s\n' "$b" "$*" "$off"; }
existing() { [ "${DEMO_USE_EXISTING:-0}" = 1 ]; }
# elapsed since $1 (date +%s%N), as "12.3 s" or "1 min 02 s"
elapsed() {
	local ds=$((($(date +%s%N) - $1) / 100000000))
	if [ $ds -ge 600 ]; then
		printf '%d min %02d s' $((ds / 600)) $((ds % 600 / 10))
	else
		printf '%d.%d s' $((ds / 10)) $((ds % 10))
	fi
}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
# show COMMENT SQL: the query a back-office application would run, and its result
# show [-x] COMMENT SQL: the query a back-office application would run, and its
# result (-x: expanded, one line per column)
show() {
	local x=()
	[ "$1" = -x ] && { x=(-x); shift; }
	printf '\n%s%s%s\n%s%s%s\n' "$dim" "$1" "$off" "$cya" "$2" "$off"
	psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P null='' "${x[@]}" -d "$db" -c "$2" ||
		die "query failed"
}
# wait_for SECONDS SQL: until the query returns t
wait_for() {
	local deadline=$(($(date +%s) + $1))
	while [ "$(date +%s)" -le "$deadline" ]; do
		[ "$(psql -X -At -d "$db" -c "$2" 2>/dev/null)" = t ] && return 0
		sleep 0.2
	done
	return 1
}

usage() {
	sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

stop_demo() {
	if existing; then
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" &&
			echo "dropped database $db"
		return
	fi
	if [ -f "$demo_dir/data/postmaster.pid" ]; then
		. "$root/test/lib/cluster.sh"
		am_as_owner "$AM_PGBIN/pg_ctl" -D "$demo_dir/data" -m fast -w stop >/dev/null 2>&1 ||
			am_as_owner "$AM_PGBIN/pg_ctl" -D "$demo_dir/data" -m immediate -w stop >/dev/null 2>&1
	fi
	if [ -d "$demo_dir" ]; then
		rm -rf "$demo_dir" && echo "stopped and removed the demo cluster in $demo_dir"
	fi
	return 0
}

case "${1:-run}" in
run) ;;
stop) stop_demo; exit ;;
-h | --help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac

printf '%sactivity_monitor demo%s: a day on a small online gaming platform, watched by a back office\n' "$b" "$off"

# --- packages, build, install ----------------------------------------------------
if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
	step "1. install what is missing, build, install"
	tb=$(date +%s%N)
	log=$(mktemp /tmp/activity_monitor_demo_build.XXXXXX)
	missing=""
	for p in postgresql-15 postgresql-server-dev-15 libpq-dev make gcc; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		[ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root, or apt-get install them first)"
		echo "apt-get install$missing"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >"$log" 2>&1 ||
			{ tail -20 "$log"; die "apt-get install failed"; }
	fi
	make -s -C "$root" >"$log" 2>&1 ||
		{ cat "$log"; die "make failed"; }
	if [ "$(id -u)" = 0 ] || [ -w "$(pg_config --pkglibdir)" ]; then
		make -s -C "$root" install >>"$log" 2>&1 ||
			{ cat "$log"; die "make install failed"; }
	else
		echo "make install needs root: sudo make install"
		sudo make -s -C "$root" install >>"$log" 2>&1 ||
			{ cat "$log"; die "make install failed"; }
	fi
	rm -f "$log"
	build_time=$(elapsed "$tb")
	echo "built and installed activity_monitor and activity_monitor_consume ($build_time)"
fi

consume=$root/activity_monitor_consume
[ -x "$consume" ] || consume=$(pg_config --bindir)/activity_monitor_consume
[ -x "$consume" ] || die "activity_monitor_consume not found: run make first"

# --- the server -------------------------------------------------------------------
cpid='' fpid='' work=''
cleanup() {
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null
	[ -n "$fpid" ] && wait "$fpid" 2>/dev/null
	existing && [ -n "$work" ] && rm -rf "$work"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "2. the server"
if existing; then
	psql -X -q -At -d postgres -c "SELECT 1" >/dev/null ||
		die "cannot connect to the server PGHOST/PGPORT point to (DEMO_USE_EXISTING=1)"
	work=$(mktemp -d /tmp/activity_monitor_demo_work.XXXXXX)
	chmod 755 "$work"
	echo "using the server at ${PGHOST:-localhost}:${PGPORT:-5432} as ${PGUSER:-$(id -un)}"
	[ "$(psql -X -At -d postgres -c "SELECT current_setting('shared_preload_libraries') ~ 'activity_monitor'")" = t ] ||
		echo "note: activity_monitor is not in shared_preload_libraries: alerts come every activity_monitor.naptime"
else
	stop_demo >/dev/null
	. "$root/test/lib/cluster.sh"
	am_cluster_start "$demo_dir" "activity_monitor.naptime = 1" || die "could not start the demo cluster"
	work=$demo_dir/work
	mkdir -p "$work"
	chmod 755 "$work"
	echo "started a throwaway cluster: $PGDATA, port $PGPORT, activity_monitor preloaded, naptime 1 s"
fi
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ||
	die "could not create the database $db"
echo "created database $db"

# --- the platform ------------------------------------------------------------------
step "3. the platform's tables, tracked (test/demo/schema.sql)"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$here/schema.sql" >/dev/null || die "schema.sql failed"
show "-- what is recorded, table by table" \
	"SELECT table_name, kind, subject_column AS subject, status_column AS status, critical_columns AS critical, critical_statuses AS \"critical statuses\", ignore_columns AS ignored, redact_columns AS redacted FROM activity_monitor.tracked_tables ORDER BY table_name;"

# --- the rule pack -----------------------------------------------------------------
step "4. the rule pack (test/demo/rules.sql)"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$here/rules.sql" >/dev/null || die "rules.sql failed"
show "-- the rules, by channel" \
	"SELECT name, severity, channel, description FROM activity_monitor.rules ORDER BY channel, id;"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$here/simulate.sql" >/dev/null || die "simulate.sql failed"

wait_for 30 "SELECT coalesce((SELECT running FROM activity_monitor.worker_status), false)" ||
	die "the activity_monitor worker is not running in $db (shared_preload_libraries? max_worker_processes?)"
naptime=$(q "SELECT extract(epoch FROM coalesce(current_setting('activity_monitor.naptime', true), '10s')::interval)::int")
naptime=${naptime:-10}

# --- the day, and the alerts as the consumer prints them -------------------------
step "5. a simulated day, and the alerts as activity_monitor_consume prints them"

# One formatted line per JSON line of the consumer (kept as is in alerts.jsonl).
# jf KEY: the value of KEY in $line (string unquoted, number, or empty for null)
jf() {
	local re="\"$1\"[[:space:]]*:[[:space:]]*(\"(([^\"\\\\]|\\\\.)*)\"|(-?[0-9][0-9.eE+-]*|true|false|null))"
	if [[ $line =~ $re ]]; then v=${BASH_REMATCH[2]}${BASH_REMATCH[4]}; else v=; fi
	[ "$v" = null ] && v=
	return 0
}
format_alerts() {
	local line v id rule sev ch key val kind action atype aid at col
	while IFS= read -r line; do
		printf '%s\n' "$line" >>"$work/alerts.jsonl"
		jf alert_id; id=$v; jf rule; rule=$v; jf severity; sev=$v; jf channel; ch=$v
		jf group_key; key=$v; jf value; val=$v; jf kind; kind=$v; jf action; action=$v
		jf actor_type; atype=$v; jf actor_id; aid=$v; jf occurred_at; at=${v:11:12}
		case $sev in critical) col=$red ;; warning) col=$yel ;; *) col=$cya ;; esac
		printf '%s%sALERT%s #%-3s %s%-8s%s %-31s %-11s key=%-14s value=%-8s %s %s by %s %s at %s\n' \
			"$clr" "$b" "$off" "$id" "$col" "$sev" "$off" "$rule" "$ch" "$key" "$val" \
			"$kind" "$action" "$atype" "$aid" "$at"
	done
}
rm -f "$work/alerts.fifo" "$work/alerts.jsonl"
: >"$work/alerts.jsonl"
mkfifo "$work/alerts.fifo" || die "mkfifo failed"
chans=()
for c in "${channels[@]}"; do chans+=(-c "$c"); done
echo "$ activity_monitor_consume -d \"dbname=$db\" ${chans[*]} --from-id 0 | (format each JSON line)"
"$consume" -d "dbname=$db application_name=demo_consumer" "${chans[@]}" --from-id 0 \
	>"$work/alerts.fifo" 2>"$work/consumer.err" &
cpid=$!
format_alerts <"$work/alerts.fifo" &
fpid=$!
wait_for 15 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'demo_consumer' AND state = 'idle')" ||
	{ cat "$work/consumer.err"; die "the consumer did not start listening"; }
echo "(00:00 to 23:59 of the platform's day, compressed into seconds; the progress line counts captured events)"
echo

progress() {	# HOURS_DONE EVENTS
	local pct=$(($1 * 100 / 24)) bar
	bar=$(printf '%*s' $(($1 * 30 / 24)) '' | tr ' ' '#')
	printf '%s[%-30s] %3d%%  simulated %02d:00  %s events captured' "$clr" "$bar" "$pct" "$1" "$2"
	if [ -z "$tty" ]; then echo; fi
}
ts=$(date +%s%N)
[ -n "$tty" ] && progress 0 0
for h in $(seq 0 23); do
	# each statement hour_plan() returns (a player's visit, the back office's
	# hour, a scenario) runs as a client request of its own
	printf 'SET synchronous_commit = off;\nSELECT demo.hour_plan(%d) \\gexec\n' "$h" |
		psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null 2>"$work/simulate.err" ||
		{ cat "$work/simulate.err"; die "the simulation failed in hour $h"; }
	events=$(q "SELECT to_char(count(*), 'FM999,999,990') FROM activity_monitor.activity")
	if [ -n "$tty" ] || [ $(((h + 1) % 6)) = 0 ]; then progress $((h + 1)) "$events"; fi
	sleep "$pace"
done
[ -n "$tty" ] && echo
sim_time=$(elapsed "$ts")
end_ts=$(q "SELECT clock_timestamp()")

# the worker has processed everything committed, the consumer has printed every
# alert, the per-minute rollup has caught up with the events
wait_s=$((naptime * 3 + 60))
wait_for "$wait_s" "SELECT last_run_at > '$end_ts' FROM activity_monitor.alert_state" ||
	die "the worker did not process the day's events within $wait_s s"
# the absences of the pack fire at their deadline, seconds after their scenario
wait_for 30 "SELECT NOT EXISTS (SELECT FROM demo.planted p WHERE NOT EXISTS (SELECT FROM activity_monitor.alerts a WHERE a.rule_name = p.rule_name AND a.group_key = p.group_key))" || true
nalerts=$(q "SELECT count(*) FROM activity_monitor.alerts")
deadline=$(($(date +%s) + 30))
while [ "$(wc -l <"$work/alerts.jsonl")" -lt "$nalerts" ] && [ "$(date +%s)" -le "$deadline" ]; do sleep 0.2; done
kill "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
wait "$fpid" 2>/dev/null
cpid='' fpid=''
received=$(sort -u "$work/alerts.jsonl" | wc -l)
echo "day simulated in $sim_time: $(q "SELECT to_char(count(*), 'FM999,999,990') FROM activity_monitor.activity") events captured, $nalerts alerts fired by the worker, $received printed by the consumer"
wait_for "$wait_s" "SELECT (SELECT coalesce(sum(events), 0) FROM activity_monitor.activity_minute) = (SELECT count(*) FROM activity_monitor.activity)" ||
	echo "note: the dashboard's per-minute rollup has not caught up yet (it runs every naptime)"

# --- the back office -----------------------------------------------------------------
step "6. the back office"
printf '\n%s%s%s\n%s%s%s\n' "$dim" "-- the activity dashboard: one query, one row (counts from the worker's per-minute rollup);" "$off" \
	"$cya" "SELECT * FROM activity_monitor.dashboard;" "$off"
printf '%s%s%s\n' "$dim" "-- (its JSON columns rendered one line per element, as the back-office page shows them)" "$off"
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <<'SQL' || die "query failed"
SELECT concat_ws(E'\n',
	format('%-19s%s', 'generated_at', generated_at),
	format('%-19s%s', 'active_sessions', active_sessions),
	format('%-19s%s critical, %s warning, %s info', 'open_alerts',
		   open_alerts ->> 'critical', open_alerts ->> 'warning', open_alerts ->> 'info'),
	format('%-19s%-10s %-9s %10s %10s %10s', 'events', 'kind', 'actor', 'last 5 min', 'last hour', 'last day'),
	(SELECT string_agg(format('%-19s%-10s %-9s %10s %10s %10s', '', e ->> 'kind', e ->> 'actor_type',
							  to_char((e ->> 'last_5m')::bigint, 'FM999,990'),
							  to_char((e ->> 'last_hour')::bigint, 'FM999,990'),
							  to_char((e ->> 'last_day')::bigint, 'FM999,990')), E'\n' ORDER BY n)
	 FROM jsonb_array_elements(events) WITH ORDINALITY AS x(e, n)),
	format('%-19s%s', 'busiest_employees',
		   (SELECT string_agg(format('%s %s actions', b ->> 'employee_id', b ->> 'actions'), ', ' ORDER BY n)
			FROM jsonb_array_elements(busiest_employees) WITH ORDINALITY AS x(b, n))),
	format('%-19s%s', 'latest_critical', ''),
	(SELECT string_agg(format('%-19s%s  %-8s %-6s %-27s %-18s %s', '',
							  to_char((c ->> 'occurred_at')::timestamptz, 'HH24:MI:SS.MS'), c ->> 'kind', c ->> 'action',
							  format('%s %s', c ->> 'table_name', c ->> 'row_key'),
							  format('%s %s', c ->> 'actor_type', c ->> 'actor_id'),
							  concat_ws(' -> ', c ->> 'status_from', c ->> 'status_to')), E'\n' ORDER BY n)
	 FROM jsonb_array_elements(latest_critical) WITH ORDINALITY AS x(c, n)))
FROM activity_monitor.dashboard;
SQL
show "-- security and fraud desks: open alerts, critical first" \
	"SELECT id, severity, rule_name, group_key, value, kind, action, subject_id, actor_type, actor_id, to_char(fired_at, 'HH24:MI:SS.MS') AS fired FROM activity_monitor.open_alerts;"
show "-- support: account 1150's latest events (the password-guessing victim)" \
	"SELECT to_char(occurred_at, 'HH24:MI:SS.MS') AS at, kind, action, actor_type, actor_id, status_from, status_to, client_addr, new_values FROM activity_monitor.timeline WHERE subject_id = '1150' LIMIT 12;"
show "-- administrators: what employee emp-04 did today" \
	"SELECT to_char(occurred_at, 'HH24:MI:SS.MS') AS at, table_name, row_key, reason, actor_context ->> 'section' AS section, old_values, new_values FROM activity_monitor.admin_actions WHERE employee_id = 'emp-04' AND occurred_at >= date_trunc('day', now()) LIMIT 15;"
show "-- compliance: critical changes made by employees in the last hour" \
	"SELECT to_char(occurred_at, 'HH24:MI:SS.MS') AS at, actor_id AS employee, actor_reason AS reason, table_name, row_key, status_from, status_to, old_values, new_values FROM activity_monitor.critical_changes WHERE actor_type = 'employee' AND occurred_at >= now() - interval '1 hour' LIMIT 10;"
show "-- compliance: the status transitions of the day marked critical (into the tables' critical_statuses)" \
	"SELECT table_name, status_from, status_to, count(*) AS events FROM activity_monitor.critical_changes WHERE action = 'update' AND status_to IS DISTINCT FROM status_from AND occurred_at >= date_trunc('day', now()) GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC;"
show "-- fraud analysts: backtest before tuning, how often failed_login_burst would fire today at thresholds 3, 4 and 5 (5 is live)" \
	"SELECT t.threshold, count(b.*) AS alerts, count(DISTINCT b.group_key) AS accounts FROM unnest('{3,4,5}'::numeric[]) t(threshold) LEFT JOIN LATERAL activity_monitor.test_rule('\$.action == \"insert\" && \$.new.status == \"failed\"', date_trunc('day', now()), kinds => '{login}', within => '10 minutes', threshold => t.threshold, cooldown => '30 minutes') b ON true GROUP BY 1 ORDER BY 1;"
show "-- the rules' counters" \
	"SELECT name, events_matched, alerts_fired, evaluation_errors FROM activity_monitor.rules ORDER BY id;"

# --- the check -----------------------------------------------------------------------
step "7. check"
ok=1
nrules=$(q "SELECT count(*) FROM activity_monitor.alert_rule")
silent=$(q "SELECT string_agg(r.name, ', ' ORDER BY r.id) FROM activity_monitor.alert_rule r WHERE NOT EXISTS (SELECT 1 FROM activity_monitor.alerts a WHERE a.rule_id = r.id)")
missed=$(q "SELECT string_agg(p.rule_name || ' (' || p.group_key || ')', ', ') FROM demo.planted p WHERE NOT EXISTS (SELECT 1 FROM activity_monitor.alerts a WHERE a.rule_name = p.rule_name AND a.group_key = p.group_key)")
stray=$(q "SELECT string_agg(a.rule_name || ' (' || a.group_key || ')', ', ' ORDER BY a.id) FROM activity_monitor.alerts a WHERE NOT EXISTS (SELECT 1 FROM demo.planted p WHERE p.rule_name = a.rule_name AND p.group_key = a.group_key)")
if [ -z "$silent" ]; then
	echo "${grn}ok${off}    every rule of the pack fired: $nrules of $nrules rules, $nalerts alerts"
else
	echo "${red}FAIL${off}  rules that did not fire: $silent"; ok=
fi
if [ -z "$missed" ]; then
	echo "${grn}ok${off}    each planted scenario tripped its rule"
else
	echo "${red}FAIL${off}  planted scenarios without their alert: $missed"; ok=
fi
if [ -z "$stray" ]; then
	echo "${grn}ok${off}    no alert on the ordinary traffic"
else
	echo "${red}FAIL${off}  alerts on the ordinary traffic: $stray"; ok=
fi
if [ "$received" -ge "$nalerts" ]; then
	echo "${grn}ok${off}    the consumer printed all $nalerts alerts"
else
	echo "${red}FAIL${off}  the consumer printed $received of $nalerts alerts"; ok=
fi

if [ -z "$ok" ]; then
	err=$(q "SELECT last_error || ' (' || last_error_at || ')' FROM activity_monitor.worker_status WHERE last_error IS NOT NULL")
	[ -z "$err" ] || echo "      the worker's last error: $err"
fi

# --- explore, stop --------------------------------------------------------------------
step "explore"
conn="psql"
[ -n "${PGHOST:-}" ] && conn="$conn -h $PGHOST"
[ -n "${PGPORT:-}" ] && conn="$conn -p $PGPORT"
[ -n "${PGUSER:-}" ] && conn="$conn -U $PGUSER"
echo "  $conn -d $db"
echo "  e.g. SELECT * FROM activity_monitor.critical_changes LIMIT 20;"
echo "       SELECT * FROM activity_monitor.user_sessions WHERE active LIMIT 20;"
echo "       SELECT activity_monitor.acknowledge(1, 'looking into it');"
if existing; then
	echo "  remove:  DEMO_USE_EXISTING=1 $here/run.sh stop     (drops the database $db)"
else
	pre=""
	[ -n "${DEMO_DIR:-}" ] && pre="DEMO_DIR=$demo_dir "
	echo "  stop and remove the demo cluster:  $pre$here/run.sh stop"
fi
echo
if [ -n "${tb:-}" ]; then
	echo "elapsed: $(elapsed "$t0") (of which build and install $build_time)"
else
	echo "elapsed: $(elapsed "$t0")"
fi
[ -n "$ok" ] || exit 1
exit 0
