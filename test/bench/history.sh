#!/usr/bin/env bash
# Years of history (issue 16): the back-office queries on 31 days and on
# HISTORY_DAYS (default 1825, five years) of history, side by side.  Each
# history is laid down the way operation would leave it, in a database of
# its own:
#   1. CREATE EXTENSION, then activity_monitor.maintain(now => ...) travelling
#      from HISTORY_DAYS ago to today, day by day (HISTORY_STEP_DAYS; the
#      default premake of 2 makes 3 days a call), each call its own
#      transaction (a superuser may pass any past "now");
#   2. the events (HISTORY_EVENTS, the 31-day history HISTORY_SHORT_EVENTS)
#      spread evenly over the period, in time order, bulk-inserted through
#      the parent (INSERT ... SELECT, as queries.sh) one transaction per 30
#      days: 100,000 accounts, 5 % employee actions (50 employees), a third
#      inserts, two thirds status changes, payment status changes critical;
#   3. VACUUM ANALYZE and the dashboard's rollup of the last day; the
#      seals the worker wrote meanwhile deleted and the whole history
#      sealed by one first round (_seal()), as after an update from 0.1.0
#      (the events were written with past dates: no later round takes
#      them); then,
#      with pgbench capture running (workload.sql), 20 s more with merging
#      off (as it was while the history was laid down) and then merging
#      switched on: the worker's own maintenance at the real time until a
#      run of it finds nothing to do ("created 0, retired 0" after the
#      load) and its merges of old partitions into months and years are
#      done (no merge in progress, no month or year due with more than one
#      partition); the capture latencies of both phases are reported.
# verify() then checks the whole sealed history of both databases, merged.
# The queries are the documented way to ask them: account_timeline(),
# employee_actions() and recent_critical_changes() with time bounds sent as
# timestamptz literals (HISTORY_BOUNDS=literal, the default), the dashboard
# view; the views' form of the account, employee and critical queries is
# measured too, for reference (not in the probe).
# Then, for each query: p50 and p90 over HISTORY_RUNS executions as psql
# \timing sees them (a fresh statement each run, planning included, one
# session, one warm-up run first), the median planning and execution time
# of EXPLAIN (ANALYZE, TIMING OFF), and the relation locks the query holds
# in an open transaction (pg_locks of the session; in brackets those
# beyond the 16 fast-path slots, which occupy the shared lock table).
# Last, the concurrency probe: HISTORY_SESSIONS sessions each run one of
# the queries inside a transaction and keep it open until all have run,
# while pgbench runs the capture workload (workload.sql on schema.sql's
# tracked tables) all along and HISTORY_PGBENCH_SECONDS more once every
# session has run; errors (out of shared memory) of both are counted.
# Last, the long history is dumped (pg_dump -Fc) and restored into a
# database of its own, where it must hold the same number of events and
# verify() must report nothing.
#
#   test/bench/history.sh                       (about an hour: two 10M-event loads)
#   HISTORY_SMOKE=1 test/bench/history.sh        (about a minute)
#   HISTORY_DAYS=730 HISTORY_EVENTS=1000000 test/bench/history.sh
#
# Environment: HISTORY_DAYS (1825), HISTORY_EVENTS (10000000),
# HISTORY_SHORT_DAYS (31), HISTORY_SHORT_EVENTS (= HISTORY_EVENTS),
# HISTORY_STEP_DAYS (1), BENCH_PARTITION_INTERVAL (e.g. '1 hour': today's
# partitions that long, the days before one each, as after day merges), HISTORY_BOUNDS (literal: the time bounds as
# timestamptz literals; now: as now() - interval), HISTORY_RUNS (20), HISTORY_EXPLAIN_RUNS (5),
# HISTORY_SESSIONS (100), HISTORY_PGBENCH_SECONDS (10), HISTORY_SMOKE=1
# (defaults 400 days in steps of 3, 200,000 events, 5 runs, 3 explains,
# 10 sessions, 2 s), HISTORY_KEEP=1 (keep the two databases, am_history_short and
# am_history_long, for study by hand), HISTORY_REUSE=1 (measure the kept
# databases again instead of loading), BENCH_RESULTS_DIR (test/bench/results:
# the report is also written to history-latest.md there, and the plan of
# each query, EXPLAIN (ANALYZE, BUFFERS), to history-latest-plans.md),
# BENCH_USE_EXISTING=1, HISTORY_MERGE_WAIT (seconds to wait for the
# worker's merges, 7200; smoke 900).  The own cluster gets max_connections =
# HISTORY_SESSIONS + 30 and the default max_locks_per_transaction.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)

