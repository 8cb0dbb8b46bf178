#!/usr/bin/env bash
# Capture micro-benchmark: the cost capture adds per row change in one
# backend, steady enough on a noisy machine to steer optimisation.  One
# database holds identical payment tables: payments_plain (untracked),
# payments_am (activity_monitor.track), payments_plpgsql (the PL/pgSQL
# reference trigger, plpgsql_audit.sql) and payments_pgq (PgQ logutriga, if
# installed).  For MICRO_RUNS runs, interleaved table by table, one psql
# session empties a table and its capture table, CHECKPOINTs, then times an
# INSERT ... SELECT of MICRO_ROWS rows and an UPDATE of all of them (each
# statement its own transaction, clock_timestamp() before and after), and
# the WAL each statement wrote (pg_current_wal_insert_lsn() before and
# after; full-page images included: the insert is the first write after
# the checkpoint).  From the minimum over runs it reports the µs per row
# change added over the untracked table, insert and update apart, and the
# ratio to the PL/pgSQL figure; from the median over runs the WAL bytes per
# change added over the untracked table; and the same from the writing
# backend's CPU time (utime + stime of /proc/PID/stat, read by the server
# itself through pg_read_file, so the server must run on Linux), steadier
# than the wall clock on a loaded machine.
#
# BENCH_PRELOAD=N measures each run twice (common.sh, bench_preload_sql):
# in the database above, and in a second one set up alike whose capture
# tables were pre-loaded once: today's partition of activity_monitor.activity
# N events, audit.record_version N rows (over BENCH_PRELOAD_SUBJECTS
# accounts), then VACUUM ANALYZE and CHECKPOINT.  The one session switches
# database (\c) before each run, so that both sides see the same machine
# load; in the pre-loaded database the capture tables are not emptied
# (each run's own rows, 2 x MICRO_ROWS, stay on top of the N: 0.8 % of 5
# million after 5 runs of 20,000 rows, not worth a DELETE and the VACUUM it
# would need); the tracked tables are still emptied.  PgQ's queue is not
# pre-loaded (its event tables rotate; emptied before each run in both,
# with a note).  The report then gives both side by side and the ratio of
# the pre-loaded figure to the empty one.
#
#   test/bench/micro.sh          (or test/bench/run.sh micro)
#   BENCH_PRELOAD=5000000 MICRO_VARIANTS='plain activity_monitor plpgsql am_rules' test/bench/micro.sh
#
# MICRO_CHECKPOINT=each (the default) CHECKPOINTs before every run, so that
# every page a run writes carries its full-page image (the first write of a
# checkpoint cycle: the worst case, and at 20,000 rows over 10,000 accounts
# nearly every leaf of an index led by the account is written first); once
# CHECKPOINTs before the first run only, so that the later runs (the min
# over runs) measure a change in the middle of a checkpoint cycle, its pages
# already written since the checkpoint (the steady state of a busy server).
#
# Environment: MICRO_ROWS (20000), MICRO_RUNS (5), MICRO_CHECKPOINT (each), MICRO_VARIANTS (plain
# activity_monitor plpgsql pgq; also am_rules: activity_monitor with 10
# alert rules evaluated bare, am_guarded: 9 of them and one like_regex rule,
# evaluated in a subtransaction, am_detection: am_rules' ten and ten of each
# detection v2 type: sequences, absences, first seen, all of which match
# every change; am_book: am_rules' ten and rule_book.sql's thirty, ten of
# each type as a fraud team writes them: a change matches a few;
# am_book_only: rule_book.sql's thirty alone), MICRO_OUT (also write the markdown there),
# BENCH_PRELOAD (0: no second phase), BENCH_PRELOAD_SUBJECTS (100000),
# BENCH_PARTITION_INTERVAL (e.g. '1 hour': the activity's partitions that
# long, the pre-load a day ending with the current one; common.sh),
# BENCH_USE_EXISTING=1 (use the server PGHOST/PGPORT name), BENCH_NO_APT=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

