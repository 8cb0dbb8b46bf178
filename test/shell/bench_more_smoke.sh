#!/usr/bin/env bash
# Smoke run of the query-at-scale, worker-throughput and floor benchmarks on the
# test cluster (a few seconds), so that they never rot: each must finish and
# print its figures.  Not a timing assertion.
set -euo pipefail
fail() { echo "FAIL: $*"; exit 1; }
out=$(QUERY_EVENTS=20000 QUERY_RUNS=3 BENCH_USE_EXISTING=1 bash "$AM_ROOT/test/bench/queries.sh" 2>&1) ||
	{ echo "$out"; fail "queries.sh failed"; }
echo "$out" | grep -E '^\| (an account|an employee|the dashboard)' || true
[ "$(echo "$out" | grep -cE '^\| (an account|an employee|the dashboard).*\| [0-9.]+ \| [0-9.]+ \|$')" = 3 ] ||
	{ echo "$out"; fail "queries.sh did not print three timed queries"; }
grep -q "Index Scan\|Index Only Scan\|Bitmap Index Scan" <<<"$out" || { echo "$out"; fail "no index use in the plans"; }
out=$(WORKER_EVENTS=300 WORKER_RUNS=1 BENCH_USE_EXISTING=1 bash "$AM_ROOT/test/bench/worker_throughput.sh" 2>&1) ||
	{ echo "$out"; fail "worker_throughput.sh failed"; }
echo "$out" | grep -E "^worker throughput" || { echo "$out"; fail "no throughput figure"; }
# the floor: the same rows without the activity partitions' indexes take
# fewer bytes (the script really dropped them)
out=$(FLOOR_ROUNDS=1 FLOOR_SECONDS=1 BENCH_USE_EXISTING=1 bash "$AM_ROOT/test/bench/floor.sh" 2>&1) ||
	{ echo "$out"; fail "floor.sh failed"; }
echo "$out" | grep -E '^\| (none|capture|no_index) \|' || true
cap=$(echo "$out" | awk -F'|' '$2 ~ /^ capture / { print $8 + 0 }')
low=$(echo "$out" | awk -F'|' '$2 ~ /^ no_index / { print $8 + 0 }')
[ "${cap:-0}" -gt 0 ] && [ "${low:-0}" -gt 0 ] && [ "$low" -lt "$cap" ] ||
	{ echo "$out"; fail "floor.sh: no_index's bytes per change ($low) not below capture's ($cap)"; }
echo ok