if [ "${HISTORY_SMOKE:-0}" = 1 ]; then
	d_days=400 d_events=200000 d_step=3 d_runs=5 d_explain=3 d_sessions=10 d_pgb=2 d_merge_wait=900
else
	d_days=1825 d_events=10000000 d_step=1 d_runs=20 d_explain=5 d_sessions=100 d_pgb=10 d_merge_wait=7200
fi
long_days=${HISTORY_DAYS:-$d_days}
long_events=${HISTORY_EVENTS:-$d_events}
short_days=${HISTORY_SHORT_DAYS:-31}
short_events=${HISTORY_SHORT_EVENTS:-$long_events}
step=${HISTORY_STEP_DAYS:-$d_step}
runs=${HISTORY_RUNS:-$d_runs}
explain_runs=${HISTORY_EXPLAIN_RUNS:-$d_explain}
sessions=${HISTORY_SESSIONS:-$d_sessions}
pgb_secs=${HISTORY_PGBENCH_SECONDS:-$d_pgb}
keep=${HISTORY_KEEP:-0}
results_dir=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}

BENCH_CLUSTER_CONF=("max_connections = $((sessions + 30))")
. "$BENCH_DIR/common.sh"
bench_cluster_up
mkdir -p "$results_dir"
work=$BENCH_WORK
dbs="am_history_short am_history_long"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$work/notes"
: >"$work/plans.md"
# note TEXT: a line for the report (from subshells too)
note() { echo "$*" >>"$work/notes"; }

# Background jobs of this script (gate session, pgbench loop, probe
# sessions) end with it; the databases go unless HISTORY_KEEP=1.
history_cleanup() {
	local j
	for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
	if [ "$keep" != 1 ]; then
		for d in $dbs am_history_long_restored; do
			"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
		done
	fi
	bench_cleanup
}
trap history_cleanup EXIT

p() { local d=$1; shift; "${BENCH_PSQL[@]}" -d "$d" "$@"; }

# Median, and percentile $1 (0..1, linear interpolation) of the numbers on stdin.
pct() {
	sort -g | awk -v q="$1" '{ v[NR] = $1 } END {
		if (NR == 0) { print "–"; exit }
		r = 1 + q * (NR - 1); lo = int(r); f = r - lo
		x = v[lo]; if (lo < NR) x += f * (v[lo + 1] - v[lo])
		printf "%.2f\n", x }'
}

# --- laying down a history ------------------------------------------------------------

