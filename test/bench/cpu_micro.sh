#!/usr/bin/env bash
# Capture's per-row-change cost as CPU time of the one backend doing the
# writes (utime + stime from /proc/PID/stat), not wall-clock time: on a
# shared machine under load, micro.sh's wall-clock figures vary by a factor
# of two or more from run to run, CPU time far less.  One session, a
# tracked payments table against an identical untracked one, for CPU_RUNS
# runs interleaved table by table: an INSERT ... SELECT of CPU_ROWS rows and
# an UPDATE of all of them.  Prints the minimum µs per row for each, the µs
# capture adds, and the ratio tracked / untracked.  To compare two builds,
# install each in turn and run it once per build, alternating.
#
#   test/bench/cpu_micro.sh     (CPU_ROWS, default 200000; CPU_RUNS, default 5;
#                                BENCH_USE_EXISTING=1 as in micro.sh)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

rows=${CPU_ROWS:-200000}
runs=${CPU_RUNS:-5}
work=$BENCH_WORK
bench_cluster_up
db=am_bench_cpu_$$
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
mkfifo "$work/cpu.fifo"
psql -X -q -At -d "$db" <"$work/cpu.fifo" >"$work/cpu.out" 2>&1 &
bpid=$!
exec 3>"$work/cpu.fifo"
n=0
run() {	# SQL in the session, waited for; its CPU ticks in $took
	local a b
	n=$((n + 1))
	a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	echo "$1; SELECT 'done $n';" >&3
	until grep -q "^done $n\$" "$work/cpu.out"; do
		grep -q ERROR "$work/cpu.out" && { cat "$work/cpu.out" >&2; exit 1; }
		sleep 0.02
	done
	b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	took=$((b - a))
}
pid=0
echo "SELECT 'pid ' || pg_backend_pid();" >&3
until pid=$(sed -n 's/^pid //p' "$work/cpu.out") && [ -n "$pid" ]; do sleep 0.02; done
[ -r "/proc/$pid/stat" ] || { echo "the server's backend $pid is not on this machine" >&2; exit 1; }

declare -A best
for _ in $(seq 1 "$runs"); do
	for t in plain tracked; do
		run "TRUNCATE $t; TRUNCATE activity_monitor.activity; CHECKPOINT"
		run "INSERT INTO $t SELECT g, g % 100, g, 'new', 'x' FROM generate_series(1, $rows) g"
		[ -n "${best[$t.i]:-}" ] && [ "${best[$t.i]}" -le "$took" ] || best[$t.i]=$took
		run "UPDATE $t SET status = 'done', amount = amount + 1"
		[ -n "${best[$t.u]:-}" ] && [ "${best[$t.u]}" -le "$took" ] || best[$t.u]=$took
	done
done
tick=$(getconf CLK_TCK)
us() { echo "scale=2; ($1) * 1000000 / $tick / $rows" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
echo "CPU_ROWS=$rows CPU_RUNS=$runs, CPU µs per row (min over runs):"
echo "  insert: untracked $(us "${best[plain.i]}"), tracked $(us "${best[tracked.i]}"), capture adds $(us "${best[tracked.i]} - ${best[plain.i]}"), ratio $(ratio "${best[tracked.i]}" "${best[plain.i]}")"
echo "  update: untracked $(us "${best[plain.u]}"), tracked $(us "${best[tracked.u]}"), capture adds $(us "${best[tracked.u]} - ${best[plain.u]}"), ratio $(ratio "${best[tracked.u]}" "${best[plain.u]}")"
