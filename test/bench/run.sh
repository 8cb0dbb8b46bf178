#!/usr/bin/env bash
# Capture-cost benchmark (make bench).  Starts a throwaway cluster (or, with
# BENCH_USE_EXISTING=1, uses the server PGHOST/PGPORT name), then for
# BENCH_ROUNDS rounds runs every variant in turn (A B C ... A B C ...), each
# on a fresh database: CREATE DATABASE, schema.sql, variant_<name>.sql,
# CHECKPOINT, then pgbench -M simple -c 2 -j 2 -n -T BENCH_SECONDS with
# workload.sql.  Reports per variant the median over rounds of its tps
# divided by the tps of "none" in the same round, and the bytes on disk the
# capture added per captured row change.  Prints markdown tables and writes
# them, with the date and the machine, to results/latest.md.
#
#   test/bench/run.sh [all|pgbench|micro]     default all (micro: micro.sh)
#
# Environment: BENCH_ROUNDS (9), BENCH_SECONDS (20), BENCH_CLIENTS (2),
# BENCH_VARIANTS (space-separated; default every variant below),
# BENCH_RESULTS_DIR (test/bench/results), BENCH_USE_EXISTING=1,
# BENCH_NO_APT=1 (do not apt-get install PgQ / tablelog), and micro.sh's
# MICRO_ROWS, MICRO_RUNS.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

mode=${1:-all}
case $mode in
all | pgbench | micro) ;;
*) echo "usage: $0 [all|pgbench|micro]" >&2; exit 2 ;;
esac

rounds=${BENCH_ROUNDS:-9}
secs=${BENCH_SECONDS:-20}
clients=${BENCH_CLIENTS:-2}
results_dir=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
# The order of a round.  HOOK: "activity_monitor_rules" is activity_monitor
# with 10 enabled rules applying to payments; the alert issue adds
# variant_activity_monitor_rules.sql (track as variant_activity_monitor.sql,
# then insert the rules), and from then on it runs like any other variant.
all_variants="none activity_monitor activity_monitor_rules plpgsql pgq tablelog"
variants=${BENCH_VARIANTS:-$all_variants}

bench_cluster_up
mkdir -p "$results_dir"
work=$BENCH_WORK

started=$(date -u '+%Y-%m-%d %H:%M UTC')
machine=$(bench_machine)
notes=()

# --- pgbench rounds ---------------------------------------------------------------

# Which variants can run: their file exists and their extensions are there.
pick_variants() {
	local v f req ext
	present=()
	for v in $variants; do
		f=$BENCH_DIR/variant_$v.sql
		if [ ! -f "$f" ]; then
			if [ "$v" = activity_monitor_rules ]; then
				notes+=("activity_monitor_rules skipped: variant_activity_monitor_rules.sql does not exist yet (the alert issue adds it)")
			else
				notes+=("$v skipped: no file $f")
			fi
			continue
		fi
		req=$(sed -n 's/^-- requires:[[:space:]]*//p' "$f" | head -n 1)
		for ext in $req; do
			if ! bench_ensure_ext "$ext"; then
				notes+=("$v skipped: extension $ext is not installed ($(bench_ext_package "$ext") not available)")
				continue 2
			fi
		done
		present+=("$v")
	done
	if [ "${present[0]:-}" != none ]; then
		echo "the variant list must start with none (the baseline): $variants" >&2
		exit 2
	fi
}

# A fresh database $2 with the schema and variant $1.
setup_db() {
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" -c "CREATE DATABASE $2" &&
		"${BENCH_PSQL[@]}" -d "$2" -f "$BENCH_DIR/schema.sql" >"$work/setup.log" 2>&1 &&
		(cd "$BENCH_DIR" && "${BENCH_PSQL[@]}" -d "$2" -f "variant_$1.sql") >>"$work/setup.log" 2>&1
}
setup_failed() {
	echo "variant $1 failed to install:" >&2
	tail -n 20 "$work/setup.log" >&2
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)"
}

# One run: variant $1, round $2; appends "round variant tps txns bytes changes
# load-average" to $work/raw (load: the machine's 1-minute load at the end).
run_one() {
	local v=$1 r=$2 db out tps txns before after changes
	db=am_bench_${v}_$$
	if ! setup_db "$v" "$db"; then
		# A reinstall of activity_monitor since the cluster started: load it, retry once.
		if bench_reload_if_reinstalled; then
			notes+=("activity_monitor was reinstalled during the benchmark (round $r, before $v): the cluster was restarted to load the new build")
			setup_db "$v" "$db" || { setup_failed "$v" "$db"; return 1; }
		else
			setup_failed "$v" "$db"
			return 1
		fi
	fi
	before=$(psql -X -At -d "$db" -c "SELECT bytes FROM bench_capture_stats()")
	"${BENCH_PSQL[@]}" -d "$db" -c "CHECKPOINT"
	if ! out=$(pgbench -M simple -c "$clients" -j "$clients" -n -T "$secs" \
		-f "$BENCH_DIR/workload.sql" "$db" 2>&1); then
		echo "pgbench failed for $v:" >&2
		echo "$out" | tail -n 20 >&2
		"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
		return 1
	fi
	tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*without initial connection.*/\1/p')
	txns=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
	read -r after changes < <(psql -X -At -F ' ' -d "$db" -c "SELECT bytes, changes FROM bench_capture_stats()")
	"${BENCH_PSQL[@]}" -c "DROP DATABASE $db WITH (FORCE)"
	echo "$r $v $tps $txns $((after - before)) $changes $(cut -d' ' -f1 /proc/loadavg)" >>"$work/raw"
	printf '  round %d  %-24s %10.1f tps  %8d changes\n' "$r" "$v" "$tps" "$changes" >&2
}

