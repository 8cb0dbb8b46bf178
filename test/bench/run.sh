#!/usr/bin/env bash
# Capture-cost benchmark (make bench).  Starts a throwaway cluster (or, with
# BENCH_USE_EXISTING=1, uses the server PGHOST/PGPORT name), then for
# BENCH_ROUNDS rounds runs every variant in turn (A B C ... A B C ...), each
# on a fresh database: CREATE DATABASE, schema.sql, variant_<name>.sql,
# CHECKPOINT, then pgbench -M simple -c 2 -j 2 -n -T BENCH_SECONDS with
# workload.sql.  Reports per variant the median over rounds of its tps
# divided by the tps of "none" in the same round, and the bytes on disk the
# capture added per captured row change, and the WAL the run wrote
# (pg_current_wal_insert_lsn() before and after pgbench) per transaction
# beyond the baseline's, per captured change.  Prints markdown tables and
# writes them, with the date and the machine, to results/latest.md.
#
# BENCH_PRELOAD=N also measures each variant whose file has a "-- preload:"
# line with its capture table pre-loaded with N events (common.sh,
# bench_preload_sql; today's partition for activity_monitor), interleaved
# with the usual run on an empty one: per variant one template database is
# built once (schema, variant, pre-load, VACUUM ANALYZE), then each round
# runs on a copy of it (CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY),
# which gets its activity_monitor worker as a fresh database would.  A
# template must have nobody connected while it is copied, its
# activity_monitor worker included: that worker was started by CREATE
# EXTENSION and never leaves of its own accord, so the template is made
# ALLOW_CONNECTIONS false and the worker terminated; the postmaster then
# restarts it every 5 s (bgw_restart_time) and each attempt ends at once
# with FATAL "database ... is not currently accepting connections" (a line
# in the server log, no other cost) until the template is dropped at the
# end, which marks the database dropped and ends the restarts (the
# launcher skips such databases at server start anyway).  Variants without
# the line (pgq, tablelog) run only empty, with a note.
#
#   test/bench/run.sh [all|pgbench|micro]     default all (micro: micro.sh)
#
# Environment: BENCH_ROUNDS (9), BENCH_SECONDS (20), BENCH_CLIENTS (2),
# BENCH_VARIANTS (space-separated; default every variant below),
# BENCH_RESULTS_DIR (test/bench/results), BENCH_USE_EXISTING=1,
# BENCH_NO_APT=1 (do not apt-get install PgQ / tablelog), BENCH_PRELOAD (0),
# BENCH_PRELOAD_SUBJECTS (100000), and micro.sh's MICRO_ROWS, MICRO_RUNS,
# MICRO_VARIANTS (micro.sh pre-loads too when BENCH_PRELOAD is set),
# BENCH_PARTITION_INTERVAL (common.sh, bench_layout_sql).
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
all_variants="none activity_monitor activity_monitor_rules activity_monitor_detection plpgsql pgq tablelog"
variants=${BENCH_VARIANTS:-$all_variants}
preload=${BENCH_PRELOAD:-0}
subjects=${BENCH_PRELOAD_SUBJECTS:-100000}
case $preload$subjects in
*[!0-9]*) echo "BENCH_PRELOAD and BENCH_PRELOAD_SUBJECTS must be numbers" >&2; exit 2 ;;
esac

bench_cluster_up
mkdir -p "$results_dir"
work=$BENCH_WORK

started=$(date -u '+%Y-%m-%d %H:%M UTC')
machine=$(bench_machine)
notes=()
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_began=$(date +%s)

# Template databases (BENCH_PRELOAD) go at exit, with the cluster.
templates=()
run_cleanup() {
	local t
	for t in ${templates[@]+"${templates[@]}"}; do
		psql -X -q -c "DROP DATABASE IF EXISTS $t WITH (FORCE)" >/dev/null 2>&1 || true
	done
	bench_cleanup
}
trap run_cleanup EXIT

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
		(cd "$BENCH_DIR" && "${BENCH_PSQL[@]}" -d "$2" -f "variant_$1.sql") >>"$work/setup.log" 2>&1 &&
		{ ! grep -q '^CREATE EXTENSION activity_monitor' "$BENCH_DIR/variant_$1.sql" ||
			bench_layout_sql | "${BENCH_PSQL[@]}" -d "$2" >>"$work/setup.log" 2>&1; }
}
setup_failed() {
	echo "variant $1 failed to install:" >&2
	tail -n 20 "$work/setup.log" >&2
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)"
}

