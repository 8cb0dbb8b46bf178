#!/usr/bin/env bash
# Smoke run of the years-of-history benchmark (test/bench/history.sh,
# HISTORY_SMOKE=1: 31 and 400 days of daily partitions, 200,000 events
# each, 10 probe sessions) against the cluster test/run.sh started, so that
# it never rots.  Asserts that it runs and prints its tables with a figure
# in every cell, that the 400-day history was laid down (a partition per
# day) and then merged by the worker (a year, months and the recent days:
# at most 60 partitions), that each of the five back-office queries holds
# at most 100 relation locks on both histories (locks do not depend on
# timing), that capture ran without error while the worker merged, that
# every probe session ran, that both histories, sealed before the merges,
# verify() after them, that the dump of the merged 400 days restores every
# event and verifies, and that nothing went wrong on the way (no note);
# the times are not checked: a test never times anything.
set -euo pipefail
root=${AM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
out_dir=$(mktemp -d /tmp/activity_monitor_bench_history.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT

HISTORY_SMOKE=1 BENCH_USE_EXISTING=1 BENCH_RESULTS_DIR="$out_dir" \
	bash "$root/test/bench/history.sh" >"$out_dir/out.md" 2>"$out_dir/err.log" || {
	echo "test/bench/history.sh failed:"
	tail -n 40 "$out_dir/err.log"
	exit 1
}
cat "$out_dir/out.md"

fail=0
check() {	# description, command...
	local what=$1
	shift
	if "$@"; then
		echo "ok: $what"
	else
		echo "not ok: $what"
		fail=1
	fi
}
num='[0-9]+(\.[0-9]+)?'
cells="\| $num \| $num \| $num \| $num \| [0-9]+ \([0-9]+\) "
for q in "an account's latest 50 events" "an employee's day" "critical changes of the last 7 days, first 20" \
	"an account's last 30 days" "the dashboard"; do
	check "timed, planned and locks counted on both histories: $q" \
		grep -Eq "^\| $q $cells$cells\|$" "$out_dir/out.md"
	check "at most 100 locks on both histories: $q" \
		awk -F' *\\| *' -v q="$q" '$2 == q { split($7, a, " "); split($12, b, " "); found = 1; ok = (a[1] <= 100 && b[1] <= 100) }
			END { exit !(found && ok) }' "$out_dir/out.md"
done
parts=$(sed -n 's/^- am_history_long: 400 days, [0-9]* events, \([0-9]*\) partitions.*/\1/p' "$out_dir/out.md")
check "the 400-day history has a partition per day ($parts partitions)" test "${parts:-0}" -ge 400
merged=$(sed -n 's/^- am_history_long after the worker.s maintenance and merges.*: \([0-9]*\) partitions.*/\1/p' "$out_dir/out.md")
check "the worker merged the 400-day history into at most 60 partitions ($merged)" test "${merged:-999}" -le 60
check "capture ran with no error before and during the merges" \
	grep -Eq "^- am_history_long capture .*: [1-9][0-9]* transactions, .*, 0 errors; while the worker merged: [1-9][0-9]* transactions, .*, 0 errors$" "$out_dir/out.md"
check "every probe session ran, on both histories" \
	awk -F' *\\| *' '$2 == "sessions that ran their query" { split($3, a, " "); split($4, b, " "); ran1 = a[1]; ran2 = b[1]; n = a[3] }
		$2 == "sessions failed: out of shared memory" { oom1 = $3; oom2 = $4 }
		$2 == "sessions failed: other errors" { other = $3 + $4; seen = 1 }
		END { exit !(seen && n == 10 && other == 0 && ran1 == n && ran2 == n) }' "$out_dir/out.md"
check "pgbench captured during the probe" \
	awk -F' *\\| *' '$2 == "pgbench capture transactions" { ok = ($3 > 0 && $4 > 0) } END { exit !ok }' "$out_dir/out.md"
for db in am_history_short am_history_long; do
	check "the history of $db sealed, merged, and verify() reports nothing" \
		grep -Eq "^- $db verify\(\) after the merges: (2[0-9]{5}|[3-9][0-9]{5}|[0-9]{7,}) events in [0-9]+ seals, 0 problems," "$out_dir/out.md"
done
check "the dump of the merged 400 days restores every event" \
	grep -Eq "^- am_history_long dump and restore: .*; ([0-9]+) events restored of \1$" "$out_dir/out.md"
check "the restored history verifies" \
	grep -Eq "^- am_history_long_restored verify\(\) of the restored dump: [0-9]{6,} events in [0-9]+ seals, 0 problems," "$out_dir/out.md"
check "no note (nothing failed on the way)" bash -c "! grep -q '^- note:' '$out_dir/out.md'"
check "results file written" test -s "$out_dir/history-latest.md"
exit $fail