rows=${MICRO_ROWS:-20000}
runs=${MICRO_RUNS:-5}
checkpoint=${MICRO_CHECKPOINT:-each}
case $checkpoint in each|once) ;; *) echo "MICRO_CHECKPOINT: each or once, not $checkpoint" >&2; exit 2 ;; esac
preload=${BENCH_PRELOAD:-0}
subjects=${BENCH_PRELOAD_SUBJECTS:-100000}
case $preload$subjects in
*[!0-9]*) echo "BENCH_PRELOAD and BENCH_PRELOAD_SUBJECTS must be numbers" >&2; exit 2 ;;
esac
[ "$subjects" -gt 0 ] || { echo "BENCH_PRELOAD_SUBJECTS must be positive" >&2; exit 2; }
want=${MICRO_VARIANTS:-plain activity_monitor plpgsql pgq}
work=$BENCH_WORK

bench_cluster_up
db=am_bench_micro_$$
dbp=${db}_pre
notes=()

# The table each variant writes to, and what empties its capture.
table_of() {
	case $1 in
	plain) echo payments_plain ;;
	activity_monitor) echo payments_am ;;
	plpgsql) echo payments_plpgsql ;;
	pgq) echo payments_pgq ;;
	am_rules) echo payments_amr ;;
	am_guarded) echo payments_amg ;;
	am_detection) echo payments_amd ;;
	am_book) echo payments_amb ;;
	am_book_only) echo payments_ambo ;;
	esac
}
capture_truncate() {
	case $1 in
	activity_monitor | am_rules | am_guarded | am_detection | am_book | am_book_only) echo "TRUNCATE activity_monitor.activity;" ;;
	plpgsql) echo "TRUNCATE audit.record_version;" ;;
	pgq) echo "SELECT format('TRUNCATE %s', queue_data_pfx) FROM pgq.queue WHERE queue_name = 'micro' \\gexec" ;;
	esac
}
# What the variant's run captured since :'t_run' (its capture table may hold
# a preload, and other variants' rows).
capture_count() {
	case $1 in
	activity_monitor | am_rules | am_guarded | am_detection | am_book | am_book_only)
		echo "SELECT count(*) FROM activity_monitor.activity WHERE occurred_at >= :'t_run' AND action <> 'truncate'" ;;
	plpgsql) echo "SELECT count(*) FROM audit.record_version WHERE ts >= :'t_run'" ;;
	pgq) echo "SELECT count(*) FROM pgq.event_template" ;;
	esac
}
# The capture table a variant's preload goes to ("" if none).
preload_kind() {
	case $1 in
	activity_monitor | am_rules | am_guarded | am_detection | am_book | am_book_only) echo activity ;;
	plpgsql) echo audit ;;
	esac
}

variants=()
for v in $want; do
	case $v in
	plain | plpgsql | activity_monitor | am_rules | am_guarded | am_detection | am_book | am_book_only) variants+=("$v") ;;
	pgq)
		if bench_ensure_ext pgq; then
			variants+=("$v")
		else
			notes+=("pgq skipped: extension pgq is not installed ($(bench_ext_package pgq) not available)")
		fi
		;;
	*) echo "unknown micro variant $v" >&2; exit 2 ;;
	esac
