#!/usr/bin/env bash
# Template databases: a DBA who installs the extension in a template (so that
# every new database has it) must still be able to create databases from it,
# and the databases created get their worker without a restart.  On 0.1.0
# the worker of a database marked IS_TEMPLATE stayed connected, and CREATE
# DATABASE ... TEMPLATE failed ("source database ... is being accessed by
# other users"); a database created from it had no worker until the server
# restarted (no partitions made ahead, no alerts).
#
# 1. A database with the extension and its worker is made a template: its
#    worker leaves at once, CREATE DATABASE copies it.
# 2. The copy gets its own worker when it is created: running, and alerting
#    (an event rule fires on a captured insert).
# 3. CREATE EXTENSION in a database that is already a template starts no
#    worker there: CREATE DATABASE copies it at once.
# 4. ALTER DATABASE ... IS_TEMPLATE true rolled back keeps the worker (same
#    pid); IS_TEMPLATE false brings it back.
# 5. The owner of a database, not a superuser, cannot make it a template
#    (which would stop its monitoring): 42501, nothing changes; not even
#    while its worker is not running (an owner can keep it away for a
#    while with a DROP DATABASE that fails).
# 6. IS_TEMPLATE false on a database that is not a template starts no
#    worker (a loop of them filled every worker slot).
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster), AM_ROOT.  Exit 0 = pass.
# Every wait has a deadline.
set -euo pipefail
db=am_tpl
. "$AM_ROOT/test/lib/shell.sh"
dbs="am_tpl am_tpl_copy am_tpl2 am_tpl2_copy am_tpl_owned am_tpl_bare"
cleanup() {
	for d in $dbs; do
		psql -X -q -d postgres -c "SET client_min_messages = warning" \
			-c "ALTER DATABASE $d IS_TEMPLATE false" >/dev/null 2>&1 || true
		psql -X -q -d postgres -c "SET client_min_messages = warning" \
			-c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
	done
	psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS am_tpl_owner" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
pg() { psql -X -At -v ON_ERROR_STOP=1 -d postgres -c "$1"; }
# workers connected to database $1 (pids)
workers() { pg "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity
	WHERE backend_type = 'activity_monitor worker' AND datname = '$1'"; }
no_worker() {	# database, seconds
	local deadline=$(($(date +%s) + $2))
	while [ -n "$(workers "$1")" ]; do
		[ "$(date +%s)" -le "$deadline" ] || return 1
		sleep 0.1
	done
}
has_worker() {	# database, seconds
	am_wait_for "$2" "$1" "SELECT running FROM activity_monitor.worker_status"
}

# 1. a database with its worker becomes a template
am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d am_tpl >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id int PRIMARY KEY, amount numeric);
SELECT activity_monitor.track('payments', 'payment');
SELECT activity_monitor.create_rule('big', '$.new.amount > 1000');
SQL
has_worker am_tpl 30 || fail "am_tpl has no worker"
pg "ALTER DATABASE am_tpl IS_TEMPLATE true" >/dev/null
no_worker am_tpl 5 || fail "the worker of am_tpl stayed connected after IS_TEMPLATE true: $(workers am_tpl)"
out=$(pg "CREATE DATABASE am_tpl_copy TEMPLATE am_tpl" 2>&1) ||
	fail "CREATE DATABASE from the template failed: $out"
grep -q 'activity_monitor worker for database "am_tpl" stops: the database is a template' "$PGHOST/server.log" ||
	fail "the server log does not say why the worker of am_tpl left"
echo "ok: the worker leaves a database made a template, CREATE DATABASE copies it"

# 2. the copy has its worker, without a restart, and it alerts
db=am_tpl_copy
has_worker am_tpl_copy 30 || fail "am_tpl_copy got no worker"
q "INSERT INTO payments VALUES (1, 5000), (2, 10)" >/dev/null
am_wait_for 30 am_tpl_copy "SELECT count(*) = 1 FROM activity_monitor.alerts" ||
	fail "no alert in am_tpl_copy: $(q "SELECT count(*) FROM activity_monitor.alerts")"
echo "ok: the copy got its worker at CREATE DATABASE, and it alerts"

# 3. CREATE EXTENSION in a template: no worker there
db=am_tpl2
am_db_new
pg "ALTER DATABASE am_tpl2 IS_TEMPLATE true" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d am_tpl2 \
	-c "CREATE EXTENSION activity_monitor" >/dev/null
[ -z "$(workers am_tpl2)" ] || fail "a worker connected to the template am_tpl2"
out=$(pg "CREATE DATABASE am_tpl2_copy TEMPLATE am_tpl2" 2>&1) ||
	fail "CREATE DATABASE from a template where the extension was created failed: $out"
db=am_tpl2_copy
has_worker am_tpl2_copy 30 || fail "am_tpl2_copy got no worker"
sleep 1
[ -z "$(workers am_tpl2)" ] || fail "a worker connected to the template am_tpl2"
echo "ok: CREATE EXTENSION in a template starts no worker there; its copy has one"

# 4. a rolled-back IS_TEMPLATE keeps the worker; IS_TEMPLATE false brings it back
db=am_tpl_copy
pid=$(workers am_tpl_copy)
[ -n "$pid" ] || fail "am_tpl_copy has no worker"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "BEGIN" -c "ALTER DATABASE am_tpl_copy IS_TEMPLATE true" \
	-c "ROLLBACK" >/dev/null
sleep 1
[ "$(workers am_tpl_copy)" = "$pid" ] || fail "the worker changed after a rolled-back IS_TEMPLATE: $pid, now $(workers am_tpl_copy)"
pg "ALTER DATABASE am_tpl IS_TEMPLATE false" >/dev/null
db=am_tpl
has_worker am_tpl 30 || fail "am_tpl got no worker back after IS_TEMPLATE false"
echo "ok: a rolled-back IS_TEMPLATE keeps the worker; IS_TEMPLATE false brings it back"

# 5. the owner cannot stop the monitoring by making the database a template
db=am_tpl_owned
pg "CREATE ROLE am_tpl_owner LOGIN" >/dev/null
pg "CREATE DATABASE am_tpl_owned OWNER am_tpl_owner" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d am_tpl_owned \
	-c "CREATE EXTENSION activity_monitor" >/dev/null
has_worker am_tpl_owned 30 || fail "am_tpl_owned has no worker"
pid=$(workers am_tpl_owned)
out=$(psql -X -At -U am_tpl_owner -d postgres -c "\\set VERBOSITY verbose" -c "ALTER DATABASE am_tpl_owned IS_TEMPLATE true" 2>&1) &&
	fail "the owner made the monitored database a template"
grep -q '^ERROR:  42501: permission denied to make database "am_tpl_owned" a template' <<<"$out" ||
	fail "the owner's IS_TEMPLATE true gave: $out"
[ "$(pg "SELECT datistemplate FROM pg_database WHERE datname = 'am_tpl_owned'")" = f ] ||
	fail "am_tpl_owned became a template"
sleep 1
[ "$(workers am_tpl_owned)" = "$pid" ] || fail "the worker of am_tpl_owned changed: $pid, now $(workers am_tpl_owned)"
echo "ok: the owner of a monitored database cannot make it a template (42501), its worker stays"

# ... also while no worker runs there
pg "CREATE DATABASE am_tpl_bare OWNER am_tpl_owner" >/dev/null
out=$(psql -X -At -U am_tpl_owner -d postgres -c "ALTER DATABASE am_tpl_bare IS_TEMPLATE true" 2>&1) &&
	fail "the owner made a database without a worker a template"
grep -q 'permission denied to make database "am_tpl_bare" a template' <<<"$out" || fail "IS_TEMPLATE true on am_tpl_bare gave: $out"
echo "ok: the owner cannot make a database a template with or without a running worker"

# 6. IS_TEMPLATE false where it was false already: no worker started
before=$(grep -c 'worker started for database "am_tpl_owned"' "$PGHOST/server.log" || true)
full0=$(grep -c "No background worker slot is free" "$PGHOST/server.log" || true)
for i in $(seq 1 30); do echo "ALTER DATABASE am_tpl_owned IS_TEMPLATE false;"; done |
	psql -X -q -U am_tpl_owner -d postgres >/dev/null 2>&1
sleep 2
after=$(grep -c 'worker started for database "am_tpl_owned"' "$PGHOST/server.log" || true)
[ "$after" = "$before" ] || fail "30 IS_TEMPLATE false on a database that is no template started $((after - before)) workers"
[ "$(grep -c "No background worker slot is free" "$PGHOST/server.log" || true)" = "$full0" ] || fail "worker slots ran out"
[ "$(workers am_tpl_owned)" = "$pid" ] || fail "the worker of am_tpl_owned changed"
echo "ok: IS_TEMPLATE false on a database that is no template starts nothing"
