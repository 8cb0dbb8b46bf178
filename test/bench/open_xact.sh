#!/usr/bin/env bash
# Alert batch cost with a transaction left open (issue 12, "Bounds"): one
# transaction holds an xid for OPEN_SECONDS (600) under steady traffic, and
# the worker's cost per alert batch is compared with the same traffic and no
# open transaction, in the same run.  It must stay within 2x.  (0.1.0's batch
# query read every matched event committed since the open transaction
# began; and alert_state and rule_stats, updated at every batch, were found
# through all their dead row versions, which the open transaction keeps.)
#
# Traffic: OPEN_RATE transactions a second (100), each inserting 2 payments
# that two per-event rules match; the worker alerts on them as usual.  The
# worker's statements are measured with pg_stat_statements (track = all,
# preloaded in the benchmark's own cluster): the alert batch's query and
# its statements on alert_state and rule_stats (the worker runs the batch
# in C, so these are its nested statements), in the last MEASURE_SECONDS
# (60) of each phase: time per call and buffers (shared hit + read) per
# call.  The batch query's time per call is the one compared.  Phases: CLOSED_SECONDS
# (180) of traffic alone, then the open transaction for OPEN_SECONDS.
#
#   test/bench/open_xact.sh
#
# Environment: OPEN_SECONDS (600), CLOSED_SECONDS (180), OPEN_RATE (100),
# MEASURE_SECONDS (60); BENCH_USE_EXISTING=1 uses the server PGHOST/PGPORT
# name, which must preload pg_stat_statements with track = all.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

open_s=${OPEN_SECONDS:-600}
closed_s=${CLOSED_SECONDS:-180}
rate=${OPEN_RATE:-100}
measure_s=${MEASURE_SECONDS:-60}
if [ "${BENCH_USE_EXISTING:-0}" = 1 ]; then
	bench_cluster_up
else
	# bench_cluster_up, with pg_stat_statements
	. "$BENCH_ROOT/test/lib/cluster.sh"
	BENCH_TMP=$(mktemp -d /tmp/activity_monitor_bench.XXXXXX)
	chmod 755 "$BENCH_TMP"
	BENCH_OWN_CLUSTER=1
	am_cluster_start "$BENCH_TMP/cluster" "shared_preload_libraries = 'activity_monitor, pg_stat_statements'" \
		"pg_stat_statements.track = all" "max_wal_size = 8GB" "checkpoint_timeout = 1h" >&2
	echo "benchmark cluster: $PGDATA (port $PGPORT)" >&2
fi
db=am_bench_open_xact_$$
q() { "${BENCH_PSQL[@]}" -At -d "$db" -c "$1"; }
pids=()
finish() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	bench_cleanup
}
"${BENCH_PSQL[@]}" -c "CREATE DATABASE $db"
trap finish EXIT
"${BENCH_PSQL[@]}" -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id bigserial PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id',
	status_column => 'status');
SELECT activity_monitor.create_rule('any_payment', '$.action == "insert"', channel => 'am_bench_open_xact');
SELECT activity_monitor.create_rule('big_payment', '$.new.amount > 90', channel => 'am_bench_open_xact');
-- rate transactions a second, 2 events each, until stop has a row
CREATE TABLE stop (x int);
CREATE PROCEDURE traffic(rate int) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	n bigint := 0;
BEGIN
	WHILE NOT EXISTS (SELECT 1 FROM stop) LOOP
		INSERT INTO payments (account_id, amount, status)
		SELECT (random() * 1000)::int, (random() * 100)::int, 'pending' FROM generate_series(1, 2);
		COMMIT;
		n := n + 1;
		PERFORM pg_sleep(greatest(0, extract(epoch FROM t0 + n * interval '1 second' / rate - clock_timestamp())));
	END LOOP;