# The template database of variant $1 (BENCH_PRELOAD): schema, variant,
# pre-load of its capture table, then closed to connections (see the top).
# Appends "variant seconds description" to $work/templates.
build_template() {
	local v=$1 tpl=am_bench_tpl_${1}_$$ kind t0 desc
	kind=$(sed -n 's/^-- preload:[[:space:]]*//p' "$BENCH_DIR/variant_$v.sql" | head -n 1)
	t0=$(date +%s)
	templates+=("$tpl")
	setup_db "$v" "$tpl" || { setup_failed "$v" "$tpl"; return 1; }
	echo "template for $v: pre-loading $preload rows into the $kind capture table" >&2
	if ! bench_preload_sql "$kind" "$preload" "$subjects" | "${BENCH_PSQL[@]}" -d "$tpl" >>"$work/setup.log" 2>&1; then
		echo "pre-load of $v failed:" >&2
		tail -n 20 "$work/setup.log" >&2
		return 1
	fi
	desc="$(psql -X -At -d "$tpl" -c "SELECT changes FROM bench_capture_stats()") rows, $(psql -X -At -d "$tpl" -c "$(bench_index_sizes "$kind")" | paste -sd ';' | sed 's/;/; /g')"
	freeze_template "$tpl" || return 1
	echo "$v $(($(date +%s) - t0)) $desc" >>"$work/templates"
	echo "template for $v ready in $(($(date +%s) - t0)) s: $desc" >&2
}

# Nobody may be connected to a template while it is copied: close it to
# connections and end every session in it (its activity_monitor worker).
freeze_template() {
	local tpl=$1 deadline=$(($(date +%s) + 60))
	"${BENCH_PSQL[@]}" -c "ALTER DATABASE $tpl ALLOW_CONNECTIONS false"
	while [ "$(psql -X -At -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$tpl'")" != 0 ]; do
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "sessions still connected to $tpl after 60 s:" >&2
			psql -X -c "SELECT pid, backend_type, state, query FROM pg_stat_activity WHERE datname = '$tpl'" >&2
			return 1
		fi
		psql -X -q -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$tpl'" >/dev/null
		sleep 0.2
	done
}

# Database $2 as a copy of variant $1's template; it gets its worker as a
# fresh database would (CREATE EXTENSION starts it).  A copy can fail while
# the template's worker is between two restarts (connecting, then
# refused): retried.
clone_db() {
	local v=$1 db=$2 tpl=am_bench_tpl_${1}_$$ i
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || return 1
	for i in 1 2 3 4 5; do
		if "${BENCH_PSQL[@]}" -c "CREATE DATABASE $db TEMPLATE $tpl STRATEGY FILE_COPY" >"$work/setup.log" 2>&1; then
			if [ "$(psql -X -At -d "$db" -c "SELECT count(*) FROM pg_extension WHERE extname = 'activity_monitor'")" = 1 ]; then
				"${BENCH_PSQL[@]}" -d "$db" -c "SELECT activity_monitor.start_worker()" >>"$work/setup.log" 2>&1 || return 1
			fi
			return 0
		fi
		sleep 1
	done
	return 1
}

