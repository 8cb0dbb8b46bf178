#!/usr/bin/env bash
# Capture micro-benchmark: the cost capture adds per row change in one
# backend, steady enough on a noisy machine to steer optimisation.  One
# database holds identical payment tables: payments_plain (untracked),
# payments_am (activity_monitor.track), payments_plpgsql (the PL/pgSQL
# reference trigger, plpgsql_audit.sql) and payments_pgq (PgQ logutriga, if
# installed).  For MICRO_RUNS runs, interleaved table by table, one psql
# session empties a table and its capture table, CHECKPOINTs, then times an
# INSERT ... SELECT of MICRO_ROWS rows and an UPDATE of all of them (each
# statement its own transaction, clock_timestamp() before and after).  From
# the minimum over runs it reports the µs per row change added over the
# untracked table, insert and update apart, and the ratio to the PL/pgSQL
# figure.
#
#   test/bench/micro.sh          (or test/bench/run.sh micro)
#
# Environment: MICRO_ROWS (20000), MICRO_RUNS (5), MICRO_VARIANTS (plain
# activity_monitor plpgsql pgq; also am_rules: activity_monitor with 10
# alert rules evaluated bare, am_guarded: 9 of them and one like_regex rule,
# evaluated in a subtransaction), MICRO_OUT (also write the markdown there),
# BENCH_USE_EXISTING=1 (use the server PGHOST/PGPORT name), BENCH_NO_APT=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

rows=${MICRO_ROWS:-20000}
runs=${MICRO_RUNS:-5}
want=${MICRO_VARIANTS:-plain activity_monitor plpgsql pgq}
work=$BENCH_WORK

bench_cluster_up
db=am_bench_micro_$$
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
	esac
}
capture_truncate() {
	case $1 in
	activity_monitor | am_rules | am_guarded) echo "TRUNCATE activity_monitor.activity;" ;;
	plpgsql) echo "TRUNCATE audit.record_version;" ;;
	pgq) echo "SELECT format('TRUNCATE %s', queue_data_pfx) FROM pgq.queue WHERE queue_name = 'micro' \\gexec" ;;
	esac
}
capture_count() {
	case $1 in
	activity_monitor | am_rules | am_guarded) echo "SELECT count(*) FROM activity_monitor.activity WHERE action <> 'truncate'" ;;
	plpgsql) echo "SELECT count(*) FROM audit.record_version" ;;
	pgq) echo "SELECT count(*) FROM pgq.event_template" ;;
	esac
}

variants=()
for v in $want; do
	case $v in
	plain | plpgsql | activity_monitor | am_rules | am_guarded) variants+=("$v") ;;
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
"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
cleanup_db() { psql -X -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; bench_cleanup; }
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
	if has activity_monitor || has am_rules || has am_guarded; then
		echo "CREATE EXTENSION activity_monitor;"
	fi
	if has activity_monitor; then
		echo "SELECT activity_monitor.track('payments_am', 'payment', subject_column => 'account_id', status_column => 'status');"
	fi
	# ten per-event rules; am_guarded swaps the last for one that needs the guard
	for v in am_rules am_guarded; do
		has $v || continue
		t=$(table_of $v)
		echo "SELECT activity_monitor.track('$t', 'payment', subject_column => 'account_id', status_column => 'status');"
		n=0
		for p in '$.new.amount > 900' '$.action == "update" && $.new.status == "completed" && $.new.amount > 950' \
			'$.status_to == "refunded"' '$.new.currency != "EUR"' '$.actor_type == "employee"' '$.new.amount < 0' \
			'$.new.account_id == 42' '$.new.status == "failed"' '$.changed[*] == "amount"' \
			"$([ $v = am_rules ] && echo '$.new.amount > 100 && $.new.currency == "USD"' || echo '$.new.currency like_regex "^US"')"; do
			n=$((n + 1))
			echo "SELECT activity_monitor.create_rule('${v}_$n', '$p', tables => '{$t}');"
		done
	done
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
if ! (cd "$BENCH_DIR" && "${BENCH_PSQL[@]}" -d "$db" -f "$work/micro_setup.sql") >"$work/micro_setup.log" 2>&1; then
	cat "$work/micro_setup.log" >&2
	exit 1
fi