done
case " ${variants[*]} " in
*" plain "*) ;;
*) echo "MICRO_VARIANTS must include plain (the baseline)" >&2; exit 2 ;;
esac
has() { case " ${variants[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# --- setup ----------------------------------------------------------------------
dbs=$db
[ "$preload" -gt 0 ] && dbs="$db $dbp"
for d in $dbs; do
	"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" -c "CREATE DATABASE $d"
done
cleanup_db() {
	for d in $dbs; do psql -X -q -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
	bench_cleanup
}
trap cleanup_db EXIT
{
	cat <<-'EOF'
		SET client_min_messages = warning;
		CREATE TABLE payments_plain (
			id			bigint PRIMARY KEY,
			account_id	bigint NOT NULL,
			amount		numeric(14,2) NOT NULL,
			currency	text NOT NULL DEFAULT 'EUR',
			status		text NOT NULL DEFAULT 'pending',
			created_at	timestamptz NOT NULL DEFAULT now(),
			updated_at	timestamptz NOT NULL DEFAULT now()
		);
		CREATE INDEX ON payments_plain (account_id, created_at);
	EOF
	for v in "${variants[@]}"; do
		[ "$v" = plain ] && continue
		echo "CREATE TABLE $(table_of "$v") (LIKE payments_plain INCLUDING ALL);"
	done
	if has activity_monitor || has am_rules || has am_guarded || has am_detection || has am_book || has am_book_only; then
		echo "CREATE EXTENSION activity_monitor;"
		bench_layout_sql
	fi
	if has activity_monitor; then
		echo "SELECT activity_monitor.track('payments_am', 'payment', subject_column => 'account_id', status_column => 'status');"
	fi
	# ten per-event rules; am_guarded swaps the last for one that needs the guard
	for v in am_rules am_guarded am_detection am_book; do
		has $v || continue
		t=$(table_of $v)
		echo "SELECT activity_monitor.track('$t', 'payment', subject_column => 'account_id', status_column => 'status');"
		n=0
		for p in '$.new.amount > 900' '$.action == "update" && $.new.status == "completed" && $.new.amount > 950' \
			'$.status_to == "refunded"' '$.new.currency != "EUR"' '$.actor_type == "employee"' '$.new.amount < 0' \
			'$.new.account_id == 42' '$.new.status == "failed"' '$.changed[*] == "amount"' \
			"$([ $v != am_guarded ] && echo '$.new.amount > 100 && $.new.currency == "USD"' || echo '$.new.currency like_regex "^US"')"; do
			n=$((n + 1))
			echo "SELECT activity_monitor.create_rule('${v}_$n', '$p', tables => '{$t}');"
		done
	done
	# am_detection: the ten rules above plus ten of each detection v2 type
	# (variant_activity_monitor_detection.sql's, on this table): sequences
	# per account (inserted, completed, then one above 499.50), absences per
	# payment (pending, not completed: each insert waits, its update
	# cancels), first seen currencies per account
	if has am_detection; then
		t=$(table_of am_detection)
		echo "SELECT count(activity_monitor.create_rule('amd_seq' || i, 'true', tables => '{$t}',
	steps => ARRAY['\$.action == \"insert\"', '\$.status_to == \"completed\"',
				   '\$.action == \"insert\" && \$.new.amount > 499.5']::jsonpath[],
	within => '1 hour', cooldown => '1 hour')) FROM generate_series(1, 10) i;"
		echo "SELECT count(activity_monitor.create_rule('amd_abs' || i, 'true', tables => '{$t}', group_by => '\$.row_key',
	steps => ARRAY['\$.status_to == \"pending\"']::jsonpath[],
	missing => '\$.status_to == \"completed\" || \$.status_to == \"failed\"', within => '30 minutes'))
	FROM generate_series(1, 10) i;"
		echo "SELECT count(activity_monitor.create_rule('amd_seen' || i, '\$.action == \"insert\"', tables => '{$t}',
	measure_path => '\$.new.currency', lookback => '30 days')) FROM generate_series(1, 10) i;"
	fi
	if has am_book; then
		echo "\\set book_table $(table_of am_book)"
		echo "\\i '$BENCH_DIR/rule_book.sql'"
	fi
	# am_book_only: the book's thirty alone, no per-event rule (issue 14's
	# "10 rules of each new type active")
	if has am_book_only; then
		t=$(table_of am_book_only)
		echo "SELECT activity_monitor.track('$t', 'payment', subject_column => 'account_id', status_column => 'status');"
		echo "\\set book_table $t"
		echo "\\i '$BENCH_DIR/rule_book.sql'"
	fi
	if has plpgsql; then
		echo "\\i '$BENCH_DIR/plpgsql_audit.sql'"
		echo "CREATE TRIGGER audit_i_u_d AFTER INSERT OR UPDATE OR DELETE ON payments_plpgsql"
		echo "	FOR EACH ROW EXECUTE FUNCTION audit.insert_update_delete_trigger();"
	fi
	if has pgq; then
		echo "CREATE EXTENSION pgq;"
		echo "SELECT pgq.create_queue('micro');"
		echo "CREATE TRIGGER micro_pgq AFTER INSERT OR UPDATE OR DELETE ON payments_pgq"
		echo "	FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('micro');"
	fi
} >"$work/micro_setup.sql"
for d in $dbs; do
	if ! (cd "$BENCH_DIR" && "${BENCH_PSQL[@]}" -d "$d" -f "$work/micro_setup.sql") >"$work/micro_setup.log" 2>&1; then
		cat "$work/micro_setup.log" >&2
		exit 1
	fi