END $$;
-- what the worker's statements cost so far, and the events it processed
CREATE TABLE marks (mark text, what text, calls bigint, ms float8, blocks bigint, events bigint);
CREATE FUNCTION mark(m text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO marks
	SELECT m, w.what, sum(s.calls), sum(s.total_exec_time), sum(s.shared_blks_hit + s.shared_blks_read),
		   (SELECT events_processed FROM activity_monitor.alert_state)
	FROM pg_stat_statements s
	CROSS JOIN LATERAL (SELECT CASE
		WHEN s.query LIKE 'SELECT * FROM ( SELECT a.id, a.occurred_at, a.kind%' THEN 'batch query'
		WHEN s.query LIKE '%activity_monitor.alert_state%' THEN 'alert_state statements'
		WHEN s.query LIKE '%activity_monitor.rule_stats%' THEN 'rule_stats statements' END) w(what)
	WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND w.what IS NOT NULL
	  AND s.query NOT LIKE '%INSERT INTO marks%'
	  AND s.query NOT LIKE 'SELECT events_processed FROM activity_monitor.alert_state%'
	GROUP BY w.what
$$;
SQL
"${BENCH_PSQL[@]}" -d "$db" -c "CALL traffic($rate)" >/dev/null &
pids+=($!)
echo "closed: ${closed_s} s of traffic ($rate transactions/s, 2 matched events each)" >&2
sleep $((closed_s - measure_s))
q "SELECT mark('closed_start')" >/dev/null
sleep "$measure_s"
q "SELECT mark('closed_end')" >/dev/null
"${BENCH_PSQL[@]}" -d "$db" -c "SET application_name = 'bench_open_xact'" -c "BEGIN" -c "SELECT txid_current()" \
	-c "SELECT pg_sleep($open_s)" -c "COMMIT" >/dev/null &
opener=$!
pids+=($opener)
echo "open: a transaction holds its xid for ${open_s} s under the same traffic" >&2
sleep $((open_s - measure_s))
q "SELECT mark('open_start')" >/dev/null
sleep "$measure_s"
q "SELECT mark('open_end')" >/dev/null
wait "$opener"
q "INSERT INTO stop VALUES (1)" >/dev/null
# per phase and statement kind: calls, ms per call, buffers per call, events per batch
report() {
	q "SELECT format('| %s | %s | %s | %s | %s | %s |', e.what, '$1', e.calls - s.calls,
			round(((e.ms - s.ms) / nullif(e.calls - s.calls, 0))::numeric, 3),
			round((e.blocks - s.blocks)::numeric / nullif(e.calls - s.calls, 0), 1),
			round((e.events - s.events)::numeric / nullif(w.calls, 0), 1))
	   FROM marks s JOIN marks e ON e.what = s.what AND e.mark = '${1}_end'
	   CROSS JOIN LATERAL (SELECT we.calls - ws.calls FROM marks ws JOIN marks we ON we.what = ws.what
			AND we.mark = '${1}_end' WHERE ws.mark = '${1}_start' AND ws.what = 'batch query') w(calls)
	   WHERE s.mark = '${1}_start' ORDER BY e.what"
}
echo
echo "| statements | phase (last ${measure_s} s) | calls | ms per call | buffers per call | events per batch |"
echo "|---|---|---|---|---|---|"
report closed
report open
per_call() {	# phase what: ms per call
	q "SELECT (e.ms - s.ms) / nullif(e.calls - s.calls, 0) FROM marks s JOIN marks e ON e.what = s.what
	   AND e.mark = '${1}_end' WHERE s.mark = '${1}_start' AND s.what = '$2'"
}
c=$(per_call closed 'batch query')
o=$(per_call open 'batch query')
echo
echo "batch query, open ${open_s} s / closed: $(echo "scale=2; $o / $c" | bc -l)x the time per call"
if [ "$(echo "$o <= 2 * $c" | bc -l)" = 1 ]; then
	echo "within 2x: yes"
else
	echo "within 2x: NO"
	exit 1
fi
