#!/usr/bin/env bash
# Capture works without shared_preload_libraries: a second, throwaway
# cluster with the library not preloaded; the first captured write loads it.
# SET LOCAL of the actor settings before the library is loaded (placeholder
# settings) is honoured.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
# a cluster of our own, in a subshell so the suite's PG* stay untouched
(
	unset AM_PORT
	am_cluster_start "$AM_TMP/no_preload" "shared_preload_libraries = ''" >/dev/null
	trap am_cluster_stop EXIT
	[ "$(psql -X -At -c "SHOW shared_preload_libraries")" = "" ] || fail "library preloaded"
	psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id int PRIMARY KEY, v text);
SELECT activity_monitor.track('t', 'profile');
SQL
	# a new session: the library is not loaded yet when SET LOCAL runs
	got=$(psql -X -q -At -v ON_ERROR_STOP=1 <<'SQL'
BEGIN;
SET LOCAL activity_monitor.actor_type = 'employee';
SET LOCAL activity_monitor.actor_id = 'emp-1';
INSERT INTO t VALUES (1, 'a');
COMMIT;
UPDATE t SET v = 'b';
SELECT string_agg(action || ':' || actor_type || ':' || actor_id, ',' ORDER BY id) FROM activity_monitor.activity WHERE kind <> 'admin';
SQL
)
	[ "$got" = "insert:employee:emp-1,update:service:postgres" ] || fail "events without preload: $got"
	echo "ok: $got"
)