# load DB DAYS EVENTS: the history of DAYS days ending now, in database DB.
load() {
	local db=$1 days=$2 n=$3 t0 t1 t2 t3
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
	t0=$(date +%s)
	# (merging waits until the events are in: the worker then merges them
	# at the real time, as it merges an installation of 0.2.0's first layout)
	p "$db" -c "CREATE EXTENSION activity_monitor" -c "SELECT activity_monitor.configure(merge_interval => '0')"
	# 1. maintenance travelling through the period, a transaction per call
	p "$db" <<SQL
DO \$travel\$
DECLARE
	t0	timestamptz := now();
BEGIN
	FOR i IN REVERSE $days .. 0 BY $step LOOP
		PERFORM activity_monitor.maintain(t0 - i * interval '1 day');
		COMMIT;
	END LOOP;
	PERFORM activity_monitor.maintain(t0);
END
\$travel\$;
SQL
	# BENCH_PARTITION_INTERVAL: today (UTC) in partitions that long, the
	# days before it one partition each, as the worker's day merges leave
	# an installation with hourly partitions
	if [ -n "${BENCH_PARTITION_INTERVAL:-}" ]; then
		p "$db" <<SQL
DO \$hours\$
DECLARE
	q	regclass;
BEGIN
	FOR q IN SELECT x.part FROM activity_monitor._partitions() x
			 WHERE x.lower >= date_trunc('day', now(), 'UTC') LOOP
		EXECUTE format('DROP TABLE %s', q);
	END LOOP;
	PERFORM activity_monitor.configure(partition_interval => '$BENCH_PARTITION_INTERVAL');
	PERFORM activity_monitor.maintain(now => g)
	FROM generate_series(date_trunc('day', now(), 'UTC'), now(), '$BENCH_PARTITION_INTERVAL'::interval) g;
	PERFORM activity_monitor.maintain();
END
\$hours\$;
SQL
	fi
	t1=$(date +%s)
	# 2. the events, in time order, a transaction per 30 days of them
	p "$db" <<SQL
DO \$events\$
DECLARE
	n		bigint := $n;
	span	float8 := $days * 86400.0;
	t_end	timestamptz := date_trunc('second', now());
	t_start	timestamptz := date_trunc('second', now()) - $days * interval '1 day';
	chunk	bigint := greatest(1, ceil($n * 30.0 / $days))::bigint;
	lo		bigint := 1;
	hi		bigint;
BEGIN
	WHILE lo <= n LOOP
		hi := least(n, lo + chunk - 1);
		INSERT INTO activity_monitor.activity
			(occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id,
			 actor_reason, status_from, status_to, critical, old_values, new_values,
			 db_user, application_name, backend_pid)
		SELECT t_start + ((g - 1) * span / n) * interval '1 second',
			   k.kind, CASE WHEN g % 3 = 0 THEN 'insert' ELSE 'update' END,
			   'public.' || k.kind || 's', (g / 3)::text, s.subject,
			   CASE WHEN g % 20 = 0 THEN 'employee' WHEN g % 2 = 0 THEN 'user' ELSE 'service' END,
			   CASE WHEN g % 20 = 0 THEN 'emp-' || (g / 20) % 50 ELSE 'u-' || s.subject END,
			   CASE WHEN g % 20 = 0 THEN 'ticket ' || g % 5000 END,
			   CASE WHEN g % 3 = 1 THEN 'pending' END, CASE WHEN g % 3 = 1 THEN 'completed' END,
			   g % 3 = 1 AND k.kind = 'payment',
			   CASE WHEN g % 3 <> 0 THEN jsonb_build_object('status', 'pending') END,
			   CASE WHEN g % 3 = 0 THEN jsonb_build_object('id', g / 3, 'amount', g % 1000, 'currency', 'EUR', 'status', 'pending')
					ELSE jsonb_build_object('status', 'completed') END,
			   'app', 'api', 1000 + g % 50
		FROM generate_series(lo, hi) g
		CROSS JOIN LATERAL (SELECT (ARRAY['payment','login','profile','game','provider'])[1 + g % 5] AS kind) k
		CROSS JOIN LATERAL (SELECT ((g * 48271) % 100000)::text AS subject) s;
		COMMIT;
		lo := hi + 1;
	END LOOP;
END
\$events\$;
SQL
	t2=$(date +%s)
	# 3. statistics, the dashboard's rollup, and the capture workload's tables
	p "$db" -c "VACUUM ANALYZE activity_monitor.activity" \
		-c "SELECT activity_monitor._rollup(now() - interval '1 day')" >/dev/null
	p "$db" -f "$BENCH_DIR/schema.sql" >/dev/null
	p "$db" >/dev/null <<'SQL'
SELECT activity_monitor.track('accounts', 'profile',
	subject_column => 'id', status_column => 'status',
	critical_columns => '{balance,kyc_level}', ignore_columns => '{updated_at}',
	redact_columns => '{password_hash}', critical_statuses => '{suspended,closed}');
SELECT activity_monitor.track('payments', 'payment',
	subject_column => 'account_id', status_column => 'status',
	critical_statuses => '{failed,refunded}');
SELECT activity_monitor.track('user_sessions', 'login',
	subject_column => 'account_id', status_column => 'status');
SQL
	t3=$(date +%s)
	# 4. the seals: the rounds the worker ran while the events went in
	# sealed none of them (they are back-dated: verify() would report them
	# as added), so they make way for a first round that seals the whole
	# history, as the first round after an update from 0.1.0 does
	sealed=$(p "$db" -At -q <<'SQL'
BEGIN;
DELETE FROM activity_monitor.seal;
SELECT events FROM activity_monitor._seal();
COMMIT;
SQL
	)
	t4=$(date +%s)
	read -r parts size <<<"$(p "$db" -At -F ' ' -c "SELECT count(*), pg_size_pretty(sum(pg_total_relation_size(relid)))
		FROM pg_partition_tree('activity_monitor.activity') WHERE isleaf")"
	echo "$db: $days days, $n events, $parts partitions, $size; maintenance travel $((t1 - t0)) s, events $((t2 - t1)) s, analyze $((t3 - t2)) s, $sealed events sealed in $((t4 - t3)) s" |
		tee -a "$work/loads" >&2
}