# One run: variant $1, round $2, on a copy of the variant's template when
# $3 is "pre"; appends "round variant tps txns bytes changes wal-bytes
# server-cpu-µs load-average" to $work/raw (variant: NAME+pre for a
# pre-loaded run; server CPU: common.sh's bench_server_cpu_us over the
# pgbench run, "-" when the server's PGDATA is not readable here; load: the
# machine's 1-minute load at the end).
run_one() {
	local v=$1 r=$2 pre=${3:-} db out tps txns before after changes0 changes lsn wal cpu0 cpu name=$1
	db=am_bench_${v}_$$
	if [ "$pre" = pre ]; then
		name=$v+pre
		if ! clone_db "$v" "$db"; then
			echo "variant $v: copy of its template failed:" >&2
			tail -n 20 "$work/setup.log" >&2
			"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
			return 1
		fi
	elif ! setup_db "$v" "$db"; then
		# A reinstall of activity_monitor since the cluster started: load it, retry once.
		if bench_reload_if_reinstalled; then
			notes+=("activity_monitor was reinstalled during the benchmark (round $r, before $v): the cluster was restarted to load the new build")
			setup_db "$v" "$db" || { setup_failed "$v" "$db"; return 1; }
		else
			setup_failed "$v" "$db"
			return 1
		fi
	fi
	read -r before changes0 < <(psql -X -At -F ' ' -d "$db" -c "SELECT bytes, changes FROM bench_capture_stats()")
	"${BENCH_PSQL[@]}" -d "$db" -c "CHECKPOINT"
	lsn=$(psql -X -At -d "$db" -c "SELECT pg_current_wal_insert_lsn()")
	cpu0=$(bench_server_cpu_us)
	if ! out=$(pgbench -M simple -c "$clients" -j "$clients" -n -T "$secs" \
		-f "$BENCH_DIR/workload.sql" "$db" 2>&1); then
		echo "pgbench failed for $name:" >&2
		echo "$out" | tail -n 20 >&2
		"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
		return 1
	fi
	wal=$(psql -X -At -d "$db" -c "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn')::bigint")
	# the server's CPU once pgbench's sessions have ended ("-" if unknown)
	bench_wait_pgbench_gone "$db"
	cpu=$(bench_server_cpu_us)
	if [ -n "$cpu0" ] && [ -n "$cpu" ]; then cpu=$((cpu - cpu0)); else cpu=-; fi
	tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*without initial connection.*/\1/p')
	txns=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
	read -r after changes < <(psql -X -At -F ' ' -d "$db" -c "SELECT bytes, changes FROM bench_capture_stats()")
	"${BENCH_PSQL[@]}" -c "DROP DATABASE $db WITH (FORCE)"
	echo "$r $name $tps $txns $((after - before)) $((changes - changes0)) $wal $cpu $(cut -d' ' -f1 /proc/loadavg)" >>"$work/raw"
	printf '  round %d  %-28s %10.1f tps  %8d changes\n' "$r" "$name" "$tps" "$((changes - changes0))" >&2
}

# Display name of run name $1 (NAME or NAME+pre).
run_label() {
	case $1 in
	*+pre) echo "${1%+pre}, $preload events" ;;
	*) echo "$1" ;;
	esac
}