done

# --- pre-load ------------------------------------------------------------------------
# BENCH_PRELOAD: the second database's capture tables get the pre-load.
preload_desc=""
phases="empty"
if [ "$preload" -gt 0 ]; then
	phases="empty preloaded"
	kinds=""
	for v in "${variants[@]}"; do
		k=$(preload_kind "$v")
		[ -n "$k" ] && case " $kinds " in *" $k "*) ;; *) kinds="$kinds $k" ;; esac
	done
	has pgq && notes+=("pgq is not pre-loaded: its queue is emptied before each run in both databases")
	for k in $kinds; do
		t0=$(date +%s)
		echo "pre-loading $preload rows into the $k capture table ($subjects accounts)" >&2
		bench_preload_sql "$k" "$preload" "$subjects" | "${BENCH_PSQL[@]}" -d "$dbp" >/dev/null
		preload_desc="$preload_desc; $k: $(psql -X -At -d "$dbp" -c "SELECT count(*) FROM $([ "$k" = activity ] && echo "activity_monitor.activity WHERE kind <> 'admin'" || echo audit.record_version)") rows in $(($(date +%s) - t0)) s ($(psql -X -At -d "$dbp" -c "$(bench_index_sizes "$k")" | paste -sd ';' | sed 's/;/; /g'))"
	done
fi

# --- the timed script: one session, runs interleaved table by table ----------------
# MICRO_RUNS runs of every variant, each (with BENCH_PRELOAD) once on the
# empty database and once on the pre-loaded one, the session switching
# between them (\c; the TRUNCATE that follows loads the new backend's
# caches); lines "R phase variant op run µs wal-bytes cpu-µs" and, for the last
# run, "C phase variant captured".  In the pre-loaded database the capture
# tables that were pre-loaded are not emptied.
# The backend's CPU time so far (utime + stime, clock ticks), read by the
# server from its own /proc entry (superuser: pg_read_file).
cpu_sql="(SELECT a[12]::bigint + a[13]::bigint FROM pg_catalog.string_to_array(pg_catalog.split_part(pg_catalog.pg_read_file('/proc/' || pg_catalog.pg_backend_pid() || '/stat'), ') ', 2), ' ') a)"
tick_us=$((1000000 / $(getconf CLK_TCK)))
one_run() {
	local ph=$1 v=$2 r=$3 t
	t=$(table_of "$v")
	echo "SELECT clock_timestamp() AS t_run \\gset"
	echo "TRUNCATE $t;"
	if [ "$ph" = empty ] || [ -z "$(preload_kind "$v")" ]; then
		capture_truncate "$v"
	fi
	if [ "$checkpoint" = each ] || [ "$r" = 1 ]; then
		echo "CHECKPOINT;"
	fi
	echo "SELECT pg_current_wal_insert_lsn() AS l0, $cpu_sql AS c0, clock_timestamp() AS t0 \\gset"
	echo "INSERT INTO $t (id, account_id, amount, currency, status)"
	echo "	SELECT g, 1 + g % 10000, (g % 50000) / 100.0, 'EUR', 'pending' FROM generate_series(1, $rows) g;"
	echo "SELECT 'R $ph $v insert $r ' || (extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1e6)::bigint"
	echo "	|| ' ' || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0') || ' ' || ($cpu_sql - :c0) * $tick_us;"
	echo "SELECT pg_current_wal_insert_lsn() AS l0, $cpu_sql AS c0, clock_timestamp() AS t0 \\gset"
	echo "UPDATE $t SET status = 'completed', updated_at = now();"
	echo "SELECT 'R $ph $v update $r ' || (extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1e6)::bigint"
	echo "	|| ' ' || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0') || ' ' || ($cpu_sql - :c0) * $tick_us;"
	# What the last run captured, to check that capture really happened.
	if [ "$r" = "$runs" ] && [ "$v" != plain ]; then
		echo "SELECT 'C $ph $v ' || ($(capture_count "$v"));"
	fi
}
{
	echo '\set ON_ERROR_STOP 1'
	for r in $(seq 1 "$runs"); do
		for v in "${variants[@]}"; do
			if [ "$preload" -gt 0 ]; then
				echo "\\c $db"
				one_run empty "$v" "$r"
				echo "\\c $dbp"
				one_run preloaded "$v" "$r"
			else
				one_run empty "$v" "$r"
			fi
		done
	done
} >"$work/micro_run.sql"
echo "micro: ${variants[*]}; $runs runs of $rows rows" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -f "$work/micro_run.sql" >"$work/micro_times" 2>"$work/micro_run.log" ||
	{ cat "$work/micro_run.log" >&2; exit 1; }
