# Shared by test/bench/run.sh and test/bench/micro.sh (sourced, not run):
# the cluster the benchmarks use, variant availability, medians, machine
# facts.
#
#   bench_cluster_up     BENCH_USE_EXISTING=1: use the server PGHOST/PGPORT
#                        name (the test suite's); otherwise start a throwaway
#                        cluster with test/lib/cluster.sh, stopped on exit,
#                        with the postgresql.conf lines of the array
#                        BENCH_CLUSTER_CONF (set by the calling script) and
#                        of BENCH_CONF (environment: lines separated by ";",
#                        e.g. BENCH_CONF="wal_compression = lz4") added
#   bench_ext_available EXT   0 if EXT is in pg_available_extensions
#   bench_ensure_ext EXT       the same, installing the Debian package first
#                              when allowed (root, own cluster or BENCH_APT_OK=1,
#                              BENCH_NO_APT unset)
#   bench_median               median of the numbers on stdin ("" if none)

BENCH_DIR=${BENCH_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
BENCH_ROOT=${BENCH_ROOT:-$(cd "$BENCH_DIR/../.." && pwd)}
export PATH=$(pg_config --bindir):$PATH
export PGDATABASE=${PGDATABASE:-postgres}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
BENCH_PSQL=(psql -X -q -v ON_ERROR_STOP=1)
BENCH_OWN_CLUSTER=0
BENCH_TMP=""

# Scratch files of this script; removed, and an own cluster stopped, on exit.
BENCH_WORK=$(mktemp -d /tmp/activity_monitor_bench_work.XXXXXX)
bench_cleanup() {
	[ "$BENCH_OWN_CLUSTER" = 1 ] && am_cluster_stop
	[ -n "${BENCH_KEEP_TMP:-}" ] || rm -rf "$BENCH_WORK" ${BENCH_TMP:+"$BENCH_TMP"}
}
trap bench_cleanup EXIT

bench_cluster_up() {
	if [ "${BENCH_USE_EXISTING:-0}" = 1 ]; then
		if [ -z "${PGHOST:-}" ] || [ -z "${PGPORT:-}" ]; then
			echo "BENCH_USE_EXISTING=1 needs PGHOST and PGPORT of a running server" >&2
			return 1
		fi
		BENCH_OWN_CLUSTER=0
	else
		. "$BENCH_ROOT/test/lib/cluster.sh"
		BENCH_TMP=$(mktemp -d /tmp/activity_monitor_bench.XXXXXX)
		chmod 755 "$BENCH_TMP"
		BENCH_OWN_CLUSTER=1
		# Checkpoints only when asked (before each run), not in the middle of one.
		local extra=()
		[ -z "${BENCH_CONF:-}" ] || IFS=';' read -r -a extra <<<"$BENCH_CONF"
		am_cluster_start "$BENCH_TMP/cluster" "max_wal_size = 8GB" "checkpoint_timeout = 1h" \
			${BENCH_CLUSTER_CONF[@]+"${BENCH_CLUSTER_CONF[@]}"} ${extra[@]+"${extra[@]}"} >&2
		BENCH_LIB_SUM=$(bench_lib_sum)
		echo "benchmark cluster: $PGDATA (port $PGPORT)" >&2
	fi
	"${BENCH_PSQL[@]}" -At -c "SELECT 1" >/dev/null
}

# Which build of activity_monitor.so is installed (a short checksum).
bench_lib_sum() {
	md5sum "$(pg_config --pkglibdir)/activity_monitor.so" 2>/dev/null | cut -c1-12
}

# The preloaded library is the one the cluster started with: when
# activity_monitor was reinstalled since (another build in the same tree),
# CREATE EXTENSION would pair the new SQL script with the old code.  Restart
# an own cluster to load the new build; returns 0 if it did.
bench_reload_if_reinstalled() {
	local now
	[ "$BENCH_OWN_CLUSTER" = 1 ] || return 1
	now=$(bench_lib_sum)
	[ "$now" != "$BENCH_LIB_SUM" ] || return 1
	echo "activity_monitor.so changed ($BENCH_LIB_SUM -> $now): restarting the benchmark cluster" >&2
	am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -l "$BENCH_TMP/cluster/server.log" -m fast -w -t 60 restart >/dev/null
	BENCH_LIB_SUM=$now
	return 0
}

bench_ext_available() {
	[ "$(psql -X -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = '$1'")" = 1 ]
}

# Debian package that ships extension $1 for this server's major version.
bench_ext_package() {
	local major
	major=$(psql -X -At -c "SELECT current_setting('server_version_num')::int / 10000")
	case $1 in
	pgq) echo "postgresql-$major-pgq3" ;;
	table_log) echo "postgresql-$major-tablelog" ;;
	*) echo "" ;;
	esac
}

