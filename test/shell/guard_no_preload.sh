#!/usr/bin/env bash
# The DDL guard works in a backend that has not loaded the library: a
# second, throwaway cluster without shared_preload_libraries; in a fresh
# session the table's owner is refused DISABLE TRIGGER (SQLSTATE 42501), the
# event trigger loading the library itself.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
(
	unset AM_PORT
	am_cluster_start "$AM_TMP/guard_no_preload" "shared_preload_libraries = ''" >/dev/null
	trap am_cluster_stop EXIT
	psql -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE ROLE am_np_owner LOGIN;
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id int PRIMARY KEY, v text);
ALTER TABLE t OWNER TO am_np_owner;
SELECT activity_monitor.track('t', 'profile');
SQL
	got=$(psql -X -q -At -U am_np_owner -d postgres -v VERBOSITY=sqlstate <<'SQL' 2>&1 || true
SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE false;
ALTER TABLE t DISABLE TRIGGER activity_monitor_capture;
SQL
)
	[ "$got" = "$(printf '0\nERROR:  42501')" ] || fail "owner's DISABLE TRIGGER without preload: $got"
	[ "$(psql -X -At -c "SELECT tgenabled FROM pg_trigger WHERE tgname = 'activity_monitor_capture'")" = O ] ||
		fail "the trigger was disabled"
	echo "ok: refused without preload"
)
