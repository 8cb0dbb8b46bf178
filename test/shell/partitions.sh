#!/usr/bin/env bash
# Partitions of tracked tables (issue 12) where one session is not enough:
#
# 1. A session that wrote a tracked table (its settings cached) keeps
#    writing while another session attaches that table below a tracked
#    table and later detaches it CONCURRENTLY: each of its changes is
#    captured once, with the settings that govern at that moment.  The
#    table's owner (a login role with no activity_monitor role) creates a
#    partition and attaches an empty table: captured, TRUNCATE included.
# 2. track() of a parent waits for an ATTACH in progress below it and then
#    gives the attached partition its TRUNCATE trigger.
# 3. Updating from 0.1.0 gives partitions that were added after track() the
#    TRUNCATE trigger 0.1.0 left them without.
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster), AM_ROOT, AM_TMP.  Exit 0 =
# pass.  Every wait has a deadline.
set -euo pipefail
db=am_partitions
role=am_parts_owner
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/partitions
rm -rf "$work"
mkdir -p "$work"
bpid=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
	am_db_drop
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS am_partitions_upg WITH (FORCE)" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
}
trap cleanup EXIT

am_db_new
psql -X -q -d postgres -c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role LOGIN" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL || fail "setup failed"
CREATE EXTENSION activity_monitor;
GRANT USAGE, CREATE ON SCHEMA public TO $role;
CREATE TABLE p (id int PRIMARY KEY, v text, secret text) PARTITION BY RANGE (id);
CREATE TABLE c (id int PRIMARY KEY, v text, secret text);
ALTER TABLE p OWNER TO $role;
ALTER TABLE c OWNER TO $role;
SELECT activity_monitor.track('p', 'game', redact_columns => '{secret}');
SELECT activity_monitor.track('c', 'payment');
SQL

# the events after id $1, as "table kind action secret; ..."
events_after() {
	q "SELECT coalesce(string_agg(format('%s %s %s %s', table_name, kind, action,
			coalesce(new_values ->> 'secret', '-')), '; ' ORDER BY id), 'none')
	   FROM activity_monitor.activity WHERE id > $1 AND action <> 'ddl'"
}
mark() { q "SELECT coalesce(max(id), 0) FROM activity_monitor.activity"; }

# session B, fed statement by statement through a fifo; each step ends with
# a numbered marker it prints when done
rm -f "$work/b.fifo"
mkfifo "$work/b.fifo"
psql -X -q -At -d "$db" <"$work/b.fifo" >"$work/b.out" 2>&1 &
bpid=$!
exec 3>"$work/b.fifo"
step=0
b() {	# run SQL $1 in session B and wait for it
	step=$((step + 1))
	echo "$1" >&3
	echo "SELECT 'step $step done';" >&3
	local deadline=$(($(date +%s) + 30))
	until grep -q "^step $step done$" "$work/b.out"; do
		[ "$(date +%s)" -le "$deadline" ] || fail "session B did not finish: $1 ($(cat "$work/b.out"))"
		sleep 0.05
	done
	! grep -q ERROR "$work/b.out" || fail "session B: $(cat "$work/b.out")"
}
expect() {	# mark, expected events, what
	local got
	got=$(events_after "$1")
	[ "$got" = "$2" ] || fail "$3: got [$got], expected [$2]"
	echo "ok: $3"
}

# --- 1. a session with cached settings, attach and DETACH CONCURRENTLY ------
m=$(mark)
b "INSERT INTO c VALUES (1, 'a', 's3cret');"
expect "$m" "public.c payment insert s3cret" "before the attach: the child's own settings"
q "ALTER TABLE p ATTACH PARTITION c FOR VALUES FROM (0) TO (100)" >/dev/null
m=$(mark)
b "INSERT INTO c VALUES (2, 'a', 's3cret'); UPDATE p SET v = 'b' WHERE id = 2; DELETE FROM c WHERE id = 2;"
expect "$m" "public.p game insert [redacted]; public.p game update -; public.p game delete -" \
	"attached (another session): each change once, as the tracked parent's, redacted"
q "ALTER TABLE p DETACH PARTITION c CONCURRENTLY" >/dev/null
m=$(mark)
b "INSERT INTO c VALUES (3, 'a', 's3cret'); TRUNCATE c;"
expect "$m" "public.c payment insert s3cret; public.c payment truncate -" \
	"detached concurrently: the child's own settings again, each change once"
[ "$(q "SELECT string_agg(tgname || ':' || (tgparentid = 0), ',' ORDER BY tgname) FROM pg_trigger
		WHERE tgrelid = 'c'::regclass AND tgfoid = 'activity_monitor.capture()'::regprocedure")" = \
	"activity_monitor_capture:true,activity_monitor_truncate:true" ] ||
	fail "the detached tracked table lacks its own capture triggers"