pgbench_section() {
	local r v i failed=" " ratio bpc cpt tps_med spread rec n wpc wpt kind
	local -a runs=() pre_ok=()
	pick_variants
	: >"$work/templates"
	if [ "$preload" -gt 0 ]; then
		for v in "${present[@]}"; do
			[ "$v" = none ] && continue
			kind=$(sed -n 's/^-- preload:[[:space:]]*//p' "$BENCH_DIR/variant_$v.sql" | head -n 1)
			if [ -z "$kind" ]; then
				notes+=("$v is not pre-loaded (variant_$v.sql has no \"-- preload:\" line): it runs on an empty capture table only")
			elif build_template "$v"; then
				pre_ok+=("$v")
			else
				notes+=("$v: its pre-loaded template could not be built (see above); it runs on an empty capture table only")
			fi
		done
	fi
	for v in "${present[@]}"; do
		runs+=("$v")
		case " ${pre_ok[*]+"${pre_ok[*]}"} " in *" $v "*) runs+=("$v+pre") ;; esac
	done
	echo "pgbench: ${#runs[@]} runs a round (${runs[*]}), $rounds rounds of ${secs}s, $clients clients" >&2
	: >"$work/raw"
	t_rounds=$(date +%s)
	for r in $(seq 1 "$rounds"); do
		if bench_reload_if_reinstalled; then
			notes+=("activity_monitor was reinstalled during the benchmark (before round $r): the cluster was restarted to load the new build")
		fi
		for v in "${runs[@]}"; do
			case $failed in *" $v "*) continue ;; esac
			if ! run_one "${v%+pre}" "$r" "$([ "$v" != "${v%+pre}" ] && echo pre)"; then
				failed="$failed$v "
				notes+=("$(run_label "$v") failed in round $r and was dropped from later rounds (see above)")
				[ "$v" = none ] && { echo "the baseline failed" >&2; exit 1; }
			fi
		done
	done
	t_rounds=$(($(date +%s) - t_rounds))

	# figures of run name $1 over the rounds (medians)
	ratio_of() {
		awk -v v="$1" '$2 == "none" { base[$1] = $3 } $2 == v { t[$1] = $3 }
			END { for (r in t) if (base[r] > 0) print t[r] / base[r] }' "$work/raw" | bench_median
	}
	bpc_of() { awk -v v="$1" '$2 == v && $6 > 0 { print $5 / $6 }' "$work/raw" | bench_median; }
	# WAL per transaction beyond none's in the same round, per captured change
	wpc_of() {
		awk -v v="$1" '$2 == "none" && $4 > 0 { base[$1] = $7 / $4 } $2 == v && $4 > 0 && $6 > 0 { w[$1] = $7 / $4; c[$1] = $6 / $4 }
			END { for (r in w) if (r in base) print (w[r] - base[r]) / c[r] }' "$work/raw" | bench_median
	}
	# the server's CPU per transaction beyond none's in the same round, per captured change
	cpc_of() {
		awk -v v="$1" '$2 == "none" && $4 > 0 && $8 != "-" { base[$1] = $8 / $4 }
			$2 == v && $4 > 0 && $6 > 0 && $8 != "-" { w[$1] = $8 / $4; c[$1] = $6 / $4 }
			END { for (r in w) if (r in base) print (w[r] - base[r]) / c[r] }' "$work/raw" | bench_median
	}
	fmt() { [ -n "$2" ] && printf "$1" "$2" || echo "${3:-–}"; }
	{
		echo "| variant | what it records | throughput vs none (median) | bytes per change | WAL bytes per change beyond none | server CPU µs per change beyond none |"
		echo "|---|---|---|---|---|---|"
		for v in "${runs[@]}"; do
			rec=$(sed -n 's/^-- records:[[:space:]]*//p' "$BENCH_DIR/variant_${v%+pre}.sql" | head -n 1)
			ratio=$(fmt '%.2f' "$(ratio_of "$v")" failed)
			bpc=$(fmt '%.0f' "$(bpc_of "$v")")
			if [ "$v" = none ]; then
				wpc=$(fmt '(%.0f per transaction)' "$(awk '$2 == "none" && $4 > 0 { print $7 / $4 }' "$work/raw" | bench_median)")
				cpc=$(fmt '(%.0f per transaction)' "$(awk '$2 == "none" && $4 > 0 && $8 != "-" { print $8 / $4 }' "$work/raw" | bench_median)")
			else
				wpc=$(fmt '%.0f' "$(wpc_of "$v")")
				cpc=$(fmt '%.1f' "$(cpc_of "$v")")
			fi
			echo "| $(run_label "$v") | $rec | $ratio | $bpc | $wpc | $cpc |"
		done
		if [ ${#pre_ok[@]} -gt 0 ]; then
			echo
			echo "Today's partition empty against holding $preload events (the same rounds; ×empty: preloaded / empty):"
			echo
			echo "| variant | throughput vs none, empty | throughput vs none, $preload events | ×empty | bytes per change, empty | $preload events | WAL bytes per change beyond none, empty | $preload events | server CPU µs per change beyond none, empty | $preload events | CPU ×empty |"
			echo "|---|---|---|---|---|---|---|---|---|---|---|"
			for v in "${pre_ok[@]}"; do
				awk -v v="$v" -v a="$(ratio_of "$v")" -v b="$(ratio_of "$v+pre")" -v c="$(bpc_of "$v")" -v d="$(bpc_of "$v+pre")" \
					-v e="$(wpc_of "$v")" -v f="$(wpc_of "$v+pre")" -v g="$(cpc_of "$v")" -v h="$(cpc_of "$v+pre")" \
					'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s |\n", v, a, b, (a > 0 ? b / a : 0), c, d, e, f,
						(g == "" ? "–" : sprintf("%.1f", g)), (h == "" ? "–" : sprintf("%.1f", h)), (g > 0 && h != "" ? sprintf("%.2f", h / g) : "–") }'
			done
		fi
		echo
		echo "Per variant: median tps, the ratio's range over rounds, captured changes, WAL bytes and server CPU µs per transaction (medians), rounds."
		echo
		echo "| variant | median tps | ratio min–max | changes per txn | WAL bytes per txn | server CPU µs per txn | rounds |"
		echo "|---|---|---|---|---|---|---|"
		for v in "${runs[@]}"; do
			n=$(awk -v v="$v" '$2 == v' "$work/raw" | wc -l)
			[ "$n" -gt 0 ] || continue
			tps_med=$(awk -v v="$v" '$2 == v { print $3 }' "$work/raw" | bench_median)
			spread=$(awk -v v="$v" '$2 == "none" { base[$1] = $3 } $2 == v { t[$1] = $3 }
				END { lo = 1e9; hi = 0; for (r in t) if (base[r] > 0) { x = t[r] / base[r]
					if (x < lo) lo = x; if (x > hi) hi = x }
					if (hi > 0) printf "%.2f–%.2f", lo, hi }' "$work/raw")
			cpt=$(awk -v v="$v" '$2 == v && $4 > 0 { print $6 / $4 }' "$work/raw" | bench_median)
			wpt=$(awk -v v="$v" '$2 == v && $4 > 0 { print $7 / $4 }' "$work/raw" | bench_median)
			cput=$(fmt '%.0f' "$(awk -v v="$v" '$2 == v && $4 > 0 && $8 != "-" { print $8 / $4 }' "$work/raw" | bench_median)")
			printf '| %s | %.0f | %s | %.2f | %.0f | %s | %d |\n' "$(run_label "$v")" "$tps_med" "${spread:-–}" "${cpt:-0}" "${wpt:-0}" "$cput" "$n"
		done
	} >"$work/pgbench.md"
	{
		echo "Runs in order (round variant tps transactions capture-bytes changes WAL-bytes server-CPU-µs 1-min-load-average; NAME+pre: on the pre-loaded copy):"
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
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

report() {
	echo "# activity_monitor capture benchmark"
	echo
	echo "- date: $started"
	echo "- machine: $machine"
	if [ "$mode" != micro ]; then
		echo "- pgbench: \`$( [ "$preload" -gt 0 ] && printf 'BENCH_PRELOAD=%s BENCH_PRELOAD_SUBJECTS=%s ' "$preload" "$subjects")$( [ -n "${BENCH_PARTITION_INTERVAL:-}" ] && printf "BENCH_PARTITION_INTERVAL='%s' " "$BENCH_PARTITION_INTERVAL")BENCH_ROUNDS=$rounds BENCH_SECONDS=$secs BENCH_VARIANTS='$variants' test/bench/run.sh $mode\`;" \
			"pgbench -M simple -c $clients -j $clients -n -T $secs, workload.sql (3.2 tracked row changes per transaction)," \
			"variants interleaved, each run on a fresh database; ratio = tps / tps of none in the same round"
		echo "- bytes per change: growth of the capture table(s), indexes and TOAST included, during the run / captured row changes"
		echo "- server CPU µs per change beyond none: CPU time (utime + stime) of the postmaster and all its children, exited ones included, over the pgbench run (common.sh, bench_server_cpu_us), per transaction, minus none's per transaction in the same round, divided by the captured changes per transaction: what capture costs the server, the worker included, steadier than tps on a loaded machine (pgbench's own CPU is not in it)"
		echo "- WAL bytes per change beyond none: pg_current_wal_insert_lsn() after pgbench minus before (after its CHECKPOINT, so full-page images are in; the whole cluster's WAL, the worker's included), per transaction, minus none's per transaction in the same round, divided by the captured changes per transaction"
		if [ "$preload" -gt 0 ]; then
			echo "- pre-loaded runs (\"NAME, $preload events\"): each round on a copy (CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY) of a template with $preload events over $subjects accounts in the capture table, VACUUM ANALYZEd (test/bench/common.sh, bench_preload_sql); the copy's activity_monitor worker is started as CREATE EXTENSION would; shared_buffers $(psql -X -At -c "SHOW shared_buffers")"
			while read -r v secs_t desc; do
				echo "- template for $v built in $secs_t s: $desc"
			done <"$work/templates"
		fi
		echo "- pgbench rounds took $t_rounds s"
	fi
	echo "- machine load average (1, 5, 15 min) at the start: $load_before; at the end: $load_after; whole run $(($(date +%s) - t_began)) s"
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