# capture_loop DB DIR: pgbench capture rounds of 5 s, transactions logged
# in DIR, until DIR/stop exists.
capture_loop() {
	local db=$1 dir=$2 r=0
	mkdir -p "$dir"
	while [ ! -e "$dir/stop" ]; do
		r=$((r + 1))
		pgbench -n -M simple -c 2 -j 2 -T 5 -f "$BENCH_DIR/workload.sql" -l --log-prefix="$dir/log.$r" "$db" \
			>"$dir/out.$r" 2>&1 || true
	done
}

# latencies DIR: "transactions p50 p99 max errors" of capture_loop's
# rounds in DIR, latencies in ms.
latencies() {
	local dir=$1
	cat "$dir"/log.* 2>/dev/null | awk '{ print $3 / 1000 }' >"$dir/lat"
	echo "$(wc -l <"$dir/lat") $(pct 0.5 <"$dir/lat") $(pct 0.99 <"$dir/lat") $(pct 1 <"$dir/lat") $(cat "$dir"/out.* | grep -c ERROR || true)"
}

# worker_done SINCE DB...: for each DB, capture with merging off for 20 s,
# then merging on; wait until the worker has run its maintenance at the
# real time after SINCE and found nothing to do, and has merged every month
# and year due, capture running all along.
worker_done() {
	local since=$1 db deadline t0 parts dir loop_pid
	local -a a b
	shift
	for db in "$@"; do
		dir=$work/merge_$db
		capture_loop "$db" "$dir/before" &
		loop_pid=$!
		sleep 20
		touch "$dir/before/stop"
		wait "$loop_pid" || true
		p "$db" -c "SELECT activity_monitor.configure(merge_interval => '1 year')" >/dev/null
		t0=$(date +%s)
		deadline=$((t0 + ${HISTORY_MERGE_WAIT:-$d_merge_wait}))
		capture_loop "$db" "$dir/during" &
		loop_pid=$!
		until [ "$(p "$db" -At -c "SELECT coalesce(bool_or(last_run_at > '$since' AND last_result = 'created 0, retired 0'), false)
				AND NOT EXISTS (SELECT 1 FROM activity_monitor.merge)
				AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relname LIKE 'activity\\_merged\\_%' OR relname LIKE 'activity\\_build\\_%')
				AND NOT EXISTS (SELECT 1 FROM activity_monitor._partitions() p
								GROUP BY date_trunc('month', p.lower, 'UTC')
								HAVING date_trunc('month', p.lower, 'UTC') + interval '1 month'
									   + (SELECT s.merge_after FROM activity_monitor.settings s) <= now()
								   AND count(*) > 1)
				FROM activity_monitor.worker_status")" = t ]; do
			if [ "$(date +%s)" -gt "$deadline" ]; then
				note "$db: the worker did not finish its maintenance and merges in time: $(p "$db" -At -c "SELECT last_run_at, last_result, last_merge, merge_in_progress, last_error FROM activity_monitor.worker_status")"
				break
			fi
			sleep 1
		done
		touch "$dir/during/stop"
		wait "$loop_pid" || true
		parts=$(p "$db" -At -c "SELECT count(*) || ' partitions (' || count(*) FILTER (WHERE c.relname ~ '_y[0-9]') || ' years, '
				|| count(*) FILTER (WHERE c.relname ~ '_m[0-9]') || ' months, ' || count(*) FILTER (WHERE c.relname ~ '_p[0-9]')
				|| ' days, the default), ' || (SELECT partitions_merged FROM activity_monitor.worker_status) || ' merged away'
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'activity_monitor.activity'::regclass")
		echo "$db after the worker's maintenance and merges ($(($(date +%s) - t0)) s after merging was switched on): $parts" |
			tee -a "$work/loads" >&2
		read -r -a a <<<"$(latencies "$dir/before")"
		read -r -a b <<<"$(latencies "$dir/during")"
		echo "$db capture (pgbench workload.sql, 2 clients) with merging off for 20 s: ${a[0]} transactions, latency p50 ${a[1]} / p99 ${a[2]} / max ${a[3]} ms, ${a[4]} errors; while the worker merged: ${b[0]} transactions, p50 ${b[1]} / p99 ${b[2]} / max ${b[3]} ms, ${b[4]} errors" |
			tee -a "$work/loads" >&2
	done
}

# --- seals and dump ---------------------------------------------------------------------