# --- the timed script: one session, runs interleaved table by table ----------------
{
	echo '\set ON_ERROR_STOP 1'
	for r in $(seq 1 "$runs"); do
		for v in "${variants[@]}"; do
			t=$(table_of "$v")
			echo "TRUNCATE $t;"
			capture_truncate "$v"
			echo "CHECKPOINT;"
			echo "SELECT clock_timestamp() AS t0 \\gset"
			echo "INSERT INTO $t (id, account_id, amount, currency, status)"
			echo "	SELECT g, 1 + g % 10000, (g % 50000) / 100.0, 'EUR', 'pending' FROM generate_series(1, $rows) g;"
			echo "SELECT 'R $v insert $r ' || (extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1e6)::bigint;"
			echo "SELECT clock_timestamp() AS t0 \\gset"
			echo "UPDATE $t SET status = 'completed', updated_at = now();"
			echo "SELECT 'R $v update $r ' || (extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1e6)::bigint;"
			# What the last run captured, to check that capture really happened.
			if [ "$r" = "$runs" ] && [ "$v" != plain ]; then
				echo "SELECT 'C $v ' || ($(capture_count "$v"));"
			fi
		done
	done
} >"$work/micro_run.sql"
echo "micro: ${variants[*]}; $runs runs of $rows rows" >&2
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -f "$work/micro_run.sql" >"$work/micro_times" 2>"$work/micro_run.log" ||
	{ cat "$work/micro_run.log" >&2; exit 1; }

# --- report ---------------------------------------------------------------------------
# min over runs, in µs, of variant $1 and op $2
tmin() { awk -v v="$1" -v op="$2" '$1 == "R" && $2 == v && $3 == op { if (m == "" || $5 < m) m = $5 } END { print m }' "$work/micro_times"; }
added() { awk -v a="$(tmin "$1" "$2")" -v b="$(tmin plain "$2")" -v n="$rows" 'BEGIN { printf "%.2f", (a - b) / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "–" }'; }

{
	echo "## Per-change cost in one backend (micro.sh)"
	echo
	echo "\`MICRO_ROWS=$rows MICRO_RUNS=$runs test/bench/micro.sh\`: INSERT ... SELECT of $rows rows, then UPDATE of all of them," \
		"each variant's table in turn, min of $runs interleaved runs; µs per row change added over the untracked table" \
		"(untracked: $(awk -v a="$(tmin plain insert)" -v n="$rows" 'BEGIN { printf "%.2f", a / n }') µs per inserted row," \
		"$(awk -v a="$(tmin plain update)" -v n="$rows" 'BEGIN { printf "%.2f", a / n }') µs per updated row)."
	for n in "${notes[@]+"${notes[@]}"}"; do echo "Note: $n"; done
	echo
	echo "| variant | insert: µs added per row | insert vs plpgsql | update: µs added per row | update vs plpgsql | both: µs per change | both vs plpgsql | captured (last run) |"
	echo "|---|---|---|---|---|---|---|---|"
	pi=""
	pu=""
	if has plpgsql; then
		pi=$(added plpgsql insert)
		pu=$(added plpgsql update)
	fi
	for v in "${variants[@]}"; do
		[ "$v" = plain ] && continue
		ai=$(added "$v" insert)
		au=$(added "$v" update)
		ab=$(awk -v a="$ai" -v b="$au" 'BEGIN { printf "%.2f", (a + b) / 2 }')
		pb=$(awk -v a="${pi:-0}" -v b="${pu:-0}" 'BEGIN { printf "%.2f", (a + b) / 2 }')
		cap=$(awk -v v="$v" '$1 == "C" && $2 == v { print $3 }' "$work/micro_times")
		echo "| $v | $ai | $(ratio "$ai" "${pi:-0}") | $au | $(ratio "$au" "${pu:-0}") | $ab | $(ratio "$ab" "$pb") | $cap of $((2 * rows)) |"
	done
	echo
	echo "Minimum ms per statement:"
	echo
	echo "| variant | insert ms (min) | update ms (min) |"
	echo "|---|---|---|"
	for v in "${variants[@]}"; do
		awk -v v="$v" -v i="$(tmin "$v" insert)" -v u="$(tmin "$v" update)" 'BEGIN { printf "| %s | %.1f | %.1f |\n", v, i / 1000, u / 1000 }'
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
