#!/usr/bin/env bash
# The test command (make test): install what is missing, build, install,
# start a throwaway cluster with activity_monitor preloaded, run every suite
# (pg_regress: sql/ + expected/; isolation: test/isolation; pgTAP:
# test/pgtap; multi-session, worker and crash tests: test/shell), stop the
# cluster and print
# "N passed, N failed".  Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# --- packages ---------------------------------------------------------------
pkgs="postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libpq-dev make gcc bc"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (run as root, or apt-get install them)" >&2
		exit 2
	fi
	echo "installing:$missing"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
		{ echo "apt-get install failed" >&2; exit 2; }
fi
# PG_CONFIG may name another (relocated) PostgreSQL 15 installation to build,
# install and test against; the default is Debian's.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH=$("$PG_CONFIG" --bindir):$PATH PG_CONFIG
# AM_ONLY=REGEX runs only the suites whose name (regress/capture,
# isolation/alerts_batch, pgtap/rules, shell/worker, ...) matches.
only() { [ -z "${AM_ONLY:-}" ] || [[ $1 =~ $AM_ONLY ]]; }

# --- build and install --------------------------------------------------------
make -s clean >/dev/null 2>&1
if ! make -s 2>build.log; then cat build.log; echo "0 passed, 1 failed"; exit 1; fi
if grep -q "warning:" build.log; then cat build.log; echo "build has warnings"; echo "0 passed, 1 failed"; exit 1; fi
rm -f build.log
make -s install >/dev/null || { echo "make install failed (run as root?)"; echo "0 passed, 1 failed"; exit 1; }

# --- cluster ------------------------------------------------------------------
. test/lib/cluster.sh
tmp=$(mktemp -d /tmp/activity_monitor_test.XXXXXX)
chmod 755 "$tmp"
trap 'am_cluster_stop; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
am_cluster_start "$tmp/cluster" || { echo "0 passed, 1 failed"; exit 1; }
export AM_TMP=$tmp AM_ROOT=$root
echo "cluster: $PGDATA (port $PGPORT)"

passed=0
failed=0
failures=""
record() {	# name status
	if [ "$2" = 0 ]; then
		passed=$((passed + 1)); printf '  ok      %s\n' "$1"
	else
		failed=$((failed + 1)); failures="$failures $1"; printf '  FAILED  %s\n' "$1"
	fi
}

# --- pg_regress -------------------------------------------------------------------
echo "pg_regress (sql/, expected/):"
regress=""
for t in $(make -s -f Makefile print-regress 2>/dev/null); do only "regress/$t" && regress="$regress $t"; done
if [ -n "$regress" ]; then
	pgxs=$(dirname "$(pg_config --pgxs)")
	"$pgxs/../test/regress/pg_regress" --inputdir=. --outputdir="$tmp/regress" \
		--bindir="$(pg_config --bindir)" --host="$PGHOST" --port="$PGPORT" --user=postgres \
		--dbname=am_regress $regress >"$tmp/regress.out" 2>&1
	for t in $regress; do
		if grep -Eq "^(test|ok|not ok)? *[0-9]* *-? *$t +\.\.\. ok|^ok .* $t " "$tmp/regress.out" ||
			grep -Eq "(^| )$t +\.\.\. ok" "$tmp/regress.out"; then
			record "regress/$t" 0
		else
			record "regress/$t" 1
		fi
	done
	[ -f "$tmp/regress/regression.diffs" ] && cp "$tmp/regress/regression.diffs" "$root/regression.diffs" &&
		echo "  (differences in regression.diffs)"
fi

# --- isolation (pg_isolation_regress) ------------------------------------------------
echo "isolation (test/isolation):"
isolation=""
for t in $(make -s -f Makefile print-isolation 2>/dev/null); do only "isolation/$t" && isolation="$isolation $t"; done
if [ -n "$isolation" ]; then
	pgxs=$(dirname "$(pg_config --pgxs)")
	out=test/isolation/output
	"$pgxs/../test/isolation/pg_isolation_regress" --inputdir=test/isolation --outputdir="$out" \
		--bindir="$(pg_config --bindir)" --host="$PGHOST" --port="$PGPORT" --user=postgres \
		--dbname=am_isolation $isolation >"$tmp/isolation.out" 2>&1
	for t in $isolation; do
		grep -Eq "(^| )$t +\.\.\. ok" "$tmp/isolation.out"
		record "isolation/$t" $?
	done
	[ -f "$out/regression.diffs" ] && echo "  (differences in $out/regression.diffs)"
fi

# --- pgTAP ------------------------------------------------------------------------
echo "pgTAP (test/pgtap):"
for f in test/pgtap/*.sql; do
	[ -e "$f" ] || continue
	only "pgtap/$(basename "$f" .sql)" || continue
	db=am_tap_$(basename "$f" .sql)
	psql -X -q -c "CREATE DATABASE $db" >/dev/null &&
		psql -X -q -d "$db" -c "CREATE EXTENSION pgtap; CREATE EXTENSION activity_monitor;" >/dev/null
	pg_prove ${AM_PROVE_FLAGS:--q} -d "$db" "$f" >"$tmp/tap.out" 2>&1
	st=$?
	[ $st = 0 ] || cat "$tmp/tap.out"
	record "pgtap/$(basename "$f" .sql)" $st
done

# --- multi-session, worker, crash ---------------------------------------------------
echo "shell (test/shell):"
for f in test/shell/*.sh; do
	[ -e "$f" ] || continue
	name=$(basename "$f" .sh)
	only "shell/$name" || continue
	bash "$f" >"$tmp/$name.out" 2>&1
	st=$?
	[ $st = 0 ] || tail -n 40 "$tmp/$name.out"
	record "shell/$name" $st
done

echo
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