t_timed=$(($(date +%s) - t_start))

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ---------------------------------------------------------------------------
# min over runs, in µs, of phase $1, variant $2, op $3
tmin() { awk -v ph="$1" -v v="$2" -v op="$3" '$1 == "R" && $2 == ph && $3 == v && $4 == op { if (m == "" || $6 < m) m = $6 } END { print m }' "$work/micro_times"; }
# median over runs of the WAL bytes of phase $1, variant $2, op $3
wmed() { awk -v ph="$1" -v v="$2" -v op="$3" '$1 == "R" && $2 == ph && $3 == v && $4 == op { print $7 }' "$work/micro_times" | bench_median; }
# µs per row added over plain: phase, variant, op
added() { awk -v a="$(tmin "$1" "$2" "$3")" -v b="$(tmin "$1" plain "$3")" -v n="$rows" 'BEGIN { printf "%.2f", (a - b) / n }'; }
# WAL bytes per row added over plain: phase, variant, op
wadded() { awk -v a="$(wmed "$1" "$2" "$3")" -v b="$(wmed "$1" plain "$3")" -v n="$rows" 'BEGIN { printf "%.0f", (a - b) / n }'; }
# min over runs of the backend's CPU µs of phase $1, variant $2, op $3, and per row added over plain
cmin() { awk -v ph="$1" -v v="$2" -v op="$3" '$1 == "R" && $2 == ph && $3 == v && $4 == op { if (m == "" || $8 < m) m = $8 } END { print m }' "$work/micro_times"; }
cadded() { awk -v a="$(cmin "$1" "$2" "$3")" -v b="$(cmin "$1" plain "$3")" -v n="$rows" 'BEGIN { printf "%.2f", (a - b) / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "–" }'; }
avg2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a + b) / 2 }'; }
per_row() { awk -v a="$(tmin "$1" plain "$2")" -v n="$rows" 'BEGIN { printf "%.2f", a / n }'; }
phase_title() {
	case $1 in
	empty) echo "capture tables emptied before each run" ;;
	preloaded) if [ -n "${BENCH_PARTITION_INTERVAL:-}" ]; then
		echo "$preload events over the last day in partitions of $BENCH_PARTITION_INTERVAL, the current one holding its full share (the PL/pgSQL reference's table $preload rows), another database"
	else
		echo "today's partition holding $preload events (the PL/pgSQL reference's table $preload rows), another database"
	fi ;;
	esac
}
# the per-phase table (its rows' shape is what test/shell/bench_smoke.sh checks)
phase_table() {
	local ph=$1 pi="" pu="" ai au ab pb cap v
	if has plpgsql; then
		pi=$(added "$ph" plpgsql insert)
		pu=$(added "$ph" plpgsql update)
	fi
	echo "| variant | insert: µs added per row | insert vs plpgsql | update: µs added per row | update vs plpgsql | both: µs per change | both vs plpgsql | captured (last run) |"
	echo "|---|---|---|---|---|---|---|---|"
	for v in "${variants[@]}"; do
		[ "$v" = plain ] && continue
		ai=$(added "$ph" "$v" insert)
		au=$(added "$ph" "$v" update)
		ab=$(avg2 "$ai" "$au")
		pb=$(avg2 "${pi:-0}" "${pu:-0}")
		cap=$(awk -v ph="$ph" -v v="$v" '$1 == "C" && $2 == ph && $3 == v { print $4 }' "$work/micro_times")
		echo "| $v | $ai | $(ratio "$ai" "${pi:-0}") | $au | $(ratio "$au" "${pu:-0}") | $ab | $(ratio "$ab" "$pb") | $cap of $((2 * rows)) |"
	done
}

