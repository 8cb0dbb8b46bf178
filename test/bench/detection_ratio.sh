#!/usr/bin/env bash
# Issue 14's throughput target as a ratio measured in one session: the worker
# with 40 rules (worker_throughput.sh with WORKER_DETECTION=1: ten windowed
# rules and ten of each detection v2 type, all matching every event) against
# the peak matched-event rate of the 10-rule capture benchmark (run.sh, the
# activity_monitor_rules variant under pgbench: a payment inserted and
# completed per transaction, both changes matched by its rules), run one
# after the other RATIO_SESSIONS times, so that both see the same machine.
# Prints, per session, the capture peak (best round's tps x 2), the worker's
# median of runs 2 to WORKER_RUNS, and their ratio (target: at least 5).
#
#   test/bench/detection_ratio.sh   (RATIO_SESSIONS 2; BENCH_ROUNDS 3,
#                                    BENCH_SECONDS 15, WORKER_RUNS 9)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
sessions=${RATIO_SESSIONS:-2}
export BENCH_ROUNDS=${BENCH_ROUNDS:-3} BENCH_SECONDS=${BENCH_SECONDS:-15}
export WORKER_RUNS=${WORKER_RUNS:-9}
[ "$WORKER_RUNS" -ge 3 ] || { echo "WORKER_RUNS must be at least 3" >&2; exit 1; }
matched_per_txn=2

echo "| session | load before | capture peak, matched events/s | worker median (runs 2 to $WORKER_RUNS) | ratio | worker best |"
echo "|---|---|---|---|---|---|"
for s in $(seq 1 "$sessions"); do
	load=$(cut -d' ' -f1 /proc/loadavg)
	capture=$(BENCH_VARIANTS='none activity_monitor_rules' "$BENCH_DIR/run.sh" pgbench 2>&1)
	tps=$(echo "$capture" | awk '$2 == "activity_monitor_rules" && $1 ~ /^[0-9]+$/ { if ($3 > m) m = $3 } END { print m + 0 }')
	[ "$tps" != 0 ] || { echo "$capture" >&2; echo "no activity_monitor_rules round in run.sh's output" >&2; exit 1; }
	worker=$(WORKER_DETECTION=1 "$BENCH_DIR/worker_throughput.sh" 2>&1)
	line=$(echo "$worker" | grep "runs 2 to") || { echo "$worker" >&2; exit 1; }
	median=$(echo "$line" | sed -E 's/.*median ([0-9]+) events.*/\1/')
	best=$(echo "$line" | sed -E 's/.*best ([0-9]+) events.*/\1/')
	peak=$(echo "$tps * $matched_per_txn" | bc -l)
	printf '| %d | %s | %.0f | %d | %.2f | %d |\n' "$s" "$load" "$peak" "$median" \
		"$(echo "$median / $peak" | bc -l)" "$best"
done
