# Shared by test/bench/run.sh and test/bench/micro.sh (sourced, not run):
# the cluster the benchmarks use, variant availability, medians, machine
# facts.
#
#   bench_cluster_up     BENCH_USE_EXISTING=1: use the server PGHOST/PGPORT
#                        name (the test suite's); otherwise start a throwaway
#                        cluster with test/lib/cluster.sh, stopped on exit,
#                        with the postgresql.conf lines of the array
#                        BENCH_CLUSTER_CONF (set by the calling script) added
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
		am_cluster_start "$BENCH_TMP/cluster" "max_wal_size = 8GB" "checkpoint_timeout = 1h" \
			${BENCH_CLUSTER_CONF[@]+"${BENCH_CLUSTER_CONF[@]}"} >&2
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