pgbench_section() {
	local r v i failed=" " ratio bpc cpt tps_med spread rec n
	pick_variants
	echo "pgbench: ${#present[@]} variants (${present[*]}), $rounds rounds of ${secs}s, $clients clients" >&2
	: >"$work/raw"
	for r in $(seq 1 "$rounds"); do
		if bench_reload_if_reinstalled; then
			notes+=("activity_monitor was reinstalled during the benchmark (before round $r): the cluster was restarted to load the new build")
		fi
		for v in "${present[@]}"; do
			case $failed in *" $v "*) continue ;; esac
			if ! run_one "$v" "$r"; then
				failed="$failed$v "
				notes+=("$v failed in round $r and was dropped from later rounds (see above)")
				[ "$v" = none ] && { echo "the baseline failed" >&2; exit 1; }
			fi
		done
	done

	{
		echo "| variant | what it records | throughput vs none (median) | bytes per change |"
		echo "|---|---|---|---|"
		for v in "${present[@]}"; do
			rec=$(sed -n 's/^-- records:[[:space:]]*//p' "$BENCH_DIR/variant_$v.sql" | head -n 1)
			ratio=$(awk -v v="$v" '$2 == "none" { base[$1] = $3 } $2 == v { t[$1] = $3 }
				END { for (r in t) if (base[r] > 0) print t[r] / base[r] }' "$work/raw" | bench_median)
			bpc=$(awk -v v="$v" '$2 == v && $6 > 0 { print $5 / $6 }' "$work/raw" | bench_median)
			[ -n "$ratio" ] && ratio=$(printf '%.2f' "$ratio") || ratio="failed"
			[ -n "$bpc" ] && bpc=$(printf '%.0f' "$bpc") || bpc="–"
			echo "| $v | $rec | $ratio | $bpc |"
		done
		echo
		echo "Per variant: median tps, the ratio's range over rounds, captured changes per transaction (median), rounds."
		echo
		echo "| variant | median tps | ratio min–max | changes per txn | rounds |"
		echo "|---|---|---|---|---|"
		for v in "${present[@]}"; do
			n=$(awk -v v="$v" '$2 == v' "$work/raw" | wc -l)
			[ "$n" -gt 0 ] || continue
			tps_med=$(awk -v v="$v" '$2 == v { print $3 }' "$work/raw" | bench_median)
			spread=$(awk -v v="$v" '$2 == "none" { base[$1] = $3 } $2 == v { t[$1] = $3 }
				END { lo = 1e9; hi = 0; for (r in t) if (base[r] > 0) { x = t[r] / base[r]
					if (x < lo) lo = x; if (x > hi) hi = x }
					if (hi > 0) printf "%.2f–%.2f", lo, hi }' "$work/raw")
			cpt=$(awk -v v="$v" '$2 == v && $4 > 0 { print $6 / $4 }' "$work/raw" | bench_median)
			printf '| %s | %.0f | %s | %.2f | %d |\n' "$v" "$tps_med" "${spread:-–}" "${cpt:-0}" "$n"
		done
	} >"$work/pgbench.md"
	{
		echo "Runs in order (round variant tps transactions capture-bytes changes 1-min-load-average):"
		echo
		echo '```'
		cat "$work/raw"
		echo '```'
	} >"$work/pgbench_raw.md"
}

# --- report -----------------------------------------------------------------------

if [ "$mode" != micro ]; then
	pgbench_section
fi
if [ "$mode" != pgbench ]; then
	echo "micro-benchmark" >&2
	[ "$BENCH_OWN_CLUSTER" = 1 ] && export BENCH_APT_OK=1
	if bench_reload_if_reinstalled; then
		notes+=("activity_monitor was reinstalled before the micro-benchmark: the cluster was restarted to load the new build")
	fi
	BENCH_USE_EXISTING=1 MICRO_OUT="$work/micro.md" bash "$BENCH_DIR/micro.sh" >/dev/null
fi

report() {
	echo "# activity_monitor capture benchmark"
	echo
	echo "- date: $started"
	echo "- machine: $machine"
	if [ "$mode" != micro ]; then
		echo "- pgbench: \`BENCH_ROUNDS=$rounds BENCH_SECONDS=$secs test/bench/run.sh\`;" \
			"pgbench -M simple -c $clients -j $clients -n -T $secs, workload.sql (3.2 tracked row changes per transaction)," \
			"variants interleaved, each run on a fresh database; ratio = tps / tps of none in the same round"
		echo "- bytes per change: growth of the capture table(s), indexes and TOAST included, during the run / captured row changes"
	fi
	for n in "${notes[@]+"${notes[@]}"}"; do echo "- note: $n"; done
	if [ "$mode" != micro ]; then
		echo
		echo "## Throughput (pgbench)"
		echo
		cat "$work/pgbench.md"
	fi
	if [ "$mode" != pgbench ]; then
		echo
		cat "$work/micro.md"
	fi
	if [ "$mode" != micro ]; then
		echo
		cat "$work/pgbench_raw.md"
	fi
}
report >"$work/report.md"
cat "$work/report.md"
cp "$work/report.md" "$results_dir/latest.md"
echo "written: $results_dir/latest.md" >&2
