#!/usr/bin/env bash
# Smoke run of the capture benchmarks (test/bench) so they never rot: a
# 2-second pgbench round of none, activity_monitor and the PL/pgSQL
# reference (plus activity_monitor_rules once its variant file exists), and
# a 500-row micro-benchmark, against the cluster test/run.sh started
# (PGHOST/PGPORT/PGUSER), both with BENCH_PRELOAD=20000: every capturing
# variant runs once more on a copy of its pre-loaded template database, and
# micro.sh repeats its runs on pre-loaded capture tables.  PgQ and tablelog
# are skipped.  Asserts only that both run and print their tables with a
# number for each present variant, that the pre-loads are there (20000
# rows) and that capture fired (3.2 changes per transaction, every micro
# row, on empty and on pre-loaded capture tables alike), and that no
# template database is left behind; the figures themselves are not
# checked: a test never times anything.
set -euo pipefail
root=${AM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
out_dir=$(mktemp -d /tmp/activity_monitor_bench_smoke.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT

variants="none activity_monitor plpgsql"
[ -f "$root/test/bench/variant_activity_monitor_rules.sql" ] &&
	variants="none activity_monitor activity_monitor_rules plpgsql"

BENCH_USE_EXISTING=1 BENCH_NO_APT=1 BENCH_ROUNDS=1 BENCH_SECONDS=2 BENCH_PRELOAD=20000 \
	BENCH_VARIANTS="$variants" MICRO_ROWS=500 MICRO_RUNS=1 \
	MICRO_VARIANTS="plain activity_monitor plpgsql am_book" BENCH_RESULTS_DIR="$out_dir" \
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
# Main table: | variant | records | ratio | bytes per change | WAL per change |
# server CPU per change |; the details table has 7 columns (NF == 9 below, as
# the main table and micro's WAL table), the ratio's range (min–max) the 3rd,
# changes per txn the 4th.
for v in $variants; do
	check "pgbench table has a numeric ratio for $v" \
		grep -Eq "^\| $v \| [^|]+ \| $num \| ([0-9]+|–) \| (-?[0-9]+|\([0-9]+ per transaction\)|–) \| (-?$num|\([0-9]+ per transaction\)|–) \|$" "$out_dir/out.md"
done
for v in $variants; do
	[ "$v" = none ] && continue
	check "pgbench table has a numeric ratio for $v on its pre-loaded copy" \
		grep -Eq "^\| $v, 20000 events \| [^|]+ \| $num \| [0-9]+ \| -?[0-9]+ \| (-?$num|–) \|$" "$out_dir/out.md"
	check "template for $v held the 20000 pre-loaded rows" \
		grep -Eq "^- template for $v built in [0-9]+ s: 20000 rows, " "$out_dir/out.md"
	for label in "$v" "$v, 20000 events"; do
		check "$label captured about 3.2 changes per transaction" \
			awk -v v="$label" -F' *\\| *' 'NF == 9 && $2 == v && $4 ~ /^[0-9.]+–[0-9.]+$/ && $5 ~ /^[0-9.]+$/ { found = 1; ok = ($5 >= 3.0 && $5 <= 3.4) }
				END { exit !(found && ok) }' "$out_dir/out.md"
	done
done
check "micro pre-loaded both capture tables" \
	grep -Eq "activity: 20000 rows in [0-9]+ s .*audit: 20000 rows in [0-9]+ s" "$out_dir/out.md"
for v in activity_monitor plpgsql; do
	check "micro tables have numbers for $v and it captured every row, empty and pre-loaded" \
		test "$(grep -Ec "^\| $v \| -?$num \| -?$num \| -?$num \| -?$num \| -?$num \| -?$num \| 1000 of 1000 \|$" "$out_dir/out.md")" = 2
	check "micro summary has WAL and CPU figures for $v" \
		grep -Eq "^\| $v \| -?$num \| -?$num \| (-?$num|–) \| (-?$num|–) \| (-?$num|–) \| -?[0-9]+ \| -?[0-9]+ \| -?$num \| -?$num \| (-?$num|–) \|$" "$out_dir/out.md"
done
# micro.sh's am_book: rule_book.sql's thirty rules, of which a payment's
# insert and its update match the few its header says
book=am_bench_smoke_book
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $book" -c "CREATE DATABASE $book"
matches=$(cd "$root/test/bench" && psql -X -At -q -v ON_ERROR_STOP=1 -d "$book" 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION activity_monitor;
CREATE TABLE pb (id bigint PRIMARY KEY, account_id bigint, amount numeric(14,2), currency text, status text);
SELECT activity_monitor.track('pb', 'payment', subject_column => 'account_id', status_column => 'status') \g /dev/null
\set book_table pb
\o /dev/null
\i rule_book.sql
\o
INSERT INTO pb VALUES (1, 7, 120.50, 'EUR', 'pending');
UPDATE pb SET status = 'completed';
SELECT (SELECT count(*) FROM activity_monitor.rules) || ' ' ||
	   string_agg((SELECT count(*) FROM jsonb_object_keys(a.matched) k WHERE k <> 'k')::text, ' ' ORDER BY a.id)
FROM activity_monitor.activity a WHERE a.table_name = 'public.pb';
SQL
) || true
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $book WITH (FORCE)"
check "rule_book.sql: 30 rules, 4 matched by an insert, 7 by its update (got: $matches)" \
	test "$matches" = "30 4 7"
check "micro table has numbers for am_book and it captured every row" \
	grep -Eq "^\| am_book \| -?$num \| -?$num \| -?$num \| -?$num \| -?$num \| -?$num \| 1000 of 1000 \|$" "$out_dir/out.md"
check "no template database left behind" \
	test "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'am\\_bench\\_%'")" = 0
check "results file written" test -s "$out_dir/latest.md"
exit $fail
