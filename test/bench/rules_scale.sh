#!/usr/bin/env bash
# What the number of alert rules costs capture (issue 17), as CPU time of
# the one backend doing the writes (cpu_micro.sh's method): a tracked
# payments table against an identical untracked one; for each rule count
# of RULES_COUNTS, rules `$.new.amount > N && $.new.status == "completed"`
# with their own N, tables => '{tracked}', none matching; an INSERT ...
# SELECT of RULES_ROWS rows and an UPDATE of all of them, RULES_RUNS times,
# with the predicates compiled (activity_monitor.compile_predicates on, the
# default) and through jsonb_path_match (off, as 0.1.0 evaluated them),
# interleaved.  Prints µs per change capture adds (min over runs, insert
# and update averaged) and the ratio to the same mode with 10 rules.
#
#   test/bench/rules_scale.sh   (RULES_COUNTS, default "0 10 50 200 1000";
#                                RULES_ROWS, default 20000; RULES_RUNS, default 3;
#                                BENCH_USE_EXISTING=1 as in micro.sh)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

counts=${RULES_COUNTS:-0 10 50 200 1000}
rows=${RULES_ROWS:-20000}
runs=${RULES_RUNS:-3}
work=$BENCH_WORK
bench_cluster_up
db=am_bench_rules_$$
bpid=""
cleanup_db() {
	exec 3>&- 2>/dev/null || true
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
	psql -X -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	bench_cleanup
}
trap cleanup_db EXIT

"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
"${BENCH_PSQL[@]}" -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE plain (id int PRIMARY KEY, account_id int, amount numeric, status text, note text);
CREATE TABLE tracked (LIKE plain INCLUDING ALL);
SELECT activity_monitor.track('tracked', 'payment', subject_column => 'account_id', status_column => 'status');
SQL

# the session, fed through a fifo; the server must run on this machine
mkfifo "$work/rules.fifo"
psql -X -q -At -d "$db" <"$work/rules.fifo" >"$work/rules.out" 2>&1 &
bpid=$!
exec 3>"$work/rules.fifo"
n=0
run() {	# SQL in the session, waited for; its CPU ticks in $took
	local a b
	n=$((n + 1))
	a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	echo "$1; SELECT 'done $n';" >&3
	until grep -q "^done $n\$" "$work/rules.out"; do
		grep -q ERROR "$work/rules.out" && { cat "$work/rules.out" >&2; exit 1; }
		sleep 0.02
	done
	b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	took=$((b - a))
}
pid=0
echo "SELECT 'pid ' || pg_backend_pid();" >&3
until pid=$(sed -n 's/^pid //p' "$work/rules.out") && [ -n "$pid" ]; do sleep 0.02; done
[ -r "/proc/$pid/stat" ] || { echo "the server's backend $pid is not on this machine" >&2; exit 1; }

declare -A best
have=0
for c in $counts; do
	# rules 1..c, each its own threshold above any amount written
	if [ "$c" -gt "$have" ]; then
		run "SELECT count(activity_monitor.create_rule('r' || g, format('\$.new.amount > %s && \$.new.status == \"completed\"', 1000000000 + g)::jsonpath, tables => '{tracked}'))
			FROM generate_series($((have + 1)), $c) g"
	else
		run "SELECT count(activity_monitor.drop_rule('r' || g)) FROM generate_series($((c + 1)), $have) g"
	fi
	have=$c
	for _ in $(seq 1 "$runs"); do
		for t in plain on off; do
			tbl=tracked
			[ "$t" = plain ] && tbl=plain
			[ "$t" = plain ] || run "SET activity_monitor.compile_predicates = $t"
			run "TRUNCATE $tbl; CHECKPOINT"
			run "INSERT INTO $tbl SELECT g, g % 100, g, 'new', 'x' FROM generate_series(1, $rows) g"
			i=$took
			run "UPDATE $tbl SET status = 'done', amount = amount + 1"
			k="$c.$t"
			[ -n "${best[$k]:-}" ] && [ "${best[$k]}" -le "$((i + took))" ] || best[$k]=$((i + took))
		done
	done
done
tick=$(getconf CLK_TCK)
# µs per change (an insert and an update per row) capture adds
us() { echo "scale=2; ($1 - ${best[$2.plain]}) * 1000000 / $tick / (2 * $rows)" | bc; }
echo "RULES_ROWS=$rows RULES_RUNS=$runs; CPU µs per change capture adds (min over runs), rules \$.new.amount > N && \$.new.status == \"completed\", none matching:"
echo
echo "| rules | compiled (default) | × 10 rules | jsonb_path_match (compile_predicates off) | × 10 rules |"
echo "|---|---|---|---|---|"
for c in $counts; do
	on=$(us "${best[$c.on]}" "$c")
	off=$(us "${best[$c.off]}" "$c")
	r_on=–
	r_off=–
	if [ -n "${best[10.on]:-}" ]; then
		ten_on=$(us "${best[10.on]}" 10)
		ten_off=$(us "${best[10.off]}" 10)
		r_on=$(echo "scale=2; $on / $ten_on" | bc)
		r_off=$(echo "scale=2; $off / $ten_off" | bc)
	fi
	echo "| $c | $on | $r_on | $off | $r_off |"
done