bench_ensure_ext() {
	local ext=$1 pkg
	bench_ext_available "$ext" && return 0
	pkg=$(bench_ext_package "$ext")
	if [ -n "$pkg" ] && [ "$(id -u)" = 0 ] && { [ "$BENCH_OWN_CLUSTER" = 1 ] || [ -n "${BENCH_APT_OK:-}" ]; } &&
		[ -z "${BENCH_NO_APT:-}" ] && command -v apt-get >/dev/null; then
		echo "installing $pkg for extension $ext" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1; } || true
	fi
	bench_ext_available "$ext"
}

bench_median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print ""; exit }
		if (NR % 2) printf "%.6g\n", v[(NR + 1) / 2]
		else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# One line describing the machine and server, for the results file.
bench_machine() {
	local cpu mem
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
	mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
	printf '%s cores (%s), %s memory; %s; fsync=%s, synchronous_commit=%s, shared_buffers=%s; activity_monitor.so %s (installed %s)' \
		"$(nproc)" "${cpu:-unknown CPU}" "${mem:-?}" \
		"$(psql -X -At -c "SELECT split_part(version(), ',', 1)")" \
		"$(psql -X -At -c "SHOW fsync")" "$(psql -X -At -c "SHOW synchronous_commit")" \
		"$(psql -X -At -c "SHOW shared_buffers")" "$(bench_lib_sum)" \
		"$(date -u -r "$(pg_config --pkglibdir)/activity_monitor.so" '+%Y-%m-%d %H:%M UTC' 2>/dev/null)"
}