# verified DB WHAT: verify() over the whole history of DB, as a report
# line (a problem is also a note)
verified() {
	local db=$1 what=$2 t0 t1 out
	local -a a
	t0=$(date +%s.%N)
	out=$(p "$db" -At -F ' ' -c "SELECT (SELECT coalesce(sum(event_count), 0) FROM activity_monitor.seal WHERE kind = 'events'),
			(SELECT count(*) FROM activity_monitor.seal), count(v.*), coalesce(string_agg(DISTINCT v.problem, '/'), '-')
		FROM activity_monitor.verify() v" 2>&1) || { note "$db: verify() failed: $out"; return; }
	t1=$(date +%s.%N)
	read -r -a a <<<"$out"
	[ "${a[2]}" = 0 ] || note "$db: verify() $what reports ${a[2]} problems: ${a[3]}"
	echo "$db verify() $what: ${a[0]} events in ${a[1]} seals, ${a[2]} problems, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" |
		tee -a "$work/loads" >&2
}

# dump_restore DB: pg_dump -Fc of DB restored into DB_restored; the same
# number of events, and its seals verify
dump_restore() {
	local db=$1 r=${1}_restored t0 t1 t2 n1 n2
	t0=$(date +%s)
	if ! pg_dump -Fc -f "$work/$db.dump" "$db" 2>"$work/dump.err"; then
		note "pg_dump $db: $(head -n 1 "$work/dump.err")"
		return
	fi
	t1=$(date +%s)
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $r WITH (FORCE)" -c "CREATE DATABASE $r" >/dev/null ||
		{ note "could not create $r"; return; }
	pg_restore -d "$r" "$work/$db.dump" >"$work/restore.err" 2>&1 ||
		note "pg_restore $db: $(head -n 3 "$work/restore.err" | tr '\n' ' ')"
	t2=$(date +%s)
	n1=$(p "$db" -At -c "SELECT count(*) FROM activity_monitor.activity" 2>&1) || true
	n2=$(p "$r" -At -c "SELECT count(*) FROM activity_monitor.activity" 2>&1) || true
	[ "$n1" = "$n2" ] || note "$r holds $n2 events, $db $n1"
	echo "$db dump and restore: pg_dump -Fc $((t1 - t0)) s ($(du -m "$work/$db.dump" | cut -f1) MB), pg_restore $((t2 - t1)) s; $n2 events restored of $n1" |
		tee -a "$work/loads" >&2
	rm -f "$work/$db.dump"
	verified "$r" "of the restored dump"
}

# --- the queries ----------------------------------------------------------------------

# name|SQL; @S@ is an account (subject_id; above 10,000: the capture
# workload's accounts are 1 to 10,000), @E@ an employee number, both per
# run; @AGO:interval@ a time bound: now() - interval (HISTORY_BOUNDS=now,
# pruned only when the executor starts) or that instant as a timestamptz
# literal, as an application computing its bounds would send it
# (HISTORY_BOUNDS=literal: pruned at plan time; now() minus an interval is
# not, timestamptz - interval being only stable)
queries=(
	"an account's latest 50 events|SELECT * FROM activity_monitor.account_timeline('@S@', 50)"
	"an employee's day|SELECT * FROM activity_monitor.employee_actions('emp-@E@', NULL, since => @AGO:1 day@)"
	"critical changes of the last 7 days, first 20|SELECT * FROM activity_monitor.recent_critical_changes(20, since => @AGO:7 days@)"
	"an account's last 30 days|SELECT * FROM activity_monitor.account_timeline('@S@', NULL, since => @AGO:30 days@)"
	"the dashboard|SELECT * FROM activity_monitor.dashboard"
	"(reference) latest 50 through the timeline view|SELECT * FROM activity_monitor.timeline WHERE subject_id = '@S@' ORDER BY occurred_at DESC, id DESC LIMIT 50"
	"(reference) last 30 days through the timeline view|SELECT * FROM activity_monitor.timeline WHERE subject_id = '@S@' AND occurred_at >= @AGO:30 days@ ORDER BY occurred_at DESC, id DESC"
	"(reference) an employee's day through the admin_actions view|SELECT * FROM activity_monitor.admin_actions WHERE employee_id = 'emp-@E@' AND occurred_at >= @AGO:1 day@ ORDER BY occurred_at DESC, id DESC"
	"(reference) critical changes, 7 days, first 20, through the critical_changes view|SELECT * FROM activity_monitor.critical_changes WHERE occurred_at >= @AGO:7 days@ ORDER BY occurred_at DESC, id DESC LIMIT 20"
)
# the probe runs the first probe_queries of them
probe_queries=5
bounds=${HISTORY_BOUNDS:-literal}
case $bounds in
now | literal) ;;
*) echo "HISTORY_BOUNDS must be now or literal" >&2; exit 2 ;;
esac

