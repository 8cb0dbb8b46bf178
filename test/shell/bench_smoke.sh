#!/usr/bin/env bash
# Smoke run of the capture benchmarks (test/bench) so they never rot: a
# 2-second pgbench round of none, activity_monitor and the PL/pgSQL
# reference (plus activity_monitor_rules once its variant file exists), and
# a 500-row micro-benchmark, against the cluster test/run.sh started
# (PGHOST/PGPORT/PGUSER).  PgQ and tablelog are skipped.  Asserts only that
# both run and print their tables with a number for each present variant,
# and that capture fired (3.2 changes per transaction, every micro row);
# the figures themselves are not checked: a test never times anything.
set -euo pipefail
root=${AM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
out_dir=$(mktemp -d /tmp/activity_monitor_bench_smoke.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT

variants="none activity_monitor plpgsql"
[ -f "$root/test/bench/variant_activity_monitor_rules.sql" ] &&
	variants="none activity_monitor activity_monitor_rules plpgsql"

BENCH_USE_EXISTING=1 BENCH_NO_APT=1 BENCH_ROUNDS=1 BENCH_SECONDS=2 \
	BENCH_VARIANTS="$variants" MICRO_ROWS=500 MICRO_RUNS=1 \
	MICRO_VARIANTS="plain activity_monitor plpgsql" BENCH_RESULTS_DIR="$out_dir" \
	bash "$root/test/bench/run.sh" all >"$out_dir/out.md" 2>"$out_dir/err.log" || {
	echo "test/bench/run.sh failed:"
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
# Main table (the details table has 5 columns, so NF == 7 below): | variant | records | ratio | bytes per change |
for v in $variants; do
	check "pgbench table has a numeric ratio for $v" \
		grep -Eq "^\| $v \| [^|]+ \| $num \| ([0-9]+|–) \|$" "$out_dir/out.md"
done
for v in $variants; do
	[ "$v" = none ] && continue
	check "$v captured about 3.2 changes per transaction" \
		awk -v v="$v" -F' *\\| *' 'NF == 7 && $2 == v && $5 ~ /^[0-9.]+$/ { found = 1; ok = ($5 >= 3.0 && $5 <= 3.4) }
			END { exit !(found && ok) }' "$out_dir/out.md"
done
for v in activity_monitor plpgsql; do
	check "micro table has numbers for $v and it captured every row" \
		grep -Eq "^\| $v \| -?$num \| -?$num \| -?$num \| -?$num \| -?$num \| -?$num \| 1000 of 1000 \|$" "$out_dir/out.md"
done
check "results file written" test -s "$out_dir/latest.md"
exit $fail