# --- pre-loaded capture tables (BENCH_PRELOAD) --------------------------------------
#
# Capture cost on a freshly emptied capture table hides how it grows once
# today's partition holds millions of events (an index that no longer fits
# in shared buffers, deeper btrees, full-page images after a checkpoint).
# BENCH_PRELOAD=N lays N events into the capture table of activity_monitor
# (today's partition) and N rows of the same changes into the PL/pgSQL
# reference's audit.record_version, before timing; BENCH_PRELOAD_SUBJECTS
# (100000) accounts share them.
#
#   bench_preload_sql KIND N SUBJECTS   the SQL that pre-loads capture table
#                                       KIND (activity: activity_monitor's;
#                                       audit: plpgsql_audit.sql's), as a
#                                       superuser, then VACUUM ANALYZE and
#                                       CHECKPOINT
#   bench_index_sizes KIND              SQL listing the capture table's
#                                       relations and their sizes
#
# The events are spread evenly, in time order, over today's partition from
# its start to 15 minutes ago (the worker's dashboard rollup re-reads the
# last 10 minutes each naptime: events there would add a cost the run's own
# events do not have); within its first 15 minutes, over what has passed of
# the day.  A third inserts, two thirds status changes, 5 % by employees,
# payment status changes critical (as history.sh's loader); no rule matched
# them (matched NULL: the worker's partial index stays the run's own).  One
# transaction writes them all (its txid on every row), and they are sealed
# (tamper evidence) before the runs, as long-past history is.  The
# reference's rows are the same changes in its shape: the full row as
# jsonb (and the old one for an update), spread over the tables that carry
# its trigger.
bench_preload_sql() {
	local kind=$1 n=$2 subjects=$3
	case $kind in
	activity)
		cat <<-SQL
			DO \$preload\$
			DECLARE
				t_lo	timestamptz;
				t_hi	timestamptz;
				t_cut	timestamptz;
				n_cur	bigint := 0;
			BEGIN
				SELECT p.lower, p.upper INTO t_lo, t_hi FROM activity_monitor._partitions() p
				WHERE p.lower <= pg_catalog.now() AND p.upper > pg_catalog.now();
				IF t_lo IS NULL THEN
					RAISE EXCEPTION 'no dated partition of activity_monitor.activity holds the present';
				END IF;
				IF t_hi - t_lo < interval '1 day' THEN
					-- partitions shorter than a day (BENCH_PARTITION_INTERVAL):
					-- a day's events, the current partition holding its full
					-- share (the worst case of an evenly loaded day) over
					-- what has passed of it, the rest evenly over the hours
					-- before it (each row goes to its partition); none
					-- after the present
					n_cur := ceil($n * extract(epoch FROM t_hi - t_lo) / 86400)::bigint;
					t_cut := t_lo;
					t_lo := t_hi - interval '1 day';
					t_hi := pg_catalog.now();
				ELSE
					t_hi := least(t_hi, pg_catalog.now() - interval '15 minutes');
					IF t_hi <= t_lo THEN
						t_hi := pg_catalog.now();
					END IF;
					t_cut := t_hi;
				END IF;
				INSERT INTO activity_monitor.activity
					(occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id,
					 actor_reason, status_from, status_to, critical, old_values, new_values,
					 db_user, application_name, client_addr, backend_pid)
				SELECT CASE WHEN g <= $n - n_cur THEN t_lo + (g - 1) * ((t_cut - t_lo) / ($n - n_cur))
							ELSE t_cut + (g - 1 - ($n - n_cur)) * ((t_hi - t_cut) / nullif(n_cur, 0)) END,
					   k.kind, CASE WHEN g % 3 = 0 THEN 'insert' ELSE 'update' END,
					   'public.' || k.kind || 's', (g / 3)::text, s.subject,
					   CASE WHEN g % 20 = 0 THEN 'employee' WHEN g % 2 = 0 THEN 'user' ELSE 'service' END,
					   CASE WHEN g % 20 = 0 THEN 'emp-' || (g / 20) % 50 ELSE 'u-' || s.subject END,
					   CASE WHEN g % 20 = 0 THEN 'ticket ' || g % 5000 END,
					   CASE WHEN g % 3 = 1 THEN 'pending' END, CASE WHEN g % 3 = 1 THEN 'completed' END,
					   g % 3 = 1 AND k.kind = 'payment',
					   CASE WHEN g % 3 <> 0 THEN jsonb_build_object('status', 'pending', 'amount', g % 1000) END,
					   CASE WHEN g % 3 = 0 THEN jsonb_build_object('id', g / 3, 'account_id', s.subject::bigint, 'amount', g % 1000,
																  'currency', 'EUR', 'status', 'pending')
							ELSE jsonb_build_object('status', 'completed', 'amount', g % 1000) END,
					   'app', 'api', '10.0.0.0'::inet + g % 5000, 1000 + g % 50
				FROM pg_catalog.generate_series(1::bigint, $n) g
				CROSS JOIN LATERAL (SELECT (ARRAY['payment','login','profile','game','provider'])[1 + g % 5] AS kind) k
				CROSS JOIN LATERAL (SELECT ((g * 48271) % $subjects)::text AS subject) s;
			END
			\$preload\$;
			VACUUM ANALYZE activity_monitor.activity;
			-- sealed, as the worker of a database with this history has
			-- done long ago (the first round after an update seals it once)
			SELECT pg_catalog.count(*) FROM activity_monitor._seal();
			CHECKPOINT;
		SQL
		;;
	audit)
		cat <<-SQL
			DO \$preload\$
			DECLARE
				t_lo	timestamptz := pg_catalog.date_trunc('day', pg_catalog.now(), 'UTC');
				t_hi	timestamptz := pg_catalog.now() - interval '15 minutes';
				tabs	oid[];
			BEGIN
				IF t_hi <= t_lo THEN
					t_hi := pg_catalog.now();
				END IF;
				SELECT pg_catalog.array_agg(t.tgrelid ORDER BY t.tgrelid) INTO tabs
				FROM pg_catalog.pg_trigger t
				JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
				JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname = 'audit' AND p.proname = 'insert_update_delete_trigger';
				IF tabs IS NULL THEN
					RAISE EXCEPTION 'no table carries audit.insert_update_delete_trigger()';
				END IF;
				INSERT INTO audit.record_version
					(op, ts, table_oid, table_schema, table_name, txid, session_user_name, record, old_record)
				SELECT CASE WHEN g % 3 = 0 THEN 'INSERT' ELSE 'UPDATE' END, x.ts, c.oid, n.nspname, c.relname,
					   1000000 + g / 4, 'app',
					   jsonb_build_object('id', g / 3, 'account_id', x.subject, 'amount', (g % 50000) / 100.0,
										  'currency', 'EUR', 'status', CASE WHEN g % 3 = 0 THEN 'pending' ELSE 'completed' END,
										  'created_at', x.ts, 'updated_at', x.ts),
					   CASE WHEN g % 3 <> 0 THEN
						   jsonb_build_object('id', g / 3, 'account_id', x.subject, 'amount', (g % 50000) / 100.0,
											  'currency', 'EUR', 'status', 'pending', 'created_at', x.ts, 'updated_at', x.ts)
					   END
				FROM pg_catalog.generate_series(1::bigint, $n) g
				CROSS JOIN LATERAL (SELECT t_lo + (g - 1) * ((t_hi - t_lo) / $n) AS ts,
										   (g * 48271) % $subjects AS subject) x
				JOIN pg_catalog.pg_class c ON c.oid = tabs[1 + g % pg_catalog.array_length(tabs, 1)]
				JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
			END
			\$preload\$;
			VACUUM ANALYZE audit.record_version;
			CHECKPOINT;
		SQL
		;;
	*) echo "bench_preload_sql: unknown kind $kind" >&2; return 2 ;;
	esac
}