{
	echo "## Per-change cost in one backend (micro.sh)"
	echo
	echo "\`$( [ "$preload" -gt 0 ] && printf 'BENCH_PRELOAD=%s BENCH_PRELOAD_SUBJECTS=%s ' "$preload" "$subjects")$( [ -n "${BENCH_PARTITION_INTERVAL:-}" ] && printf "BENCH_PARTITION_INTERVAL='%s' " "$BENCH_PARTITION_INTERVAL")MICRO_ROWS=$rows MICRO_RUNS=$runs$( [ "$checkpoint" = once ] && printf ' MICRO_CHECKPOINT=once')$( [ -n "${BENCH_CONF:-}" ] && printf " BENCH_CONF='%s'" "$BENCH_CONF") MICRO_VARIANTS='${variants[*]}' test/bench/micro.sh\`:" \
		"INSERT ... SELECT of $rows rows, then UPDATE of all of them," \
		"each variant's table in turn, min of $runs interleaved runs; µs per row change added over the untracked table" \
		"(untracked, $(phase_title empty): $(per_row empty insert) µs per inserted row, $(per_row empty update) µs per updated row$(
			[ "$preload" -gt 0 ] && printf '; %s: %s and %s' "preloaded" "$(per_row preloaded insert)" "$(per_row preloaded update)")). Timed runs: $t_timed s$(
			[ "$preload" -gt 0 ] && printf ' (each run once on an empty and once on the pre-loaded database, in turn)')."
	if [ "$preload" -gt 0 ]; then
		echo "Pre-load, in a second database set up alike: $preload rows over $subjects accounts into each pre-loadable capture table, then VACUUM ANALYZE and CHECKPOINT$preload_desc." \
			"shared_buffers $(psql -X -At -c "SHOW shared_buffers"). Each preloaded run's own $((2 * rows)) rows stay on top."
	fi
	echo "Machine load average (1, 5, 15 min) before the runs: $load_before; after: $load_after."
	for n in "${notes[@]+"${notes[@]}"}"; do echo "Note: $n"; done
	for ph in $phases; do
		echo
		echo "### Per change, $(phase_title "$ph")"
		echo
		phase_table "$ph"
	done
	echo
	echo "### WAL bytes per row change added over the untracked table"
	echo
	echo "pg_current_wal_insert_lsn() around each statement, median of the runs, minus the untracked table's, per row;" \
		"$( [ "$checkpoint" = each ] && echo "the insert is the first write after a CHECKPOINT, so the full-page image of every page it touches first is in its figure." ||
			echo "one CHECKPOINT before the first run only: the later runs write pages already written since it (few full-page images).")"
	echo
	printf '| variant |'
	for ph in $phases; do printf ' insert, %s | update, %s | both, %s |' "$ph" "$ph" "$ph"; done
	echo
	printf '|---|'
	for ph in $phases; do printf -- '---|---|---|'; done
	echo
	for v in "${variants[@]}"; do
		printf '| %s |' "$v"
		for ph in $phases; do
			if [ "$v" = plain ]; then
				awk -v i="$(wmed "$ph" plain insert)" -v u="$(wmed "$ph" plain update)" -v n="$rows" \
					'BEGIN { printf " (%.0f per row) | (%.0f per row) | (%.0f per change) |", i / n, u / n, (i + u) / 2 / n }'
			else
				wi=$(wadded "$ph" "$v" insert)
				wu=$(wadded "$ph" "$v" update)
				printf ' %s | %s | %s |' "$wi" "$wu" "$(awk -v a="$wi" -v b="$wu" 'BEGIN { printf "%.0f", (a + b) / 2 }')"
			fi
		done
		echo
	done
	echo
	echo "### CPU time of the writing backend per row change added over the untracked table"
	echo
	echo "utime + stime of the backend (/proc, read by the server; $tick_us µs ticks) around each statement, minimum of the runs," \
		"minus the untracked table's, per row: steadier than the wall clock on a loaded machine; the worker's work (alert rules) is not in it."
	echo
	printf '| variant |'
	for ph in $phases; do printf ' insert, %s | update, %s | both, %s | both vs plpgsql, %s |' "$ph" "$ph" "$ph" "$ph"; done
	echo
	printf '|---|'
	for ph in $phases; do printf -- '---|---|---|---|'; done
	echo
	for v in "${variants[@]}"; do
		printf '| %s |' "$v"
		for ph in $phases; do
			if [ "$v" = plain ]; then
				awk -v i="$(cmin "$ph" plain insert)" -v u="$(cmin "$ph" plain update)" -v n="$rows" \
					'BEGIN { printf " (%.2f per row) | (%.2f per row) | (%.2f per change) | |", i / n, u / n, (i + u) / 2 / n }'
			else
				ci=$(cadded "$ph" "$v" insert)
				cu=$(cadded "$ph" "$v" update)
				cb=$(avg2 "$ci" "$cu")
				cp=""
				has plpgsql && cp=$(avg2 "$(cadded "$ph" plpgsql insert)" "$(cadded "$ph" plpgsql update)")
				printf ' %s | %s | %s | %s |' "$ci" "$cu" "$cb" "$(ratio "$cb" "${cp:-0}")"
			fi
		done
		echo
	done
	if [ "$preload" -gt 0 ]; then
		echo
		echo "### Summary: today's partition empty against holding $preload events"
		echo
		echo "Both: the mean of insert and update, µs per change added over the untracked table (×empty: preloaded / empty);" \
			"vs plpgsql: divided by the PL/pgSQL reference's figure of the same phase."
		echo
		echo "CPU: the same from the backend's CPU time (the table above)."
		echo
		echo "| variant | µs added per change, emptied | µs added per change, $preload events | ×empty | vs plpgsql, emptied | vs plpgsql, $preload events | WAL bytes added per change, emptied | WAL, $preload events | CPU µs added per change, emptied | CPU, $preload events | CPU ×empty |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|"
		pe=""
		pp=""
		if has plpgsql; then
			pe=$(avg2 "$(added empty plpgsql insert)" "$(added empty plpgsql update)")
			pp=$(avg2 "$(added preloaded plpgsql insert)" "$(added preloaded plpgsql update)")
		fi
		for v in "${variants[@]}"; do
			[ "$v" = plain ] && continue
			e=$(avg2 "$(added empty "$v" insert)" "$(added empty "$v" update)")
			q=$(avg2 "$(added preloaded "$v" insert)" "$(added preloaded "$v" update)")
			we=$(awk -v a="$(wadded empty "$v" insert)" -v b="$(wadded empty "$v" update)" 'BEGIN { printf "%.0f", (a + b) / 2 }')
			wq=$(awk -v a="$(wadded preloaded "$v" insert)" -v b="$(wadded preloaded "$v" update)" 'BEGIN { printf "%.0f", (a + b) / 2 }')
			ce=$(avg2 "$(cadded empty "$v" insert)" "$(cadded empty "$v" update)")
			cq=$(avg2 "$(cadded preloaded "$v" insert)" "$(cadded preloaded "$v" update)")
			echo "| $v$([ -z "$(preload_kind "$v")" ] && echo ' (not pre-loaded)') | $e | $q | $(ratio "$q" "$e") | $(ratio "$e" "${pe:-0}") | $(ratio "$q" "${pp:-0}") | $we | $wq | $ce | $cq | $(ratio "$cq" "$ce") |"
		done
	fi
	echo
	echo "Minimum ms per statement:"
	echo
	printf '| variant |'
	for ph in $phases; do printf ' insert ms, %s | update ms, %s |' "$ph" "$ph"; done
	echo
	printf '|---|'
	for ph in $phases; do printf -- '---|---|'; done
	echo
	for v in "${variants[@]}"; do
		printf '| %s |' "$v"
		for ph in $phases; do
			awk -v i="$(tmin "$ph" "$v" insert)" -v u="$(tmin "$ph" "$v" update)" 'BEGIN { printf " %.1f | %.1f |", i / 1000, u / 1000 }'
		done
		echo
	done
} >"$work/micro.md"
cat "$work/micro.md"
if [ -n "${MICRO_OUT:-}" ]; then
	cp "$work/micro.md" "$MICRO_OUT"
else
	out_dir=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
	mkdir -p "$out_dir"
	{ echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(bench_machine)"; echo; cat "$work/micro.md"; } >"$out_dir/micro-latest.md"
	echo "written: $out_dir/micro-latest.md" >&2
fi
