#!/usr/bin/env bash
# Smoke run of the alert latency benchmark (test/bench/latency.sh) so it
# never rots: 100 events per second for 2 seconds against the cluster
# test/run.sh started (PGHOST/PGPORT/PGUSER).  Asserts that it runs (it
# fails by itself when fewer than 95% of the events are notified or one is
# notified twice) and prints its figures; the figures themselves are not
# checked: the machine is shared.
set -euo pipefail
root=${AM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp /tmp/activity_monitor_latency_smoke.XXXXXX)
trap 'rm -f "$out"' EXIT

LAT_USE_EXISTING=1 LAT_RATE=100 LAT_SECONDS=2 bash "$root/test/bench/latency.sh" >"$out" 2>&1 || {
	cat "$out"
	echo "FAIL: test/bench/latency.sh failed"
	exit 1
}
cat "$out"
fail=0
for p in p50 p90 p99 max; do
	if grep -Eq "^$p: [0-9]+(\.[0-9]+)? ms$" "$out"; then
		echo "ok: $p line"
	else
		echo "not ok: no $p line"
		fail=1
	fi
done
grep -Eq '^matching events: [1-9][0-9]* .*notifications: [1-9][0-9]*; duplicates: 0(;|$)' "$out" ||
	{ echo "not ok: events/notifications line"; fail=1; }
exit $fail
