#!/usr/bin/env bash
# What detection v2's rules cost the writing backend (issue 14): wall-clock
# µs per row change of a tracked payments table, one backend, an INSERT ...
# SELECT of DETECTION_ROWS rows then an UPDATE of all of them (min over
# DETECTION_RUNS), with no rule, with the 10 rules of the capture
# benchmark's activity_monitor_rules variant, and with those plus 10 rules
# of each new type (variant_activity_monitor_detection.sql), all of which
# match every change: the worst case, a rule book whose every rule matches.
#
#   test/bench/detection_cost.sh   (DETECTION_ROWS 20000, DETECTION_RUNS 3,
#                                   BENCH_USE_EXISTING=1 as in micro.sh)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

rows=${DETECTION_ROWS:-20000}
runs=${DETECTION_RUNS:-3}
bench_cluster_up
db=am_bench_detection_$$
q() { "${BENCH_PSQL[@]}" -At -q -d "$db" "$@"; }
"${BENCH_PSQL[@]}" -c "CREATE DATABASE $db" >/dev/null
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; bench_cleanup' EXIT
q >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id bigint PRIMARY KEY, account_id bigint, amount numeric, currency text, status text);
CREATE TABLE user_sessions (id bigint PRIMARY KEY, account_id bigint, ip inet, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.track('user_sessions', 'login', subject_column => 'account_id');
SQL

measure() {	# label
	local best="" t
	for _ in $(seq 1 "$runs"); do
		t=$(q <<SQL
TRUNCATE payments;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
INSERT INTO payments SELECT g, g % 5000, g % 500, 'EUR', 'pending' FROM generate_series(1, $rows) g;
UPDATE payments SET status = 'completed';
SELECT (extract(epoch FROM clock_timestamp()) - :t0) * 1e6 / (2 * $rows);
SQL
)
		if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
	done
	printf '| %s | %.2f |\n' "$1" "$best"
}
echo "| rules | µs per change (min of $runs) |"
echo "|---|---|"
measure "none"
grep -v '^\\ir' "$BENCH_DIR/variant_activity_monitor_rules.sql" | q >/dev/null
measure "10 (activity_monitor_rules)"
grep -v '^\\ir' "$BENCH_DIR/variant_activity_monitor_detection.sql" | q >/dev/null
measure "40 (activity_monitor_detection)"