# inst SQL I: the query for run I
inst() {
	local s=$1 iv
	s=${s//@S@/$((10001 + ($2 * 7919 + 13) % 89999))}
	s=${s//@E@/$(($2 % 50))}
	while [[ $s =~ @AGO:([^@]*)@ ]]; do
		iv=${BASH_REMATCH[1]}
		if [ "$bounds" = literal ]; then
			s=${s//"@AGO:$iv@"/"'$(date -u -d "now - $iv" '+%Y-%m-%d %H:%M:%S+00')'"}
		else
			s=${s//"@AGO:$iv@"/"now() - interval '$iv'"}
		fi
	done
	echo "$s"
}

# measure DB SQL: "p50 p90 planning execution locks beyond-fast-path"
measure() {
	local db=$1 sql=$2 i t p50 p90 plan exec locks
	{
		echo '\o /dev/null'
		echo "$(inst "$sql" 0);"
		echo '\timing on'
		for i in $(seq 1 "$runs"); do echo "$(inst "$sql" "$i");"; done
	} >"$work/timed.sql"
	if ! t=$(psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$work/timed.sql" 2>"$work/timed.err" |
		sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'); then
		echo "error error error error error error"
		note "$db, $sql: $(head -n 1 "$work/timed.err")"
		return
	fi
	p50=$(echo "$t" | pct 0.5)
	p90=$(echo "$t" | pct 0.9)
	for i in $(seq 1 "$explain_runs"); do
		echo "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) $(inst "$sql" "$i");"
	done >"$work/explain.sql"
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -f "$work/explain.sql" >"$work/explain.out" 2>&1 || true
	plan=$(sed -n 's/.*"Planning Time": \([0-9.]*\).*/\1/p' "$work/explain.out" | pct 0.5)
	exec=$(sed -n 's/.*"Execution Time": \([0-9.]*\).*/\1/p' "$work/explain.out" | pct 0.5)
	# the plan, kept for study (history-latest-plans.md)
	{
		echo "## $db: $sql"
		echo
		echo '```'
		psql -X -q -At -d "$db" -c "EXPLAIN (ANALYZE, BUFFERS, SETTINGS) $(inst "$sql" 1)" 2>&1
		echo '```'
		echo
	} >>"$work/plans.md"
	locks=$(psql -X -q -At -d "$db" 2>&1 <<SQL | tail -n 1
BEGIN;
\o /dev/null
$(inst "$sql" 1);
\o
SELECT count(*) || ' ' || count(*) FILTER (WHERE NOT fastpath) FROM pg_locks
WHERE pid = pg_backend_pid() AND locktype = 'relation'
  AND relation IS DISTINCT FROM 'pg_catalog.pg_locks'::regclass;
ROLLBACK;
SQL
	)
	[[ $locks =~ ^[0-9]+\ [0-9]+$ ]] || { note "$db, locks of $sql: $locks"; locks="error error"; }
	echo "$p50 $p90 $plan $exec $locks"
}

# --- the concurrency probe ------------------------------------------------------------

# probe DB: "sessions-ok out-of-shared-memory other-errors peak-locks
# peak-shared pgbench-transactions pgbench-errors pgbench-oom"
probe() {
	local db=$1 dir=$work/probe_$1 gate_pid i n deadline parked ended entry peak
	local ok oom other pgb_tx pgb_err pgb_oom
	rm -rf "$dir"
	mkdir -p "$dir"
	# the gate: an exclusive advisory lock every session waits for at the end
	PGAPPNAME=am_history_gate psql -X -At -d "$db" -c "SELECT pg_backend_pid(), pg_advisory_lock(1634038889, 16)" \
		-c "SELECT pg_sleep(3600)" >"$dir/gate.out" 2>&1 </dev/null &
	deadline=$(($(date +%s) + 30))
	until [ -s "$dir/gate.out" ]; do
		[ "$(date +%s)" -le "$deadline" ] || { echo "the gate session did not start" >&2; return 1; }
		sleep 0.1
	done
	gate_pid=$(cut -d'|' -f1 "$dir/gate.out" | head -n 1)
	# capture all along: pgbench rounds of 2 s until told to stop
	(
		r=0
		while [ ! -e "$dir/stop" ]; do
			r=$((r + 1))
			pgbench -n -M simple -c 2 -j 2 -T 2 -f "$BENCH_DIR/workload.sql" "$db" >"$dir/pgbench.$r" 2>&1 || true
		done
	) >/dev/null 2>&1 &
	local pgb_loop=$!
	# the sessions
	for i in $(seq 1 "$sessions"); do
		entry=${queries[$(((i - 1) % probe_queries))]}
		(
			PGAPPNAME=am_history_probe psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" >"$dir/s$i.out" 2>"$dir/s$i.err" <<SQL
BEGIN;
\o /dev/null
$(inst "${entry#*|}" "$i");
SELECT pg_advisory_xact_lock_shared(1634038889, 16);
COMMIT;
SQL
			echo $? >"$dir/s$i.rc"
		) >/dev/null 2>&1 &
	done
	# until every session waits at the gate or has ended
	deadline=$(($(date +%s) + 900))
	while :; do
		parked=$(psql -X -At -d "$db" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND classid = 1634038889 AND objid = 16 AND NOT granted" 2>/dev/null || echo 0)
		ended=$(find "$dir" -name 's*.rc' | wc -l)
		[ $((parked + ended)) -ge "$sessions" ] && break
		if [ "$(date +%s)" -gt "$deadline" ]; then
			note "$db probe: after 900 s only $parked sessions waited and $ended had ended"
			break
		fi
		sleep 0.5
	done
	peak=$(psql -X -At -F ' ' -d "$db" -c "SELECT count(*), count(*) FILTER (WHERE NOT fastpath) FROM pg_locks" 2>/dev/null || echo "error error")
	# capture goes on while every session holds what it took
	sleep "$pgb_secs"
	touch "$dir/stop"
	wait "$pgb_loop" || true
	psql -X -At -d "$db" -c "SELECT pg_cancel_backend($gate_pid)" >/dev/null
	deadline=$(($(date +%s) + 120))
	while [ "$(find "$dir" -name 's*.rc' | wc -l)" -lt "$sessions" ]; do
		[ "$(date +%s)" -le "$deadline" ] || { note "$db probe: sessions still running 120 s after the gate opened"; break; }
		sleep 0.2
	done
	wait || true
	ok=0 oom=0 other=0
	for i in $(seq 1 "$sessions"); do
		if [ "$(cat "$dir/s$i.rc" 2>/dev/null)" = 0 ]; then
			ok=$((ok + 1))
		elif grep -q "out of shared memory" "$dir/s$i.err"; then
			oom=$((oom + 1))
		else
			other=$((other + 1))
			[ "$other" = 1 ] && note "$db probe, session $i: $(head -n 2 "$dir/s$i.err" | tr '\n' ' ')"
		fi
	done
	pgb_tx=$(cat "$dir"/pgbench.* | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' |
		awk '{ s += $1 } END { print s + 0 }')
	pgb_err=$(cat "$dir"/pgbench.* | grep -c "ERROR" || true)
	pgb_oom=$(cat "$dir"/pgbench.* | grep -c "out of shared memory" || true)
	echo "$ok $oom $other $peak $pgb_tx $pgb_err $pgb_oom"
}

# --- run --------------------------------------------------------------------------------

: >"$work/loads"
# reused DB: with HISTORY_REUSE=1 and DB there, describe the history it
# holds (whatever its size) and return 0.
reused() {
	local db=$1
	[ "${HISTORY_REUSE:-0}" = 1 ] || return 1
	[ "$(psql -X -At -c "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 1 ] || return 1
	IFS='|' read -r parts size n first <<<"$(p "$db" -At -c "SELECT count(*), pg_size_pretty(sum(pg_total_relation_size(relid))),
			(SELECT count(*) FROM activity_monitor.activity),
			(SELECT date_trunc('day', min(occurred_at))::date FROM activity_monitor.activity)
		FROM pg_partition_tree('activity_monitor.activity') WHERE isleaf")"
	echo "$db (reused, HISTORY_REUSE=1): $n events since $first, $parts partitions, $size" | tee -a "$work/loads" >&2
}

loaded=""
reused am_history_short || { load am_history_short "$short_days" "$short_events"; loaded="$loaded am_history_short"; }
reused am_history_long || { load am_history_long "$long_days" "$long_events"; loaded="$loaded am_history_long"; }
[ -z "$loaded" ] || worker_done "$(psql -X -At -c "SELECT now()")" $loaded
for db in $dbs; do verified "$db" "after the merges"; done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A res
for qi in "${!queries[@]}"; do
	sql=${queries[$qi]#*|}
	for db in $dbs; do
		res[$qi,$db]=$(measure "$db" "$sql")
		echo "measured: ${queries[$qi]%%|*} on $db: ${res[$qi,$db]}" >&2
	done
done
declare -A pr
for db in $dbs; do
	echo "probe: $sessions sessions on $db" >&2
	pr[$db]=$(probe "$db")
	echo "probe on $db: ${pr[$db]}" >&2
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
dump_restore am_history_long
slots=$(psql -X -At -c "SELECT n || ' locked objects, ' || 2 * n || ' holders (max_locks_per_transaction '
	|| current_setting('max_locks_per_transaction') || ' × (max_connections ' || current_setting('max_connections')
	|| ' + other backends and prepared transactions); the tables can grow into spare shared memory)'
	FROM (SELECT current_setting('max_locks_per_transaction')::int
		* (current_setting('max_connections')::int + current_setting('autovacuum_max_workers')::int + 1
		   + current_setting('max_worker_processes')::int + current_setting('max_wal_senders')::int
		   + current_setting('max_prepared_transactions')::int) AS n) s")

report() {
	local qi a b name
	echo "# activity_monitor: back-office queries with $short_days days and $long_days days of history"
	echo
	echo "- date: $started"
	echo "- machine: $(bench_machine)"
	echo "- command: \`$(for v in HISTORY_SMOKE HISTORY_REUSE BENCH_PARTITION_INTERVAL HISTORY_BOUNDS BENCH_USE_EXISTING HISTORY_DAYS HISTORY_EVENTS HISTORY_SHORT_DAYS HISTORY_SHORT_EVENTS HISTORY_RUNS HISTORY_SESSIONS; do
		[ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done)test/bench/history.sh\`"
	while read -r line; do echo "- $line"; done <"$work/loads"
	echo "- time bounds: HISTORY_BOUNDS=$bounds ($( [ "$bounds" = now ] && echo "now() - interval '...'" || echo "timestamptz literals computed by the client"))"
	echo "- p50/p90: $runs runs as psql \\timing sees them, planning included; planning, execution: median of $explain_runs EXPLAIN (ANALYZE, TIMING OFF); locks: relation locks the query holds in its transaction (in brackets: beyond the 16 fast-path slots, in the shared lock table)"
	echo "- shared lock table: $slots"
	echo "- machine load average (1, 5, 15 min) before the measurements: $load_before; after the probe: $load_after"
	while read -r line; do echo "- note: $line"; done <"$work/notes"
	echo
	echo "| query | ${short_days} d p50 ms | p90 ms | planning ms | execution ms | locks | ${long_days} d p50 ms | p90 ms | planning ms | execution ms | locks |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	for qi in "${!queries[@]}"; do
		name=${queries[$qi]%%|*}
		read -r -a a <<<"${res[$qi,am_history_short]}"
		read -r -a b <<<"${res[$qi,am_history_long]}"
		echo "| $name | ${a[0]} | ${a[1]} | ${a[2]} | ${a[3]} | ${a[4]} (${a[5]}) | ${b[0]} | ${b[1]} | ${b[2]} | ${b[3]} | ${b[4]} (${b[5]}) |"
	done
	echo
	echo "Concurrency probe: $sessions sessions, each running one of the first $probe_queries queries above (in turn) inside a transaction kept open until all have run; pgbench capture (workload.sql, 2 clients) all along and ${pgb_secs} s more while every session holds its locks."
	echo
	read -r -a a <<<"${pr[am_history_short]}"
	read -r -a b <<<"${pr[am_history_long]}"
	echo "| probe | ${short_days} d | ${long_days} d |"
	echo "|---|---|---|"
	echo "| sessions that ran their query | ${a[0]} of $sessions | ${b[0]} of $sessions |"
	echo "| sessions failed: out of shared memory | ${a[1]} | ${b[1]} |"
	echo "| sessions failed: other errors | ${a[2]} | ${b[2]} |"
	echo "| locks in pg_locks once all had run (beyond fast path) | ${a[3]} (${a[4]}) | ${b[3]} (${b[4]}) |"
	echo "| pgbench capture transactions | ${a[5]} | ${b[5]} |"
	echo "| pgbench errors (out of shared memory) | ${a[6]} (${a[7]}) | ${b[6]} (${b[7]}) |"
}
report >"$work/report.md"
cat "$work/report.md"
cp "$work/report.md" "$results_dir/history-latest.md"
cp "$work/plans.md" "$results_dir/history-latest-plans.md"
echo "written: $results_dir/history-latest.md" >&2
