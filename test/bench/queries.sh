#!/usr/bin/env bash
# Query speed at scale (issue 5): QUERY_EVENTS synthetic events (default 10
# million) bulk-loaded into 30 daily partitions of activity_monitor.activity
# (INSERT ... SELECT through the parent, not through capture triggers), then
# for each back-office query the p50 and p90 over QUERY_RUNS executions (each
# a fresh EXECUTE, as an application sends it) and one EXPLAIN (ANALYZE,
# BUFFERS) that shows partition pruning and index use:
#   - an account's latest 50 events (timeline by subject_id)
#   - an employee's actions over one day (admin_actions)
#   - the dashboard's one-row summary
#
#   test/bench/queries.sh            QUERY_EVENTS=1000000 test/bench/queries.sh
#
# Environment: QUERY_EVENTS (10000000), QUERY_RUNS (50), BENCH_USE_EXISTING=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

events=${QUERY_EVENTS:-10000000}
runs=${QUERY_RUNS:-50}
bench_cluster_up
db=am_bench_queries_$$
"${BENCH_PSQL[@]}" -c "CREATE DATABASE $db"
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; bench_cleanup' EXIT
p() { "${BENCH_PSQL[@]}" -d "$db" "$@"; }

t0=$(date +%s)
p <<SQL
CREATE EXTENSION activity_monitor;
-- 30 days back and the days ahead: daily partitions
SELECT activity_monitor.configure(premake => 37);
SELECT activity_monitor.maintain(now() - interval '30 days');
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE backend_type = 'activity_monitor worker' AND datname = current_database();
INSERT INTO activity_monitor.activity
	(occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id,
	 actor_reason, status_from, status_to, critical, old_values, new_values,
	 db_user, application_name, backend_pid, txid)
SELECT now() - (g % 2592000) * interval '1 second' - (g % 997) * interval '1 millisecond',
	   k.kind, CASE WHEN g % 3 = 0 THEN 'insert' ELSE 'update' END,
	   'public.' || k.kind || 's', (g / 3)::text, (g % 100000)::text,
	   CASE WHEN g % 20 = 0 THEN 'employee' WHEN g % 2 = 0 THEN 'user' ELSE 'service' END,
	   CASE WHEN g % 20 = 0 THEN 'emp-' || (g % 50) ELSE 'u-' || (g % 100000) END,
	   CASE WHEN g % 20 = 0 THEN 'ticket ' || g % 5000 END,
	   CASE WHEN g % 3 = 1 THEN 'pending' END, CASE WHEN g % 3 = 1 THEN 'completed' END,
	   g % 3 = 1,
	   CASE WHEN g % 3 <> 0 THEN jsonb_build_object('status', 'pending') END,
	   CASE WHEN g % 3 = 0 THEN jsonb_build_object('id', g / 3, 'amount', g % 1000, 'currency', 'EUR', 'status', 'pending')
			ELSE jsonb_build_object('status', 'completed') END,
	   'app', 'api', 1000 + g % 50, 1000000 + g / 4
FROM generate_series(1, $events) g
CROSS JOIN LATERAL (SELECT (ARRAY['payment','login','profile','game','provider'])[1 + g % 5] AS kind) k;
SELECT activity_monitor._rollup(now() - interval '1 day');
VACUUM ANALYZE activity_monitor.activity;
SQL
echo "loaded $events events into $(p -At -c "SELECT count(*) FROM activity_monitor._partitions() p WHERE EXISTS (SELECT 1 FROM activity_monitor.activity a WHERE a.tableoid = p.part)") partitions in $(( $(date +%s) - t0 )) s; size $(p -At -c "SELECT pg_size_pretty(sum(pg_total_relation_size(part))) FROM activity_monitor._partitions()")"

# name|sql with $1 replaced per run
queries=(
	"an account's latest 50 events|SELECT * FROM activity_monitor.timeline WHERE subject_id = '\$1' LIMIT 50"
	"an employee's actions over one day|SELECT * FROM activity_monitor.admin_actions WHERE employee_id = 'emp-\$2' AND occurred_at >= now() - interval '1 day'"
	"the dashboard's summary|SELECT * FROM activity_monitor.dashboard"
)
echo
echo "| query | rows | p50 ms | p90 ms |"
echo "|---|---|---|---|"
for entry in "${queries[@]}"; do
	name=${entry%%|*}
	sql=${entry#*|}
	p -At <<SQL
DO \$do\$
DECLARE
	t0 timestamptz;
	d float8[] := '{}';
	n bigint;
	q text;
BEGIN
	FOR i IN 1 .. $runs LOOP
		q := replace(replace(\$q\$$sql\$q\$, '\$1', (i * 7919 % 100000)::text), '\$2', (i % 50)::text);
		t0 := clock_timestamp();
		EXECUTE 'SELECT count(*) FROM (' || q || ') x' INTO n;
		d := d || extract(epoch FROM clock_timestamp() - t0) * 1000;
	END LOOP;
	RAISE WARNING '| % | % | % | % |', \$n\$$name\$n\$, n,
		round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(d) x)::numeric, 2),
		round((SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY x) FROM unnest(d) x)::numeric, 2);
END
\$do\$;
SQL
done 2>&1 | sed 's/^WARNING:  //'
for entry in "${queries[@]}"; do
	name=${entry%%|*}
	sql=${entry#*|}
	sql=${sql//\$1/4242}
	sql=${sql//\$2/7}
	echo
	echo "EXPLAIN (ANALYZE, BUFFERS): $name"
	p -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $sql" | grep -vE "^\s*$" | awk "NR <= 60"
done