# the owner adds partitions: created, and an empty table attached
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -U "$role" -d "$db" >"$work/owner.out" 2>&1 <<'SQL' ||
CREATE TABLE p_new PARTITION OF p FOR VALUES FROM (100) TO (200);
CREATE TABLE p_att (id int PRIMARY KEY, v text, secret text);
ALTER TABLE p ATTACH PARTITION p_att FOR VALUES FROM (200) TO (300);
SQL
	fail "the owner could not add partitions: $(cat "$work/owner.out")"
m=$(mark)
b "INSERT INTO p VALUES (101, 'a', 's3cret'), (201, 'a', 's3cret'); TRUNCATE p_new; TRUNCATE p_att;"
expect "$m" "public.p game insert [redacted]; public.p game insert [redacted]; public.p game truncate -; public.p game truncate -" \
	"partitions the owner added: each change once, TRUNCATE included"
q "ALTER TABLE p DETACH PARTITION p_att CONCURRENTLY" >/dev/null
[ "$(q "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'p_att'::regclass
		AND tgfoid = 'activity_monitor.capture()'::regprocedure")" = 0 ] ||
	fail "an untracked table detached concurrently kept capture triggers"
m=$(mark)
b "INSERT INTO p_att VALUES (202, 'a', 's3cret'); TRUNCATE p_att;"
expect "$m" "none" "an untracked table detached concurrently: not captured"
exec 3>&-
wait "$bpid" || true
bpid=""

# --- 2. track() waits for an ATTACH in progress -----------------------------
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE TABLE q (id int PRIMARY KEY, v text, secret text) PARTITION BY RANGE (id);
CREATE TABLE q1 (id int PRIMARY KEY, v text, secret text);
SQL
rm -f "$work/a.fifo"
mkfifo "$work/a.fifo"
PGAPPNAME=am_parts_a psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <"$work/a.fifo" >"$work/a.out" 2>&1 &
bpid=$!
exec 3>"$work/a.fifo"
echo "BEGIN; ALTER TABLE q ATTACH PARTITION q1 FOR VALUES FROM (0) TO (100);" >&3
am_wait_for 15 "$db" "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'am_parts_a'
	AND state = 'idle in transaction')" || fail "session A did not attach: $(cat "$work/a.out")"
PGAPPNAME=am_parts_t psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" \
	-c "SELECT activity_monitor.track('q', 'game')" >"$work/t.out" 2>&1 &
tpid=$!
am_wait_for 15 "$db" "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'am_parts_t'
	AND wait_event_type = 'Lock')" || fail "track() did not wait for the ATTACH: $(cat "$work/t.out")"
echo "COMMIT;" >&3
exec 3>&-
wait "$bpid" || fail "session A failed: $(cat "$work/a.out")"
bpid=""
wait "$tpid" || fail "track() failed: $(cat "$work/t.out")"
[ "$(q "SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'q1'::regclass
		AND tgfoid = 'activity_monitor.capture()'::regprocedure")" = \
	"activity_monitor_capture,activity_monitor_truncate" ] ||
	fail "the partition attached while track() waited lacks a capture trigger"
m=$(mark)
q "INSERT INTO q VALUES (1, 'a', 'x')" >/dev/null
q "TRUNCATE q1" >/dev/null
expect "$m" "public.q game insert x; public.q game truncate -" \
	"track() after a concurrent ATTACH: the new partition's changes captured once"

# --- 3. update from 0.1.0 -----------------------------------------------------
udb=am_partitions_upg
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $udb WITH (FORCE)" \
	-c "CREATE DATABASE $udb" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$udb" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor VERSION '0.1.0';
CREATE TABLE u (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE u1 PARTITION OF u FOR VALUES FROM (0) TO (100);
SELECT activity_monitor.track('u', 'game');
CREATE TABLE u2 PARTITION OF u FOR VALUES FROM (100) TO (200);
SQL
uq() { psql -X -At -v ON_ERROR_STOP=1 -d "$udb" -c "$1"; }
[ "$(uq "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'u2'::regclass AND tgname = 'activity_monitor_truncate'")" = 0 ] ||
	fail "0.1.0 gave a partition added after track() a TRUNCATE trigger (the test's premise)"
uq "ALTER EXTENSION activity_monitor UPDATE" >/dev/null
uq "INSERT INTO u VALUES (150, 'a')" >/dev/null
uq "TRUNCATE u2" >/dev/null
[ "$(uq "SELECT string_agg(table_name || ' ' || action, '; ' ORDER BY id) FROM activity_monitor.activity")" = \
	"public.u insert; public.u truncate" ] ||
	fail "after the update: $(uq "SELECT string_agg(table_name || ' ' || action, '; ' ORDER BY id) FROM activity_monitor.activity")"
echo "ok: the update gave a partition 0.1.0 left without one its TRUNCATE trigger"