# BENCH_PARTITION_INTERVAL (e.g. "1 hour"): the activity table's partitions
# are that long instead of the default day (configure(partition_interval))
# from today's start (UTC) on, yesterday one partition, as the worker's
# merge leaves it (a day of partitions shorter than a day merges an hour
# after it ended: no merge is due during the runs): SQL to run right after
# CREATE EXTENSION (its own partitions, still empty, are replaced).
# Nothing when unset.
bench_layout_sql() {
	[ -n "${BENCH_PARTITION_INTERVAL:-}" ] || return 0
	cat <<-SQL
		SELECT activity_monitor.configure(partition_interval => '$BENCH_PARTITION_INTERVAL');
		DO \$layout\$
		DECLARE
			p	regclass;
		BEGIN
			FOR p IN SELECT q.part FROM activity_monitor._partitions() q WHERE q.lower IS NOT NULL LOOP
				EXECUTE pg_catalog.format('DROP TABLE %s', p);
			END LOOP;
			PERFORM activity_monitor._create_partition(pg_catalog.date_trunc('day', pg_catalog.now(), 'UTC') - interval '1 day',
													   pg_catalog.date_trunc('day', pg_catalog.now(), 'UTC'));
			PERFORM activity_monitor.maintain(now => g)
			FROM pg_catalog.generate_series(pg_catalog.date_trunc('day', pg_catalog.now(), 'UTC'), pg_catalog.now(),
											'$BENCH_PARTITION_INTERVAL'::interval) g;
			PERFORM activity_monitor.maintain();
		END
		\$layout\$;
	SQL
}

bench_index_sizes() {
	case $1 in
	activity)
		echo "SELECT c.relname || ' ' || coalesce(substring(pg_catalog.pg_get_indexdef(i.indexrelid) FROM ' USING btree (.*)\$') || ' ', '')
			|| pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(c.oid))
		FROM pg_catalog.pg_partition_tree('activity_monitor.activity') t
		JOIN pg_catalog.pg_class p ON p.oid = t.relid
		JOIN pg_catalog.pg_index i ON i.indrelid = t.relid
		JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
		WHERE t.isleaf AND p.reltuples > 0 AND t.relid = (SELECT q.part FROM activity_monitor._partitions() q
														 WHERE q.lower <= pg_catalog.now() AND q.upper > pg_catalog.now())
		UNION ALL
		SELECT p.relname || ' heap ' || pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(p.oid))
			|| ', total ' || pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(p.oid))
		FROM pg_catalog.pg_partition_tree('activity_monitor.activity') t
		JOIN pg_catalog.pg_class p ON p.oid = t.relid
		WHERE t.isleaf AND p.reltuples > 0 AND t.relid = (SELECT q.part FROM activity_monitor._partitions() q
														 WHERE q.lower <= pg_catalog.now() AND q.upper > pg_catalog.now())"
		;;
	audit)
		echo "SELECT c.relname || ' ' || pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(c.oid))
		FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'audit.record_version'::regclass
		UNION ALL
		SELECT 'record_version heap ' || pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size('audit.record_version'))
			|| ', total ' || pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size('audit.record_version'))"
		;;
	esac
}

# Wait (at most 10 s) until no pgbench session is left in database $1.
bench_wait_pgbench_gone() {
	local i
	for i in $(seq 1 100); do
		[ "$(psql -X -At -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$1' AND application_name = 'pgbench'")" = 0 ] && return 0
		sleep 0.1
	done
}

# CPU time the server has used so far, in µs: the postmaster's own and that
# of its children, live (utime + stime) or exited (the postmaster's cutime +
# cstime); empty when the server's data directory (PGDATA) is not readable
# here.  A backend that exits between the two reads is missed: let a run's
# sessions end before calling it.
bench_server_cpu_us() {
	local pm c
	[ -n "${PGDATA:-}" ] && [ -r "$PGDATA/postmaster.pid" ] || return 0
	pm=$(head -n 1 "$PGDATA/postmaster.pid")
	[ -r "/proc/$pm/stat" ] || return 0
	{
		echo "P $(cat "/proc/$pm/stat")"
		for c in $(ps --ppid "$pm" -o pid= 2>/dev/null); do
			# a child gone since ps listed it: skipped (not a failed pipeline)
			if c=$(cat "/proc/$c/stat" 2>/dev/null); then echo "C $c"; fi
		done
	} | sed 's/^\([PC]\) [0-9]* (.*) /\1 /' |
		awk -v tck="$(getconf CLK_TCK)" '$1 == "P" { t += $13 + $14 + $15 + $16 } $1 == "C" { t += $13 + $14 }
			END { printf "%.0f\n", t * 1000000 / tck }'
}
