#!/usr/bin/env bash
# Backtesting rate (issue 14): test_rule() over BACKTEST_EVENTS (1,000,000)
# stored events, the capture benchmark's pre-load (bench_preload_sql: five
# kinds, a third inserts carrying whole rows, 100,000 accounts, spread over
# today), for a per-event rule and for windowed rules of each measure,
# grouped by client address (5,000 of them: within the windows' key bound,
# max_keys_per_rule, which 100,000 accounts would exceed), and for a
# sequence, an absence and a first-seen rule (issue 14), each run
# BACKTEST_RUNS (3) times; prints the seconds and events per second of the
# best run, and how many alerts each rule would have fired.  The target is
# a windowed rule over 1 million events in under 10 seconds.
#
#   test/bench/backtest.sh
#
# Environment: BACKTEST_EVENTS (1000000), BACKTEST_RUNS (3),
# BENCH_USE_EXISTING=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

events=${BACKTEST_EVENTS:-1000000}
runs=${BACKTEST_RUNS:-3}
bench_cluster_up
db=am_bench_backtest_$$
q() { "${BENCH_PSQL[@]}" -At -d "$db" -c "$1"; }
"${BENCH_PSQL[@]}" -c "CREATE DATABASE $db" >/dev/null
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; bench_cleanup' EXIT
q "CREATE EXTENSION activity_monitor" >/dev/null
bench_preload_sql activity "$events" 100000 | "${BENCH_PSQL[@]}" -q -d "$db" >/dev/null
stored=$(q "SELECT count(*) FROM activity_monitor.activity")
echo "stored events: $stored"
echo
echo "| rule | alerts | best seconds | events per second |"
echo "|---|---|---|---|"
while IFS='|' read -r label args; do
	best=""
	for r in $(seq 1 "$runs"); do
		out=$("${BENCH_PSQL[@]}" -At -d "$db" <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) || '|' || (extract(epoch FROM clock_timestamp()) - :t0) FROM activity_monitor.test_rule($args);
SQL
)
		n=${out%%|*}
		s=${out##*|}
		if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
	done
	printf '| %s | %s | %.2f | %.0f |\n' "$label" "$n" "$best" "$(echo "$stored / $best" | bc -l)"
done <<'RULES'
per event, `$.new.amount > 990`|'$.new.amount > 990', now() - interval '2 days'
count of payments per address, 1 hour, threshold 3|'$.kind == "payment"', now() - interval '2 days', within => '1 hour', threshold => 3, group_by => '$.client_addr'
sum of amounts per address, 1 hour, threshold 1500|'$.kind == "payment"', now() - interval '2 days', within => '1 hour', threshold => 1500, measure => 'sum', measure_path => '$.new.amount', group_by => '$.client_addr'
distinct accounts per address, 1 hour, threshold 3|'$.kind == "login"', now() - interval '2 days', within => '1 hour', threshold => 3, measure => 'distinct', measure_path => '$.subject_id', group_by => '$.client_addr'
sequence per address: a payment insert, a payment update, a payment insert, 1 hour|'$.kind == "payment"', now() - interval '2 days', group_by => '$.client_addr', steps => ARRAY['$.action == "insert"', '$.action == "update"', '$.action == "insert"']::jsonpath[], within => '1 hour'
absence per address: a game insert, no game update within 10 minutes|'$.kind == "game"', now() - interval '2 days', group_by => '$.client_addr', steps => ARRAY['$.action == "insert"']::jsonpath[], missing => '$.action == "update"', within => '10 minutes'
first seen: an account's address, lookback 1 hour (a pair recurs every 2.4 hours)|'$.kind == "login"', now() - interval '2 days', measure_path => '$.client_addr', lookback => '1 hour'
RULES

# First seen: what rebuilding its state from the activity would cost (the
# backfill create_rule() does once reads the same), against keeping it in
# the table (activity_monitor.seen): create_rule() of a first-seen rule with
# a lookback over every stored event, timed.
out=$("${BENCH_PSQL[@]}" -At -d "$db" <<'SQL'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT activity_monitor.create_rule('bench_seen', '$.kind == "login"', measure_path => '$.client_addr',
	lookback => '3 days') \gset
SELECT (SELECT count(*) FROM activity_monitor.seen) || '|' || (extract(epoch FROM clock_timestamp()) - :t0);
SQL
)
rows=${out%%|*}
s=${out##*|}
echo
printf 'first-seen backfill (create_rule(), lookback over all %s stored events): %s (key, value) rows in %.2f s, %.0f events per second\n' \
	"$stored" "$rows" "$s" "$(echo "$stored / $s" | bc -l)"
